"""`rtflow init [DIR] [--example NAME]`: write a small working project that runs at once with `--sim`.

The examples are folders of `rtflow/examples/` (shipped with the package); each holds a flow, the files it
names, and a README of a few lines, and its first comment line says what it shows. Nothing is overwritten: a
file that already exists is named and the command stops before writing anything.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import click

from rtflow.errors import FlowError

_DEFAULT_EXAMPLE = "starter"


def _examples() -> dict[str, Traversable]:
    root = files("rtflow").joinpath("examples")
    return {entry.name: entry for entry in sorted(root.iterdir(), key=lambda e: e.name) if entry.is_dir()
            and not entry.name.startswith(("_", "."))}  # fmt: skip


def _summary(example: Traversable) -> str:
    """The example's `description:` line, for the list."""
    for line in example.joinpath("flow.yaml").read_text(encoding="utf-8").splitlines():
        if line.startswith("description:"):
            return line.removeprefix("description:").strip()
    return ""


def _files_of(folder: Traversable, prefix: Path = Path()) -> list[tuple[Path, Traversable]]:
    found: list[tuple[Path, Traversable]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if entry.is_dir():
            found.extend(_files_of(entry, prefix / entry.name))
        else:
            found.append((prefix / entry.name, entry))
    return found


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--example", "example_name", default=_DEFAULT_EXAMPLE, show_default=True, metavar="NAME",
              help="Which example to start from (see --list).")  # fmt: skip
@click.option("--list", "list_only", is_flag=True, help="List the examples and exit.")
def init_command(directory: Path, example_name: str, list_only: bool) -> None:
    """Write a small working rtflow project into DIRECTORY (default: here)."""
    examples = _examples()
    if list_only:
        for name, example in examples.items():
            click.echo(f"{name:<12} {_summary(example)}")
        return
    chosen = examples.get(example_name)
    if chosen is None:
        raise FlowError(f"--example {example_name!r}: no such example; the examples are {', '.join(examples)}")
    planned = _files_of(chosen)
    existing = [str(directory / relative) for relative, _ in planned if (directory / relative).exists()]
    if existing:
        raise FlowError(f"not overwriting {', '.join(existing)}: choose an empty folder (rtflow init DIR)")
    try:
        for relative, source in planned:
            target = directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    except OSError as exc:
        raise FlowError(f"cannot write the project into {directory}: {exc.strerror or exc}") from None
    where = "" if directory == Path(".") else f"cd {directory} && "
    click.echo(f"wrote the {example_name!r} example ({len(planned)} files) to {directory}")
    click.echo(f"run it offline:  {where}rtflow run flow.yaml --sim")

"""The `rtflow` command line. Thin: parses options, calls the library, maps errors to exit codes.

Each group of commands lives in a module of its own beside this one and is registered below. Errors derived
from `RtflowError` are printed as one clear message (never a traceback) and exit with their `exit_code`.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from rtflow._version import __version__
from rtflow.errors import RtflowError


class RtflowGroup(click.Group):
    """A click group that turns rtflow errors into a message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RtflowError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=RtflowGroup)
@click.version_option(__version__, prog_name="rtflow")
def main() -> None:
    """Run conversation test suites against real-time model APIs."""


def _register_commands() -> None:
    # Imported here, not at the top, so each command module can import `main`'s helpers without a cycle.
    from rtflow.sim.cli import sim

    main.add_command(sim)
    from rtflow.cli.flow_commands import graph_command, schema_command, validate_command

    main.add_command(validate_command)
    main.add_command(graph_command)
    main.add_command(schema_command)

    from rtflow.cli.run_command import run_command

    main.add_command(run_command)

    from rtflow.cli.results_commands import export_command, runs_command, show_command

    main.add_command(runs_command)
    main.add_command(show_command)
    main.add_command(export_command)


_register_commands()

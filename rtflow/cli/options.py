"""Options more than one command takes, defined once so that their name, variable and help never drift apart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

__all__ = ["db_option", "repeat_option"]

_Command = TypeVar("_Command", bound=Callable[..., object])


def db_option(parameter: str = "db_path") -> Callable[[_Command], _Command]:
    """`--db PATH` (or `RTFLOW_DB`): the run store, passed to the command as `parameter`."""
    return click.option(
        "--db",
        parameter,
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="RTFLOW_DB",
        help="Run store (SQLite); default .rtflow/rtflow.db.",
    )


repeat_option = click.option(
    "--repeat", type=click.IntRange(min=1), help="Run each conversation N times (default: the flow's execution.repeat)."
)
"""`--repeat N`, for the commands that compile a flow (`run`, `validate`, `graph`)."""

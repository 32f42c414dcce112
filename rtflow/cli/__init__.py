"""The `rtflow` command line. Thin: parses options, calls the library, maps errors to exit codes.

Each group of commands lives in a module of its own beside this one and is loaded when it is first used. Errors derived
from `RtflowError` are printed as one clear message (never a traceback) and exit with their `exit_code`.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any

import click

from rtflow._version import __version__
from rtflow.errors import RtflowError

# command name -> "module:attribute"; a command's module is imported only when that command (or the command
# list of `--help`) is asked for, so `rtflow --version` imports click and nothing else.
_COMMANDS = {
    "validate": "rtflow.cli.flow_commands:validate_command",
    "graph": "rtflow.cli.flow_commands:graph_command",
    "schema": "rtflow.cli.flow_commands:schema_command",
    "init": "rtflow.cli.init_command:init_command",
    "run": "rtflow.cli.run_command:run_command",
    "runs": "rtflow.cli.results_commands:runs_command",
    "show": "rtflow.cli.results_commands:show_command",
    "export": "rtflow.cli.results_commands:export_command",
    "diff": "rtflow.cli.results_commands:diff_command",
    "merge": "rtflow.cli.results_commands:merge_command",
    "sim": "rtflow.sim.cli:sim",
    "view": "rtflow.cli.view_command:view_command",
}


class RtflowGroup(click.Group):
    """A click group whose commands load on first use, and that turns rtflow errors into a message and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command: click.Command = getattr(import_module(module), attribute)
        return command

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

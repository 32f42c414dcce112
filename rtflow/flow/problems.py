"""Problems found in a flow, and where they are: every check names its problem by the key path it found it at.

`Places` turns a key path into a reported place. For a flow built in code there is no file, so a problem is
shown with its key path only; the loader's subclass knows the file and maps each path to its line and column.
All problems of one pass are reported together, one line each, in file order.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtflow.errors import FlowLoadError

__all__ = ["Path_", "Places", "Problem"]

Path_ = tuple[str | int, ...]
"""A path of keys and indexes from the document root."""


@dataclass(frozen=True)
class Problem:
    reason: str
    line: int | None
    column: int | None
    key_path: str
    file: str | None = None
    """The file the problem is in, when it is not the flow file itself (a test file the flow names)."""


class Places:
    """Where problems are: here, nowhere but their key path (a flow built in code)."""

    source = "<FlowSpec built in code>"

    def problem(self, path: Path_, reason: str) -> Problem:
        return Problem(reason=reason, line=None, column=None, key_path=".".join(str(part) for part in path))

    def error(self, problems: list[Problem]) -> FlowLoadError:
        ordered = sorted(problems, key=lambda problem: (problem.line or 0, problem.column or 0))
        first = ordered[0]
        error = FlowLoadError(
            first.reason,
            file=first.file or self.source,
            line=first.line,
            column=first.column,
            key_path=first.key_path or None,
        )
        if len(ordered) > 1:
            lines = [_format(self.source, problem) for problem in ordered]
            error.message = f"{len(ordered)} problems in {self.source}:\n" + "\n".join(lines)
            error.args = (error.message,)
        return error


def _format(source: str, problem: Problem) -> str:
    where = problem.file or source
    if problem.line is not None:
        where += f":{problem.line}" + (f":{problem.column}" if problem.column is not None else "")
    key = f" {problem.key_path}:" if problem.key_path else ""
    return f"{where}:{key} {problem.reason}"

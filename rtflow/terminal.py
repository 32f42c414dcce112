"""Text from a model, a server or a flow, made safe to print on a terminal.

A terminal obeys control sequences in what it prints: an answer holding `ESC ] 0 ; title BEL` retitles the
window, `ESC [ 2 J` clears the screen, others move the cursor over earlier lines, and some terminals answer
queries by typing into the shell. Nothing rtflow stores is meant to steer a terminal, so every complete escape
sequence (CSI, OSC, DCS, SOS, PM, APC, and two-character escapes, in their 7-bit and 8-bit forms) is removed,
and so is every other C0 and C1 control character except newline and tab. What is left of an incomplete
sequence is shown as the harmless text it then is.

`terminal_safe` cleans one string; `terminal_safe_record` a whole record (every string in it, keys too), so a
view cannot forget a field.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # a leaf the logger uses: no pydantic import at start-up
    from pydantic import BaseModel

__all__ = ["terminal_safe", "terminal_safe_record"]

Record = TypeVar("Record", bound="BaseModel")

_STRING_TERMINATOR = r"(?:\x07|\x1b\\|\x9c)"
_SEQUENCES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, screen clears
    rf"|(?:\x1b[\]P^_X]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*{_STRING_TERMINATOR}"  # OSC, DCS, SOS, PM, APC
    r"|\x1b[ -/]*[0-~]"  # two-character escapes (ESC c resets the terminal), with any intermediates
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""C0 but newline and tab, DEL, and C1."""


def terminal_safe(text: str) -> str:
    """`text` without control sequences or control characters (newline and tab are kept)."""
    if text.isprintable():  # the common case: nothing to do (newlines and tabs are not "printable")
        return text
    return _CONTROLS.sub("", _SEQUENCES.sub("", text))


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return terminal_safe(value)
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, dict):
        return {_clean(key): _clean(item) for key, item in value.items()}
    return value


def terminal_safe_record(record: Record) -> Record:
    """A copy of `record` with every string in it `terminal_safe`."""
    return type(record).model_validate(_clean(record.model_dump(mode="json")))

"""How flows name JavaScript: `file://prompt.js:functionName` references, and functions inside a JS config.

promptfoo's reference form is `file://path/to/file.js` (the default export, or `module.exports` itself) or
`file://path/to/file.js:name` (a named export). A function written inline in a JavaScript config
(`functionCallHandler: async (name, args) => ...`) cannot cross into Python; the worker sends a marker in its
place, and `JsFunctionRef` names it by file and key path, which is all `JsBridge.call_ref` needs to call it
later, on any worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtflow.js.errors import display_path

__all__ = [
    "FUNCTION_MARKER",
    "JS_SUFFIXES",
    "JsFunctionRef",
    "attach_function_refs",
    "function_ref_from_text",
    "is_js_file",
    "is_js_reference",
    "split_js_ref",
]

FILE_PREFIX = "file://"
JS_SUFFIXES = frozenset({".js", ".cjs", ".mjs", ".ts", ".cts", ".mts"})
FUNCTION_MARKER = "$rtflow_js_function"
"""The key of the object that stands for a function in the worker's JSON form of a config (worker.js)."""


def is_js_file(path: str | Path) -> bool:
    """Whether Node should run the file at `path` (JavaScript or TypeScript, by its suffix)."""
    return Path(path).suffix.lower() in JS_SUFFIXES


def split_js_ref(ref: str) -> tuple[str, str | None] | None:
    """`file://a/b.js:fn` -> (`a/b.js`, `fn`); `file://a/b.js` -> (`a/b.js`, None); None when `ref` is not a
    reference to a JavaScript file. The path is as written: resolve it against the flow's folder."""
    if not ref.startswith(FILE_PREFIX):
        return None
    body = ref[len(FILE_PREFIX) :]
    if is_js_file(body):
        return body, None
    file_part, _, export = body.rpartition(":")
    if file_part and export and is_js_file(file_part):
        return file_part, export
    return None


@dataclass(frozen=True)
class JsFunctionRef:
    """A function inside a JavaScript config: its file and the dotted key path to it
    (`providers.0.config.functionCallHandler`)."""

    file: Path
    path: str

    def __str__(self) -> str:
        return f"{display_path(self.file)}:{self.path}"

    def as_text(self) -> str:
        """The reference as a flow value (`file:///abs/promptfooconfig.js#providers.0.config.functionCallHandler`):
        a config's inline function stands in the flow's data as this text, where a file reference would."""
        return f"{FILE_PREFIX}{self.file}#{self.path}"


def function_ref_from_text(text: str) -> JsFunctionRef | None:
    """The `JsFunctionRef` that `JsFunctionRef.as_text` wrote, else None."""
    if not text.startswith(FILE_PREFIX) or "#" not in text:
        return None
    file, _, path = text[len(FILE_PREFIX) :].partition("#")
    return JsFunctionRef(file=Path(file), path=path) if is_js_file(file) and path else None


def is_js_reference(value: Any) -> bool:
    """Whether a flow value names JavaScript to call: `file://x.js[:name]`, or a config's inline function."""
    return isinstance(value, str) and (split_js_ref(value) is not None or function_ref_from_text(value) is not None)


def attach_function_refs(value: Any, file: Path) -> Any:
    """`value` (the worker's JSON form of `file`'s config) with each function marker as a `JsFunctionRef`."""
    if isinstance(value, dict):
        marker = value.get(FUNCTION_MARKER)
        if len(value) == 1 and isinstance(marker, str):
            return JsFunctionRef(file=file, path=marker)
        return {key: attach_function_refs(item, file) for key, item in value.items()}
    if isinstance(value, list):
        return [attach_function_refs(item, file) for item in value]
    return value

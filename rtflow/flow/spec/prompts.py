"""A prompt of a flow: inline text, a template file, a JSON chat file or a Python prompt function."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from rtflow.flow.spec.base import (
    PromptKind,
    _SpecModel,
)
from rtflow.js.refs import function_ref_from_text, split_js_ref
from rtflow.pyref import FILE_PREFIX, is_python_ref, split_python_ref

__all__ = ["PromptSpec"]


class PromptSpec(_SpecModel):
    """One prompt: an inline Jinja2 template or a `file://` reference (JSON, text or Python function)."""

    raw: str = Field(min_length=1)
    """The inline template, or `file://x.json`, `file://x.txt`/`.j2`/`.md`, or `file://x.py:function`."""
    label: str | None = None
    """Display name; defaults to the file name, else `prompt-<n>`."""

    model_config = ConfigDict(frozen=True)  # `kind` and `file` are worked out from `raw` once, so `raw` stays put

    _position: int = PrivateAttr(default=1)
    _kind: PromptKind = PrivateAttr(default="inline")
    _file: str | None = PrivateAttr(default=None)
    _sources: dict[Path, str] = PrivateAttr(default_factory=dict)
    """The template file's text by the folder it was resolved against: read once, not once per turn."""

    @classmethod
    def _spellings(cls) -> dict[str, str]:
        # promptfoo writes `{id: file://..., label: ...}` for a prompt file.
        return {**super()._spellings(), "id": "raw"}

    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"raw": data} if isinstance(data, str) else data

    @field_validator("raw")
    @classmethod
    def _known_file_kind(cls, value: str) -> str:
        if not value.startswith(FILE_PREFIX):
            return value
        path = value[len(FILE_PREFIX) :]
        if any(char in path for char in "*?["):
            raise ValueError(f"prompt globs are not supported; list each file, got {value!r}")
        if path.endswith(".py"):
            raise ValueError(f"name the function to call: file://{path}:function_name")
        if is_python_ref(value) or split_js_ref(value) is not None or function_ref_from_text(value) is not None:
            return value
        if PurePosixPath(path).suffix.lower() not in _TEXT_SUFFIXES | {".json"}:
            raise ValueError(
                f"unsupported prompt file {value!r}; expected .json, .txt, .j2, .md, file://x.py:function or a"
                " JavaScript function (file://x.js, file://x.js:name, .mjs, .cjs, .ts)"
            )
        return value

    @model_validator(mode="after")
    def _classify(self) -> PromptSpec:
        # Rendering a turn reads `kind` and `file` several times; they are worked out here, once per prompt.
        if not self.raw.startswith(FILE_PREFIX):
            return self
        if is_python_ref(self.raw):
            self._kind = "python"
            self._file = split_python_ref(self.raw)[0]
        elif (js := split_js_ref(self.raw)) is not None:
            self._kind = "javascript"
            self._file = js[0]
        elif (function := function_ref_from_text(self.raw)) is not None:  # an inline function of a JS config
            self._kind = "javascript"
            self._file = str(function.file)
        else:
            self._kind = "json" if self.raw.lower().endswith(".json") else "text"
            self._file = self.raw[len(FILE_PREFIX) :]
        return self

    @property
    def kind(self) -> PromptKind:
        """`inline`, `json`, `text`, `python` or `javascript`."""
        return self._kind

    @property
    def is_function(self) -> bool:
        """Whether the prompt is user code (Python or JavaScript) that builds the messages, not a template."""
        return self._kind in ("python", "javascript")

    @property
    def file(self) -> str | None:
        """The referenced file as written (relative to the flow file), or None for an inline template."""
        return self._file

    @property
    def display_label(self) -> str:
        """The label, else the file name (with `:function` for Python), else `prompt-<n>`."""
        if self.label:
            return self.label
        if self._file is not None:
            name = PurePosixPath(self._file).name
            if self._kind == "python":
                return f"{name}:{split_python_ref(self.raw)[1]}"
            js = split_js_ref(self.raw)
            return f"{name}:{js[1]}" if js is not None and js[1] else name
        return f"prompt-{self._position}"


_TEXT_SUFFIXES = frozenset({".txt", ".j2", ".jinja", ".jinja2", ".md"})

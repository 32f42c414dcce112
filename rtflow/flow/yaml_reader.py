"""YAML text -> plain data, straight from LibYAML's event stream, with the place of every key and item on demand.

PyYAML's usual path composes a tree of node objects (two mark objects each) and then walks it in Python; on a
15 MB suite that tree alone holds hundreds of megabytes. Here the C parser's events are built into dicts and
lists directly. Places (line and column of each mapping key and sequence item, keyed by their path from the
root) are only needed to report a problem, so a valid flow never pays for them: `read_marks` reads the text a
second time when the first problem is to be shown.

Read with limits: nesting depth (`MAX_DEPTH`), nodes after alias expansion (`MAX_NODES`), no alias cycles;
each refusal is a YAML error at the place it was found.

Safe YAML only, as `yaml.safe_load`: the core schema's scalars, anchors and aliases, merge keys (`<<`); any other
tag is refused. Unlike `safe_load`, a key written twice in one mapping is an error, not a silent overwrite.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

__all__ = ["describe_error", "read_data", "read_marks"]

from rtflow.flow.problems import Path_

"""A path of keys and indexes from the document root."""

# LibYAML's parser where PyYAML was built with it (about 6x faster); the pure-Python one otherwise.
_Parser: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_IMPLICIT = Resolver.yaml_implicit_resolvers
_constructor = SafeConstructor()
_CONSTRUCT = {
    "tag:yaml.org,2002:null": _constructor.construct_yaml_null,
    "tag:yaml.org,2002:bool": _constructor.construct_yaml_bool,
    "tag:yaml.org,2002:int": _constructor.construct_yaml_int,
    "tag:yaml.org,2002:float": _constructor.construct_yaml_float,
    "tag:yaml.org,2002:timestamp": _constructor.construct_yaml_timestamp,
    _STR_TAG: _constructor.construct_yaml_str,
}
_SHORT_TAGS = {"!!" + tag.rsplit(":", 1)[1]: tag for tag in _CONSTRUCT}


def _refused(problem: str, mark: Any) -> yaml.MarkedYAMLError:
    # `mark` is LibYAML's Mark or PyYAML's: both have the line and column the loader reports.
    return yaml.MarkedYAMLError(problem=problem, problem_mark=mark)


def _scalar(event: yaml.ScalarEvent) -> tuple[Any, str]:
    """The scalar's value, and its tag (the merge key `<<` resolves to the merge tag)."""
    value = event.value
    tag = event.tag
    if tag is None or tag == "!":
        if not event.implicit[0]:  # quoted or `!`-tagged: a string whatever it looks like
            return value, _STR_TAG
        for candidate, pattern in _IMPLICIT.get(value[:1] if value else None, ()):
            if pattern.match(value):
                tag = candidate
                break
        else:
            return value, _STR_TAG
        if tag == _MERGE_TAG:
            return value, tag
    tag = _SHORT_TAGS.get(tag, tag)
    construct = _CONSTRUCT.get(tag)
    if construct is None:
        raise _refused(f"the tag {event.tag!r} is not supported", event.start_mark)
    return construct(ScalarNode(tag, value)), tag


MAX_DEPTH = 100
"""Mappings and lists nested deeper than this are refused (real flows nest fewer than ten levels)."""
MAX_NODES = 5_000_000
"""Nodes a document may hold once its aliases are expanded; a 15 MB suite of 50,000 tests holds about 1.2
million. An alias is not copied, but whatever walks the data later (validation, rendering) visits it once per
use, so a "billion laughs" document is refused here, at the alias that crosses the limit, before anything
walks it."""


class _Builder:
    def __init__(self, text: str, marks: dict[Path_, tuple[int, int]] | None) -> None:
        self.parser = _Parser(text)
        self.anchors: dict[str, Any] = {}
        self.anchor_sizes: dict[str, int] = {}
        self.building: set[str] = set()  # anchors whose node is still being read: an alias to one is a cycle
        self.nodes = 0
        self.marks = marks

    def document(self) -> tuple[Any, tuple[int, int]]:
        parser = self.parser
        try:
            parser.get_event()  # stream start
            if parser.check_event(yaml.StreamEndEvent):
                return None, (1, 1)
            parser.get_event()  # document start
            event = parser.peek_event()
            data = self.node(())
            parser.get_event()  # document end
            if not parser.check_event(yaml.StreamEndEvent):
                extra = parser.peek_event()
                raise _refused("a second YAML document (`---`); a flow file holds one", extra.start_mark)
            return data, (event.start_mark.line + 1, event.start_mark.column + 1)
        finally:
            parser.dispose()

    def node(self, path: Path_) -> Any:
        event = self.parser.get_event()
        if isinstance(event, yaml.AliasEvent):
            return self.alias(event)
        anchor = getattr(event, "anchor", None)
        if len(path) > MAX_DEPTH:
            raise _refused(f"mappings and lists nest deeper than {MAX_DEPTH} levels", event.start_mark)
        self.nodes += 1
        before = self.nodes
        if anchor is not None:
            self.building.add(anchor)
        if isinstance(event, yaml.ScalarEvent):
            value = _scalar(event)[0]
        elif isinstance(event, yaml.MappingStartEvent):
            value = self.mapping(event, path)
        elif isinstance(event, yaml.SequenceStartEvent):
            value = []
            index = 0
            parser = self.parser
            while not parser.check_event(yaml.SequenceEndEvent):
                if self.marks is not None:
                    mark = parser.peek_event().start_mark
                    self.marks[(*path, index)] = (mark.line + 1, mark.column + 1)
                value.append(self.node((*path, index)))
                index += 1
            parser.get_event()
            if event.tag not in (None, "!", "tag:yaml.org,2002:seq", "!!seq"):
                raise _refused(f"the tag {event.tag!r} is not supported", event.start_mark)
        else:  # pragma: no cover - the parser only yields the events above here
            raise _refused(f"unexpected {type(event).__name__}", event.start_mark)
        if anchor is not None:
            self.building.discard(anchor)
            self.anchors[anchor] = value
            self.anchor_sizes[anchor] = self.nodes - before + 1
        return value

    def alias(self, event: yaml.AliasEvent) -> Any:
        name = event.anchor
        if name in self.building:
            raise _refused(f"the alias *{name} refers to a node that contains it (a cycle)", event.start_mark)
        if name not in self.anchors:
            raise _refused(f"unknown alias *{name}", event.start_mark)
        self.nodes += self.anchor_sizes[name]
        if self.nodes > MAX_NODES:
            raise _refused(
                f"aliases expand the document beyond {MAX_NODES:,} nodes (*{name} is used too often); "
                "write the repeated part out, or use default_test for what every test shares",
                event.start_mark,
            )
        return self.anchors[name]

    def mapping(self, start: yaml.MappingStartEvent, path: Path_) -> dict[Any, Any]:
        parser = self.parser
        own: dict[Any, Any] = {}
        merged: list[dict[Any, Any]] = []
        while not parser.check_event(yaml.MappingEndEvent):
            key_event = parser.peek_event()
            if isinstance(key_event, yaml.ScalarEvent):
                parser.get_event()
                self.nodes += 1
                key, tag = _scalar(key_event)
                if key_event.anchor is not None:
                    self.anchors[key_event.anchor] = key
                    self.anchor_sizes[key_event.anchor] = 1
            else:
                key, tag = self.node(path), ""
            if tag == _MERGE_TAG:
                value = self.node(path)
                sources = value if isinstance(value, list) else [value]
                if not all(isinstance(source, dict) for source in sources):
                    raise _refused("`<<` merges a mapping or a list of mappings", key_event.start_mark)
                merged.extend(sources)
                continue
            if not isinstance(key, str | int) or isinstance(key, bool):
                key = str(key)
            if key in own:
                raise _refused(f"duplicate key {key!r}", key_event.start_mark)
            if self.marks is not None:
                self.marks[(*path, key)] = (key_event.start_mark.line + 1, key_event.start_mark.column + 1)
            own[key] = self.node((*path, key))
        parser.get_event()
        if not merged:
            return own
        result: dict[Any, Any] = {}
        for source in reversed(merged):  # the first mapping merged wins over later ones, as in YAML 1.1
            result.update(source)
        result.update(own)
        own.clear()
        own.update(result)  # keep the anchored object itself
        return own


def read_data(text: str) -> tuple[Any, tuple[int, int]]:
    """The document's data and the place of its top node; raises `yaml.YAMLError` for bad YAML."""
    return _Builder(text, None).document()


def read_marks(text: str) -> dict[Path_, tuple[int, int]]:
    """The 1-based (line, column) of every mapping key and sequence item, keyed by path (text already read once)."""
    marks: dict[Path_, tuple[int, int]] = {(): (1, 1)}
    _Builder(text, marks).document()
    return marks


def describe_error(exc: yaml.YAMLError, text: str) -> tuple[str, int | None, int | None]:
    """One line saying what is wrong with the YAML, and its 1-based line and column when known."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        reason = f"YAML syntax error: {exc.problem or exc.context}"
        if exc.context and exc.problem:
            reason += f" ({exc.context})"
        return reason, (mark.line + 1 if mark else None), (mark.column + 1 if mark else None)
    if isinstance(exc, yaml.reader.ReaderError):
        before = text[: exc.position]
        line = before.count("\n") + 1
        column = exc.position - (before.rfind("\n") + 1) + 1
        return f"YAML error: character {exc.character!r} is not allowed ({exc.reason})", line, column
    return f"YAML error: {' '.join(str(exc).split())}", None, None

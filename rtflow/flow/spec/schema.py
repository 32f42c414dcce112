"""The flow file's JSON schema (`schemas/flow.schema.json`), generated from the models."""

from __future__ import annotations

import json
from typing import Any

from rtflow.durations import DURATION_PATTERN
from rtflow.flow.spec.base import (
    _SpecModel,
)
from rtflow.flow.spec.flow import (
    ExecutionSpec,
    FlowSpec,
)
from rtflow.flow.spec.prompts import (
    PromptSpec,
)
from rtflow.flow.spec.providers import (
    ProviderSpec,
)
from rtflow.flow.spec.turns import (
    AssertionSpec,
    TestSpec,
    ThreadTurnSpec,
)

__all__ = ["flow_json_schema", "schema_text"]


def flow_json_schema() -> dict[str, Any]:
    """The JSON schema of a flow file (draft 2020-12).

    Generated from the models in validation mode with the snake_case names; each camelCase alias is listed as
    a property of its own, and the shorthand forms the validators accept (a bare provider id or prompt, a
    single fallback, duration strings, loose vars in `threads`) are added where pydantic cannot see them.
    """
    schema = FlowSpec.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "rtflow flow file"
    definitions: dict[str, Any] = schema.setdefault("$defs", {})
    models: dict[str, type[_SpecModel]] = {
        model.__name__: model
        for model in (FlowSpec, ProviderSpec, PromptSpec, AssertionSpec, TestSpec, ThreadTurnSpec, ExecutionSpec)
    }
    for name, definition in [("FlowSpec", schema), *definitions.items()]:
        model = models.get(name)
        properties = definition.get("properties")
        if model is None or not isinstance(properties, dict):
            continue
        for spelling, canonical in sorted(model.accepted_keys().items()):
            if spelling not in properties and canonical in properties:
                properties[spelling] = {**properties[canonical], "description": f"Alias of `{canonical}`."}
    _add_shorthands(schema, definitions)
    return schema


def _add_shorthands(schema: dict[str, Any], definitions: dict[str, Any]) -> None:
    provider_id = {"type": "string", "description": "A provider id, `kind:api:model`."}
    for name, shorthand in (("ProviderSpec", provider_id), ("PromptSpec", {"type": "string"})):
        mapping_form = definitions[name]
        definitions[name] = {"anyOf": [shorthand, mapping_form], "description": mapping_form.get("description")}
    provider_ref = {"$ref": "#/$defs/ProviderSpec"}
    fallback = definitions["ProviderSpec"]["anyOf"][1]["properties"]["fallback"]
    fallback.pop("type", None)
    fallback["anyOf"] = [provider_ref, {"type": "array", "items": provider_ref}]
    fallback.pop("items", None)
    duration = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}]}
    execution = definitions["ExecutionSpec"]["properties"]
    for key in ("timeout", "backoff_base", "backoff_max", "backoffBase", "backoffMax"):
        if key in execution:
            execution[key] = {**duration, "default": f"{execution[key]['default']:g}s", "description": (
                execution[key].get("description", "") + " A duration: `60s`, `500ms`, `2m`, or milliseconds."
            ).strip()}  # fmt: skip
    # In the `threads` sugar every key besides the reserved ones is a var.
    definitions["ThreadTurnSpec"]["additionalProperties"] = True
    for key in ("outputs", "outputPath"):
        outputs = schema["properties"][key]
        schema["properties"][key] = {
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            "description": outputs.get("description"),
        }


def schema_text() -> str:
    """The schema as committed in `schemas/flow.schema.json`."""
    return json.dumps(flow_json_schema(), indent=2, sort_keys=True) + "\n"

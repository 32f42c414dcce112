"""schemas/flow.schema.json is generated from the models, stays in step with them, and accepts the examples."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from rtflow.flow.spec import flow_json_schema, schema_text

ROOT = Path(__file__).parents[2]
SCHEMA_FILE = ROOT / "schemas" / "flow.schema.json"


def test_committed_schema_matches_the_models() -> None:
    """The committed schema is exactly what the models generate now."""
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == schema_text(), (
        "schemas/flow.schema.json is out of date; regenerate it with: rtflow schema > schemas/flow.schema.json"
    )


def test_schema_is_valid_draft_2020_12() -> None:
    """The schema itself is a valid JSON Schema (2020-12)."""
    jsonschema.Draft202012Validator.check_schema(flow_json_schema())


@pytest.mark.parametrize("flow_file", sorted((ROOT / "flows").glob("*.yaml")), ids=lambda path: path.name)
def test_example_flows_validate_against_the_schema(flow_file: Path) -> None:
    """Every example flow, promptfoo's spelling included, is valid by the schema editors will use."""
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    errors = [error.message for error in validator.iter_errors(yaml.safe_load(flow_file.read_text(encoding="utf-8")))]
    assert errors == []


def test_schema_lists_aliases_and_refuses_unknown_keys() -> None:
    """Both spellings of a key are properties; a key that is neither is refused, as the loader refuses it."""
    schema = flow_json_schema()
    assert {"default_test", "defaultTest", "outputs", "outputPath"} <= set(schema["properties"])
    assert "source_path" not in schema["properties"] and "warnings" not in schema["properties"]
    validator = jsonschema.Draft202012Validator(schema)
    flow = {"providers": ["openai:chat:x"], "prompts": ["{{ q }}"], "tests": [{"vars": {"q": 1}}]}
    assert list(validator.iter_errors(flow)) == []
    assert [error.message for error in validator.iter_errors({**flow, "promts": []})] == [
        "Additional properties are not allowed ('promts' was unexpected)"
    ]


def test_schema_fields_carry_their_documentation() -> None:
    """Field docstrings become schema descriptions, so editors show them."""
    definitions = flow_json_schema()["$defs"]
    execution = definitions["ExecutionSpec"]["properties"]
    assert "Per attempt" in execution["timeout"]["description"]
    assert execution["timeout"]["default"] == "60s"
    assert "kind:api:model" in definitions["ProviderSpec"]["anyOf"][1]["properties"]["id"]["description"]

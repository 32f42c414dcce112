"""The flow file as pydantic models, one module per part of the file (base, providers, prompts, tests,
flow, schema): what `rtflow.flow.loader.load` returns and what the compiler reads.

A flow file is a promptfoo test suite plus rtflow's own keys. Keys are snake_case; promptfoo's camelCase
spellings are accepted as aliases (`defaultTest`, `conversationId`, `gradingConcurrency`). Every model forbids
unknown keys and says which known key was probably meant. promptfoo keys that rtflow knows but does not
implement are dropped with a warning (collected in `FlowSpec.warnings`) so that promptfoo suites still load.

The JSON schema (`schemas/flow.schema.json`) is generated from these models with `flow_json_schema()`; it uses
the snake_case names and lists every camelCase alias as a property of its own, so editors accept both.
Regenerate it with `rtflow schema > schemas/flow.schema.json`.
"""

from rtflow.flow.spec.base import PromptKind
from rtflow.flow.spec.flow import ExecutionSpec, FlowSpec, suggested_field, unknown_key_hint
from rtflow.flow.spec.prompts import PromptSpec
from rtflow.flow.spec.providers import ProviderSpec
from rtflow.flow.spec.schema import flow_json_schema, schema_text
from rtflow.flow.spec.turns import AssertionSpec, TestSpec, ThreadSpec, ThreadTurnSpec, TurnSpec, conversation_id_of

__all__ = [
    "AssertionSpec",
    "ExecutionSpec",
    "FlowSpec",
    "PromptKind",
    "PromptSpec",
    "ProviderSpec",
    "TestSpec",
    "ThreadSpec",
    "ThreadTurnSpec",
    "TurnSpec",
    "conversation_id_of",
    "flow_json_schema",
    "schema_text",
    "suggested_field",
    "unknown_key_hint",
]

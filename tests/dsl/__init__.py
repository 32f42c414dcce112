"""Tests of the flow DSL: loading, error messages, prompt rendering, the JSON schema and the example flows."""

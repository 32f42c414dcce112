"""The public API is small, sorted and exactly what is intended."""

from __future__ import annotations

import rtflow

INTENDED = {
    "AssertionResult",
    "CompileError",
    "FlowError",
    "FlowLoadError",
    "FlowSpec",
    "Plan",
    "PromptError",
    "ProviderError",
    "RtflowError",
    "RunRecord",
    "RunResult",
    "TurnRecord",
    "__version__",
    "arun",
    "compile",
    "load",
    "run",
}


def test_exported_names_are_exactly_the_intended_ones() -> None:
    """`rtflow.__all__` holds the intended names, each importable, in sorted order."""
    assert set(rtflow.__all__) == INTENDED
    assert rtflow.__all__ == sorted(rtflow.__all__)
    for name in rtflow.__all__:
        assert hasattr(rtflow, name), name


def test_compile_returns_a_plan_over_a_networkx_graph(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`rtflow.compile(rtflow.load(path))` gives a Plan whose graph is a networkx DiGraph."""
    import networkx as nx

    flow = tmp_path / "flow.yaml"
    flow.write_text("providers: [openai:chat:gpt-4.1-mini]\nprompts: ['{{ q }}']\ntests: [{vars: {q: hi}}]\n")
    plan = rtflow.compile(rtflow.load(flow))
    assert isinstance(plan, rtflow.Plan)
    assert isinstance(plan.graph, nx.DiGraph)
    assert plan.counts.turns == 1

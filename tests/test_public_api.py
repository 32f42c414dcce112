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


def test_run_result_members_are_attributes() -> None:
    """Every public member of `RunResult` is read as an attribute (a field or a property), none is a method."""
    import inspect

    for name, member in inspect.getmembers(rtflow.RunResult):
        if not name.startswith("_"):
            assert not inspect.isfunction(member), f"RunResult.{name} is a method"


def test_a_run_result_reads_its_failures_and_summaries_as_attributes(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`failures` lists the failed and errored turns in plan order; `provider_summaries` one per primary provider."""
    monkeypatch.chdir(tmp_path)  # a run without a store keeps its artifacts under ./.rtflow
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "providers: [openai:chat:gpt-4.1-mini]\nprompts: ['{{ q }}']\n"
        "tests:\n"
        "  - {vars: {q: hello}, assert: [{type: icontains, value: hello}]}\n"
        "  - {vars: {q: goodbye}, assert: [{type: icontains, value: elephant}]}\n"
    )
    result = rtflow.run(flow, sim=True, store=False)
    assert not result.passed and result.exit_code == 1
    assert result.counts == {"passed": 1, "failed": 1}
    assert [turn.status for turn in result.failures] == ["failed"]
    assert result.failures == [turn for turn in result.turns if turn.status in ("failed", "error")]
    (summary,) = result.provider_summaries
    assert (summary.passed, summary.failed) == (1, 1)
    assert result.provider_summaries == list(result.summary.providers)

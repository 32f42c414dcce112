"""What the compiler builds from a flow, and how it refuses flows it cannot build."""

from __future__ import annotations

import pytest
from flow_builders import CHAT, REALTIME, icontains, make_flow

from rtflow.errors import CompileError, FlowError, FlowLoadError
from rtflow.flow.spec import ProviderSpec
from rtflow.plan.compiler import compile_flow
from rtflow.plan.graph import CallNode


def test_primary_fallback_and_grade_ids_are_readable() -> None:
    """Node ids read `<provider>/<thread>/<turn>`, with `~<fallback label>` and `#grade` suffixes."""
    plan = compile_flow(make_flow())
    conversation = plan.conversations["realtime/japan_travel"]
    assert conversation.call_nodes == [
        ["realtime/japan_travel/1", "realtime/japan_travel/1~chat"],
        ["realtime/japan_travel/2", "realtime/japan_travel/2~chat"],
    ]
    assert conversation.grade_nodes == ["realtime/japan_travel/1#grade", None]
    assert list(plan.graph.nodes) == plan.topological_order()
    assert plan.node("realtime/japan_travel/2~chat") == CallNode(
        id="realtime/japan_travel/2~chat",
        conversation_id="realtime/japan_travel",
        turn_index=1,
        provider_label="chat",
        chain_position=1,
        is_fallback=True,
    )
    assert sorted(plan.graph.edges(data="kind")) == [
        ("realtime/japan_travel/1", "realtime/japan_travel/1#grade", "grade"),
        ("realtime/japan_travel/1", "realtime/japan_travel/1~chat", "fallback"),
        ("realtime/japan_travel/1", "realtime/japan_travel/2", "sequence"),
        ("realtime/japan_travel/1~chat", "realtime/japan_travel/1#grade", "grade"),
        ("realtime/japan_travel/1~chat", "realtime/japan_travel/2", "sequence"),
        ("realtime/japan_travel/2", "realtime/japan_travel/2~chat", "fallback"),
    ]


def test_several_prompts_put_the_prompt_label_in_conversation_ids() -> None:
    """With more than one prompt, conversation ids read `<provider>/<prompt>/<thread>`."""
    plan = compile_flow(make_flow(prompts=[{"raw": "{{ question }}", "label": "plain"}, "Q: {{ question }}"]))
    assert list(plan.conversations) == ["realtime/plain/japan_travel", "realtime/prompt-2/japan_travel"]
    assert plan.conversations["realtime/prompt-2/japan_travel"].prompt.raw == "Q: {{ question }}"
    assert "realtime/plain/japan_travel/1~chat" in plan.graph


def test_matrix_is_threads_by_providers_by_prompts_by_repeat() -> None:
    """Every thread runs against every provider and prompt, `repeat` times, the copies suffixed `#2`, `#3`."""
    flow = make_flow(
        providers=[{"id": REALTIME, "label": "realtime"}, {"id": CHAT, "label": "chat"}],
        tests=[{"vars": {"question": "a"}}, {"vars": {"question": "b"}, "metadata": {"conversationId": "x"}}],
    )
    plan = compile_flow(flow, repeat=3)
    assert list(plan.conversations) == [
        "realtime/test-1",
        "realtime/test-1#2",
        "realtime/test-1#3",
        "chat/test-1",
        "chat/test-1#2",
        "chat/test-1#3",
        "realtime/x",
        "realtime/x#2",
        "realtime/x#3",
        "chat/x",
        "chat/x#2",
        "chat/x#3",
    ]
    copy = plan.conversations["chat/x#3"]
    assert (copy.thread_id, copy.repeat_index, copy.call_nodes) == ("x", 3, [["chat/x#3/1"]])
    assert plan.counts.threads == 2
    assert plan.counts.conversations == 12


def test_bare_fallback_id_means_the_top_level_provider() -> None:
    """`fallback: <id of a top-level provider>` reuses that provider, its label and its config."""
    chat = {"id": CHAT, "label": "chat", "config": {"temperature": 0}}
    plan = compile_flow(make_flow(providers=[{"id": REALTIME, "label": "realtime", "fallback": CHAT}, chat]))
    realtime = plan.conversations["realtime/japan_travel"]
    assert realtime.chain[1] is plan.providers["chat"]
    assert realtime.chain[1].config == {"temperature": 0}
    assert realtime.call_nodes[0] == ["realtime/japan_travel/1", "realtime/japan_travel/1~chat"]
    assert sorted(plan.providers) == ["chat", "realtime"]


def test_bare_fallback_id_means_an_unlabelled_top_level_provider_too() -> None:
    """A bare fallback id naming a configured top-level provider without a label is that provider, not a clash."""
    chat = {"id": CHAT, "config": {"temperature": 0}}
    plan = compile_flow(make_flow(providers=[{"id": REALTIME, "label": "realtime", "fallback": CHAT}, chat]))
    realtime = plan.conversations["realtime/japan_travel"]
    assert realtime.chain[1] is plan.providers[CHAT]
    assert realtime.chain[1].config == {"temperature": 0}
    assert sorted(plan.providers) == [CHAT, "realtime"]


def test_grader_may_share_an_id_with_a_configured_provider() -> None:
    """The grader is a provider of its own: naming the same model as a configured provider is not a clash."""
    flow = make_flow(providers=[{"id": CHAT, "config": {"temperature": 0.7}}], grader=CHAT)
    plan = compile_flow(flow)
    assert plan.providers[CHAT].config == {"temperature": 0.7}
    assert flow.grader is not None and flow.grader.config == {}


def test_two_different_fallbacks_with_one_label_are_refused() -> None:
    """Fallbacks of different providers that share a label but differ in id or config cannot both name nodes."""
    providers = [
        {"id": REALTIME, "label": "rt", "fallback": {"id": CHAT, "label": "backup"}},
        {
            "id": "openai:realtime:gpt-realtime-mini",
            "label": "mini",
            "fallback": {"id": "openai:chat:gpt-4.1", "label": "backup"},
        },
    ]
    with pytest.raises(CompileError, match="two different providers are both labelled 'backup'"):
        compile_flow(make_flow(providers=providers))


def test_nested_fallbacks_are_tried_depth_first() -> None:
    """A fallback's own fallbacks follow it in the chain, as `ProviderSpec.chain` orders them."""
    provider = {
        "id": REALTIME,
        "label": "rt",
        "fallback": [
            {"id": "openai:realtime:gpt-realtime-mini", "label": "mini", "fallback": {"id": CHAT, "label": "chat"}},
            {"id": "openai:chat:gpt-4.1", "label": "big"},
        ],
    }
    plan = compile_flow(make_flow(providers=[provider]))
    chain_labels = [spec.display_label for spec in plan.conversations["rt/japan_travel"].chain]
    assert chain_labels == ["rt", "mini", "chat", "big"]
    assert plan.counts.fallback_nodes == 2 * 3
    assert plan.successors("rt/japan_travel/1~chat", "fallback") == ["rt/japan_travel/1~big"]


def test_thread_filter_is_an_fnmatch_pattern() -> None:
    """`thread_filter` keeps the threads whose id matches; one that matches nothing says which ids exist."""
    flow = make_flow(
        threads={"japan_a": [{"question": "a"}], "japan_b": [{"question": "b"}], "tech": [{"question": "c"}]}
    )
    assert [c.thread_id for c in compile_flow(flow, thread_filter="japan_?").conversations.values()] == [
        "japan_a",
        "japan_b",
    ]
    with pytest.raises(CompileError, match=r"'nope\*' matches no thread; thread ids are: japan_a, japan_b, tech"):
        compile_flow(flow, thread_filter="nope*")


def test_grade_nodes_follow_assertions_including_default_test() -> None:
    """Only turns with assertions get a grade node; `default_test` assertions reach every turn."""
    threads = {"t": [{"question": "a"}, {"question": "b", "assert": [icontains("b")]}]}
    plain = compile_flow(make_flow(threads=threads))
    assert plain.conversations["realtime/t"].grade_nodes == [None, "realtime/t/2#grade"]
    defaulted = compile_flow(make_flow(threads=threads, default_test={"assert": [icontains("z")]}))
    assert defaulted.conversations["realtime/t"].grade_nodes == ["realtime/t/1#grade", "realtime/t/2#grade"]


def test_unknown_provider_kind_names_the_kind_and_a_close_match() -> None:
    """A flow built in code is resolved by the compiler: an unknown kind is refused at its key path."""
    flow = make_flow(providers=[{"id": "openai:realtme:gpt-realtime", "label": "rt"}])
    with pytest.raises(FlowLoadError, match=r"providers\.0\.id: unknown provider kind 'openai:realtme'") as info:
        compile_flow(flow)
    assert "did you mean `openai:realtime`?" in str(info.value)
    assert "<FlowSpec built in code>" in str(info.value)
    assert isinstance(info.value, FlowError) and info.value.exit_code == 2


def test_unknown_kind_in_a_fallback_or_grader_is_refused() -> None:
    """Fallbacks and the grader are checked like top-level providers, each at its own key path."""
    with pytest.raises(FlowLoadError, match=r"providers\.0\.fallback\.0\.id: unknown provider kind 'acme:chat'"):
        compile_flow(make_flow(providers=[{"id": REALTIME, "fallback": {"id": "acme:chat:m", "label": "x"}}]))
    with pytest.raises(FlowLoadError, match=r"grader\.id: unknown provider kind 'acme:grader'"):
        compile_flow(make_flow(grader="acme:grader:m"))


def test_duplicate_top_level_labels_are_refused() -> None:
    """Two top-level providers with one display label cannot both name node ids."""
    flow = make_flow()
    twin = ProviderSpec(id=CHAT, label="realtime")
    with pytest.raises(CompileError, match=r"two providers are both labelled 'realtime': give each a distinct"):
        compile_flow(flow.model_copy(update={"providers": [*flow.providers, twin]}))


def test_a_provider_may_not_fall_back_to_itself() -> None:
    """A chain that names the same provider twice is refused."""
    flow = make_flow(providers=[{"id": REALTIME, "label": "rt", "fallback": REALTIME}])
    with pytest.raises(CompileError, match="'rt' lists 'rt' twice in its fallback chain"):
        compile_flow(flow)


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"providers": []}, "the flow has no providers: add at least one under `providers:`"),
        ({"prompts": []}, "the flow has no prompts: add at least one under `prompts:`"),
        ({"tests": [], "threads": {}}, "the flow has no tests: add turns under `tests:` or `threads:`"),
    ],
)
def test_empty_suites_say_what_to_add(update: dict[str, list[object]], message: str) -> None:
    """A flow with nothing to run is refused with a message naming the missing section."""
    with pytest.raises(CompileError, match=message.replace("`", ".").replace("(", r"\(")):
        compile_flow(make_flow().model_copy(update=update))


def test_repeat_below_one_is_refused() -> None:
    """`repeat` counts runs of each conversation, so it starts at 1."""
    with pytest.raises(CompileError, match="repeat must be 1 or more"):
        compile_flow(make_flow(), repeat=0)


def test_warnings_for_ungraded_model_assertions_and_unasserted_threads() -> None:
    """Model-graded assertions without a grader, and threads without any assertion, are warned about."""
    threads = {
        "graded": [{"question": "a", "assert": [{"type": "llm-rubric", "value": "kind"}]}],
        "bare": [{"question": 1}],
    }
    plan = compile_flow(make_flow(threads=threads))
    assert any(
        "model-graded assertions (llm-rubric)" in warning and "`grader:`" in warning for warning in plan.warnings
    )
    assert any(warning.startswith("1 of 2 threads have no assertions") for warning in plan.warnings)
    graded = compile_flow(make_flow(threads=threads, grader=CHAT))
    assert not any("model-graded" in warning for warning in graded.warnings)


def test_compile_is_pure() -> None:
    """Compiling leaves the flow as it was and two compiles agree."""
    flow = make_flow()
    before = flow.model_dump()
    first, second = compile_flow(flow), compile_flow(flow)
    assert flow.model_dump() == before
    assert first.topological_order() == second.topological_order()
    assert first.flow is flow


def test_a_kind_registered_with_the_registry_compiles() -> None:
    """The registry alone says which kinds exist: once a kind is registered, a flow naming it compiles."""
    from rtflow.providers import registry
    from rtflow.providers.base import Provider, ProviderSession

    flow = make_flow(providers=[{"id": "acme:voice:v1", "label": "acme"}])
    with pytest.raises(FlowLoadError, match="unknown provider kind 'acme:voice'"):
        compile_flow(flow)

    class AcmeVoice(Provider):
        kind = "acme:voice"

        def session(self, conversation_id: str) -> ProviderSession:
            raise NotImplementedError("never called: the flow is only compiled")

    registry.register("acme:voice", AcmeVoice)
    try:
        assert list(compile_flow(make_flow(providers=[{"id": "acme:voice:v1", "label": "acme"}])).conversations) == [
            "acme/japan_travel"
        ]
    finally:
        registry._factories.pop("acme:voice")

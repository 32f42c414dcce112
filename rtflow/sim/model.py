"""The deterministic model: what the simulator answers, identical on Realtime and Chat.

Conversations reach it as items in the Realtime GA shape (`message` with content parts, `function_call`,
`function_call_output`); the Chat endpoint converts its messages first. The answer, in order of precedence:

1. The last item is a `function_call_output`: `Tool <name> returned: <output>` (one sentence per trailing output).
2. The last user text is a grading request (see `rtflow.sim.grading`): the grader's JSON.
3. A rules script matches the last user text: its `reply` (with `{text}`, `{user_messages}` and
   `{instructions}` filled in) or its `call`.
4. The first system message holds `<goal>...</goal>`: the simulator plays a caller (see below).
5. Tools are offered and `tool_choice` is not `none`: a tool is called when a word of its name of 4+ letters appears
   in the last user text (`weather` for `get_weather`), or `tool_choice` names it, or is `required` (then the first
   tool). When the text names several tools, the first is called; with parallel tool calls (a Chat request unless
   `parallel_tool_calls` is false, as OpenAI's default; a Realtime session of a reasoning model, gpt-realtime-2 and
   later, unless `parallel_tool_calls` is false) every tool named is called, in the order they are offered, in one
   reply. Arguments: each required property (every property when none is required) gets, for strings, the text after
   the last ` in ` up to punctuation, else the last capitalised word that is not the first word, else the whole text;
   for numbers the first number in the text (else 0); for booleans false; for enums the first value named in the text
   (else the first value).
6. Otherwise: `You said: "<last user text>" (user messages: <N>, instructions: <FP>)`, where N counts the
   user-role message items and FP is the first 8 hex digits of sha256 of the session instructions (when not
   empty) and every system/developer message text joined by newlines, or `none`; when the last user message
   holds K `input_image` parts, ` and sent K image(s)` follows (the model saw them; see `rtflow.sim.images`).

The caller (rule 4). rtflow's simulated callers send a chat model a first system message holding
`<goal>...</goal>` and ending with `say exactly: <stop phrase>`; the agent's turns are `user` messages and the
caller's own earlier lines `assistant` messages. The simulator then answers the k-th sentence of the goal, where k
is the number of assistant message items (0-based), and once the sentences are used up, the stop phrase.
Sentences end at `.`, `!` or `?` followed by whitespace or the end of the goal; they keep their punctuation and are
stripped. The stop phrase is the text after the last `say exactly: ` outside the goal, to the end of its line,
stripped (`###STOP###` when there is none, or it is empty). The first system message is the session instructions
when they are not empty (Realtime), else the first `system` or `developer` message. Without `<goal>` nothing
changes; a matching rule of the script still wins, so a test can make a caller misbehave.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rtflow.errors import SimulatorError
from rtflow.sim.grading import grade_reply, rubric_request
from rtflow.sim.images import image_tokens

__all__ = [
    "DEFAULT_STOP_PHRASE",
    "ModelCall",
    "ModelReply",
    "Rule",
    "caller_line",
    "goal_sentences",
    "item_text",
    "load_rules",
    "names_tool",
    "respond",
    "word_count",
]

Item = Mapping[str, Any]


@dataclass(frozen=True)
class ModelCall:
    """One function call the model makes."""

    name: str
    arguments: str


@dataclass
class ModelReply:
    """What the model answers: text, calls, or both; and deterministic token counts."""

    text: str | None
    calls: list[ModelCall] = field(default_factory=list)
    input_tokens: int = 0
    """Text 'tokens' of the instructions and the conversation (images apart)."""
    image_tokens: int = 0
    """Image tokens of the conversation's `input_image` parts."""
    last_user_text: str = ""

    @property
    def output_tokens(self) -> int:
        """Deterministic output 'tokens': the words of the text and of every call's arguments."""
        return word_count(self.text or "") + sum(word_count(call.arguments) for call in self.calls)


@dataclass(frozen=True)
class Rule:
    """One line of a rules script."""

    pattern: re.Pattern[str]
    reply: str | None
    call: ModelCall | None


def load_rules(path: Path) -> list[Rule]:
    """Read a rules YAML: a list of `{match: regex, reply: text}` or `{match: regex, call: {name, arguments}}`."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SimulatorError(f"cannot read the rules script {path}: {exc}") from exc
    if not isinstance(raw, list):
        raise SimulatorError(f"{path}: the rules script must be a YAML list of {{match, reply|call}}")
    rules: list[Rule] = []
    for position, entry in enumerate(raw, start=1):
        if not isinstance(entry, dict) or "match" not in entry or ("reply" in entry) == ("call" in entry):
            raise SimulatorError(f"{path}: rule {position} needs `match` and exactly one of `reply` or `call`")
        try:
            pattern = re.compile(str(entry["match"]))
        except re.error as exc:
            raise SimulatorError(f"{path}: rule {position}: bad regex: {exc}") from exc
        call = None
        if "call" in entry:
            spec = entry["call"]
            if not isinstance(spec, dict) or "name" not in spec:
                raise SimulatorError(f"{path}: rule {position}: `call` needs a `name`")
            arguments = spec.get("arguments", {})
            call = ModelCall(str(spec["name"]), arguments if isinstance(arguments, str) else json.dumps(arguments))
        rules.append(Rule(pattern, None if call else str(entry["reply"]), call))
    return rules


def item_text(item: Item) -> str:
    """The text of a message item: its text parts and audio transcripts, joined."""
    pieces = []
    for part in item.get("content") or ():
        text = part.get("text")
        if text is None:
            text = part.get("transcript")
        if text:
            pieces.append(text)
    return "".join(pieces)


def word_count(text: str) -> int:
    """Deterministic 'tokens': whitespace-separated words."""
    return len(text.split())


def fingerprint(instructions: str | None, items: Sequence[Item]) -> str:
    """First 8 hex digits of sha256 over the instructions and system messages, or `none`."""
    texts = [instructions] if instructions else []
    texts += [
        item_text(item)
        for item in items
        if item.get("type") == "message" and item.get("role") in ("system", "developer")
    ]
    if not texts:
        return "none"
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:8]


def respond(
    instructions: str | None,
    items: Sequence[Item],
    tools: Sequence[Mapping[str, Any]] = (),
    tool_choice: Any = "auto",
    rules: Sequence[Rule] = (),
    *,
    parallel_tools: bool = False,
) -> ModelReply:
    """The model's answer to a conversation (see the module docstring for the rules)."""
    user_items = [item for item in items if item.get("type") == "message" and item.get("role") == "user"]
    last_user_text = item_text(user_items[-1]) if user_items else ""
    input_tokens = word_count(instructions or "") + sum(_item_words(item) for item in items)
    images_by_item = [image_tokens(item.get("content") or ()) for item in user_items]
    images_tokens = sum(tokens for _, tokens in images_by_item)
    images_seen = images_by_item[-1][0] if images_by_item else 0
    reply = ModelReply(text=None, input_tokens=input_tokens, image_tokens=images_tokens, last_user_text=last_user_text)

    trailing_outputs = _trailing_tool_outputs(items)
    if trailing_outputs:
        reply.text = " ".join(f"Tool {name} returned: {output}" for name, output in trailing_outputs)
        return reply
    graded = rubric_request(last_user_text)
    if graded is not None:
        reply.text = grade_reply(*graded)
        return reply
    fp = fingerprint(instructions, items)
    for rule in rules:
        if rule.pattern.search(last_user_text):
            if rule.call is not None:
                reply.calls.append(rule.call)
            else:
                reply.text = (
                    (rule.reply or "")
                    .replace("{text}", last_user_text)
                    .replace("{user_messages}", str(len(user_items)))
                    .replace("{instructions}", fp)
                )
            return reply
    caller = caller_line(instructions, items)
    if caller is not None:
        reply.text = caller
        return reply
    chosen = _choose_tools(tools, tool_choice, last_user_text)
    if chosen:
        for tool in chosen if parallel_tools else chosen[:1]:
            reply.calls.append(ModelCall(str(tool["name"]), json.dumps(_arguments_for(tool, last_user_text))))
        return reply
    reply.text = f'You said: "{last_user_text}" (user messages: {len(user_items)}, instructions: {fp})'
    if images_seen:
        reply.text += f" and sent {images_seen} image{'s' if images_seen > 1 else ''}"
    return reply


DEFAULT_STOP_PHRASE = "###STOP###"
"""What the caller says once its goal is spoken, when its prompt names no phrase of its own."""

_GOAL = re.compile(r"<goal>(.*?)</goal>", re.DOTALL)
_STOP_PHRASE = re.compile(r"say exactly: (.*)$", re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.!?])(?:\s+|$)")


def caller_line(instructions: str | None, items: Sequence[Item]) -> str | None:
    """The caller's next line when the first system message holds a `<goal>`, else None (see rule 4).

    Counting the caller's own earlier lines (assistant messages) is what makes it deterministic: the same
    conversation so far always gets the same next sentence, whatever the agent said.
    """
    prompt = _first_system_text(instructions, items)
    goal = _GOAL.search(prompt) if prompt is not None else None
    if prompt is None or goal is None:
        return None
    sentences = goal_sentences(goal.group(1))
    said = sum(1 for item in items if item.get("type") == "message" and item.get("role") == "assistant")
    if said < len(sentences):
        return sentences[said]
    return _stop_phrase(prompt[: goal.start()] + prompt[goal.end() :])


def goal_sentences(goal: str) -> list[str]:
    """The goal's sentences, in order: what the caller says, one per turn."""
    return [sentence.strip() for sentence in _SENTENCE_END.split(goal) if sentence.strip()]


def _stop_phrase(prompt_outside_goal: str) -> str:
    """The phrase the prompt asks the caller to end with; the goal is left out so it cannot name one by accident."""
    found = _STOP_PHRASE.findall(prompt_outside_goal)
    phrase = str(found[-1]).strip() if found else ""
    return phrase or DEFAULT_STOP_PHRASE


def _first_system_text(instructions: str | None, items: Sequence[Item]) -> str | None:
    """The caller's prompt: session instructions come first on Realtime, like a system message on Chat."""
    if instructions:
        return instructions
    for item in items:
        if item.get("type") == "message" and item.get("role") in ("system", "developer"):
            return item_text(item)
    return None


def _item_words(item: Item) -> int:
    if item.get("type") == "message":
        return word_count(item_text(item))
    return word_count(str(item.get("arguments") or item.get("output") or ""))


def _trailing_tool_outputs(items: Sequence[Item]) -> list[tuple[str, str]]:
    names = {item.get("call_id"): item.get("name") for item in items if item.get("type") == "function_call"}
    outputs: list[tuple[str, str]] = []
    for item in reversed(items):
        if item.get("type") != "function_call_output":
            break
        outputs.append((str(names.get(item.get("call_id")) or "unknown"), str(item.get("output", ""))))
    outputs.reverse()
    return outputs


_NAME_WORD = re.compile(r"[A-Za-z]+")
_CAMEL_BREAK = re.compile(r"([a-z])([A-Z])")


def _choose_tools(tools: Sequence[Mapping[str, Any]], tool_choice: Any, text: str) -> list[Mapping[str, Any]]:
    """The tools the reply may call, in the order they are offered (the caller keeps one without parallel calls)."""
    functions = [tool for tool in tools if tool.get("name")]
    if not functions or tool_choice == "none":
        return []
    if isinstance(tool_choice, Mapping):
        wanted = tool_choice.get("name") or (tool_choice.get("function") or {}).get("name")
        return [tool for tool in functions if tool["name"] == wanted][:1]
    named = [tool for tool in functions if names_tool(str(tool["name"]), text)]
    if named:
        return named
    return functions[:1] if tool_choice == "required" else []


def names_tool(name: str, text: str) -> bool:
    """Whether `text` names the tool `name`: a word of 4+ letters of the name appears in it (`weather` for
    `get_weather`, `Weather` for `getWeather`), in any case."""
    lowered = text.lower()
    words = _NAME_WORD.findall(_CAMEL_BREAK.sub(r"\1 \2", name))
    return any(len(word) >= 4 and word.lower() in lowered for word in words)


_AFTER_IN = re.compile(r"\bin ([^?.!,;]+)")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _string_argument(text: str) -> str:
    places = _AFTER_IN.findall(text)
    if places:
        return str(places[-1]).strip()
    words = re.findall(r"[A-Za-z][\w'-]*", text)
    capitalised = [word for word in words[1:] if word[0].isupper()]
    return capitalised[-1] if capitalised else text


def _arguments_for(tool: Mapping[str, Any], text: str) -> dict[str, Any]:
    parameters = tool.get("parameters") or {}
    properties: Mapping[str, Any] = parameters.get("properties") or {}
    names = list(parameters.get("required") or properties.keys())
    arguments: dict[str, Any] = {}
    for name in names:
        schema = properties.get(name) or {}
        kind = schema.get("type", "string")
        if schema.get("enum"):
            lowered = text.lower()
            arguments[name] = next((v for v in schema["enum"] if str(v).lower() in lowered), schema["enum"][0])
        elif kind in ("number", "integer"):
            number = _NUMBER.search(text)
            value = float(number.group()) if number else 0
            arguments[name] = int(value) if kind == "integer" else value
        elif kind == "boolean":
            arguments[name] = False
        else:
            arguments[name] = _string_argument(text)
    return arguments

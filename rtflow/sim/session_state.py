"""A Realtime session's settings, and how `session.update` (and per-response overrides) change them.

The state is dialect neutral; `rtflow.sim.dialects` renders it. Invalid values are refused with the codes the
service uses (`invalid_value`, `unknown_parameter`, `missing_required_parameter`), and refusals change nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "GA_FORMATS",
    "GA_FORMAT_SHAPES",
    "SessionSettings",
    "SettingsError",
    "apply_beta_update",
    "apply_ga_update",
    "check_noise_reduction",
    "ga_format",
    "invalid",
    "unknown_keys",
]

GA_FORMAT_SHAPES: dict[str, dict[str, Any]] = {
    "pcm16": {"type": "audio/pcm", "rate": 24000},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}
"""How GA shows each audio format (the state holds the beta names)."""
GA_FORMATS = {shape["type"]: name for name, shape in GA_FORMAT_SHAPES.items()}
"""A GA format `type` -> the beta name the state holds."""
_NOISE_REDUCTION_TYPES = frozenset({"near_field", "far_field"})
"""The official `NoiseReductionType`."""
BETA_FORMATS = frozenset(GA_FORMAT_SHAPES)
TURN_DETECTION_TYPES = frozenset({"server_vad", "semantic_vad"})
DEFAULT_TURN_DETECTION: dict[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "create_response": True,
    "interrupt_response": True,
}


class SettingsError(Exception):
    """A refused update: becomes an `error` event with this code and param."""

    def __init__(self, code: str, message: str, param: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


@dataclass
class SessionSettings:
    """What a session (or one response) runs with. Formats use the beta names internally."""

    model: str
    output_modalities: list[str] = field(default_factory=lambda: ["audio"])
    instructions: str = ""
    voice: str = "alloy"
    input_format: str = "pcm16"
    output_format: str = "pcm16"
    turn_detection: dict[str, Any] | None = field(default_factory=lambda: dict(DEFAULT_TURN_DETECTION))
    transcription: dict[str, Any] | None = None
    noise_reduction: dict[str, Any] | None = None
    """GA `audio.input.noise_reduction` (`{type, strength?}`), echoed back; the simulator's audio is clean anyway."""
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = "auto"
    max_output_tokens: int | str = "inf"
    temperature: float = 0.8
    include: list[str] | None = None
    prompt: dict[str, Any] | None = None
    truncation: Any = "auto"
    reasoning: dict[str, Any] | None = None
    """GA `reasoning` (`{effort}`): with a phased model it brings a `commentary` item (`rtflow.sim.responses`)."""
    parallel_tool_calls: bool | None = None
    """GA `parallel_tool_calls`: a reasoning model calls every tool a line names in one response unless false."""

    def copy(self) -> SessionSettings:
        """A copy whose lists and dicts can be changed without touching this one."""
        return replace(
            self,
            output_modalities=list(self.output_modalities),
            tools=list(self.tools),
            turn_detection=dict(self.turn_detection) if self.turn_detection else None,
        )


def unknown_keys(prefix: str, given: Mapping[str, Any], known: Collection[str]) -> None:
    """Refuse the first key of `given` (an object at `prefix`) that is not in `known`, as `unknown_parameter`."""
    for key in given:
        if key not in known:
            raise SettingsError("unknown_parameter", f"Unknown parameter: '{prefix}.{key}'.", f"{prefix}.{key}")


def invalid(param: str, message: str) -> SettingsError:
    """An `invalid_value` refusal of `param`."""
    return SettingsError("invalid_value", message, param)


def _check_tools(prefix: str, tools: Any, *, mcp: bool = False) -> list[dict[str, Any]]:
    """The session's tools: functions, and (GA, `mcp`) MCP servers."""
    from rtflow.sim.mcp import check_mcp_tool  # here: the MCP module builds on this one's SettingsError

    if not isinstance(tools, list):
        raise invalid(f"{prefix}.tools", "Invalid type for 'tools': expected an array.")
    checked = []
    for index, tool in enumerate(tools):
        if mcp and isinstance(tool, dict) and tool.get("type") == "mcp":
            checked.append(check_mcp_tool(f"{prefix}.tools[{index}]", tool))
            continue
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not tool.get("name"):
            raise invalid(f"{prefix}.tools[{index}]", "Each tool needs type 'function' and a name.")
        checked.append({key: tool[key] for key in ("type", "name", "description", "parameters") if key in tool})
    return checked


def _check_tool_choice(prefix: str, choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name"):
        return choice
    raise invalid(f"{prefix}.tool_choice", f"Invalid value for 'tool_choice': {choice!r}.")


def _check_max_tokens(param: str, value: Any) -> int | str:
    if value == "inf" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4096):
        return value  # type: ignore[no-any-return]
    raise invalid(param, f"Invalid '{param}': expected an integer between 1 and 4096, or 'inf'.")


def _check_turn_detection(param: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in TURN_DETECTION_TYPES:
        raise invalid(param, "Invalid value for 'turn_detection.type': expected 'server_vad' or 'semantic_vad'.")
    return {**DEFAULT_TURN_DETECTION, **value}


_GA_SESSION_KEYS = frozenset(
    {
        "type",
        "model",
        "output_modalities",
        "instructions",
        "audio",
        "tools",
        "tool_choice",
        "max_output_tokens",
        "include",
        "prompt",
        "tracing",
        "truncation",
        "parallel_tool_calls",
        "reasoning",
    }
)
_GA_RESPONSE_KEYS = frozenset(
    {
        "output_modalities",
        "instructions",
        "audio",
        "tools",
        "tool_choice",
        "max_output_tokens",
        "metadata",
        "conversation",
        "input",
        "prompt",
        "parallel_tool_calls",
        "reasoning",
    }
)


def apply_ga_update(settings: SessionSettings, update: Any, *, response: bool = False) -> SessionSettings:
    """`settings` with a GA `session.update` (or, with `response`, a `response.create` override) applied."""
    prefix = "response" if response else "session"
    if not isinstance(update, dict):
        raise invalid(prefix, f"Invalid type for '{prefix}': expected an object.")
    unknown_keys(prefix, update, _GA_RESPONSE_KEYS if response else _GA_SESSION_KEYS)
    if not response:
        if "type" not in update:
            raise SettingsError(
                "missing_required_parameter", "Missing required parameter: 'session.type'.", "session.type"
            )
        if update["type"] == "transcription":
            raise SettingsError(
                "invalid_parameter",
                "Passing a transcription session update event to a realtime session is not allowed.",
                None,
            )
        if update["type"] != "realtime":
            raise invalid("session.type", "Invalid value for 'session.type': expected 'realtime' or 'transcription'.")
    new = settings.copy()
    if "output_modalities" in update:
        modalities = update["output_modalities"]
        if modalities not in (["text"], ["audio"]):
            raise invalid(
                f"{prefix}.output_modalities",
                "Invalid value for 'output_modalities': expected exactly one of ['text'] or ['audio'].",
            )
        new.output_modalities = list(modalities)
    if "instructions" in update:
        new.instructions = str(update["instructions"] or "")
    if "tools" in update:
        new.tools = _check_tools(prefix, update["tools"], mcp=True)
    if "tool_choice" in update:
        new.tool_choice = _check_tool_choice(prefix, update["tool_choice"])
    if "max_output_tokens" in update:
        new.max_output_tokens = _check_max_tokens(f"{prefix}.max_output_tokens", update["max_output_tokens"])
    _apply_ga_extras(new, prefix, update)
    audio = update.get("audio")
    if audio is not None:
        if not isinstance(audio, dict):
            raise invalid(f"{prefix}.audio", "Invalid type for 'audio': expected an object.")
        _apply_ga_audio(new, prefix, audio, response)
    return new


def _apply_ga_extras(new: SessionSettings, prefix: str, update: dict[str, Any]) -> None:
    """`include`, `prompt`, `truncation`, `parallel_tool_calls` and `reasoning`: kept for the replies, and (all
    but `parallel_tool_calls`, which the official session object does not have) echoed back."""
    if "include" in update:
        include = update["include"]
        if include is not None and not (isinstance(include, list) and all(isinstance(x, str) for x in include)):
            raise invalid(f"{prefix}.include", "Invalid type for 'include': expected an array of strings.")
        new.include = include
    if "prompt" in update:
        prompt = update["prompt"]
        if prompt is not None and not (isinstance(prompt, dict) and isinstance(prompt.get("id"), str)):
            raise invalid(f"{prefix}.prompt", "Invalid value for 'prompt': expected an object with an 'id'.")
        new.prompt = prompt
    if "truncation" in update:
        truncation = update["truncation"]
        if truncation not in ("auto", "disabled") and not isinstance(truncation, dict):
            raise invalid(f"{prefix}.truncation", "Invalid value for 'truncation': expected 'auto' or 'disabled'.")
        new.truncation = truncation
    if "parallel_tool_calls" in update:
        parallel = update["parallel_tool_calls"]
        if parallel is not None and not isinstance(parallel, bool):
            message = "Invalid type for 'parallel_tool_calls': expected a boolean."
            raise invalid(f"{prefix}.parallel_tool_calls", message)
        new.parallel_tool_calls = parallel
    if "reasoning" in update:
        reasoning = update["reasoning"]
        if reasoning is not None and not isinstance(reasoning, dict):
            raise invalid(f"{prefix}.reasoning", "Invalid type for 'reasoning': expected an object.")
        new.reasoning = reasoning


def ga_format(param: str, value: Any) -> str:
    """The beta name of a GA audio format object (`{type, rate?}`), or a refusal of `param`."""
    if not isinstance(value, dict) or value.get("type") not in GA_FORMATS:
        raise invalid(param, "Invalid value for 'format.type': expected 'audio/pcm', 'audio/pcmu' or 'audio/pcma'.")
    if value["type"] == "audio/pcm" and value.get("rate", 24000) != 24000:
        raise invalid(f"{param}.rate", "Invalid value for 'format.rate': only 24000 is supported.")
    return GA_FORMATS[value["type"]]


def check_noise_reduction(param: str, value: Any) -> dict[str, Any] | None:
    """GA `audio.input.noise_reduction`: null (off) or the official `NoiseReduction`, `{type?, strength?}` with
    `type` one of `NoiseReductionType` (realtime and transcription sessions take the same object)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(param, "Invalid type for 'noise_reduction': expected an object.")
    unknown_keys(param, value, frozenset({"type", "strength"}))
    kind = value.get("type")
    if kind is not None and kind not in _NOISE_REDUCTION_TYPES:
        raise invalid(
            f"{param}.type", "Invalid value for 'noise_reduction.type': expected 'near_field' or 'far_field'."
        )
    strength = value.get("strength")
    if strength is not None and (isinstance(strength, bool) or not isinstance(strength, int | float)):
        raise invalid(f"{param}.strength", "Invalid type for 'noise_reduction.strength': expected a number.")
    return dict(value)


def _apply_ga_audio(new: SessionSettings, prefix: str, audio: dict[str, Any], response: bool) -> None:
    unknown_keys(f"{prefix}.audio", audio, frozenset({"output"} if response else {"input", "output"}))
    audio_in = audio.get("input") or {}
    audio_out = audio.get("output") or {}
    unknown_keys(
        f"{prefix}.audio.input", audio_in, frozenset({"format", "turn_detection", "transcription", "noise_reduction"})
    )
    unknown_keys(f"{prefix}.audio.output", audio_out, frozenset({"format", "voice", "speed"}))
    if "format" in audio_in:
        new.input_format = ga_format(f"{prefix}.audio.input.format", audio_in["format"])
    if "turn_detection" in audio_in:
        new.turn_detection = _check_turn_detection(f"{prefix}.audio.input.turn_detection", audio_in["turn_detection"])
    if "transcription" in audio_in:
        new.transcription = audio_in["transcription"]
    if "noise_reduction" in audio_in:
        new.noise_reduction = check_noise_reduction(
            f"{prefix}.audio.input.noise_reduction", audio_in["noise_reduction"]
        )
    if "format" in audio_out:
        new.output_format = ga_format(f"{prefix}.audio.output.format", audio_out["format"])
    if "voice" in audio_out:
        if not isinstance(audio_out["voice"], str):
            raise invalid(f"{prefix}.audio.output.voice", "Invalid type for 'voice': expected a string.")
        new.voice = audio_out["voice"]


_BETA_SESSION_KEYS = frozenset(
    {
        "model",
        "modalities",
        "instructions",
        "voice",
        "input_audio_format",
        "output_audio_format",
        "input_audio_transcription",
        "turn_detection",
        "tools",
        "tool_choice",
        "temperature",
        "max_response_output_tokens",
        "input_audio_noise_reduction",
        "speed",
        "tracing",
        "client_secret",
    }
)
_BETA_RESPONSE_KEYS = frozenset(
    {
        "modalities",
        "instructions",
        "voice",
        "output_audio_format",
        "tools",
        "tool_choice",
        "temperature",
        "max_response_output_tokens",
        "metadata",
        "conversation",
        "input",
    }
)


def apply_beta_update(settings: SessionSettings, update: Any, *, response: bool = False) -> SessionSettings:
    """`settings` with a beta `session.update` (or `response.create` override) applied."""
    prefix = "response" if response else "session"
    if not isinstance(update, dict):
        raise invalid(prefix, f"Invalid type for '{prefix}': expected an object.")
    unknown_keys(prefix, update, _BETA_RESPONSE_KEYS if response else _BETA_SESSION_KEYS)
    new = settings.copy()
    if "modalities" in update:
        modalities = update["modalities"]
        if not isinstance(modalities, list) or sorted(modalities) not in (["text"], ["audio", "text"]):
            raise invalid(f"{prefix}.modalities", "Invalid modalities: expected ['text'] or ['text', 'audio'].")
        new.output_modalities = ["audio"] if "audio" in modalities else ["text"]
    if "instructions" in update:
        new.instructions = str(update["instructions"] or "")
    if "voice" in update:
        new.voice = str(update["voice"])
    for key, attribute in (("input_audio_format", "input_format"), ("output_audio_format", "output_format")):
        if key in update:
            if update[key] not in BETA_FORMATS:
                raise invalid(
                    f"{prefix}.{key}",
                    f"Invalid value: '{update[key]}'. Supported values are: 'pcm16', 'g711_ulaw', and 'g711_alaw'.",
                )
            setattr(new, attribute, update[key])
    if "turn_detection" in update:
        new.turn_detection = _check_turn_detection(f"{prefix}.turn_detection", update["turn_detection"])
    if "input_audio_transcription" in update:
        new.transcription = update["input_audio_transcription"]
    if "tools" in update:
        new.tools = _check_tools(prefix, update["tools"])
    if "tool_choice" in update:
        new.tool_choice = _check_tool_choice(prefix, update["tool_choice"])
    if "temperature" in update:
        temperature = update["temperature"]
        if not isinstance(temperature, int | float) or not 0.6 <= temperature <= 1.2:
            raise invalid(
                f"{prefix}.temperature", f"Invalid '{prefix}.temperature': expected a number between 0.6 and 1.2."
            )
        new.temperature = float(temperature)
    if "max_response_output_tokens" in update:
        new.max_output_tokens = _check_max_tokens(
            f"{prefix}.max_response_output_tokens", update["max_response_output_tokens"]
        )
    return new

"""The vocabulary shared by prompts, providers, the scheduler and the run store.

A rendered prompt is a list of `Message`s. Content is either a plain string (chat style) or a list of parts in
the Realtime style (`input_text`, `text`, `output_text`, `input_audio`, `input_image`), so promptfoo prompt files
of either form load unchanged; a Chat-style image part (`{type: image_url, image_url: {url, detail}}`) is read as
the one `input_image` part. A provider turns a `TurnRequest` (the whole conversation the model should see for this
turn) into a `TurnOutput` (structured: text, tool calls, usage, cost, timings; never marker strings).

This module sits at the bottom of the dependency graph beside `errors`: it imports nothing from rtflow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AudioOutput",
    "ContentPart",
    "EventMark",
    "ImageDetail",
    "InterruptPlan",
    "Interruption",
    "Message",
    "PassRate",
    "Role",
    "ToolCall",
    "TurnMetrics",
    "TurnOutput",
    "TurnRequest",
    "Usage",
    "approximate_tokens",
    "usd",
]

Role = Literal["system", "developer", "user", "assistant"]
ImageDetail = Literal["auto", "low", "high"]

TEXT_PART_TYPES = frozenset({"input_text", "text", "output_text"})
AUDIO_PART_TYPES = frozenset({"input_audio", "audio", "output_audio"})
IMAGE_URL_PREFIXES = ("data:", "file://", "https://", "http://")
"""How an image part's `image_url` may begin: inline data, a local file, or a web address (Chat only)."""


def approximate_tokens(text: str) -> int:
    """A token count guessed before any model has seen `text`: about 4 characters a token, OpenAI's rule of thumb
    for English. The rate limiter's `tpm` charge and `validate --estimate` both use it."""
    return math.ceil(len(text) / 4)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PassRate(_Strict):
    """How often a repeated turn must pass for its verdict to be a pass (`pass_rate:` in a flow): the share of its
    runs that passed reaches `min`, or with `confident` the lower bound of that share's Wilson 95% interval does."""

    min: float = Field(ge=0, le=1)
    confident: bool = False


class ContentPart(_Strict):
    """One part of a message's content."""

    type: Literal["input_text", "text", "output_text", "input_audio", "audio", "output_audio", "input_image"]
    """`input_text`/`text`/`output_text` carry `text`; the audio kinds carry `file` (a path) or `audio` (base64);
    `input_image` carries `image_url` (a Chat `image_url` part is read as one)."""
    text: str | None = None
    """The text of a text part."""
    file: str | None = None
    """Path of a WAV file for an audio part (resolved against the flow file's folder)."""
    audio: str | None = None
    """Base64 audio for an audio part, in the session's input format."""
    transcript: str | None = None
    """What an audio part says, when known."""
    image_url: str | None = None
    """The image of an `input_image` part: a `data:image/png;base64,...` (or JPEG) URL, a `file://` path to a PNG or
    JPEG file (resolved against the flow file's folder), or an `https://` address (Chat only)."""
    detail: ImageDetail | None = None
    """How closely the model looks at an image: `auto`, `low` or `high` (the API's default when not given)."""

    @model_validator(mode="before")
    @classmethod
    def _read_chat_image_part(cls, data: Any) -> Any:
        """Chat's `{type: image_url, image_url: {url, detail}}` is the same image as an `input_image` part."""
        if not isinstance(data, Mapping) or data.get("type") != "image_url":
            return data
        image = data.get("image_url")
        if not isinstance(image, Mapping):  # a bare URL string, as some clients write it
            return {**data, "type": "input_image"}
        unknown = sorted(set(image) - {"url", "detail"})
        if unknown:
            raise ValueError(f"unknown key `image_url.{unknown[0]}` (an image_url part takes url and detail)")
        part = {key: value for key, value in data.items() if key != "image_url"}
        part.update(type="input_image", image_url=image.get("url"))
        if image.get("detail") is not None:
            part["detail"] = image["detail"]
        return part

    @model_validator(mode="after")
    def _image_fields_belong_to_images(self) -> ContentPart:
        if self.type != "input_image":
            if self.image_url is not None or self.detail is not None:
                raise ValueError(f"image_url and detail belong to input_image parts; this part is {self.type}")
            return self
        if self.image_url is None:
            raise ValueError("an input_image part needs image_url")
        if not self.image_url.startswith(IMAGE_URL_PREFIXES):
            raise ValueError(
                f"image_url {self.image_url[:40]!r} is not a data: URL, a file:// path or an http(s):// address"
            )
        return self


class Message(_Strict):
    """One message of a conversation."""

    role: Role
    """Who speaks: `system` (or `developer`), `user` or `assistant`."""
    content: str | list[ContentPart]
    """A string, or Realtime-style content parts."""

    @property
    def text(self) -> str:
        """The message's text: the string content, or its text parts (and audio transcripts) joined."""
        if isinstance(self.content, str):
            return self.content
        pieces: list[str] = []
        for part in self.content:
            if part.type in TEXT_PART_TYPES and part.text is not None:
                pieces.append(part.text)
            elif part.type in AUDIO_PART_TYPES and part.transcript:
                pieces.append(part.transcript)
        return "".join(pieces)

    @property
    def has_audio(self) -> bool:
        """Whether any part of this message is audio."""
        return not isinstance(self.content, str) and any(p.type in AUDIO_PART_TYPES for p in self.content)

    @property
    def images(self) -> list[ContentPart]:
        """The message's image parts, in order."""
        return [] if isinstance(self.content, str) else [p for p in self.content if p.type == "input_image"]

    @model_validator(mode="after")
    def _images_come_from_the_user(self) -> Message:
        # Both APIs take images only as input: a system or assistant message cannot carry one.
        if self.role != "user" and self.images:
            raise ValueError(f"input_image parts belong to user messages; this message is {self.role}")
        return self

    @classmethod
    def of(cls, role: Role, text: str) -> Message:
        """A plain text message."""
        return cls(role=role, content=text)


class InterruptPlan(_Strict):
    """When the caller barges in on an answer: after so much audio heard, so many words heard, or an event."""

    after_ms: float | None = None
    """Milliseconds of the answer's audio heard (by the playback clock)."""
    after_words: int | None = None
    """Words of the answer's transcript heard."""
    after_event: str | None = None
    """A server event type: the caller barges in when it arrives."""
    audio: str | None = None
    """The clip the caller barges in with (the next turn's audio): under server VAD it is said over the answer,
    and the server stops the answer itself."""

    def describe(self) -> str:
        """`after 600 ms heard`, for reasons and reports."""
        if self.after_ms is not None:
            return f"after {self.after_ms:g} ms heard"
        if self.after_words is not None:
            return f"after {self.after_words} words heard"
        return f"at {self.after_event}"


class TurnRequest(_Strict):
    """What the scheduler asks of a provider for one turn.

    `messages` is the whole conversation the model should see when it answers this turn: system message(s),
    earlier turns (user messages and the assistant's replies) and this turn's new user message(s). A stateless
    provider sends all of it; a session-keeping provider sends only what its session does not already hold.
    """

    conversation_id: str
    """Stable id of the conversation (thread x provider column x prompt)."""
    turn_index: int
    """0-based position of the turn in its conversation."""
    messages: list[Message]
    """The conversation as the model should see it for this turn."""
    vars: dict[str, Any] = Field(default_factory=dict)
    """The turn's variables, for providers that need them (audio file paths, ...)."""
    artifact_dir: str | None = None
    """A folder where the provider may write files for this turn (output audio)."""
    interrupt: InterruptPlan | None = None
    """Cut the answer short when this much of it has been heard (the caller barges in)."""
    after_answer: list[dict[str, Any]] = Field(default_factory=list)
    """Script steps to play once the answer is read: `{silence_s}` or `{wait_for, timeout_s}`."""
    paced_playback: bool = True
    """Play the answer's audio at its real rate (a speaker); off, what has arrived counts as heard at once."""


class ToolCall(_Strict):
    """One function call the model made, and what came of it."""

    call_id: str
    name: str
    arguments: str
    """The arguments as the model sent them (a JSON string)."""
    output: str | None = None
    """What was sent back to the model."""
    error: str | None = None
    """The handler's failure in full (exception type, message, traceback), when it failed."""
    duration_ms: float | None = None
    server_label: str | None = None
    """The MCP server that ran the call (the Realtime server called it; rtflow only watched); None for a function
    call that rtflow's handlers answered."""
    approved: bool | None = None
    """For an MCP call the server asked approval for: whether it was granted (None when none was asked)."""


class Usage(_Strict):
    """Token counts, summed over every response of the turn."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{name: getattr(self, name) + getattr(other, name) for name in Usage.model_fields})


class TurnMetrics(_Strict):
    """Timings of a turn, in milliseconds."""

    connect_ms: float | None = None
    """Time to open the session, when this turn opened one."""
    first_delta_ms: float | None = None
    """From the request (response.create) to the first text or transcript delta."""
    first_audio_ms: float | None = None
    """From the request to the first audio delta."""
    total_ms: float | None = None
    """From the start of the turn to its last response."""
    tool_rounds_ms: list[float] = Field(default_factory=list)
    """Duration of each tool round (handlers plus the follow-up response)."""
    input_audio_s: float | None = None
    """Seconds of input audio sent this turn (after conversion to the session's format)."""
    input_send_ms: float | None = None
    """Time spent streaming the input audio (about `input_audio_s` when paced like a live microphone)."""
    output_audio_s: float | None = None
    """Seconds of output audio the turn received."""
    real_time_factor: float | None = None
    """Time from the request to the last audio delta, divided by the output audio's duration (below 1: the
    audio arrived faster than it plays)."""
    ttfb_ms: float | None = None
    """From the request to the first delta of any kind (text, transcript or audio)."""
    ttfa_ms: float | None = None
    """From the request to the first audible audio the caller hears (leading silence counts as waiting)."""
    response_latency_ms: float | None = None
    """From the end of the caller's speech (the VAD's speech_stopped, or the end of the clip) to the first
    audible audio (first delta for a text answer)."""
    yield_ms: float | None = None
    """After a barge-in: from the interruption to the last audio delta the agent sent (0: none came after)."""
    yield_done_ms: float | None = None
    """After a barge-in: from the interruption to the cancelled response's `response.done`."""
    tool_silence_ms: list[float] = Field(default_factory=list)
    """Per tool round: from when the tool's output was sent back (or when the agent's audio before the call
    finished playing, if later) to the first audible audio after it. The tool's own run time is left out: rtflow
    runs the tool, so that time is the test's, not the agent's."""
    agent_speaking_ms: float | None = None
    """How long the caller heard the agent speak (all of its audio, or up to the cut)."""
    caller_speaking_ms: float | None = None
    """How long the caller spoke (input audio sent)."""
    overlap_ms: float | None = None
    """How long both spoke at once (caller audio sent while the agent's audio played)."""


class EventMark(_Strict):
    """One event of a turn on its timeline (a run of the same delta event is one mark with a count)."""

    type: str
    """The event type, as on the wire (`response.output_audio.delta`, `response.cancel`, ...)."""
    source: Literal["server", "client"]
    """Who sent it."""
    at_ms: float
    """When it was sent or received, from the start of the turn."""
    last_ms: float | None = None
    """For a run of the same delta: when its last one came."""
    count: int = 1
    """How many events this mark stands for."""
    detail: str | None = None
    """What matters about it: a response's status and reason, a tool's name, an error's code."""


class Interruption(_Strict):
    """How an answer was cut short by the caller."""

    plan: str
    """What the flow asked for (`after 600 ms heard`)."""
    at_ms: float
    """When the caller barged in, from the request."""
    audio_end_ms: int | None = None
    """The audio position sent in `conversation.item.truncate`: what the caller had heard."""
    item_id: str | None = None
    """The truncated item."""
    reason: str | None = None
    """How the response ended: `client_cancelled`, `turn_detected`, or `completed` when it finished first."""


class AudioOutput(_Strict):
    """The audio a turn produced, as written to disk."""

    file: str
    """The audio file: a WAV file for pcm16, the raw bytes as the API sent them for G.711."""
    format: str
    """`wav` (pcm16 24 kHz mono) or `pcmu` / `pcma` (raw G.711 8 kHz)."""
    duration_s: float
    """How long the audio plays, in seconds."""
    sample_rate: int
    """Samples per second (24,000 for pcm16, 8,000 for G.711)."""
    byte_count: int | None = None
    """Size of the audio data (without any container), as received."""
    wav_file: str | None = None
    """A WAV copy that players and browsers play, when `file` is raw G.711 (format tag 7 u-law, 6 A-law)."""

    @property
    def playable_file(self) -> str:
        """The file to hand to a player: the WAV copy when there is one."""
        return self.wav_file or self.file


class TurnOutput(_Strict):
    """What a provider returns for one turn."""

    text: str
    """The assistant's text (or audio transcript), every response of the turn in order."""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cost: float | None = None
    """US dollars, from the price table; None when the model's price is unknown."""
    metrics: TurnMetrics = Field(default_factory=TurnMetrics)
    audio: AudioOutput | None = None
    input_transcript: str | None = None
    """The server's transcription of this turn's input audio, when it made one."""
    model: str | None = None
    """The model that answered, as the server reported it."""
    rate_limit_pause_s: float | None = None
    """Seconds the server says to hold new requests because a rate limit is exhausted (None: no such hint)."""
    protocol_warnings: list[str] = Field(default_factory=list)
    """What the server sent that was skipped, and why (a bad frame, a field of the wrong type, a capped wait)."""
    heard_text: str | None = None
    """When the answer was cut short: the part of `text` the caller heard (None: it was heard whole)."""
    commentary: str | None = None
    """What a reasoning model said while it worked (`phase: commentary` messages), kept apart from `text`, which
    is its final answer."""
    interruption: Interruption | None = None
    """How the answer was cut short, when it was."""
    events: list[EventMark] = Field(default_factory=list)
    """The turn's events in order, server and client, with their times (for event assertions and reports)."""
    step_failures: list[str] = Field(default_factory=list)
    """Script steps after the answer that did not go as written (a `wait_for` whose event never came)."""
    idle_timeouts: list[str] = Field(default_factory=list)
    """Each time the server's idle timeout fired during this turn: when, and what the agent said to prompt the
    caller."""

    @property
    def heard(self) -> str:
        """What the caller heard: the whole text, or the part before the cut."""
        return self.text if self.heard_text is None else self.heard_text


def usd(amount: float) -> str:
    """A cost in US dollars as rtflow writes one (no `$`): four decimals, or two significant digits below a
    hundredth of a cent, so a cheap turn's cost is not shown as 0.0000."""
    if amount == 0 or not math.isfinite(amount) or abs(amount) >= 0.0001:
        return f"{amount:.4f}"
    return f"{amount:.{1 - math.floor(math.log10(abs(amount)))}f}"

"""`openai:tts:MODEL`: text to speech with OpenAI's `POST /v1/audio/speech`, for simulated callers that speak.

A turn speaks the text of the request's last user message and answers with that text and its audio. The body is
OpenAI's `{model, input, voice, response_format, speed, instructions}`. Only `wav` and `pcm` may be asked for: rtflow
reads the samples itself (duration, playback, re-encoding for a Realtime session) and carries no mp3, opus, aac or
flac decoder, so those are refused when the flow is validated rather than failing on the first turn.

The audio is always written as a 24 kHz mono 16-bit WAV: a `pcm` body is wrapped in a header, and a `wav` body is
rewritten, because OpenAI streams its WAV with placeholder sizes (`0xFFFFFFFF`) that strict readers refuse. The file
goes to the turn's `artifact_dir`, or, without one, to a scratch folder that lives until the provider's `aclose`.

Like `openai_chat`, every httpx exception becomes an `rtflow.errors` ProviderError, HTTP error statuses go through
`chat_wire.status_error` (429 with its wait, 401/403, 5xx, 400) with the key redacted, redirects are followed only
within the endpoint's origin, and `timeout` bounds each wait on the server (connecting, and between two pieces of
the body). A body that is not audio (JSON, HTML, empty, a WAV that is not 24 kHz mono 16-bit) is a ProtocolError
that names what came. No cost is given: the price table has no text-to-speech prices.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from rtflow.audio.files import API_SAMPLE_RATE, write_output_audio
from rtflow.durations import Duration
from rtflow.errors import InvalidRequestError, ProtocolError
from rtflow.messages import TurnMetrics, TurnOutput, TurnRequest
from rtflow.providers.base import Provider, ProviderInfo
from rtflow.providers.chat_wire import status_error
from rtflow.providers.config import validate_config
from rtflow.providers.endpoints import (
    SecretKey,
    auth_headers,
    pooled_http_client,
    resolve_base_url,
    resolve_key,
    server_text,
    translated_http_errors,
)
from rtflow.providers.ratelimits import DEFAULT_MAX_RETRY_AFTER, capped_wait, pause_from_headers

if TYPE_CHECKING:  # httpx itself is imported when the first request is made: validating a flow never needs it
    import httpx

__all__ = ["SpeechFormat", "TtsConfig", "TtsProvider", "TtsSession", "VoiceId"]

SpeechFormat = Literal["wav", "pcm"]
"""The `response_format`s rtflow can read without a decoder."""

_READABLE_FORMATS: tuple[SpeechFormat, ...] = ("wav", "pcm")
_COMPRESSED_FORMATS = ("mp3", "opus", "aac", "flac")
_MAX_BODY_BYTES = 128 * 1024 * 1024
"""About 23 minutes of 24 kHz 16-bit audio, far beyond 4096 characters at the slowest speed: more is not speech."""
_MAX_STEM_CHARS = 80


class VoiceId(BaseModel):
    """A custom voice, referred to by its id (`voice: {id: voice_123}`), sent as OpenAI's `{"id": ...}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)


class TtsConfig(BaseModel):
    """Config keys of `openai:tts:MODEL`: where and how to connect (as on Chat), and how to speak."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)

    api_base_url: str | None = Field(default=None, alias="apiBaseUrl")
    """Base URL of the API (`https://api.openai.com/v1`); defaults to `OPENAI_BASE_URL`, then the public API."""
    api_host: str | None = None
    """promptfoo's host-only form of the base URL (`api.example.com`); https is assumed."""
    api_key: str | None = None
    """The API key itself. Discouraged: prefer `api_key_env` or `OPENAI_API_KEY`."""
    api_key_env: str | None = Field(
        default=None, validation_alias=AliasChoices("api_key_env", "apiKeyEnv", "apiKeyEnvar", "api_key_envar")
    )
    """Name of the environment variable holding the key (default `OPENAI_API_KEY`)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra HTTP headers sent on every request."""
    max_concurrency: int | None = Field(default=None, ge=1)
    """The most speech requests in flight at once for this endpoint and model."""
    rpm: float | None = Field(default=None, gt=0)
    """Requests per minute allowed (used by the scheduler's rate limiter)."""
    concurrency_key: str | None = None
    """Override of the key under which calls share limits (default: endpoint and model)."""
    max_retry_after: Duration = DEFAULT_MAX_RETRY_AFTER
    """The longest wait a server may ask for (`Retry-After`, a rate-limit reset); a longer one is cut to this."""
    timeout: Duration = Field(
        default=60.0, validation_alias=AliasChoices("timeout", "request_timeout", "requestTimeout")
    )
    """Longest wait on the server: to connect, and between two pieces of the body (duration; a bare number is ms)."""
    voice: Annotated[str, Field(min_length=1)] | VoiceId = "alloy"
    """A built-in voice's name (`alloy`, `coral`, ...) or a custom voice as `{id: ...}`."""
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    """How fast the voice speaks, 0.25 to 4.0."""
    instructions: str | None = None
    """How the voice should sound (tone, accent, pace); `gpt-4o-mini-tts` follows them, `tts-1` ignores them."""
    response_format: SpeechFormat = "wav"
    """`wav` or `pcm` (raw 24 kHz mono 16-bit); the compressed formats are refused (rtflow has no decoder)."""

    @field_validator("response_format", mode="before")
    @classmethod
    def _readable_format(cls, value: Any) -> Any:
        """Refuse a format rtflow cannot read now, with the reason, instead of failing on the first turn."""
        spelled = value.strip().lower() if isinstance(value, str) else value
        if spelled in _READABLE_FORMATS:
            return spelled
        if spelled in _COMPRESSED_FORMATS:
            reason = (
                f"'{spelled}' audio needs a decoder rtflow does not have; use 'wav' or 'pcm' "
                "(both 24 kHz mono 16-bit, which rtflow reads itself)"
            )
        else:
            reason = "expected 'wav' or 'pcm' (the formats rtflow can read without a decoder)"
        # The reason goes in through the context: a template would read braces in it as placeholders.
        raise PydanticCustomError("response_format", "{reason}", {"reason": reason})


@dataclass
class _Received:
    """A successful response, read whole: what the body claims to be, the body, and when its first byte came."""

    content_type: str
    body: bytes
    first_byte_ms: float | None
    rate_limits: dict[str, str] = field(default_factory=dict)


class TtsProvider(Provider):
    """OpenAI text to speech (or any endpoint that speaks `/audio/speech`)."""

    kind = "openai:tts"
    holds_sessions = False

    def __init__(self, info: ProviderInfo, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(info)
        self.config = validate_config(TtsConfig, info.config, info.label)
        self.base_url = resolve_base_url(self.config.api_base_url, self.config.api_host)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._key: SecretKey | None = None
        self._scratch: Path | None = None

    @property
    def url(self) -> str:
        """The speech endpoint."""
        return f"{self.base_url}/audio/speech"

    @property
    def endpoint(self) -> str:
        return self.base_url

    @property
    def concurrency_key(self) -> str:
        """Requests to the same endpoint and model share limits."""
        return self.config.concurrency_key or f"{self.url}#{self.info.model}"

    @property
    def max_concurrency(self) -> int | None:
        """The most requests in flight at once for this key."""
        return self.config.max_concurrency

    @property
    def per_minute_limits(self) -> tuple[float | None, float | None]:
        """Requests per minute only: speech is not metered in the tokens the scheduler counts."""
        return self.config.rpm, None

    @property
    def keeps_history(self) -> bool:
        """Only the turn's own words are spoken, so the conversation so far need not be sent."""
        return False

    def check_ready(self) -> None:
        resolve_key(self.config.api_key, self.config.api_key_env, self.info.label)

    def warnings(self) -> list[str]:
        """`instructions` on a model that ignores them would silently change nothing."""
        if self.config.instructions and self.info.model.startswith("tts-1"):
            return [
                f"provider {self.info.label!r}: {self.info.model} ignores `instructions` (gpt-4o-mini-tts follows them)"
            ]
        return []

    def session(self, conversation_id: str) -> TtsSession:
        """A stateless session: each turn is one request."""
        return TtsSession(self)

    async def aclose(self) -> None:
        """Close the connection pool and remove the scratch folder (audio of turns that had no artifact_dir)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        scratch, self._scratch = self._scratch, None
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    def _http(self) -> httpx.AsyncClient:
        """The pooled client, built on the first request so that validating a flow needs neither httpx nor a key."""
        if self._client is None:
            self._key = resolve_key(self.config.api_key, self.config.api_key_env, self.info.label)
            headers = auth_headers(self._key, azure=False, extra=self.config.headers)
            self._client = pooled_http_client(self.url, headers, self.config.timeout, self._transport)
        return self._client

    def _body(self, text: str) -> dict[str, Any]:
        """The request body; `instructions` only when given, as OpenAI rejects it on some models."""
        config = self.config
        voice: str | dict[str, str] = config.voice if isinstance(config.voice, str) else {"id": config.voice.id}
        body: dict[str, Any] = {
            "model": self.info.model,
            "input": text,
            "voice": voice,
            "response_format": config.response_format,
            "speed": config.speed,
        }
        if config.instructions is not None:
            body["instructions"] = config.instructions
        return body

    async def speak(self, request: TurnRequest) -> TurnOutput:
        """Speak the turn's last user message, write its audio, and answer with the text and the audio."""
        label = self.info.label
        text = _spoken_text(request, label)
        started = time.perf_counter()
        with translated_http_errors(label, "the speech request", self.config.timeout, "timeout", lambda: self._key):
            received = await self._fetch(text)
        pcm = _pcm_of(received, self.config.response_format, label, self._key)
        audio = write_output_audio(pcm, self._audio_folder(request), _stem(request), "pcm16")
        metrics = TurnMetrics(
            total_ms=(time.perf_counter() - started) * 1000,
            first_audio_ms=received.first_byte_ms,
            ttfb_ms=received.first_byte_ms,
            output_audio_s=audio.duration_s,
        )
        pause, warnings = self._rate_limit_pause(received.rate_limits)
        return TurnOutput(
            text=text,
            audio=audio,
            metrics=metrics,
            model=self.info.model,
            rate_limit_pause_s=pause,
            protocol_warnings=warnings,
        )

    async def _fetch(self, text: str) -> _Received:
        """Post the request and read the whole body, noting when its first byte came (the time to first audio)."""
        client = self._http()
        label = self.info.label
        requested = time.perf_counter()
        async with client.stream("POST", self.url, json=self._body(text)) as response:
            rate_limits = {name: value for name, value in response.headers.items() if name.startswith("x-ratelimit-")}
            if response.status_code >= 300:  # a redirect left here was not followed
                await response.aread()
                raise status_error(response, label, self._key, max_retry_after=self.config.max_retry_after)
            pieces: list[bytes] = []
            size = 0
            first_byte_ms: float | None = None
            async for piece in response.aiter_bytes():
                if not piece:
                    continue
                if first_byte_ms is None:
                    first_byte_ms = (time.perf_counter() - requested) * 1000
                size += len(piece)
                if size > _MAX_BODY_BYTES:
                    raise ProtocolError(
                        f"the audio went on past {_MAX_BODY_BYTES // (1024 * 1024)} MiB; no speech is that long",
                        provider=label,
                    )
                pieces.append(piece)
            return _Received(response.headers.get("content-type", ""), b"".join(pieces), first_byte_ms, rate_limits)

    def _rate_limit_pause(self, rate_limits: dict[str, str]) -> tuple[float | None, list[str]]:
        """The pause the `x-ratelimit-*` headers ask for, capped by `max_retry_after`, and a warning if it was cut."""
        asked = pause_from_headers(rate_limits)
        cap = self.config.max_retry_after
        pause, capped = capped_wait(asked, cap)
        if capped:
            return pause, [f"x-ratelimit-reset asked to hold requests for {asked:g} s; held for {cap:g} s"]
        return pause, []

    def _audio_folder(self, request: TurnRequest) -> Path:
        """The turn's artifact folder, or the provider's scratch folder (made on first need) when it has none."""
        if request.artifact_dir is not None:
            return Path(request.artifact_dir)
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="rtflow-tts-"))
        return self._scratch


class TtsSession:
    """A conversation on the speech provider; holds nothing between turns."""

    def __init__(self, provider: TtsProvider) -> None:
        self._provider = provider

    async def send(self, request: TurnRequest) -> TurnOutput:
        """Speak the turn's last user message."""
        return await self._provider.speak(request)

    async def aclose(self) -> None:
        """Nothing to release: the connection pool and the scratch folder belong to the provider."""


def _spoken_text(request: TurnRequest, label: str) -> str:
    """The text of the last user message; a blank one is refused here, as no request could make audio of it."""
    text = next((message.text for message in reversed(request.messages) if message.role == "user"), None)
    if text is None or not text.strip():
        what = "no user message" if text is None else "a blank user message"
        raise InvalidRequestError(
            f"{label} speaks the turn's last user message, and this turn has {what}", provider=label, code="empty_input"
        )
    return text


def _safe_name(text: str) -> str:
    """`text` as a file name: only letters, digits, `-`, `_` and `.`, and short enough for any file system.

    A long id is cut and given a hash of the whole, so two ids that share a long prefix still get two files."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)
    if len(safe) <= _MAX_STEM_CHARS and safe.strip("."):
        return safe
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{safe[: _MAX_STEM_CHARS - 13]}-{digest}"


def _stem(request: TurnRequest) -> str:
    """The audio file's name without suffix: `-speech` keeps it apart from an agent's `-turnN.wav` beside it."""
    return f"{_safe_name(request.conversation_id)}-turn{request.turn_index + 1}-speech"


def _pcm_of(received: _Received, response_format: SpeechFormat, label: str, key: SecretKey | None) -> bytes:
    """The 24 kHz mono 16-bit samples of a body, or a ProtocolError naming what came instead of audio."""
    problem = _not_audio(received, key)
    if problem is not None:
        raise ProtocolError(f"the server sent {problem} where {response_format} audio was expected", provider=label)
    body = received.body
    if body[:4] == b"RIFF":  # also for `pcm`: a server that sends a WAV anyway is still understood
        pcm = _wav_samples(body, label)
    elif response_format == "wav":
        raise ProtocolError(
            f"the server sent a body that is not a WAV file ({_describe(received)}, starting {body[:8].hex(' ')})",
            provider=label,
        )
    else:
        pcm = body
    if len(pcm) < 2:
        raise ProtocolError(f"the server sent audio without a single sample ({_describe(received)})", provider=label)
    return pcm


def _describe(received: _Received) -> str:
    """`123 bytes of audio/wav`, for messages."""
    return f"{len(received.body)} bytes of {received.content_type or 'no content type'}"


def _not_audio(received: _Received, key: SecretKey | None) -> str | None:
    """What the body is when it is plainly not audio (empty, or text by its content type or its parse), else None."""
    body = received.body
    if not body:
        return f"an empty body ({received.content_type or 'no content type'})"
    content_type = received.content_type.lower()
    textual = content_type.startswith("text/") or any(kind in content_type for kind in ("json", "html", "xml"))
    if not textual and not _parses_as_json(body):
        return None
    # The server's text may echo the key: it is redacted before it becomes part of the message.
    shown = server_text(body[:300].decode("utf-8", errors="replace"), key, limit=160)
    return f"{_describe(received)}: {shown}"


def _parses_as_json(body: bytes) -> bool:
    """Whether a body without a telling content type is JSON (an error object), not raw samples that start with `{`."""
    if body[:1] not in (b"{", b"[") or len(body) > 1024 * 1024:
        return False
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


def _wav_samples(body: bytes, label: str) -> bytes:
    """The samples of a 24 kHz mono 16-bit WAV body, reading its chunks.

    A data size that runs past the body (OpenAI's streamed `0xFFFFFFFF`, or 0 from a writer that never went back)
    means "to the end": the samples are what arrived."""
    if len(body) < 12 or body[8:12] != b"WAVE":
        raise ProtocolError("the server sent a RIFF body that is not WAVE audio", provider=label)
    position = 12
    audio_format: tuple[int, int, int, int] | None = None
    while position + 8 <= len(body):
        chunk_id = body[position : position + 4]
        (size,) = struct.unpack("<I", body[position + 4 : position + 8])
        position += 8
        if chunk_id == b"fmt " and position + 16 <= len(body):
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[position : position + 16])
            audio_format = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            _check_wav_format(audio_format, label)
            end = position + size
            return body[position:] if size == 0 or end > len(body) else body[position:end]
        position += size + size % 2  # RIFF chunks are word aligned
    raise ProtocolError("the server sent a WAV without a data chunk", provider=label)


def _check_wav_format(audio_format: tuple[int, int, int, int] | None, label: str) -> None:
    """Refuse a WAV whose samples are not what the API promises: rtflow does not resample speech it is given."""
    if audio_format is None:
        raise ProtocolError("the server sent a WAV whose data comes before (or without) its fmt chunk", provider=label)
    tag, channels, rate, bits = audio_format
    if tag not in (1, 0xFFFE) or (channels, rate, bits) != (1, API_SAMPLE_RATE, 16):
        raise ProtocolError(
            f"the server sent WAV audio rtflow does not read (format tag {tag}, {channels} channel(s), {rate} Hz,"
            f" {bits}-bit); expected PCM, 1 channel, {API_SAMPLE_RATE} Hz, 16-bit",
            provider=label,
        )

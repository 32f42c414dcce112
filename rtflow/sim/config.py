"""How a simulator is configured: latency, faults, voice timing, a rules script, auth and event logging.

Faults are also written on the command line as `KIND[:ARG][@ENDPOINT][xTIMES][~PROB][;model=RE][;match=RE]`, where
ENDPOINT is `realtime`, `chat`, `speech` (text to speech, `/v1/audio/speech`) or `any`:

- `status[:HTTP]` (default 500): Realtime: the handshake is refused with that status (429 carries
  `Retry-After: 1`); Chat and speech: that HTTP status with an OpenAI-shaped error body.
- `close[:1006|1011]` (default 1011): Realtime: the socket closes right after the first delta of a response
  (1006: dropped without a close frame); Chat: the TCP connection drops (mid-stream when streaming); speech: the
  TCP connection drops after the first word's audio.
- `server_error`: Realtime: an `error` event of type `server_error` instead of the response (the session stays
  open); Chat and speech: HTTP 500.
- `rate_limited[:SECONDS]` (default 1): Realtime: `response.done` with status `failed` and a
  `rate_limit_exceeded` error that says to try again in SECONDS; Chat and speech: HTTP 429 with `Retry-After:
  SECONDS`.
- `stall`: nothing comes back (no response events; the Chat or speech request hangs).
- `malformed`: Realtime: a text frame that is not JSON right after `response.created` (the response then carries
  on); Chat: a body (or an SSE line) that is not JSON; speech: a body that is not audio (a cut JSON fragment).
- `session_expired[:SECONDS]` (default 0): Realtime: that long after connecting, an `error` event with code
  `session_expired`, then close 1001.

Examples: `status:429@realtimex2` (the first two handshakes get 429), `close:1006~0.1` (one response in ten, seeded),
`rate_limited@chat;match=weather`. On speech, `match` is searched in the `input` text.

A handshake fault (`status`) is decided when the connection opens, before any user text exists, so `match` never
applies to it on the Realtime endpoint; `session_expired` likewise.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rtflow.errors import SimulatorError

__all__ = ["Fault", "FaultKind", "LatencyConfig", "SimConfig", "VoiceConfig", "parse_fault"]

FaultKind = Literal["status", "close", "server_error", "rate_limited", "stall", "malformed", "session_expired"]
Endpoint = Literal["realtime", "chat", "speech", "any"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LatencyConfig(_Strict):
    """Delays the simulator adds, in milliseconds. Zero everywhere means as fast as the loop goes."""

    connect_ms: float = 0.0
    """Before a WebSocket handshake is accepted (or a Chat request is answered)."""
    first_delta_ms: float = 0.0
    """From `response.create` (or the Chat request) to the first delta."""
    per_delta_ms: float = 0.0
    """Between consecutive deltas."""
    jitter_ms: float = 0.0
    """Each delay above gets a uniform extra in [0, jitter_ms], drawn from a generator seeded with `seed`."""
    seed: int = 0
    """Seed of the jitter generator."""


class VoiceConfig(_Strict):
    """How the simulator's spoken answers unfold in time."""

    realtime_audio: bool = False
    """Send output audio at the rate it plays: one `audio_chunk_ms` delta every `audio_chunk_ms`, from the
    response's first audio delta (off: as fast as the loop goes). `rtflow.run` turns it on for a flow that cuts
    answers by what the caller heard, unless these settings say it themselves."""
    audio_chunk_ms: int = Field(default=20, ge=5, le=1000)
    """Length of each output audio delta when `realtime_audio` is on."""
    audio_lead_ms: float = Field(default=100.0, ge=0)
    """When `realtime_audio` is on, how far ahead of its playing time each delta is sent: a live service keeps
    the caller's buffer ahead of the speaker, so a late delta does not stall playback (0: each just in time)."""
    leading_silence_ms: float = Field(default=0.0, ge=0)
    """Silence at the start of every spoken answer, before its first word (sent as audio like the rest)."""
    cancel_delay_ms: float = Field(default=0.0, ge=0)
    """How long a response keeps streaming after `response.cancel` (or the VAD's turn_detected) before it stops."""


class Fault(_Strict):
    """One injected failure, and which requests it hits."""

    kind: FaultKind
    """What goes wrong; see the module docstring for what a client observes."""
    endpoint: Endpoint = "any"
    """Which endpoint it hits."""
    model: str | None = None
    """A regex searched in the model (or Azure deployment) name; None hits every model."""
    match: str | None = None
    """A regex searched in the last user text of the request; None hits every request."""
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    """Chance that a matching request is hit, drawn from the config's seeded generator."""
    times: int | None = Field(default=None, ge=0)
    """Fire at most this many times, then behave normally; None means no limit."""
    status: int = 500
    """HTTP status for `status` faults (401, 403, 429, 500, 503, ...)."""
    close_code: int = 1011
    """WebSocket close code for `close` faults: 1011, or 1006 for a drop without a close frame."""
    retry_after: float = 1.0
    """Seconds announced in `Retry-After` (429) and in rate-limit messages."""
    after_s: float = 0.0
    """For `session_expired`: seconds after connecting at which the session expires."""

    @field_validator("model", "match")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class SimConfig(_Strict):
    """Everything a `SimServer` needs."""

    host: str = "127.0.0.1"
    """Interface to listen on."""
    port: int = 0
    """Port to listen on; 0 picks a free one."""
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    """Delays added to connections and responses."""
    voice: VoiceConfig = Field(default_factory=VoiceConfig)
    """How spoken answers unfold in time: pacing, leading silence, and how late a cancel takes effect."""
    faults: list[Fault] = Field(default_factory=list)
    """Injected failures, checked in order; the first that fires wins."""
    seed: int = 0
    """Seed of the fault-probability generator."""
    script: Path | None = None
    """A YAML rules file (list of `{match, reply}` or `{match, call: {name, arguments}}`) that overrides the model."""
    require_key: str | None = None
    """When set, only this API key is accepted; otherwise any non-empty key is. A refused key gets what the live
    service sends: the socket is upgraded, an `error` event (`invalid_api_key`) follows, then close 3000."""
    models: list[str] | None = None
    """When set, the only Realtime models that exist: any other gets an `error` event (`model_not_found`) and close
    3000, as live. None accepts every model name (tests and Azure deployments use made-up names); a missing model
    is always refused."""
    refuse_beta: bool = False
    """Act as OpenAI's GA-only service: a beta-shape connection (`OpenAI-Beta: realtime=v1`) gets an `error` event
    (`beta_api_shape_disabled`) and close 4000. Off by default: beta stays for third-party-server tests."""
    log_path: Path | None = None
    """A JSONL file that receives every event in and out."""
    record_events: bool = False
    """Keep every event in and out in memory (`SimServer.events`)."""
    rate_limit_requests: int = 10_000
    """The `requests` limit announced in `rate_limits.updated`."""
    rate_limit_tokens: int = 2_000_000
    """The `tokens` limit announced in `rate_limits.updated`."""
    live_silence_ms: int = Field(default=500, ge=20)
    """GPT-Live (`/v1/live/sessions`): how long a pause ends the caller's utterance (the energy VAD's silence)."""
    live_yield_ms: float = Field(default=0.0, ge=0)
    """GPT-Live barge-in: how long the simulator keeps speaking after the caller starts to speak over it."""
    live_talks_over: bool = False
    """GPT-Live: never stop speaking when the caller barges in (a misbehaving model, so that tests can fail);
    the answer to the interrupting utterance then follows the current one."""
    live_delegate_on: list[int] = Field(default_factory=lambda: [2])
    """GPT-Live: the caller's utterances (1-based, counted per session) that the simulator delegates to the client,
    in sessions started with `delegation: {"type": "client"}` (named explicitly; an omitted delegation never
    delegates). See `rtflow.sim.live`."""
    live_idle_timeout_s: float = Field(default=30.0, gt=0)
    """GPT-Live backstop: a session that receives no client event for this long is closed (`session.closed` with
    reason `expired`, then close 1000)."""


_FAULT_SPEC = re.compile(
    r"^(?P<kind>[a-z_]+)(?::(?P<arg>[0-9.]+))?(?:@(?P<endpoint>realtime|chat|speech|any))?"
    r"(?:x(?P<times>\d+))?(?:~(?P<prob>[0-9.]+))?(?P<rest>(?:;[a-z]+=[^;]*)*)$"
)


def parse_fault(spec: str) -> Fault:
    """Parse the command-line form `KIND[:ARG][@ENDPOINT][xTIMES][~PROB][;model=RE][;match=RE]`."""
    found = _FAULT_SPEC.match(spec.strip())
    if found is None:
        raise SimulatorError(f"cannot parse fault {spec!r}: expected KIND[:ARG][@endpoint][xTIMES][~PROB]")
    kind = found["kind"]
    known_kinds = get_args(FaultKind)
    if kind not in known_kinds:
        raise SimulatorError(f"unknown fault kind {kind!r} in {spec!r} (known: {', '.join(known_kinds)})")
    fields: dict[str, object] = {"kind": kind}
    if found["endpoint"]:
        fields["endpoint"] = found["endpoint"]
    if found["times"]:
        fields["times"] = int(found["times"])
    if found["prob"]:
        fields["probability"] = float(found["prob"])
    arg = found["arg"]
    if arg is not None:
        arg_field = {
            "status": "status", "close": "close_code", "session_expired": "after_s", "rate_limited": "retry_after"
        }.get(kind)  # fmt: skip
        if arg_field is None:
            raise SimulatorError(f"fault {kind!r} takes no argument (got {arg!r})")
        fields[arg_field] = float(arg) if arg_field in ("after_s", "retry_after") else int(float(arg))
    for option in filter(None, found["rest"].split(";")):
        name, _, value = option.partition("=")
        if name not in ("model", "match"):
            raise SimulatorError(f"unknown fault option {name!r} in {spec!r} (known: model, match)")
        fields[name] = value
    try:
        return Fault.model_validate(fields)
    except ValueError as exc:
        raise SimulatorError(f"invalid fault {spec!r}: {exc}") from exc

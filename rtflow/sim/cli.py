"""`rtflow sim serve`: the simulator on its own, for any client."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["sim"]


@click.group()
def sim() -> None:
    """A local OpenAI Realtime + Chat Completions + text-to-speech server with deterministic replies."""


@sim.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port (0 picks a free one).")
@click.option("--latency-ms", default=0.0, type=float, help="Delay before the first delta of each response.")
@click.option("--per-delta-ms", default=0.0, type=float, help="Delay between deltas.")
@click.option("--connect-ms", default=0.0, type=float, help="Delay before a handshake is accepted.")
@click.option("--jitter-ms", default=0.0, type=float, help="Uniform extra on each delay, seeded by --seed.")
@click.option(
    "--realtime-audio", is_flag=True, help="Send spoken answers at the rate they play, one --audio-chunk-ms delta each."
)
@click.option(
    "--audio-chunk-ms",
    default=20,
    show_default=True,
    type=click.IntRange(5, 1000),
    help="Length of each output audio delta with --realtime-audio.",
)
@click.option(
    "--audio-lead-ms",
    default=100.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="With --realtime-audio: how far ahead of its playing time each delta is sent.",
)
@click.option(
    "--leading-silence-ms",
    default=0.0,
    type=click.FloatRange(min=0),
    help="Silence at the start of every spoken answer.",
)
@click.option(
    "--cancel-delay-ms",
    default=0.0,
    type=click.FloatRange(min=0),
    help="How long a response keeps streaming after a cancel (or a barge-in) before it stops.",
)
@click.option("--seed", default=0, type=int, help="Seed of the jitter and fault-probability generators.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    help="KIND[:ARG][@realtime|chat|speech|any][xTIMES][~PROB][;model=RE][;match=RE], e.g. status:429@realtimex2. "
    "Kinds: status, close, server_error, rate_limited, stall, malformed, session_expired.",
)
@click.option("--script", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Rules YAML.")
@click.option("--require-key", default=None, help="Accept only this API key.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path), help="JSONL event log.")
def serve(
    host: str,
    port: int,
    latency_ms: float,
    per_delta_ms: float,
    connect_ms: float,
    jitter_ms: float,
    realtime_audio: bool,
    audio_chunk_ms: int,
    audio_lead_ms: float,
    leading_silence_ms: float,
    cancel_delay_ms: float,
    seed: int,
    faults: tuple[str, ...],
    script: Path | None,
    require_key: str | None,
    log_path: Path | None,
) -> None:
    """Serve until Ctrl-C, printing the base URLs once ready."""
    # Imported here: `rtflow --help` reads this module to list the command, and should not load the server.
    import anyio

    from rtflow.sim.config import LatencyConfig, SimConfig, VoiceConfig, parse_fault
    from rtflow.sim.server import SimServer

    config = SimConfig(
        host=host,
        port=port,
        latency=LatencyConfig(
            connect_ms=connect_ms,
            first_delta_ms=latency_ms,
            per_delta_ms=per_delta_ms,
            jitter_ms=jitter_ms,
            seed=seed,
        ),
        voice=VoiceConfig(
            realtime_audio=realtime_audio,
            audio_chunk_ms=audio_chunk_ms,
            audio_lead_ms=audio_lead_ms,
            leading_silence_ms=leading_silence_ms,
            cancel_delay_ms=cancel_delay_ms,
        ),
        faults=[parse_fault(spec) for spec in faults],
        seed=seed,
        script=script,
        require_key=require_key,
        log_path=log_path,
    )

    async def run() -> None:
        async with SimServer(config) as server:
            click.echo(f"Realtime:         {server.ws_base_url}/realtime?model=MODEL")
            click.echo(f"Chat Completions: {server.http_base_url}/chat/completions")
            click.echo(f"Text to speech:   {server.http_base_url}/audio/speech")
            click.echo(f"OPENAI_BASE_URL={server.http_base_url}")
            await anyio.sleep_forever()

    try:
        anyio.run(run)
    except KeyboardInterrupt:
        click.echo("stopped")

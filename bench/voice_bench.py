"""Voice benchmark (run by hand): what a voice turn costs and how long it takes, on the local simulator.

    /work/venv/bin/python bench/voice_bench.py --turns 20

For each clip of flows/clips and each mode it runs voice turns through the Realtime provider against the
simulator on loopback (zero added latency) and reports, per mode, the median of:

- convert: reading the WAV and converting it to the session's format (soundfile + soxr, G.711 encode);
- send: streaming the input audio (`input_send_ms`); with `realtime_pacing` this should be about the clip's
  duration, which the ratio column shows;
- first audio: from the request (or, under server VAD, the end of speech) to the first audio delta;
- turn: the whole turn; and the reply's audio length and real-time factor.

Modes: burst (pcm16, no pacing), paced (pcm16, 20 ms chunks in real time), pcmu (G.711 u-law, burst) and
server_vad (pcm16, paced, the simulator's VAD ends the turn). Paced modes take about the clip's length per turn.

`--barge-in N` instead runs N conversations at once against a simulator in a child process that speaks in real
time (20 ms audio deltas at their playing rate) and takes 50 ms to stop after a cancel. Each conversation asks a
long question and cuts the answer at 300, 600 or 900 ms of playback, then asks for less. It reports the client's
CPU per second of agent audio played, and how far rtflow's time measurements are from the simulator's own
record (its event log, whose `out` times are when a frame was written to the socket and `in` times when it reached
the machine, as the kernel noted it): `audio_end_ms` against what the audio the simulator had sent would have
played by the time the cancel arrived, and the yield latency against the simulator's own, from the cancel's
arrival to its cancelled `response.done` (the 50 ms cancel delay plus whatever the simulator's load added)
(goal: p95 error <= 5 ms).

Both sides take a message's arrival from the kernel (`rtflow.arrival_stamps`), not from when their busy event loop
read it: with 100 streams the client's loop reads a socket more than 5 ms late for about a quarter of the frames.
What the kernel cannot say is when each of several packets that waited together arrived: it merges them and keeps
the newest one's time. That matters only after the audio ran dry (the caller's speaker waits for the next delta),
so a simulator that falls behind its own pace, and a client that reads late just then, put an error of up to that
lateness on the cut.

The played position is worked out from the simulator's `out` times by rtflow's own speaker model
(`PlaybackClock`): from the first delta, in real time, pausing when the audio sent so far has all played. A
simulator that stalls sends late, and the caller hears a gap: counting the time since the first delta instead
would blame rtflow for the simulator's stall. That stall is reported too, as the gap between the two at the cut.

    /work/venv/bin/python bench/voice_bench.py --barge-in 100 [--chunk-ms 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import anyio

from rtflow.audio.files import encode_for_session
from rtflow.log import configure_logging
from rtflow.messages import Message, TurnOutput, TurnRequest
from rtflow.providers.base import ProviderInfo
from rtflow.providers.openai_realtime import RealtimeProvider
from rtflow.providers.playback import PlaybackClock, audio_ms
from rtflow.sim import SimConfig, SimServer

CLIPS = Path(__file__).resolve().parents[1] / "flows" / "clips"
MODES: dict[str, dict[str, Any]] = {
    "burst": {},
    "paced": {"realtime_pacing": True, "audio_chunk_ms": 20},
    "pcmu": {"input_audio_format": "g711_ulaw", "output_audio_format": "g711_ulaw"},
    "server_vad": {
        "realtime_pacing": True,
        "audio_chunk_ms": 20,
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
    },
}


CANCEL_DELAY_MS = 50.0
CUTS_MS = (300.0, 600.0, 900.0)


async def barge_in_load(conversations: int, chunk_ms: int) -> None:
    """N concurrent barge-in conversations on a real-time simulator in a child process: CPU and time errors."""
    import base64
    import json
    import resource
    import sys

    import yaml

    sys.path.insert(0, str(Path(__file__).parent))
    from sim_child import raise_fd_limit, simulator_child

    import rtflow

    raise_fd_limit(4 * conversations + 256)
    with TemporaryDirectory() as scratch:
        folder = Path(scratch)
        log = folder / "sim.jsonl"
        rules = folder / "rules.yaml"
        rules.write_text(yaml.safe_dump([{"match": "short version", "reply": "Sure."}]))
        config = SimConfig(
            log_path=log, script=rules, voice={"realtime_audio": True, "cancel_delay_ms": CANCEL_DELAY_MS}
        )
        with simulator_child(config.model_dump_json()) as sim:
            provider = {
                "id": "openai:realtime:gpt-realtime",
                "config": {
                    "modalities": ["audio"],
                    "api_base_url": f"http://127.0.0.1:{sim.port}/v1",
                    "api_key": "sk-sim",
                    "websocket_timeout": "60s",
                },
            }
            question = "Tell me about the long and glorious history of the ancient city of Rome please"
            threads = {
                f"c{index}": [
                    {"q": question},
                    {"interrupt": {"after_ms": CUTS_MS[index % len(CUTS_MS)]}},
                    {"q": "Just the short version"},
                ]
                for index in range(conversations)
            }
            document = {"providers": [provider], "prompts": ["{{ q }}"], "threads": threads}
            flow = folder / "flow.yaml"
            flow.write_text(yaml.safe_dump(document, sort_keys=False))
            before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            result = await rtflow.arun(flow, store=False, concurrency=conversations)
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
        events = [json.loads(line) for line in log.read_text().splitlines()]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    outputs = [turn.output for turn in result.turns if turn.output is not None]
    played_s = sum((output.metrics.agent_speaking_ms or 0.0) for output in outputs) / 1000
    # The simulator's view of each speaker: the audio it sent on the connection, played by `PlaybackClock`; the
    # caller cut it when the `response.cancel` (sent at the cut, before the truncate) arrived.
    audio_sent: dict[str, list[tuple[float, float]]] = {}  # per connection: (when it went out, ms of audio)
    cancels: dict[str, float] = {}
    truncates: dict[str, int] = {}
    truncated_items: dict[str, str] = {}
    cancelled_done: dict[str, float] = {}
    for event in events:
        if event["type"] == "response.output_audio.delta" and event["dir"] == "out":
            length_ms = audio_ms(len(base64.b64decode(event["payload"]["delta"])), "pcm16")  # the simulator's default
            audio_sent.setdefault(event["conn"], []).append((event["ts"], length_ms))
        elif event["type"] == "response.cancel" and event["dir"] == "in":
            cancels.setdefault(event["conn"], event["ts"])
        elif event["type"] == "conversation.item.truncate" and event["dir"] == "in":
            truncates[event["conn"]] = event["payload"]["audio_end_ms"]
            truncated_items[event["payload"]["item_id"]] = event["conn"]
        elif event["type"] == "response.done" and event["payload"]["response"]["status"] == "cancelled":
            cancelled_done.setdefault(event["conn"], event["ts"])
    cut_conns = [conn for conn in truncates if conn in cancels and conn in audio_sent]
    played = {conn: _played_ms(audio_sent[conn], cancels[conn]) for conn in cut_conns}
    signed = [truncates[conn] - played[conn] for conn in cut_conns]
    # Time since the first delta went out minus the audio played by then: how long the speaker waited for audio.
    stalls = sorted((cancels[conn] - audio_sent[conn][0][0]) * 1000 - played[conn] for conn in cut_conns)
    position_errors = [abs(error) for error in signed]
    # The simulator's own yield: from the cancel's arrival to its cancelled `response.done` leaving (the cancel
    # delay, and whatever the simulator's load added to it); each cut paired with rtflow's by the truncated item.
    yield_errors = []
    for output in outputs:
        cut = output.interruption
        conn = truncated_items.get(cut.item_id or "") if cut is not None else None
        if output.metrics.yield_done_ms is None or conn not in cancels or conn not in cancelled_done:
            continue
        simulated = (cancelled_done[conn] - cancels[conn]) * 1000
        yield_errors.append(abs(output.metrics.yield_done_ms - simulated))
    statuses = statistics.multimode(turn.status for turn in result.turns)
    bias = statistics.fmean(signed) if signed else float("nan")
    print(f"conversations        {conversations} at once, {len(result.turns)} turns ({statuses[0]} mostly)")
    print(f"audio deltas         {chunk_ms} ms each, sent at the rate they play")
    print(f"wall                 {wall:.2f} s")
    print(f"agent audio played   {played_s:.1f} s")
    print(f"client CPU           {cpu:.2f} s = {cpu / played_s * 1000:.1f} ms per second of audio")
    for name, errors in (("audio_end_ms error", position_errors), ("yield error", yield_errors)):
        ordered = sorted(errors)
        p95 = ordered[max(0, int(0.95 * len(ordered)) - 1)] if ordered else float("nan")
        worst = max(ordered, default=float("nan"))
        print(
            f"{name:<21}p50 {_median(ordered):.1f} ms, p95 {p95:.1f} ms, max {worst:.1f} ms"
            f" over {len(ordered)} cuts (goal p95 <= 5 ms)"
        )
    print(f"audio_end_ms bias    {bias:+.1f} ms (rtflow's position minus the simulator's, on average)")
    print(
        f"simulator's stalls   p50 {_median(stalls):.1f} ms, max {max(stalls, default=float('nan')):.1f} ms of gap"
        " heard by the cut (time since the first delta minus the audio played)"
    )


def _played_ms(sent: list[tuple[float, float]], at: float) -> float:
    """Milliseconds a speaker had played by `at` of audio sent as `sent` says: rtflow's own speaker model
    (`PlaybackClock`), fed the simulator's send times instead of rtflow's arrival times, so that what is compared
    is the times alone."""
    clock = PlaybackClock()
    for sent_at, length_ms in sent:
        if sent_at > at:
            break
        clock.add(sent_at, length_ms)
    return clock.position(at)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def run_mode(base_url: str, mode: str, clip: Path, turns: int, artifacts: Path) -> list[TurnOutput]:
    """`turns` single voice turns of `clip`, each on a session of its own."""
    config = {"api_base_url": base_url, "api_key": "sk-sim", "modalities": ["audio"], **MODES[mode]}
    provider = RealtimeProvider(ProviderInfo(id="openai:realtime:gpt-realtime", label=mode, config=config))
    outputs = []
    for index in range(turns):
        session = provider.session(f"{mode}-{index}")
        request = TurnRequest(
            conversation_id=f"{mode}-{index}",
            turn_index=0,
            messages=[Message.of("user", "q")],
            vars={"audio": str(clip)},
            artifact_dir=str(artifacts),
        )
        outputs.append(await session.send(request))
        await session.aclose()
    return outputs


async def main(turns: int, paced_turns: int) -> None:
    print(
        f"{'mode':<11}{'clip':<8}{'clip s':>7}{'convert ms':>11}{'send ms':>9}{'send/clip':>10}"
        f"{'1st audio ms':>13}{'turn ms':>9}{'reply s':>8}{'RTF':>8}"
    )
    with TemporaryDirectory() as scratch:
        async with SimServer(SimConfig()) as sim:
            for mode in MODES:
                for clip in sorted(CLIPS.glob("*.wav")):
                    audio_format = MODES[mode].get("input_audio_format", "pcm16")
                    started = time.perf_counter()
                    for _ in range(5):
                        encode_for_session(clip, audio_format)
                    convert_ms = (time.perf_counter() - started) * 1000 / 5
                    count = paced_turns if MODES[mode].get("realtime_pacing") else turns
                    outputs = await run_mode(sim.http_base_url, mode, clip, count, Path(scratch))
                    metrics = [output.metrics for output in outputs]
                    clip_s = _median([m.input_audio_s or 0.0 for m in metrics])
                    send_ms = _median([m.input_send_ms or 0.0 for m in metrics])
                    print(
                        f"{mode:<11}{clip.stem:<8}{clip_s:>7.2f}{convert_ms:>11.2f}{send_ms:>9.1f}"
                        f"{send_ms / 1000 / clip_s:>10.2f}"
                        f"{_median([m.first_audio_ms or 0.0 for m in metrics]):>13.2f}"
                        f"{_median([m.total_ms or 0.0 for m in metrics]):>9.1f}"
                        f"{_median([m.output_audio_s or 0.0 for m in metrics]):>8.2f}"
                        f"{_median([m.real_time_factor or 0.0 for m in metrics]):>8.4f}"
                    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20, help="turns per clip in the unpaced modes")
    parser.add_argument("--paced-turns", type=int, default=2, help="turns per clip in the paced modes")
    parser.add_argument("--barge-in", type=int, metavar="N", help="N concurrent barge-in conversations instead")
    parser.add_argument("--chunk-ms", type=int, default=20, help="with --barge-in: the simulator's audio delta length")
    options = parser.parse_args()
    configure_logging(level="warning")  # the providers' debug events would bury the table
    if options.barge_in:
        anyio.run(barge_in_load, options.barge_in, options.chunk_ms)
    else:
        anyio.run(main, options.turns, options.paced_turns)

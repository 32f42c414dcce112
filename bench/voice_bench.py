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
    options = parser.parse_args()
    configure_logging(level="warning")  # the providers' debug events would bury the table
    anyio.run(main, options.turns, options.paced_turns)

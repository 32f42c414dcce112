"""A local OpenAI Realtime + Chat Completions + text-to-speech server with deterministic replies, latency and faults.

```python
from rtflow.sim import SimServer, SimConfig, Fault
async with SimServer(SimConfig(faults=[Fault(kind="close", close_code=1006, times=1)])) as sim:
    ...  # point clients at sim.ws_base_url / sim.http_base_url
```

It plays a simulated caller: when the first system message of a request (on Realtime, the session instructions)
holds `<goal>...</goal>`, the reply is the goal's k-th sentence, k being the number of assistant messages so far
(sentences end at `.`, `!` or `?` before whitespace or the end), and once they are used up, the stop phrase
written after `say exactly: ` (to the end of that line; `###STOP###` when absent). A matching rule of the rules
script still wins. `POST /v1/audio/speech` speaks text as OpenAI's text to speech does, with the simulator's word
tones: `wav` or `pcm` (24 kHz mono 16-bit), `speed` 0.25-4.0 dividing each word's duration; the formats it cannot
make (mp3, opus, aac, flac) get a 400. See `rtflow.sim.model` and `rtflow.sim.speech`. GPT-Live's full-duplex
WebSocket (`/v1/live/sessions`, `client.live.connect()`) is served too: see `rtflow.sim.live`.

The names resolve on first use (PEP 562), like `rtflow`'s own: `rtflow --help` loads `rtflow.sim.cli` to list the
`sim` command, and that must not start loading pydantic, uvicorn and the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rtflow.lazy_names import lazy_names

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and editors
    from rtflow.sim.config import Fault, LatencyConfig, SimConfig, VoiceConfig, parse_fault
    from rtflow.sim.server import SimServer

__all__ = ["Fault", "LatencyConfig", "SimConfig", "SimServer", "VoiceConfig", "parse_fault"]

# public name -> module
_LAZY = {
    "Fault": "rtflow.sim.config",
    "LatencyConfig": "rtflow.sim.config",
    "SimConfig": "rtflow.sim.config",
    "SimServer": "rtflow.sim.server",
    "VoiceConfig": "rtflow.sim.config",
    "parse_fault": "rtflow.sim.config",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)

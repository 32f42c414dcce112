"""A local OpenAI Realtime + Chat Completions server with deterministic replies, latency and faults.

```python
from rtflow.sim import SimServer, SimConfig, Fault
async with SimServer(SimConfig(faults=[Fault(kind="close", close_code=1006, times=1)])) as sim:
    ...  # point clients at sim.ws_base_url / sim.http_base_url
```

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

"""A local OpenAI Realtime + Chat Completions server with deterministic replies, latency and faults.

```python
from rtflow.sim import SimServer, SimConfig, Fault
async with SimServer(SimConfig(faults=[Fault(kind="close", close_code=1006, times=1)])) as sim:
    ...  # point clients at sim.ws_base_url / sim.http_base_url
```
"""

from rtflow.sim.config import Fault, LatencyConfig, SimConfig, parse_fault
from rtflow.sim.server import SimServer

__all__ = ["Fault", "LatencyConfig", "SimConfig", "SimServer", "parse_fault"]

"""What every connection of one server shares: config, faults, latency, rules, the event log, id counters."""

from __future__ import annotations

import itertools

from rtflow.sim.config import SimConfig
from rtflow.sim.eventlog import EventLog
from rtflow.sim.faults import FaultPlan
from rtflow.sim.latency import Latency
from rtflow.sim.model import Rule, load_rules

__all__ = ["SimRuntime"]


class SimRuntime:
    """Shared state of one simulator; built once per server, before it listens."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.faults = FaultPlan(config.faults, config.seed)
        self.latency = Latency(config.latency)
        self.rules: list[Rule] = load_rules(config.script) if config.script is not None else []
        self.log = EventLog(config.log_path, config.record_events)
        self._connection_ids = itertools.count(1)
        self.open_sessions = 0
        self.peak_sessions = 0

    def next_connection_id(self, endpoint: str) -> str:
        """A new connection id: `rt-N` (Realtime), else the endpoint's name: `chat-N`, `speech-N`."""
        return f"{'rt' if endpoint == 'realtime' else endpoint}-{next(self._connection_ids)}"

    def key_error(self, key: str | None) -> str | None:
        """Why `key` is refused (an error code), or None when it is accepted. Never echoes the key."""
        if not key:
            return "missing_api_key"
        if self.config.require_key is not None and key != self.config.require_key:
            return "invalid_api_key"
        return None

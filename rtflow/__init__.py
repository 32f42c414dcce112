"""rtflow: run conversation test suites against real-time model APIs.

```python
import rtflow
result = rtflow.run("flows/conversation.yaml", sim=True)        # sync
result = await rtflow.arun("flows/conversation.yaml")           # async core
plan = rtflow.compile(rtflow.load("flows/conversation.yaml"))    # plan.graph is a networkx.DiGraph
```
"""

from __future__ import annotations

from rtflow._version import __version__
from rtflow.api import arun, run
from rtflow.errors import (
    CompileError,
    FlowError,
    FlowLoadError,
    PromptError,
    ProviderError,
    RtflowError,
)
from rtflow.flow.loader import load
from rtflow.flow.spec import FlowSpec
from rtflow.plan.compiler import compile_flow as compile
from rtflow.plan.graph import Plan
from rtflow.results.records import AssertionResult, RunRecord, TurnRecord
from rtflow.results.run_result import RunResult

__all__ = [
    "AssertionResult",
    "CompileError",
    "FlowError",
    "FlowLoadError",
    "FlowSpec",
    "Plan",
    "PromptError",
    "ProviderError",
    "RtflowError",
    "RunRecord",
    "RunResult",
    "TurnRecord",
    "__version__",
    "arun",
    "compile",
    "load",
    "run",
]

"""rtflow: run conversation test suites against real-time model APIs.

```python
import rtflow
result = rtflow.run("flows/conversation.yaml", sim=True)        # sync
result = await rtflow.arun("flows/conversation.yaml")           # async core
plan = rtflow.compile(rtflow.load("flows/conversation.yaml"))    # plan.graph is a networkx.DiGraph
```

The public names are resolved on first use (PEP 562), so `import rtflow` and `rtflow --version` load nothing
they do not need: a flow that is only validated never imports the providers, the scheduler or the simulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rtflow._version import __version__
from rtflow.lazy_names import lazy_names

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and editors
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

# public name -> (module, attribute)
_LAZY = {
    "AssertionResult": ("rtflow.results.records", "AssertionResult"),
    "CompileError": ("rtflow.errors", "CompileError"),
    "FlowError": ("rtflow.errors", "FlowError"),
    "FlowLoadError": ("rtflow.errors", "FlowLoadError"),
    "FlowSpec": ("rtflow.flow.spec", "FlowSpec"),
    "Plan": ("rtflow.plan.graph", "Plan"),
    "PromptError": ("rtflow.errors", "PromptError"),
    "ProviderError": ("rtflow.errors", "ProviderError"),
    "RtflowError": ("rtflow.errors", "RtflowError"),
    "RunRecord": ("rtflow.results.records", "RunRecord"),
    "RunResult": ("rtflow.results.run_result", "RunResult"),
    "TurnRecord": ("rtflow.results.records", "TurnRecord"),
    "arun": ("rtflow.api", "arun"),
    "compile": ("rtflow.plan.compiler", "compile_flow"),
    "load": ("rtflow.flow.loader", "load"),
    "run": ("rtflow.api", "run"),
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)

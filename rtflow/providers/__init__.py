"""Model APIs behind one small interface (`base.Provider`), found by id through `registry.create_provider`.

| module | job |
|---|---|
| `base` | the interface: `Provider`, `ProviderSession`, `ProviderInfo` |
| `registry` | `kind:api` prefix -> provider class; built-ins plus the `rtflow.providers` entry-point group |
| `openai_realtime` | `openai:realtime:MODEL`, one WebSocket per conversation (GA, beta, Azure) |
| `realtime_events` | the Realtime client events and `session.update`, in both dialects |
| `openai_chat` | `openai:chat:MODEL`, Chat Completions over a pooled httpx client |
| `config` | config validation shared by both (snake_case keys, promptfoo camelCase aliases) |
| `endpoints` | base URL, API key and header resolution |
| `tools` | function-tool definitions and the handlers that answer them |
| `audio` | WAV in (resampled to pcm16 24 kHz) and out |
| `pricing` | a dated price table and per-turn cost |
"""

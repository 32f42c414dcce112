"""Model APIs behind one small interface (`base.Provider`), found by id through `registry.create_provider`.

| module | job |
|---|---|
| `base` | the interface: `Provider`, `ProviderSession`, `ProviderInfo` |
| `registry` | `kind:api` prefix -> provider class; built-ins plus the `rtflow.providers` entry-point group |
| `openai_realtime` | `openai:realtime:MODEL`, one WebSocket per conversation (GA, beta, Azure) |
| `realtime_socket` | opening the socket (redirects only within the origin) and translating websockets' failures |
| `realtime_events` | the Realtime client events and `session.update`, in both dialects |
| `realtime_wire` | the Realtime server's events read defensively into typed values (what is skipped is noted) |
| `realtime_outcomes` | what those events mean for a turn: its response (by id), the outcome, `error` events |
| `realtime_voice` | voice turns: which audio a turn sends, and how it is streamed |
| `openai_chat` | `openai:chat:MODEL`, Chat Completions over a pooled httpx client |
| `openai_tts` | `openai:tts:MODEL`, text to speech (`/audio/speech`, wav or pcm) written as a 24 kHz WAV |
| `chat_wire` | what Chat Completions sends back: bodies, stream chunks, usage, error statuses |
| `config` | config validation shared by both (snake_case keys, promptfoo camelCase aliases) |
| `endpoints` | base URL, API key and header resolution |
| `ratelimits` | the server's rate-limit figures and "try again in" as pauses, capped by `max_retry_after` |
| `protocol_notes` | a turn's protocol warnings: what a server sent that was skipped, redacted and bounded |
| `tools` | function-tool definitions and the handlers that answer them |
| `tool_rounds` | the tool-round loop both providers drive: the round cap, each round's calls, their records |
| `audio` | WAV in (resampled to pcm16 24 kHz, or G.711 8 kHz) and out |
| `g711` | the G.711 u-law and A-law codec |
| `pricing` | a dated price table and per-turn cost |
"""

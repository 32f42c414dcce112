"""Every exception rtflow raises, in one place.

```
RtflowError                         exit_code 1
├── FlowError                       exit_code 2: the flow file (or a CLI option) is wrong
│   ├── FlowLoadError               YAML syntax, unknown keys, bad values; knows file:line:column and key path
│   ├── ProviderConfigError         a provider's `config` has unknown or bad keys; knows which
│   ├── PromptError                 a template or prompt function failed or returned something unusable
│   └── CompileError                the flow loads but cannot become a graph (unknown provider kind, ...)
├── ProviderError                   one provider call failed; carries provider, retryable, retry_after
│   ├── ProviderConnectionError     connect refused, socket dropped, handshake 5xx (retryable)
│   ├── ProviderTimeoutError        an attempt ran past its timeout (retryable)
│   ├── RateLimitError              429 or a rate-limited response (retryable, may carry retry_after)
│   ├── AuthenticationError         401 / 403 (fatal)
│   ├── InvalidRequestError         the API refused what we sent (fatal)
│   ├── ResponseFailedError         response.done with status failed / incomplete / cancelled
│   ├── ServerError                 an `error` event of type server_error, a 500 body (retryable)
│   ├── ProtocolError               a frame or body we cannot understand (retryable)
│   └── ToolError                   a tool loop could not finish (iteration cap, unknown tool) (fatal)
├── StoreError                      the run store cannot be opened, read or written
│   ├── RunNotFoundError            exit_code 2: no run with that id (or no run at all for `latest`)
│   └── MergeError                  exit_code 2: shard stores that do not make one run (another flow, a shard twice)
├── StoreMissing                    the viewer was pointed at a run store file that does not exist (yet)
├── InvalidAddress                  a viewer address no run could match (a malformed run id, a run against itself)
└── SimulatorError                  the local simulator could not start or was misconfigured
```

Errors carry their context as attributes, not only in the message, so that records and the CLI can use it.
Messages never contain secrets: providers build them from status codes and server error bodies only.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TypeVar

__all__ = [
    "AuthenticationError",
    "CompileError",
    "FlowError",
    "FlowLoadError",
    "InvalidAddress",
    "InvalidRequestError",
    "MergeError",
    "PromptError",
    "ProtocolError",
    "ProviderConfigError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "RateLimitError",
    "ResponseFailedError",
    "RtflowError",
    "RunNotFoundError",
    "ServerError",
    "SimulatorError",
    "StoreError",
    "StoreMissing",
    "ToolError",
    "first_error_in",
]


class RtflowError(Exception):
    """Base of every rtflow error. `exit_code` is what the CLI exits with when this ends a command."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class FlowError(RtflowError):
    """The flow file, or an option given with it, is wrong. Fixing the input fixes it."""

    exit_code = 2


class FlowLoadError(FlowError):
    """A flow file could not be loaded.

    `file`, `line` and `column` (1-based) point at the fault when they are known; `key_path` is the dotted path
    of keys from the document root (`tests.2.metadata.conversationId`).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        key_path: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.key_path = key_path
        where = file or "<flow>"
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        prefix = f"{where}: "
        if key_path:
            prefix += f"{key_path}: "
        super().__init__(prefix + message)
        self.reason = message


class ProviderConfigError(FlowError):
    """A provider's `config` block has unknown or bad keys. `problems` pairs each key (as the provider reads
    it, snake_case) with what is wrong, so the loader can point at the line that holds it."""

    def __init__(self, message: str, *, provider: str, problems: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.provider = provider
        self.problems = problems


class PromptError(FlowError):
    """A prompt could not be rendered: a missing variable, a template that is not valid JSON, a bad message."""


class CompileError(FlowError):
    """The flow loaded but cannot be turned into a graph."""


class ProviderError(RtflowError):
    """A provider call failed.

    `retryable` says whether the same call may succeed if tried again; `retry_after` (seconds) is the server's
    hint for when. `status` is an HTTP status when there was one; `code` the API's error code when it sent one.
    `input_transcript` is the server's transcription of the turn's input audio when it sent one before failing,
    so that a fallback provider that cannot take audio can be given the words instead.
    """

    retryable: bool = False
    input_transcript: str | None = None

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.code = code

    @property
    def kind(self) -> str:
        """A short stable name for records and summaries, for example `rate_limit`."""
        return _KIND_NAMES.get(type(self).__name__, "provider_error")


class ProviderConnectionError(ProviderError):
    """The connection could not be made or was lost."""

    retryable = True


class ProviderTimeoutError(ProviderError):
    """An attempt did not finish within its timeout."""

    retryable = True


class RateLimitError(ProviderError):
    """The provider said to slow down; `retry_after` says for how long when it was told."""

    retryable = True


class AuthenticationError(ProviderError):
    """The key was refused or does not give access to the model."""


class InvalidRequestError(ProviderError):
    """The API refused the request as invalid; sending it again will not help."""


class ResponseFailedError(ProviderError):
    """A response ended with status failed, incomplete or cancelled. `response_status` and `reason` say how."""

    def __init__(
        self,
        message: str,
        *,
        response_status: str,
        reason: str | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.response_status = response_status
        self.reason = reason


class ServerError(ProviderError):
    """The server reported an internal error."""

    retryable = True


class ProtocolError(ProviderError):
    """The server sent something that does not follow the protocol."""

    retryable = True


class ToolError(ProviderError):
    """The tool loop could not finish: an unknown tool, or more rounds than `max_tool_iterations`."""


class StoreError(RtflowError):
    """The run store could not be opened, read or written."""


class RunNotFoundError(StoreError):
    """The run store holds no run with the id asked for."""

    exit_code = 2


class MergeError(StoreError):
    """Runs that cannot be merged into one (`rtflow merge`): the message says which and why."""

    exit_code = 2


class StoreMissing(RtflowError):
    """There is no run store file where the viewer was told to look."""


class InvalidAddress(RtflowError):
    """An address asks for something that cannot be: a run id rtflow could not have made, or a run compared with
    itself."""


class SimulatorError(RtflowError):
    """The simulator could not start or was given a configuration it cannot use."""

    exit_code = 2


_KIND_NAMES = {
    "ProviderConnectionError": "connection",
    "ProviderTimeoutError": "timeout",
    "RateLimitError": "rate_limit",
    "AuthenticationError": "authentication",
    "InvalidRequestError": "invalid_request",
    "ResponseFailedError": "response_failed",
    "ServerError": "server_error",
    "ProtocolError": "protocol",
    "ToolError": "tool",
}


# ------------------------------------------------------------------------------------- "did you mean" hints


def loose_key(key: str) -> str:
    """`key` without case, `_` or `-`: the form in which two spellings of one key (`defaultTest`) are equal."""
    return key.lower().replace("_", "").replace("-", "")


def closest_key(key: str, known: Iterable[str]) -> str | None:
    """The known word `key` was most likely meant to be, or None when nothing is close.

    Spellings of one key (`default_test`, `defaultTest`) count as the same word, and among them the one in the
    writer's style wins. Every "did you mean" of rtflow (keys, assertion types, provider kinds) asks here.
    """
    by_form = _one_spelling_per_key(key, known)
    form = loose_key(key)
    if form in by_form:
        return by_form[form]
    matches = difflib.get_close_matches(form, list(by_form), n=1, cutoff=0.6)
    return by_form[matches[0]] if matches else None


def _one_spelling_per_key(key: str, known: Iterable[str]) -> dict[str, str]:
    """The known words by their loose form, one spelling each: the one in the style `key` is written in
    (`snake_case` or `camelCase`), so a list of them names each key once, as the writer would write it."""
    snake_style = "_" in key or key.islower()
    by_form: dict[str, str] = {}
    for candidate in sorted(set(known)):
        form = loose_key(candidate)
        current = by_form.get(form)
        if current is None or (("_" in candidate) == snake_style and ("_" in current) != snake_style):
            by_form[form] = candidate
    return by_form


def did_you_mean(key: str, known: Iterable[str], *, prefix: str = "") -> str:
    """ "did you mean `x`?" for the closest known word, else the list of known words (each key once)."""
    known = sorted(set(known))
    suggestion = closest_key(key, known)
    if suggestion is not None:
        return f"did you mean `{prefix}{suggestion}`?"
    listed = sorted(_one_spelling_per_key(key, known).values())
    return "expected one of: " + ", ".join(f"`{name}`" for name in listed)


_Error = TypeVar("_Error", bound=BaseException)


def first_error_in(group: BaseExceptionGroup[BaseException], kind: type[_Error]) -> _Error | None:
    """The first error of `kind` in a task group's failure (nested groups searched in order), else None.

    A task group wraps what failed in an ExceptionGroup, which no retry, fallback or exit code knows: the
    callers raise the one error inside instead."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            found = first_error_in(error, kind)
            if found is not None:
                return found
        elif isinstance(error, kind):
            return error
    return None

"""What a turn's `idle_timeouts` entries say: when the server's idle timeout fired, the silent stretch of input
audio, and the agent's prompt, each part only as far as the server told it."""

from __future__ import annotations

from rtflow.providers.realtime_outcomes import idle_timeout_detail, idle_timeout_entry
from rtflow.providers.realtime_wire import IdleTimeout

FIRED = IdleTimeout(item_id="item_1", audio_start_ms=1200, audio_end_ms=1600)


def test_an_entry_says_when_how_long_and_what_was_prompted() -> None:
    """The full entry: the time into the turn, the silent stretch, the prompt quoted."""
    entry = idle_timeout_entry(FIRED, "Are you still there?", 2345.6)
    assert entry == (
        "at 2346 ms into the turn: the caller was silent from 1200 to 1600 ms of input audio;"
        " the agent prompted: 'Are you still there?'"
    )


def test_an_entry_and_its_mark_tell_the_same_account() -> None:
    """The event mark's detail is the outcome name and the same account as the entry."""
    entry = idle_timeout_entry(FIRED, "Hello?", 10.0)
    assert idle_timeout_detail(FIRED, "Hello?") == "idle_timeout: " + entry.removeprefix("at 10 ms into the turn: ")


def test_an_entry_without_what_the_server_did_not_say() -> None:
    """No audio range and a prompt still unread when the turn ended: the entry is just when it fired."""
    assert idle_timeout_entry(IdleTimeout(None, None, None), None, 99.4) == "at 99 ms into the turn"
    assert idle_timeout_detail(IdleTimeout(None, None, None), None) == "idle_timeout"

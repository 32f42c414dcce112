"""The report embeds each audio file once, links what it cannot embed, and its footer says which is which."""

from __future__ import annotations

import base64
from pathlib import Path

from audio_support import silent_wav

from rtflow.messages import AudioOutput, Message, TurnOutput
from rtflow.results.records import RunRecord, TurnRecord
from rtflow.results.report import render_html
from rtflow.results.report.media import AudioEmbedder

T0 = 1_767_225_600.0


def _voice_turn(conversation: str, answer: Path, clip: Path) -> TurnRecord:
    return TurnRecord(
        run_id="run-1",
        node_id=f"{conversation}/1",
        conversation_id=conversation,
        thread_id="voice",
        turn_index=0,
        provider=conversation.split("/")[0],
        provider_id="openai:realtime:gpt-realtime",
        prompt="p",
        status="passed",
        vars={"question": "Spoken", "audio": str(clip)},
        request_messages=[Message.of("user", "Spoken")],
        output=TurnOutput(
            text="heard you",
            audio=AudioOutput(file=str(answer), format="wav", duration_s=0.05, sample_rate=24_000),
        ),
    )


def _run() -> RunRecord:
    return RunRecord(run_id="run-1", started_at=T0, ended_at=T0 + 1, status="finished", total_turns=2)


def test_a_clip_sent_on_two_columns_is_embedded_once(tmp_path: Path) -> None:
    """The clip both conversations sent is one data URL; its second player names the first; the footer
    says the file is self-contained, with what it embeds."""
    clip = silent_wav(tmp_path / "clips" / "q.wav")
    turns = [
        _voice_turn("realtime/voice", silent_wav(tmp_path / "run" / "a.wav", seconds=0.06), clip),
        _voice_turn("mini/voice", silent_wav(tmp_path / "run" / "b.wav", seconds=0.07), clip),
    ]
    html = render_html(_run(), turns, tmp_path / "report")
    clip_data = base64.b64encode(clip.read_bytes()).decode("ascii")
    assert html.count(clip_data) == 1
    assert html.count('data-same-as="audio-') >= 1
    assert "This file is self-contained and works offline (3 audio files embedded" in html


def test_audio_that_cannot_be_embedded_is_linked_and_named_in_the_footer(tmp_path: Path) -> None:
    """A recorded answer gone from disk keeps a relative link, and the footer names it and says why, instead
    of claiming the report is self-contained."""
    clip = silent_wav(tmp_path / "clips" / "q.wav")
    turns = [_voice_turn("realtime/voice", tmp_path / "run" / "gone.wav", clip)]
    html = render_html(_run(), turns, tmp_path / "report")
    assert 'src="../run/gone.wav"' in html
    assert "1 audio file could not be embedded" in html
    assert "<code>../run/gone.wav</code> (not found)" in html
    assert "self-contained" not in html


def test_a_file_over_the_limit_is_linked_not_embedded(tmp_path: Path) -> None:
    """The per-file limit keeps a long recording out of the report; it is linked and reported."""
    embedder = AudioEmbedder(tmp_path / "report", file_limit=1_000)
    source = embedder.source(str(silent_wav(tmp_path / "long.wav", seconds=1.0)), tmp_path)
    assert source.src == "../long.wav" and source.element_id is None
    assert [entry.path for entry in embedder.not_embedded] == ["../long.wav"]
    assert "over the" in embedder.not_embedded[0].reason

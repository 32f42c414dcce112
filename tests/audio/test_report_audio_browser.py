"""The HTML report of a voice run plays every turn's input and output audio in a real headless Chromium."""

from __future__ import annotations

from pathlib import Path

from browser_support import launched_chromium, needs_chromium

import rtflow
from rtflow.results.report import write_export

ROOT = Path(__file__).resolve().parents[2]

pytestmark = needs_chromium

# Loads one <audio> fully and reports what the browser made of it (duration, or the media error code).
_LOAD_AUDIO = """
element => new Promise(resolve => {
  element.preload = "auto";
  element.addEventListener("loadedmetadata", () => resolve({duration: element.duration, error: null}));
  element.addEventListener("error", () => resolve({duration: 0, error: element.error && element.error.code}));
  element.load();
})
"""


def test_report_audio_elements_load_in_chromium(tmp_path: Path) -> None:
    """Each of the six turns has an input and an output player; all twelve load with a duration over zero."""
    result = rtflow.run(ROOT / "flows" / "audio.yaml", sim=True, db=tmp_path / "store" / "rtflow.db")
    assert result.passed
    report = write_export(result.run, result.turns, tmp_path / "report" / "index.html")
    expected = {turn.output.audio.duration_s for turn in result.turns if turn.output and turn.output.audio}
    console_errors: list[str] = []
    with launched_chromium() as browser:
        page = browser.new_page()
        page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        inputs = page.locator(".bubble.user audio")
        outputs = page.locator(".bubble.assistant audio")
        assert (inputs.count(), outputs.count()) == (6, 6)
        loaded = [inputs.nth(i).evaluate(_LOAD_AUDIO) for i in range(6)]
        loaded += [outputs.nth(i).evaluate(_LOAD_AUDIO) for i in range(6)]
        sources = outputs.evaluate_all("elements => elements.map(e => e.getAttribute('src'))")
        heard = page.locator(".heard").all_inner_texts()
    assert [entry["error"] for entry in loaded] == [None] * 12
    assert all(entry["duration"] > 0 for entry in loaded)
    played = sorted(round(entry["duration"], 2) for entry in loaded[6:])
    assert set(played) == {round(value, 2) for value in expected}
    assert all(source.startswith("data:audio/wav;base64,") for source in sources)  # G.711 plays from its WAV copy
    assert len(heard) == 6 and all(text.startswith("heard: audio of ") for text in heard)
    assert console_errors == []

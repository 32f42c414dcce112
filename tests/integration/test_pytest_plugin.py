"""The pytest plugin: flow files collected as tests, one per thread, run by pytest in a subprocess on the simulator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from xml.etree import ElementTree

import pytest
from junitparser import Failure, JUnitXml

import rtflow
from rtflow.results.store import RunStore

ROOT = Path(__file__).resolve().parents[2]

PROMPT = """
def build(context):
    question = context["vars"]["question"]
    if question == "explode":
        raise RuntimeError("the prompt function refuses to explode")
    return question
"""

HEADER = """
description: Threads that pass, one whose assertion cannot hold, one whose prompt fails
providers:
  - id: openai:realtime:gpt-realtime
    label: realtime
    config: {modalities: [text]}
prompts:
  - file://prompt.py:build
execution: {retries: 0}
threads:
"""

THREADS = {
    "greeting": """
  greeting:
    - question: Hello there
      assert: [{type: icontains, value: hello}]
""",
    "farewell": """
  farewell:
    - question: Goodbye now
      assert: [{type: icontains, value: goodbye}]
""",
    "impossible": """
  impossible:
    - question: What colour is the sky?
    - question: And the sea?
      assert: [{type: contains, value: zebra}]
""",
    "broken": """
  broken:
    - question: explode
""",
}
"""The simulator echoes what it is told, so `zebra` is never said; `explode` makes the prompt function raise."""


def flow_text(*threads: str) -> str:
    return HEADER + "".join(THREADS[name] for name in threads or THREADS)


def write_flow(folder: Path, name: str = "checks.yaml", text: str = "") -> Path:
    flows = folder / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "prompt.py").write_text(PROMPT)
    path = flows / name
    path.write_text(text or flow_text())
    return path


def run_pytest(folder: Path, *args: str, cache: bool = False) -> subprocess.CompletedProcess[str]:
    """`python -m pytest ARGS` in `folder`, with no API key and the run store in `folder/runs.db`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("OPENAI_API_KEY", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    }
    env.update(RTFLOW_DB=str(folder / "runs.db"), PYTHONDONTWRITEBYTECODE="1")
    options = [] if cache else ["-p", "no:cacheprovider"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *options, *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def threads_per_run(folder: Path) -> list[set[str]]:
    """The threads each stored run asked, oldest run first."""
    with RunStore(folder / "runs.db", read_only=True) as store:
        runs = list(reversed(store.list_runs(None)))
        return [{turn.thread_id for turn in store.turns(run.run_id)} for run in runs]


def test_the_plugin_is_registered_as_a_pytest_entry_point() -> None:
    """`pip install rtflow` is enough: pytest finds the plugin under `pytest11`, named `rtflow`."""
    plugins = {entry.name: entry.value for entry in entry_points(group="pytest11")}
    assert plugins.get("rtflow") == "rtflow.pytest_plugin"


def test_importing_the_plugin_loads_none_of_rtflows_heavy_parts() -> None:
    """Every pytest session of anyone with rtflow installed imports the plugin: it costs only the package root."""
    probe = "import json, sys\nimport rtflow.pytest_plugin\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = set(json.loads(done.stdout))
    assert {name for name in loaded if name.startswith("rtflow")} == {
        "rtflow",
        "rtflow._version",
        "rtflow.lazy_names",
        "rtflow.pytest_plugin",
    }
    assert not [name for name in ("pydantic", "yaml", "anyio", "structlog", "jinja2", "httpx") if name in loaded]


def test_a_session_without_flows_neither_collects_other_yaml_nor_loads_rtflow(tmp_path: Path) -> None:
    """YAML not directly in a `flows/` folder (an invalid flow kept for tests, a config file) is not collected,
    and a session with no flow loads no module it would not load with the plugin turned off."""
    for kept_aside in ("tests/dsl/invalid/bad.yaml", "flows/drafts/bad.yaml"):
        (tmp_path / kept_aside).parent.mkdir(parents=True)
        (tmp_path / kept_aside).write_text("providers: 3\ntests: [\n")
    (tmp_path / "settings.yml").write_text("a: 1\n")
    (tmp_path / "tests" / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    (tmp_path / "conftest.py").write_text(
        "import json, sys\n\n\ndef pytest_sessionfinish(session):\n"
        "    (session.config.rootpath / 'modules.json').write_text(json.dumps(sorted(sys.modules)))\n"
    )
    loaded: list[set[str]] = []
    for plugin_off in ([], ["-p", "no:rtflow"]):
        done = run_pytest(tmp_path, "-q", *plugin_off)
        assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout
        loaded.append(set(json.loads((tmp_path / "modules.json").read_text())))
    plugged, unplugged = loaded
    assert "rtflow.pytest_plugin" in plugged and "rtflow.pytest_plugin" not in unplugged
    added = {name for name in plugged - unplugged if name.partition(".")[0] not in sys.stdlib_module_names}
    assert added <= {"rtflow", "rtflow._version", "rtflow.lazy_names", "rtflow.pytest_plugin"}


def test_each_thread_is_a_test_and_a_failure_shows_the_transcript_and_the_reasons(tmp_path: Path) -> None:
    """Threads are items of one run; a failed assertion and an errored turn fail their items, saying why."""
    write_flow(tmp_path)
    done = run_pytest(tmp_path, "--rtflow-sim", "--junitxml", "junit.xml")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 failed, 2 passed" in done.stdout
    assert "Traceback" not in done.stdout
    assert 'user: What colour is the sky?\n  assistant: You said: "What colour is the sky?"' in done.stdout
    assert '✗ contains: output does not contain "zebra"' in done.stdout
    assert "error (prompt): prompt function prompt.py:build raised RuntimeError" in done.stdout
    assert threads_per_run(tmp_path) == [{"greeting", "farewell", "impossible", "broken"}]

    cases = {case.name: case for suite in JUnitXml.fromfile(str(tmp_path / "junit.xml")) for case in suite}
    assert set(cases) == {"greeting", "farewell", "impossible", "broken"}
    assert {case.classname for case in cases.values()} == {"flows.checks.yaml"}
    assert cases["greeting"].is_passed and cases["farewell"].is_passed
    (impossible,) = cases["impossible"].result
    assert isinstance(impossible, Failure)
    assert 'output does not contain "zebra"' in (impossible.text or "")
    assert "thread 'impossible'" in (impossible.message or "")
    (broken,) = cases["broken"].result
    assert "the prompt function refuses to explode" in (broken.text or "")
    with RunStore(tmp_path / "runs.db", read_only=True) as store:
        run_id = store.latest_run_id()
    properties = ElementTree.parse(tmp_path / "junit.xml").iter("property")
    assert [(each.get("name"), each.get("value")) for each in properties] == [("rtflow_run", run_id)] * 4


def test_k_runs_only_the_thread_it_picks(tmp_path: Path) -> None:
    """`-k greeting` runs one item, and the run asks that thread only."""
    write_flow(tmp_path)
    done = run_pytest(tmp_path, "--rtflow-sim", "-k", "greeting")
    assert done.returncode == 0, done.stdout
    assert "1 passed, 3 deselected" in done.stdout
    assert threads_per_run(tmp_path) == [{"greeting"}]


def test_any_selection_of_threads_is_one_run_of_exactly_those(tmp_path: Path) -> None:
    """`-k "greeting or impossible"` keeps two threads no single pattern names: one run asks both, and the
    deselected ones not at all."""
    write_flow(tmp_path)
    done = run_pytest(tmp_path, "--rtflow-sim", "-k", "greeting or impossible")
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 passed, 2 deselected" in done.stdout
    assert threads_per_run(tmp_path) == [{"greeting", "impossible"}]


@pytest.mark.slow
def test_lf_reruns_only_the_failed_threads(tmp_path: Path) -> None:
    """After a run with failures, `--lf` runs the failed threads and asks no other."""
    write_flow(tmp_path)
    first = run_pytest(tmp_path, "--rtflow-sim", cache=True)
    assert "2 failed, 2 passed" in first.stdout, first.stdout
    again = run_pytest(tmp_path, "--rtflow-sim", "--lf", "-v", cache=True)
    assert "rerun previous 2 failures" in again.stdout and "2 failed in" in again.stdout, again.stdout
    assert "::greeting" not in again.stdout and "::farewell" not in again.stdout
    first_run, rerun = threads_per_run(tmp_path)
    assert len(first_run) == 4
    assert rerun == {"impossible", "broken"}


def test_x_stops_after_the_first_failure_and_runs_no_later_file(tmp_path: Path) -> None:
    """With `-x` the session ends at the first failing thread; the next flow file is never run."""
    write_flow(tmp_path, "a_fails.yaml", flow_text("impossible", "greeting"))
    write_flow(tmp_path, "b_passes.yaml", flow_text("greeting"))
    done = run_pytest(tmp_path, "--rtflow-sim", "-x")
    assert done.returncode == 1, done.stdout
    assert "stopping after 1 failures" in done.stdout
    assert "1 failed in" in done.stdout
    assert len(threads_per_run(tmp_path)) == 1


def test_repeats_belong_to_their_threads_item(tmp_path: Path) -> None:
    """`--rtflow-repeat 2` runs each thread twice in its one item, and a failure names each failing copy."""
    write_flow(tmp_path)
    done = run_pytest(tmp_path, "--rtflow-sim", "--rtflow-repeat", "2", "-k", "impossible or greeting")
    assert "1 failed, 1 passed, 2 deselected" in done.stdout, done.stdout
    assert "thread 'impossible': 2 of 2 conversation(s) did not pass" in done.stdout
    assert "== realtime/impossible\n" in done.stdout and "== realtime/impossible#2\n" in done.stdout


def test_without_the_simulator_a_missing_key_is_the_items_failure(tmp_path: Path) -> None:
    """Real endpoints and no API key: each item fails with the library's message, not a traceback."""
    write_flow(tmp_path)
    done = run_pytest(tmp_path, "-k", "greeting")
    assert done.returncode == 1, done.stdout
    assert "1 failed, 3 deselected" in done.stdout
    assert "no API key for provider 'realtime'" in done.stdout
    assert "--rtflow-sim" in done.stdout
    assert "Traceback" not in done.stdout
    assert threads_per_run(tmp_path) == []


def test_a_flow_named_on_the_command_line_is_collected_and_its_load_error_shown(tmp_path: Path) -> None:
    """A YAML file given by name is a flow whatever the globs say; one that does not load is a collection
    error with the loader's message."""
    (tmp_path / "suite.yaml").write_text("providers:\n  - id: openai:realtime:gpt-realtime\nthreads: 3\n")
    done = run_pytest(tmp_path, "--rtflow-sim", "suite.yaml")
    assert done.returncode == 2, done.stdout
    assert "ERROR collecting suite.yaml" in done.stdout
    assert "threads" in done.stdout.split("ERROR collecting suite.yaml")[1]
    assert "Traceback" not in done.stdout


def test_the_ini_option_and_the_command_line_choose_the_flow_files(tmp_path: Path) -> None:
    """`rtflow_flows` in the ini file replaces the default globs; `--rtflow-glob` replaces both."""
    write_flow(tmp_path)
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "prompt.py").write_text(PROMPT)
    (tmp_path / "suites" / "one.flow.yaml").write_text(flow_text())
    (tmp_path / "pytest.ini").write_text("[pytest]\nrtflow_flows = suites/*.flow.yaml\n")
    by_ini = run_pytest(tmp_path, "--collect-only", "-q")
    assert "suites/one.flow.yaml::greeting" in by_ini.stdout
    assert "flows/checks.yaml" not in by_ini.stdout
    by_option = run_pytest(tmp_path, "--collect-only", "-q", "--rtflow-glob", "flows/*.yaml")
    assert "flows/checks.yaml::greeting" in by_option.stdout
    assert "suites/" not in by_option.stdout


def test_the_repositorys_flows_are_collected_thread_by_thread() -> None:
    """`pytest flows/ --rtflow-sim` in this repository collects every thread of every example flow."""
    done = run_pytest(ROOT, "flows/", "--rtflow-sim", "--collect-only", "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    expected = [
        f"flows/{path.name}::{thread.id}"
        for path in sorted((ROOT / "flows").glob("*.yaml"))
        for thread in rtflow.load(path).thread_specs()
    ]
    assert len(expected) > 10
    assert collected == expected


@pytest.mark.slow
def test_the_repositorys_flows_pass_under_the_plugin_with_the_simulators_voice_options(tmp_path: Path) -> None:
    """The example flows pass as pytest tests; the barge-in flow needs answers spoken at their real rate."""
    shutil.copytree(ROOT / "flows", tmp_path / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    options = ("--rtflow-sim", "--rtflow-sim-realtime-audio", "--rtflow-sim-cancel-delay-ms", "50")
    done = run_pytest(tmp_path, "flows/", *options)
    expected = sum(len(rtflow.load(path).thread_specs()) for path in (ROOT / "flows").glob("*.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{expected} passed" in done.stdout

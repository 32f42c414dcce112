"""`rtflow run --executor ray` on a real local Ray cluster (a head and a second node, one CPU each, started with
`ray start`), against `rtflow sim serve` in its own process, whose log counts every request the workers made.

Chat Completions providers are used so that each turn is exactly one logged request, named by its question.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rtflow.results.store import RunStore

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray", reason='the Ray executor needs the extra: pip install "rtflow[ray]"')

RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ray_env() -> dict[str, str]:
    # A cluster on loopback for the tests alone: no token to hand from the head to the second node and clients.
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A head and a second node on this machine, one CPU each; stopped (with every worker) at the end."""
    port = _free_port()
    head = [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "1"]
    subprocess.run([*head, "--include-dashboard", "false", "--disable-usage-stats"], env=_ray_env(), check=True)
    try:
        second = [RAY, "start", "--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1", "--num-cpus", "1"]
        subprocess.run(second, env=_ray_env(), check=True, capture_output=True)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], env=_ray_env(), capture_output=True)


class Sim:
    def __init__(self, folder: Path, *options: str) -> None:
        self.port = _free_port()
        self.log = folder / "sim.jsonl"
        command = [sys.executable, "-m", "rtflow", "sim", "serve", "--port", str(self.port), "--log", str(self.log)]
        self.process = subprocess.Popen([*command, *options], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        for line in self.process.stdout:  # ready once it prints its URLs
            if line.startswith("OPENAI_BASE_URL="):
                break

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        """Stop the server (once); its log is complete after this."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        self.process.communicate(timeout=20)

    def requests(self) -> list[dict[str, Any]]:
        """Every request logged so far (a log line is written when its request arrives)."""
        lines = self.log.read_text(encoding="utf-8").splitlines()
        events = [json.loads(line) for line in lines if '"chat.completions.request"' in line]
        return [event for event in events if event["type"] == "chat.completions.request"]

    def asked(self) -> Counter[str]:
        """How many times each question was asked: the last user message of each request."""
        return Counter(
            next(m["content"] for m in reversed(event["payload"]["messages"]) if m["role"] == "user")
            for event in self.requests()
        )


@pytest.fixture
def sim(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Sim]:
    options = getattr(request, "param", ())
    server = Sim(tmp_path, *options)
    yield server
    server.stop()


def _flow(
    folder: Path,
    url: str,
    threads: int,
    *,
    config: dict[str, Any] | None = None,
    concurrency: int = 64,
    asserts: list[dict[str, Any]] | None = None,
) -> Path:
    tests = [
        {
            "vars": {"q": f"thread {thread} turn {turn}"},
            "metadata": {"conversationId": f"t{thread:04d}"},
            "assert": [{"type": "icontains", "value": f"thread {thread}"}, *(asserts or [])],
        }
        for thread in range(threads)
        for turn in (1, 2, 3)
    ]
    provider = {"id": "openai:chat:gpt-4.1-mini", "config": {"api_base_url": url, **(config or {})}}
    execution = {"concurrency": concurrency}
    document = {"providers": [provider], "prompts": ["{{ q }}"], "execution": execution, "tests": tests}
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _rtflow(folder: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "rtflow", *args]


def _on_ray(cluster: str, workers: int) -> list[str]:
    return ["--executor", "ray", "--ray-address", cluster, "--workers", str(workers)]


def _env() -> dict[str, str]:
    return {**_ray_env(), "OPENAI_API_KEY": "sk-sim-test"}


def _answers(db: Path) -> dict[str, tuple[str, str]]:
    with RunStore(db, read_only=True) as store:
        run = store.get_run("latest")
        return {t.node_id: (t.status, t.output.text if t.output else "") for t in store.turns(run.run_id)}


def _workers(db: Path) -> Counter[str | None]:
    with RunStore(db, read_only=True) as store:
        return Counter(turn.worker for turn in store.turns(store.get_run("latest").run_id))


@pytest.mark.timeout(600)  # two runs of 6,000 turns each on two shared cores: over the suite's 120 s per test
def test_a_ray_run_gives_the_verdicts_and_histories_of_a_local_run(tmp_path: Path, cluster: str, sim: Sim) -> None:
    flow = _flow(tmp_path, sim.url, threads=2000)
    local = subprocess.run(
        [*_rtflow(tmp_path, "run", str(flow)), "--no-progress", "--db", "local.db"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert local.returncode == 0, local.stderr
    on_ray = subprocess.run(
        [*_rtflow(tmp_path, "run", str(flow)), "--no-progress", "--db", "ray.db", *_on_ray(cluster, 4)],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert on_ray.returncode == 0, on_ray.stderr
    # The same verdicts and answers: the simulator's "user messages: N" is each conversation's history.
    assert _answers(tmp_path / "ray.db") == _answers(tmp_path / "local.db")
    assert len(_answers(tmp_path / "ray.db")) == 6000
    sim.stop()  # its log is complete once it has stopped
    asked = sim.asked()
    assert len(asked) == 6000 and set(asked.values()) == {2}  # each turn asked once per run: none retried or twice
    workers = _workers(tmp_path / "ray.db")
    assert set(workers) == {"worker-1", "worker-2", "worker-3", "worker-4"}, workers


def _finished_answers(db: Path, timeout: float = 60) -> set[str]:
    """The node ids of the turns stored as passed, as soon as there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        passed = {node for node, (status, _) in _answers(db).items() if status == "passed"}
        if passed:
            return passed
        time.sleep(0.02)
    raise AssertionError("no turn finished")


def _run_id_once_started(db: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                with RunStore(db, read_only=True) as store:
                    runs = store.list_runs(1)
                    if runs and store.turns(runs[0].run_id):
                        return runs[0].run_id
            except Exception:  # the store is being created
                pass
        time.sleep(0.2)
    raise AssertionError("the run did not start")


@pytest.mark.parametrize("sim", [("--latency-ms", "30")], indirect=True)
def test_a_killed_worker_loses_no_turn_and_reruns_no_finished_one(tmp_path: Path, cluster: str, sim: Sim) -> None:
    flow = _flow(tmp_path, sim.url, threads=300)
    command = [*_rtflow(tmp_path, "run", str(flow)), "--no-progress", "--db", "runs.db"]
    command += ["--executor", "ray", "--ray-address", cluster, "--workers", "3"]
    driver = subprocess.Popen(command, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run_id = _run_id_once_started(tmp_path / "runs.db")
    kill = (
        f"import ray; ray.init(address={cluster!r}, namespace='rtflow');"
        f" ray.kill(ray.get_actor('rtflow-{run_id}-worker-2'))"
    )
    # What is stored before the kill (read first: once the worker is gone, its batch is re-run at once and the
    # re-run's answers are stored too).
    # The first records may all still be `pending` (answered, not yet graded): wait for a finished one.
    stored_at_kill = _finished_answers(tmp_path / "runs.db")
    subprocess.run([sys.executable, "-c", kill], env=_ray_env(), check=True, capture_output=True, timeout=60)
    _, stderr = driver.communicate(timeout=300)
    assert driver.returncode == 0, stderr.decode()
    answers = _answers(tmp_path / "runs.db")
    assert len(answers) == 900 and all(status == "passed" for status, _ in answers.values())  # none lost
    sim.stop()  # its log is complete once it has stopped
    asked = sim.asked()
    assert len(asked) == 900
    # A turn stored before the kill is never asked again; only what the dead worker had in flight, or had
    # answered but not yet handed over (its last 100 ms), is asked a second time.
    twice = {question for question, count in asked.items() if count > 1}
    stored_questions = {f"thread {int(node.split('/')[1][1:])} turn {node.split('/')[2]}" for node in stored_at_kill}
    assert stored_at_kill and not twice & stored_questions, sorted(twice & stored_questions)
    assert b"worker.lost" in stderr  # the kill landed mid-run: the driver re-ran that worker's batch elsewhere
    assert _workers(tmp_path / "runs.db")["worker-2"] < 900


def _request_times_of_a_run_on_four_workers(tmp_path: Path, cluster: str, sim: Sim, flow: Path) -> list[float]:
    """Run `flow` on four workers (it must pass), then stop the simulator: when each request reached it, sorted."""
    done = subprocess.run(
        [*_rtflow(tmp_path, "run", str(flow)), "--no-progress", "--db", "runs.db", *_on_ray(cluster, 4)],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sim.stop()
    return sorted(event["ts"] for event in sim.requests())


def _busiest(times: list[float], window_s: float) -> int:
    """The most requests that arrived within `window_s` of one another."""
    return max(sum(1 for t in times[i:] if t - start < window_s) for i, start in enumerate(times))


def test_rpm_holds_for_the_cluster_as_a_whole(tmp_path: Path, cluster: str, sim: Sim) -> None:
    """`rpm: 240` is a bucket of 240 requests that refills at 4 a second: across all four workers, no second
    may see more than that; four workers that each took the whole limit would send all 300 requests at once."""
    flow = _flow(tmp_path, sim.url, threads=100, config={"rpm": 240})
    times = _request_times_of_a_run_on_four_workers(tmp_path, cluster, sim, flow)
    shown = subprocess.run(
        _rtflow(tmp_path, "show", "latest", "--db", "runs.db"), cwd=tmp_path, capture_output=True, text=True
    )
    assert " on worker-" in shown.stdout  # each conversation names the worker that ran it
    assert len(times) == 300
    assert _busiest(times, 1.0) <= 240 + 4 + 4  # the bucket, a second's refill, and one request per worker at the edge


@pytest.mark.parametrize("sim", [("--latency-ms", "200")], indirect=True)
def test_a_providers_max_concurrency_holds_across_the_workers(tmp_path: Path, cluster: str, sim: Sim) -> None:
    """`max_concurrency: 2` with four workers asked for: each busy worker runs at least one call, so only two
    start. Each answer takes 200 ms, so three requests arriving within less than that would be three in flight."""
    flow = _flow(tmp_path, sim.url, threads=8, config={"max_concurrency": 2})
    times = _request_times_of_a_run_on_four_workers(tmp_path, cluster, sim, flow)
    assert len(times) == 24
    assert _busiest(times, 0.18) <= 2
    assert len(_workers(tmp_path / "runs.db")) == 2


@pytest.mark.parametrize(
    "sim", [("--latency-ms", "100", "--fault", "rate_limited:3@chatx1;match=^thread 7 turn 1$")], indirect=True
)
def test_a_retry_after_pauses_the_key_on_every_worker(tmp_path: Path, cluster: str, sim: Sim) -> None:
    """One worker gets a 429 with `Retry-After: 3` while four workers keep about 80 requests a second going: from
    shortly after it (time for the word to reach the others) until the pause ends, no worker sends anything."""
    flow = _flow(tmp_path, sim.url, threads=200, concurrency=8)
    done = subprocess.run(
        [*_rtflow(tmp_path, "run", str(flow)), "--no-progress", "--db", "runs.db", *_on_ray(cluster, 4)],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sim.stop()
    requests = sim.requests()
    asked_at = [(event["ts"], event["payload"]["messages"][-1]["content"]) for event in requests]
    refused_at = min(ts for ts, question in asked_at if question == "thread 7 turn 1")
    before = [ts for ts, _ in asked_at if refused_at - 1.0 <= ts < refused_at]
    during = sorted(ts - refused_at for ts, _ in asked_at if refused_at + 0.3 < ts < refused_at + 2.7)
    assert len(before) >= 20, len(before)  # the workers were busy when it came
    assert during == [], during[:5]
    retried = [ts - refused_at for ts, question in asked_at if question == "thread 7 turn 1"]
    assert len(retried) == 2 and retried[1] >= 3.0  # asked again once, after the pause
    assert len(_answers(tmp_path / "runs.db")) == 600 and len(set(_workers(tmp_path / "runs.db"))) == 4
    # The worker's own log line about the refused attempt reaches the driver's log, under the worker's name.
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    (failed,) = [event for event in events if event["event"] == "attempt.failed"]
    assert failed["worker"].startswith("worker-") and failed["kind"] == "rate_limit" and failed["turn"] == 1


def test_run_level_percentiles_are_taken_over_every_workers_turns(tmp_path: Path, cluster: str, sim: Sim) -> None:
    """A `latency` assertion with `p` is one verdict over the run's 120 turns, not one per worker's batch; the
    summary and the report say which worker ran what."""
    p50 = {"type": "latency", "value": {"metric": "total", "p": 50, "max_ms": 60000}}
    flow = _flow(tmp_path, sim.url, threads=40, asserts=[p50])
    done = subprocess.run(
        [*_rtflow(tmp_path, "run", str(flow)), "--no-progress", "--db", "runs.db", "-o", "report.html",
         *_on_ray(cluster, 4)],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with RunStore(tmp_path / "runs.db", read_only=True) as store:
        turns = store.turns(store.get_run("latest").run_id)
    reasons = {turn.assertions[-1].reason for turn in turns}
    assert len(turns) == 120 and all(turn.status == "passed" for turn in turns)
    assert len(reasons) == 1 and "total p50 over 120 turns" in reasons.pop()
    workers = Counter(turn.worker for turn in turns)
    assert len(workers) > 1
    # The summary counts each worker's turns, and the report names the worker of each conversation.
    ran = ", ".join(f"{worker} {count}" for worker, count in sorted(workers.items()))
    assert f"turns per Ray worker: {ran}" in done.stdout
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    first = next(turn for turn in turns if turn.conversation_id.endswith("t0000"))
    assert f"thread t0000 · {first.conversation_id.rsplit('/', 1)[0]} · on {first.worker}" in report


@pytest.mark.parametrize("sim", [("--latency-ms", "40")], indirect=True)
def test_ctrl_c_keeps_every_finished_turn_and_resume_completes(tmp_path: Path, cluster: str, sim: Sim) -> None:
    flow = _flow(tmp_path, sim.url, threads=300)
    command = [*_rtflow(tmp_path, "run", str(flow)), "--no-progress", "--db", "runs.db"]
    ray_options = ["--executor", "ray", "--ray-address", cluster, "--workers", "2"]
    driver = subprocess.Popen([*command, *ray_options], cwd=tmp_path, env=_env(), stderr=subprocess.PIPE)
    run_id = _run_id_once_started(tmp_path / "runs.db")
    time.sleep(1.0)
    driver.send_signal(signal.SIGINT)
    _, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130, stderr.decode()
    kept = _answers(tmp_path / "runs.db")
    assert 0 < len(kept) < 900
    asked_before = sim.asked()
    resumed = subprocess.run(
        _rtflow(tmp_path, "run", "--resume", run_id, "--no-progress", "--db", "runs.db") + ray_options,
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    final = _answers(tmp_path / "runs.db")
    assert len(final) == 900 and all(status == "passed" for status, _ in final.values())
    assert {node: kept[node] for node in kept if kept[node][0] == "passed"}.items() <= final.items()
    again = sim.asked() - asked_before
    finished_questions = {f"thread {int(node.split('/')[1][1:])} turn {node.split('/')[2]}" for node in kept}
    assert not finished_questions & {q for q in again if again[q]}  # nothing finished was asked again


def test_without_the_extra_the_executor_exits_2_with_the_install_line(tmp_path: Path) -> None:
    flow = _flow(tmp_path, "http://127.0.0.1:9/v1", threads=1)
    code = (
        "import sys; sys.modules['ray'] = None\n"  # as if the extra were not installed
        "from rtflow.cli.__main__ import run\n"
        f"sys.argv = ['rtflow', 'run', {str(flow)!r}, '--sim', '--executor', 'ray', '--no-progress']\n"
        "run()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert 'pip install "rtflow[ray]"' in done.stderr and "Traceback" not in done.stderr

"""The viewer's answers over HTTP, in process: unknown runs, a missing store and unusable addresses each get a
clear page with the right status (never a traceback), and only loopback host names are answered."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from rtflow.viewer import create_app
from rtflow.viewer.host_check import allowed_hosts_for
from tests.viewer.support import TwoRuns, two_finished_runs

UNKNOWN = "20990101-000000-abcdef"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> TwoRuns:
    return two_finished_runs(tmp_path_factory.mktemp("viewer-app"))


@pytest.fixture
def client(runs: TwoRuns) -> TestClient:
    return TestClient(create_app(runs.db))


def test_an_unknown_run_is_a_404_page_naming_it(client: TestClient, runs: TwoRuns) -> None:
    """Its page, its report, its status and a comparison with it each answer 404 and say which run is missing."""
    for address in (f"/runs/{UNKNOWN}", f"/runs/{UNKNOWN}/report", f"/compare/{UNKNOWN}/{runs.current.run.run_id}"):
        response = client.get(address)
        assert response.status_code == 404, address
        assert "No such run" in response.text and f"no run &#39;{UNKNOWN}&#39;" in response.text
        assert "Traceback" not in response.text
    status = client.get(f"/api/runs/{UNKNOWN}/status")
    assert status.status_code == 404 and UNKNOWN in status.json()["error"]


def test_a_missing_store_is_explained_and_not_created(tmp_path: Path) -> None:
    """The runs list says there is no store yet and how one is made; a run's page is a 404 saying the same."""
    missing = tmp_path / "nowhere" / "rtflow.db"
    client = TestClient(create_app(missing))
    runs_list = client.get("/")
    assert runs_list.status_code == 200
    assert f"there is no run store at {missing} yet" in runs_list.text
    run_page = client.get(f"/runs/{UNKNOWN}")
    assert run_page.status_code == 404 and "No run store" in run_page.text
    assert client.get(f"/api/runs/{UNKNOWN}/status").status_code == 404
    assert not missing.parent.exists()


def test_addresses_that_cannot_name_a_run_are_refused_and_escaped(client: TestClient, runs: TwoRuns) -> None:
    """An id with characters no run id has is a 400 whose page shows it as text; a path never leaves the routes."""
    response = client.get("/runs/%3Cscript%3Ealert(1)%3C")
    assert response.status_code == 400
    assert "<script>alert" not in response.text and "&lt;script&gt;alert(1)" in response.text
    assert client.get("/runs/..%2F..%2Fetc%2Fpasswd").status_code in (400, 404)
    assert client.get("/runs/../../etc/passwd").status_code == 404
    current = runs.current.run.run_id
    itself = client.get(f"/compare/{current}/{current}")
    assert itself.status_code == 400 and "cannot be compared with itself" in itself.text
    assert client.get("/?limit=all").status_code == 400


def test_the_status_counts_the_stored_turns(client: TestClient, runs: TwoRuns) -> None:
    """What the live page polls: the run's status, whether it ended, and its stored and planned turns."""
    status = client.get(f"/api/runs/{runs.baseline.run.run_id}/status")
    assert status.status_code == 200 and status.headers["cache-control"] == "no-store"
    assert status.json() == {
        "run_id": runs.baseline.run.run_id,
        "status": "finished",
        "ended": True,
        "turns": 3,
        "planned_turns": 3,
    }


def test_latest_and_the_compare_form_lead_to_the_runs_own_addresses(client: TestClient, runs: TwoRuns) -> None:
    """`latest` redirects to the newest run's page; the runs list's form redirects to the compare page."""
    baseline, current = runs.baseline.run.run_id, runs.current.run.run_id
    latest = client.get("/runs/latest", follow_redirects=False)
    assert latest.status_code == 303 and latest.headers["location"] == f"/runs/{current}"
    form = client.get("/compare", params={"base": baseline, "run": current}, follow_redirects=False)
    assert form.status_code == 303 and form.headers["location"] == f"/compare/{baseline}/{current}"
    assert client.get("/compare", params={"run": current}).status_code == 400


def test_only_the_loopback_names_reach_a_viewer_bound_to_loopback(runs: TwoRuns) -> None:
    """A request naming another host (a rebound DNS name) is refused before it reads the store."""
    app = create_app(runs.db, allowed_hosts=allowed_hosts_for("127.0.0.1"))
    for name in ("127.0.0.1:8700", "localhost:8700", "[::1]:8700"):
        assert TestClient(app).get("/", headers={"host": name}).status_code == 200, name
    refused = TestClient(app).get("/", headers={"host": "attacker.example:8700"})
    assert refused.status_code == 400 and "rtflow runs" not in refused.text

"""The viewer's web app: the runs list, each run's report kept current while the run goes on, two runs compared.

    /                                 the runs list, newest first, with a form to compare two runs
    /runs/RUN                         RUN's report, shown again as the run stores more turns, until it ends
    /runs/RUN/report                  the report itself, as `rtflow export RUN -o report.html` writes it
    /compare/BASE/RUN                 RUN's report opening with its compare view against BASE, changed verdicts first
    /compare/BASE/RUN/report          that report itself
    /api/runs/RUN/status              {"run_id", "status", "ended", "turns", "planned_turns"}: what the pages poll

RUN and BASE are run ids or `latest`. Every report is rendered on request from what the store holds then, so a
run in progress shows the turns it has stored so far. Handlers are plain functions (Starlette runs them in
its thread pool): reading the store and rendering are blocking work. An rtflow error becomes a page (or, under
`/api`, JSON) that says what is wrong with the status it deserves; no traceback reaches a browser.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from rtflow.errors import InvalidAddress, RtflowError, RunNotFoundError, StoreError, StoreMissing
from rtflow.viewer import pages, reading
from rtflow.viewer.host_check import HostCheck

__all__ = ["DEFAULT_LIMIT", "create_app"]

DEFAULT_LIMIT = 100
"""Runs the list shows unless the address asks for another number (`/?limit=N`, up to `_MOST_RUNS`)."""
_MOST_RUNS = 10_000

_COMMON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _page_policy(nonce: str) -> str:
    """The viewer's own pages: their one script, fetches and frames from the viewer only, framed by nothing."""
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; connect-src 'self'; "
        "frame-src 'self'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


# The report brings its own policy (in a meta element); this only lets the live page frame it.
_REPORT_POLICY = "frame-ancestors 'self'"


def _html(content: str, *, status_code: int = 200, nonce: str | None = None) -> HTMLResponse:
    policy = _page_policy(nonce or secrets.token_urlsafe(16))
    return HTMLResponse(content, status_code, headers={**_COMMON_HEADERS, "Content-Security-Policy": policy})


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=_COMMON_HEADERS)


class _Viewer:
    """The handlers, over one run store file."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def runs(self, request: Request) -> Response:
        limit_text = request.query_params.get("limit", str(DEFAULT_LIMIT))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= _MOST_RUNS:
            raise InvalidAddress(f"limit must be a whole number from 1 to {_MOST_RUNS}")
        try:
            rows, missing = reading.run_rows(self.db_path, int(limit_text)), None
        except StoreMissing as exc:
            rows, missing = [], str(exc)
        return _html(pages.runs_page(self.db_path, rows, missing))

    def run_page(self, request: Request) -> Response:
        run_id = reading.check_run_id(request.path_params["run_id"])
        if run_id == reading.LATEST:
            (resolved,) = reading.resolve(self.db_path, run_id)
            return _redirect(pages.run_url(resolved))
        nonce = secrets.token_urlsafe(16)
        status = reading.run_status(self.db_path, run_id)
        return _html(pages.live_page(status, pages.report_url(run_id), nonce), nonce=nonce)

    def run_report(self, request: Request) -> Response:
        html = reading.run_report(self.db_path, request.path_params["run_id"])
        return HTMLResponse(html, headers={**_COMMON_HEADERS, "Content-Security-Policy": _REPORT_POLICY})

    def run_status(self, request: Request) -> Response:
        status = reading.run_status(self.db_path, request.path_params["run_id"])
        return JSONResponse(status.as_json(), headers=_COMMON_HEADERS)

    def compare_form(self, request: Request) -> Response:
        baseline_id, run_id = request.query_params.get("base", ""), request.query_params.get("run", "")
        if not baseline_id or not run_id:
            raise InvalidAddress("pick a run and a baseline run to compare it with")
        return _redirect(pages.compare_url(reading.check_run_id(baseline_id), reading.check_run_id(run_id)))

    def compare_page(self, request: Request) -> Response:
        baseline_id = reading.check_run_id(request.path_params["baseline_id"])
        run_id = reading.check_run_id(request.path_params["run_id"])
        if reading.LATEST in (baseline_id, run_id):
            return _redirect(pages.compare_url(*reading.resolve(self.db_path, baseline_id, run_id)))
        nonce = secrets.token_urlsafe(16)
        status = reading.compare_status(self.db_path, baseline_id, run_id)
        report = f"{pages.compare_url(baseline_id, run_id)}/report"
        return _html(pages.live_page(status, report, nonce, baseline_id=baseline_id), nonce=nonce)

    def compare_report(self, request: Request) -> Response:
        params = request.path_params
        html = reading.compare_report(self.db_path, params["baseline_id"], params["run_id"])
        return HTMLResponse(html, headers={**_COMMON_HEADERS, "Content-Security-Policy": _REPORT_POLICY})


_ERROR_PAGES: dict[type[RtflowError], tuple[int, str]] = {
    InvalidAddress: (400, "Not a valid address"),
    RunNotFoundError: (404, "No such run"),
    StoreMissing: (404, "No run store"),
    StoreError: (500, "The run store cannot be read"),
    RtflowError: (500, "The report cannot be shown"),
}
"""The HTTP status and the page title each kind of rtflow error deserves; an error takes its nearest kind's."""


def _error_status(exc: RtflowError) -> tuple[int, str]:
    """The HTTP status and the page title of the nearest kind of `exc` in `_ERROR_PAGES`."""
    return next(_ERROR_PAGES[kind] for kind in type(exc).__mro__ if kind in _ERROR_PAGES)


def _rtflow_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RtflowError)
    status_code, title = _error_status(exc)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": str(exc)}, status_code, headers=_COMMON_HEADERS)
    return _html(pages.error_page(title, str(exc)), status_code=status_code)


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "There is no page at this address." if exc.status_code == 404 else exc.detail
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, exc.status_code, headers=_COMMON_HEADERS)
    return _html(pages.error_page(f"{exc.status_code}", message), status_code=exc.status_code)


def create_app(db_path: Path, *, allowed_hosts: frozenset[str] | None = None) -> Starlette | HostCheck:
    """The viewer over the run store at `db_path` (read-only; it need not exist yet). With `allowed_hosts`,
    requests addressed to any other host name are refused (see `host_check`)."""
    viewer = _Viewer(db_path)
    app = Starlette(
        routes=[
            Route("/", viewer.runs),
            Route("/runs/{run_id}", viewer.run_page),
            Route("/runs/{run_id}/report", viewer.run_report),
            Route("/api/runs/{run_id}/status", viewer.run_status),
            Route("/compare", viewer.compare_form),
            Route("/compare/{baseline_id}/{run_id}", viewer.compare_page),
            Route("/compare/{baseline_id}/{run_id}/report", viewer.compare_report),
        ],
        exception_handlers={RtflowError: _rtflow_error, HTTPException: _http_error},
    )
    return app if allowed_hosts is None else HostCheck(app, allowed_hosts)

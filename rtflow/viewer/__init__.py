"""`rtflow view`: a local web app over the run store.

It lists the runs, shows each run's HTML report (the one `rtflow export` writes, rendered from the store on
request) and keeps it current while the run stores more turns, and compares two runs in the report's compare
view. It only reads the store (`results`), and never drives a run.

`app` holds the routes, `reading` what they read from the store, `pages` and `live_script` the viewer's own
pages, `host_check` the guard against other sites' pages reading it, `server` the socket and uvicorn.
"""

from __future__ import annotations

from rtflow.viewer.app import create_app

__all__ = ["create_app"]

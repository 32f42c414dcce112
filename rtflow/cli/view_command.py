"""`rtflow view`: serve the run store as a local web app until Ctrl-C.

The web stack (starlette, uvicorn) and the viewer load only when the command runs, so `rtflow --help` stays
quick. The address is the first line printed, flushed at once, so a script or a test can read it and open it.
"""

from __future__ import annotations

from pathlib import Path

import click

from rtflow.cli.options import db_option

__all__ = ["view_command"]

DEFAULT_PORT = 8700


@click.command("view")
@db_option()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; the default lets only this machine in.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
def view_command(db_path: Path | None, host: str, port: int) -> None:
    """Browse the runs in a local web app: the runs list, each run's report (kept current while the run goes
    on) and two runs compared."""
    from rtflow.results.store import default_db_path
    from rtflow.viewer.server import bind, serve, url_of

    store = db_path if db_path is not None else default_db_path()
    try:
        listener = bind(host, port)
    except OSError as exc:
        raise click.UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    click.echo(f"rtflow view: {url_of(listener)}")
    if not store.is_file():
        click.echo(f"no run store at {store} yet: the runs list fills once a run writes one", err=True)
    try:
        serve(store, listener, host)
    except KeyboardInterrupt:  # Ctrl-C is how the viewer is meant to stop
        pass
    finally:
        listener.close()

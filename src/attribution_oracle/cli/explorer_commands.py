"""`explorer`: serve the read-only web explorer over this home's chain, content store and served log."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import click

from attribution_oracle.cli.cli_context import App, pass_app
from attribution_oracle.cli.params import PORT, FiniteFloatType
from attribution_oracle.errors import UserError


def _served_source(served: str | None, home: Path):
    from attribution_oracle.oracle.served_sources import HttpServedRecords, StoreServedRecords

    if served is None:
        default = home / "served.sqlite"
        return StoreServedRecords(default) if default.is_file() else None
    if served.startswith(("http://", "https://")):
        return HttpServedRecords(served)
    return StoreServedRecords(Path(served))


@click.command("explorer")
@click.option("--port", type=PORT, default=8650, show_default=True, help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--home",
    "explorer_home",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="State folder to read (default: the global --home).",
)
@click.option(
    "--served",
    default=None,
    metavar="URL|PATH",
    help="Served records (prompts, outputs): a server URL or its log file (default: <home>/served.sqlite if any).",
)
@click.option(
    "--poll-interval",
    type=FiniteFloatType(0, 3600, low_open=True),
    default=1.0,
    show_default=True,
    help="Seconds between chain polls.",
)
@pass_app
def command(
    app: App, port: int, host: str, explorer_home: Path | None, served: str | None, poll_interval: float
) -> None:
    """Serve the explorer: Datanets, models, inferences with their spans, contributors, epochs, leaderboards.

    Read-only: it mirrors the chain into a private catalog in a temporary folder and never writes the home's
    catalog, the content store or the chain. New inferences and epochs appear without a reload.
    """
    import uvicorn

    from attribution_oracle.explorer.explorer_app import create_app
    from attribution_oracle.explorer.explorer_state import Explorer
    from attribution_oracle.explorer.pages import warm_up
    from attribution_oracle.store.blobs import BlobStore
    from attribution_oracle.store.catalog import Catalog

    if explorer_home is not None:
        app = App(home=explorer_home, rpc_url=app.rpc_url, json_output=app.json_output)
    if not app.home.is_dir():
        raise UserError(f"home {app.home} does not exist")
    deployment = app.deployment
    source = _served_source(served, app.home)
    private = Path(tempfile.mkdtemp(prefix="attribution-explorer-"))
    try:
        catalog = Catalog(private / "catalog.sqlite", deployment.key)
        explorer = Explorer(
            catalog,
            BlobStore(app.home / "blobs"),
            client=app.client,
            deployment=deployment,
            served=source,
            cache_dir=private / "cache",
        )
        app.say("reading the chain…")
        explorer.refresh()
        explorer.start(poll_interval)
        warm_up(explorer)
        url = f"http://{host}:{port}/"
        app.say(f"explorer on {url} (Ctrl-C stops it)")
        uvicorn.run(create_app(explorer), host=host, port=port, log_level="warning")
        explorer.stop()
        catalog.close()
    finally:
        shutil.rmtree(private, ignore_errors=True)

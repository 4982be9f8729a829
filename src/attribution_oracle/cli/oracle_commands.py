"""`oracle run|status`: run an attribution oracle node, or show one's state."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import httpx

from attribution_oracle.cli.cli_context import App, pass_app, password_option, table
from attribution_oracle.cli.params import NON_NEGATIVE, PORT, POSITIVE, FiniteFloatType
from attribution_oracle.errors import UserError


def _state_dir(app: App, wallet: str | None, state_dir: Path | None) -> Path:
    if state_dir is not None:
        return state_dir
    if wallet is None:
        raise UserError("give --state-dir or --wallet (the state lives in <home>/oracle/<wallet>)")
    return app.home / "oracle" / wallet.replace(":", "-")


@click.group("oracle")
def command() -> None:
    """Attribution oracle nodes: attribute every paid, served inference and settle epochs m-of-n."""


@command.command("run")
@click.option("--wallet", required=True, help="The oracle signer: a keystore wallet (or dev:N on a local chain).")
@password_option
@click.option("--port", type=PORT, required=True, help="Port of the node's HTTP server (signatures, /metrics).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface of the HTTP server.")
@click.option("--peer", "peers", multiple=True, help="A peer node's base URL (repeat).")
@click.option("--served", required=True, help="Served-record source: the server's URL or its log file path.")
@click.option(
    "--epoch-blocks", type=POSITIVE, default=None, help="Blocks per epoch (default: the market's epochBlocks)."
)
@click.option("--epoch-seconds", type=POSITIVE, default=None, help="Epochs by block time instead of block count.")
@click.option(
    "--confirmations", type=NON_NEGATIVE, default=2, show_default=True, help="Blocks behind the head to follow."
)
@click.option("--scorer", default="factory", show_default=True, help="'factory' or module:callable (see docs).")
@click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Node state folder (default <home>/oracle/<wallet>).")  # fmt: skip
@click.option(
    "--poll-interval",
    type=FiniteFloatType(0, 3600, low_open=True),
    default=0.25,
    show_default=True,
    help="Seconds between loop passes.",
)
@click.option(
    "--submit-delay",
    type=FiniteFloatType(0, 3600),
    default=1.0,
    show_default=True,
    help="Seconds between nodes' turns.",
)
@click.option("--record-grace-blocks", type=NON_NEGATIVE, default=100, show_default=True,
              help="Blocks a served inference may lack its record before its pools are split equally.")  # fmt: skip
@click.option("--once", is_flag=True, help="One pass (catch up, attribute, advance the epoch), then exit.")
@click.option("--sequential", is_flag=True,
              help="Score on the loop thread and wait for each report transaction (default: scoring overlaps "
                   "the chain I/O and the signature exchange).")  # fmt: skip
@pass_app
def run(
    app: App,
    wallet: str,
    password_file: Path | None,
    port: int,
    host: str,
    peers: tuple[str, ...],
    served: str,
    epoch_blocks: int | None,
    epoch_seconds: int | None,
    confirmations: int,
    scorer: str,
    state_dir: Path | None,
    poll_interval: float,
    submit_delay: float,
    record_grace_blocks: int,
    once: bool,
    sequential: bool,
) -> None:
    """Run a node until SIGTERM: follow the chain, attribute, build, sign, exchange and submit reports."""
    from attribution_oracle.chain.chain_errors import RpcUnavailableError
    from attribution_oracle.oracle import logs
    from attribution_oracle.oracle.oracle_node import Backoff, NodeConfig, OracleNode
    from attribution_oracle.oracle.scoring import ScorerContext, load_provider
    from attribution_oracle.oracle.served_sources import open_source

    if record_grace_blocks < 0:
        raise UserError("--record-grace-blocks must be >= 0")
    if confirmations < 0 or (epoch_blocks is not None and epoch_blocks < 1) or (epoch_seconds is not None and
                                                                               epoch_seconds < 1):  # fmt: skip
        raise UserError("--confirmations must be >= 0 and --epoch-blocks / --epoch-seconds >= 1")
    directory = _state_dir(app, wallet, state_dir)
    logs.configure(wallet, directory / "oracle.log")
    signer = app.signer(wallet, password_file)
    backoff = Backoff()
    while True:  # the chain may be down when the node starts: wait for it like the loop does
        try:
            context = ScorerContext(app.client, app.deployment, app.store, cache_dir=directory / "scorer-cache")
            node = OracleNode(
                app.client,
                app.deployment,
                app.store,
                signer,
                open_source(served, signer, app.client.chain_id),
                load_provider(scorer, context),
                context,
                NodeConfig(
                    state_dir=directory,
                    port=port,
                    host=host,
                    peers=list(peers),
                    epoch_blocks=epoch_blocks,
                    epoch_seconds=epoch_seconds,
                    confirmations=confirmations,
                    poll_interval_s=poll_interval,
                    submit_delay_s=submit_delay,
                    record_grace_blocks=record_grace_blocks,
                    overlap=not sequential,
                ),
            )
            break
        except RpcUnavailableError as exc:
            if once:
                raise
            wait = backoff.next()
            logs.warn("chain unreachable at start, retrying", error=str(exc), retry_in_s=wait)
            time.sleep(wait)
    node.run(once=once)


@command.command("status")
@click.option("--wallet", default=None, help="The node's wallet (locates <home>/oracle/<wallet>).")
@click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False), default=None, help="Node state folder.")
@click.option("--url", default=None, help="Ask a running node's HTTP server instead of reading its database.")
@pass_app
def status(app: App, wallet: str | None, state_dir: Path | None, url: str | None) -> None:
    """Show a node's cursor, inference counts and recent epochs."""
    if url is not None:
        try:
            response = httpx.get(url.rstrip("/") + "/v1/status", timeout=5)
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read the status of {url}: {exc}") from exc
    else:
        from attribution_oracle.oracle.db import OracleDB
        from attribution_oracle.oracle.oracle_node import node_status

        directory = _state_dir(app, wallet, state_dir)
        if not (directory / "oracle.sqlite").is_file():
            raise UserError(f"no oracle state in {directory}")
        data = node_status(OracleDB(directory / "oracle.sqlite"))
    if app.json_output:
        app.emit(data)
        return
    summary = [[k, data[k]] for k in ("signer", "cursor", "paid", "served", "attributed", "pending", "latestEpoch",
                                      "disagreements")]  # fmt: skip
    app.console.print(table("oracle node", ["", "value"], summary))
    rows = [[e["epoch"], f"{e['fromBlock']}-{e['toBlock']}", e["inferences"], e["status"], e["signatures"], e["uri"]]
            for e in data["epochs"]]  # fmt: skip
    app.console.print(table("epochs", ["epoch", "blocks", "inferences", "status", "signatures", "report"], rows))

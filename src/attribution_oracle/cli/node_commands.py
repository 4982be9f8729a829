"""`node start|stop|status`: a local Anvil chain in the background."""

from __future__ import annotations

import click

from attribution_oracle.chain.anvil_process import LocalNode
from attribution_oracle.cli.cli_context import App, pass_app, table
from attribution_oracle.cli.params import PORT, FiniteFloatType


def _node(app: App, port: int | None) -> LocalNode:
    from urllib.parse import urlparse

    default_port = urlparse(app.rpc_url).port or 8545
    return LocalNode(app.home / "node", port=port or default_port)


port_option = click.option("--port", type=PORT, default=None, help="RPC port (default: the port of --rpc, 8545).")


@click.group("node")
def command() -> None:
    """Run a local Anvil chain (state kept in <home>/node/state.json)."""


@command.command("start")
@port_option
@click.option("--fresh", is_flag=True, help="Forget the saved chain state and start from genesis.")
@click.option(
    "--block-time",
    type=FiniteFloatType(0, 3600, low_open=True),
    default=None,
    help="Mine a block every this many seconds (default: a block per transaction).",
)
@pass_app
def start(app: App, port: int | None, fresh: bool, block_time: float | None) -> None:
    """Start Anvil in the background and wait until it answers."""
    status = _node(app, port).start(fresh=fresh, block_time=block_time)
    if app.json_output:
        app.emit({"running": True, "pid": status.pid, "rpc": status.rpc_url, "block": status.block_number})
    else:
        app.say(f"node started: pid {status.pid}, {status.rpc_url}, block {status.block_number}")


@command.command("stop")
@port_option
@pass_app
def stop(app: App, port: int | None) -> None:
    """Stop the background node (its state is saved)."""
    stopped = _node(app, port).stop()
    if app.json_output:
        app.emit({"stopped": stopped})
    else:
        app.say("node stopped" if stopped else "no node was running")


@command.command("status")
@port_option
@pass_app
def status(app: App, port: int | None) -> None:
    """Show whether the node runs, its pid, RPC URL and block."""
    s = _node(app, port).status()
    data = {"running": s.running, "pid": s.pid, "rpc": s.rpc_url, "block": s.block_number, "state": str(s.state_file)}
    app.emit(data, table("node", ["running", "pid", "rpc", "block", "state"], [list(data.values())]))

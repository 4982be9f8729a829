"""The `attribution-oracle` command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from attribution_oracle.chain.client import DEFAULT_RPC
from attribution_oracle.cli.app import App, default_home
from attribution_oracle.errors import UserError


class Root(click.Group):
    """The root group: turns user errors into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context):  # noqa: D102
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="State folder: blobs, catalog, node, deployments (default $ATTRIBUTION_HOME or ~/.attribution-oracle).",
)
@click.option("--rpc", default=None, help=f"Chain RPC URL (default $ATTRIBUTION_RPC or {DEFAULT_RPC}).")
@click.option("--json", "json_output", is_flag=True, help="Machine-readable JSON output.")
@click.version_option(package_name="attribution-oracle")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, rpc: str | None, json_output: bool) -> None:
    """Attribution ledger for specialised AI: Datanets, models and OPEN rewards on a chain."""
    ctx.obj = App(
        home=home or default_home(),
        rpc_url=rpc or os.environ.get("ATTRIBUTION_RPC", DEFAULT_RPC),
        json_output=json_output,
    )


def _register() -> None:
    from attribution_oracle.cli import (
        agent,
        datanet,
        deploy,
        market,
        model,
        node,
        oracle,
        report,
        rewards,
        serve,
        token,
        wallet,
    )

    for module in (node, deploy, wallet, token, datanet, model, market, serve, report, rewards, oracle, agent):
        cli.add_command(module.command)
    cli.add_command(serve.infer)


_register()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="attribution-oracle")

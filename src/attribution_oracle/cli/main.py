"""The `attribution-oracle` command line."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import click

from attribution_oracle.chain.web3_client import DEFAULT_RPC
from attribution_oracle.cli.cli_context import App, default_home
from attribution_oracle.errors import UserError

EXIT_USER_ERROR = 1
EXIT_USAGE_ERROR = 2


def error_code(exc: BaseException) -> str:
    """A stable machine-readable code for an error: its class name in snake case (``WalletError`` -> ``wallet``)."""
    if isinstance(exc, click.UsageError):
        return "usage"
    name = type(exc).__name__.removesuffix("Error") or "user"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def report_error(message: str, code: str, json_output: bool) -> None:
    """Print one error: ``error: ...`` on stderr, or under ``--json`` ``{"error": {code, message}}`` on stdout."""
    if json_output:
        click.echo(json.dumps({"error": {"code": code, "message": message}}))
    else:
        click.echo(f"error: {message}", err=True)


def _wants_json(ctx: click.Context | None, argv: list[str]) -> bool:
    app = ctx.find_object(App) if ctx is not None else None
    if app is not None and app.json_output:
        return True
    options = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in options


class Root(click.Group):
    """The root group: every error a user can cause is one line (exit 1; usage errors exit 2), never a traceback.

    Under ``--json`` the error is a JSON object on stdout instead: ``{"error": {"code": ..., "message": ...}}``.
    """

    def invoke(self, ctx: click.Context):
        """Run the command; tag user and usage errors with whether JSON output was asked for."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (UserError, click.ClickException) as exc:
            exc.json_output = _wants_json(ctx, ctx.protected_args + ctx.args)  # type: ignore[attr-defined]
            raise

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Parse and run; every error a user can cause becomes one line (or one JSON object) and an exit code."""
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            json_output = getattr(exc, "json_output", None) or _wants_json(exc.ctx, argv)
            report_error(exc.format_message() + hint, "usage", json_output)
            code = EXIT_USAGE_ERROR
        except UserError as exc:
            json_output = getattr(exc, "json_output", None) or _wants_json(None, argv)
            report_error(str(exc), error_code(exc), json_output)
            code = EXIT_USER_ERROR
        except click.ClickException as exc:
            json_output = getattr(exc, "json_output", None) or _wants_json(None, argv)
            report_error(exc.format_message(), error_code(exc), json_output)
            code = exc.exit_code
        except click.Abort:
            click.echo("aborted", err=True)
            code = EXIT_USER_ERROR
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


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
        agent_commands,
        datanet_commands,
        deploy_commands,
        explorer_commands,
        market_commands,
        model_commands,
        node_commands,
        oracle_commands,
        report_commands,
        rewards_commands,
        serve_commands,
        token_commands,
        wallet_commands,
    )

    for module in (
        node_commands,
        deploy_commands,
        wallet_commands,
        token_commands,
        datanet_commands,
        model_commands,
        market_commands,
        serve_commands,
        report_commands,
        rewards_commands,
        oracle_commands,
        explorer_commands,
        agent_commands,
    ):
        cli.add_command(module.command)
    cli.add_command(serve_commands.infer)


_register()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="attribution-oracle")

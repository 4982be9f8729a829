"""`deploy`: deploy and wire the contracts, write <home>/deployments/<chain_id>.json."""

from __future__ import annotations

import click

from attribution_oracle.chain.deploy import DEFAULT_CREATION_FEE, DEFAULT_PROTOCOL_FEE_BPS, deploy_all
from attribution_oracle.cli.app import App, from_option, parse_amount, pass_app, password_option, table


@click.command("deploy")
@from_option
@password_option
@click.option("--treasury", default=None, help="Treasury (wallet, dev:N or 0x address); default: the deployer.")
@click.option(
    "--creation-fee", default=str(DEFAULT_CREATION_FEE // 10**18), show_default=True, help="OPEN per Datanet."
)
@click.option("--protocol-fee-bps", type=int, default=DEFAULT_PROTOCOL_FEE_BPS, show_default=True)
@pass_app
def command(
    app: App, sender: str, password_file, treasury: str | None, creation_fee: str, protocol_fee_bps: int
) -> None:
    """Deploy OpenToken, DatanetRegistry and ModelRegistry; the sender becomes governance."""
    signer = app.signer(sender, password_file)
    deployment = deploy_all(
        app.client,
        signer,
        treasury=app.address(treasury) if treasury else None,
        creation_fee=parse_amount(creation_fee, "creation fee"),
        protocol_fee_bps=protocol_fee_bps,
        on_step=app.say,
    )
    path = deployment.save(app.home / "deployments")
    rows = [[name, rec.address] for name, rec in deployment.contracts.items()]
    data = {"chainId": deployment.chain_id, "file": str(path), **{n: a for n, a in rows}}
    app.emit(data, table(f"deployed on chain {deployment.chain_id} ({path})", ["contract", "address"], rows))

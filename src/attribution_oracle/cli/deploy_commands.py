"""`deploy`: deploy and wire the contracts, write <home>/deployments/<chain_id>.json."""

from __future__ import annotations

import click

from attribution_oracle.chain.contract_deploy import (
    DEFAULT_CREATION_FEE,
    DEFAULT_EPOCH_BLOCKS,
    DEFAULT_PROTOCOL_FEE_BPS,
    DEFAULT_SERVICE_WINDOW_S,
    deploy_all,
)
from attribution_oracle.cli.cli_context import App, from_option, parse_amount, pass_app, password_option, table
from attribution_oracle.cli.params import NON_NEGATIVE, POSITIVE, BoundedIntType


@click.command("deploy")
@from_option
@password_option
@click.option("--treasury", default=None, help="Treasury (wallet, dev:N or 0x address); default: the deployer.")
@click.option(
    "--creation-fee", default=str(DEFAULT_CREATION_FEE // 10**18), show_default=True, help="OPEN per Datanet."
)
@click.option("--protocol-fee-bps", type=BoundedIntType(0, 2_000), default=DEFAULT_PROTOCOL_FEE_BPS, show_default=True)
@click.option("--oracle-signer", "oracle_signers", multiple=True, help="Oracle signer (repeat); default: the sender.")
@click.option(
    "--threshold", type=BoundedIntType(1, 255), default=1, show_default=True, help="Signatures a report needs (m)."
)
@click.option(
    "--claim-delay", type=NON_NEGATIVE, default=0, show_default=True, help="Seconds a report waits (veto window)."
)
@click.option(
    "--epoch-blocks", type=POSITIVE, default=DEFAULT_EPOCH_BLOCKS, show_default=True, help="Blocks per epoch."
)
@click.option(
    "--service-window", type=POSITIVE, default=DEFAULT_SERVICE_WINDOW_S, show_default=True, help="Refund after."
)
@click.option("--operator", "operators", multiple=True, help="Serving operator (repeat); default: the sender.")
@pass_app
def command(
    app: App,
    sender: str,
    password_file,
    treasury: str | None,
    creation_fee: str,
    protocol_fee_bps: int,
    oracle_signers: tuple[str, ...],
    threshold: int,
    claim_delay: int,
    epoch_blocks: int,
    service_window: int,
    operators: tuple[str, ...],
) -> None:
    """Deploy and wire all contracts; the sender becomes governance and the first OPEN minter."""
    fee_wei = parse_amount(creation_fee, "creation fee")
    signer = app.signer(sender, password_file)
    deployment = deploy_all(
        app.client,
        signer,
        treasury=app.address(treasury) if treasury else None,
        creation_fee=fee_wei,
        protocol_fee_bps=protocol_fee_bps,
        oracle_signers=[app.address(s) for s in oracle_signers] or None,
        oracle_threshold=threshold,
        claim_delay_s=claim_delay,
        epoch_blocks=epoch_blocks,
        service_window_s=service_window,
        operators=[app.address(o) for o in operators] or None,
        on_step=app.say,
    )
    path = deployment.save(app.home / "deployments")
    rows = [[name, rec.address] for name, rec in deployment.contracts.items()]
    data = {"chainId": deployment.chain_id, "file": str(path), **{n: a for n, a in rows}}
    app.emit(data, table(f"deployed on chain {deployment.chain_id} ({path})", ["contract", "address"], rows))

"""`agent register|stake|unstake|fund|withdraw|grant|revoke|status|run`: agents that pay their own way.

Thin: parsing and printing only; the logic is in ``attribution_oracle.agent``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import click

from attribution_oracle.chain.web3_client import format_eth
from attribution_oracle.cli.cli_context import App, from_option, parse_amount, pass_app, password_option, table
from attribution_oracle.cli.params import CHAIN_ID, POSITIVE, FiniteFloatType
from attribution_oracle.errors import UserError

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_duration(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``12h``, ``30d`` -> seconds; ``UserError`` if malformed."""
    unit = text[-1] if text and text[-1] in DURATION_UNITS else "s"
    number = text[:-1] if text and text[-1] in DURATION_UNITS else text
    if not number.isdigit() or int(number) <= 0:
        raise UserError(f"duration {text!r} must be a positive whole number with an optional unit s, m, h or d")
    return int(number) * DURATION_UNITS[unit]


def parse_ids(text: str) -> list[int]:
    """``1,2`` -> [1, 2]."""
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"model ids {text!r} must be comma-separated integers") from None
    if not ids or min(ids) <= 0:
        raise UserError("give at least one positive model id")
    return ids


def _agent_amount_command(name: str) -> Callable[[Callable], click.Command]:
    """``agent NAME AGENT_ID AMOUNT --from W [--password-file F]``: the shape of stake, fund and withdraw."""

    def wrap(fn: Callable) -> click.Command:
        for decorator in (pass_app, password_option, from_option, click.argument("amount"),
                          click.argument("agent_id", type=CHAIN_ID)):  # fmt: skip
            fn = decorator(fn)
        return command.command(name)(fn)

    return wrap


def _vault(app: App):
    from attribution_oracle.agent.vault import AgentVaultClient

    return AgentVaultClient(app.client, app.deployment)


@click.group("agent")
def command() -> None:
    """Agents with a stake, a budget and session keys in the AgentVault, paying per call over x402."""


@command.command("register")
@click.option("--name", required=True, help="The agent's name (goes into its card).")
@click.option("--description", default="", help="What the agent does.")
@click.option("--endpoint", "endpoints", multiple=True, help="Where the agent answers (repeatable).")
@click.option("--models", "models", default="", help="Model ids the agent calls, e.g. 1,2 (recorded in the card).")
@from_option
@password_option
@pass_app
def register(app: App, name: str, description: str, endpoints, models: str, sender: str, password_file) -> None:
    """Register an agent owned by --from, with a content-addressed agent card."""
    from attribution_oracle.agent.cards import build_card, store_card

    card = build_card(name, description, list(endpoints), parse_ids(models) if models else [])
    uri = store_card(app.store, card)
    agent_id = _vault(app).register(app.signer(sender, password_file), uri)
    app.result({"agentId": agent_id, "cardURI": uri}, f"registered agent {agent_id} ({name}), card {uri}")


@_agent_amount_command("stake")
def stake(app: App, agent_id: int, amount: str, sender: str, password_file) -> None:
    """Stake AMOUNT OPEN for AGENT_ID (it operates while its stake is at least the vault's minimum)."""
    wei = parse_amount(amount)
    _vault(app).stake(app.signer(sender, password_file), agent_id, wei)
    app.result({"agentId": agent_id, "staked": str(wei)}, f"staked {format_eth(wei)} OPEN for agent {agent_id}")


@command.command("unstake")
@click.argument("agent_id", type=CHAIN_ID)
@click.argument("amount", required=False)
@click.option("--withdraw", is_flag=True, help="Withdraw what finished its cooldown instead of starting one.")
@from_option
@password_option
@pass_app
def unstake(app: App, agent_id: int, amount: str | None, withdraw: bool, sender: str, password_file) -> None:
    """Start unstaking AMOUNT (a cooldown follows), or --withdraw what has cooled down."""
    vault, signer = _vault(app), app.signer(sender, password_file)
    if withdraw:
        wei = vault.withdraw_stake(signer, agent_id)
        app.result({"agentId": agent_id, "withdrawn": str(wei)}, f"withdrew {format_eth(wei)} OPEN of stake")
        return
    if amount is None:
        raise UserError("give the AMOUNT to unstake, or --withdraw")
    wei = parse_amount(amount)
    at = vault.request_unstake(signer, agent_id, wei)
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
    app.result(
        {"agentId": agent_id, "unstaking": str(wei), "availableAt": at},
        f"unstaking {amount} OPEN; withdraw after {when}",
    )


@_agent_amount_command("fund")
def fund(app: App, agent_id: int, amount: str, sender: str, password_file) -> None:
    """Deposit AMOUNT OPEN into AGENT_ID's budget."""
    wei = parse_amount(amount)
    _vault(app).deposit(app.signer(sender, password_file), agent_id, wei)
    app.result({"agentId": agent_id, "deposited": str(wei)}, f"agent {agent_id}'s budget +{format_eth(wei)} OPEN")


@_agent_amount_command("withdraw")
def withdraw(app: App, agent_id: int, amount: str, sender: str, password_file) -> None:
    """Withdraw AMOUNT OPEN of AGENT_ID's unspent budget to its owner."""
    wei = parse_amount(amount)
    _vault(app).withdraw(app.signer(sender, password_file), agent_id, wei)
    app.result({"agentId": agent_id, "withdrawn": str(wei)}, f"withdrew {format_eth(wei)} OPEN of budget")


@command.command("grant")
@click.argument("agent_id", type=CHAIN_ID)
@click.option("--key", required=True, help="The session key: a wallet name, dev:N or 0x address.")
@click.option("--models", required=True, help="Model ids the key may pay for, e.g. 1,2.")
@click.option("--max-per-call", required=True, help="Most one call may cost, in OPEN.")
@click.option("--period", default="1d", show_default=True, help="Budget period (s, m, h, d).")
@click.option("--period-cap", required=True, help="Most the key may spend per period, in OPEN.")
@click.option("--total-cap", required=True, help="Most the key may ever spend, in OPEN.")
@click.option("--expires-in", default="30d", show_default=True, help="Lifetime of the key (s, m, h, d).")
@from_option
@password_option
@pass_app
def grant(
    app: App, agent_id: int, key: str, models: str, max_per_call: str, period: str, period_cap: str,
    total_cap: str, expires_in: str, sender: str, password_file,
) -> None:  # fmt: skip
    """Grant AGENT_ID a session key with caps, an expiry and a model allow-list."""
    address = app.address(key)
    expiry = int(app.client.block("latest")["timestamp"]) + parse_duration(expires_in)
    _vault(app).grant(
        app.signer(sender, password_file), agent_id, address, models=parse_ids(models),
        max_price_per_call=parse_amount(max_per_call, "max per call"), period_s=parse_duration(period),
        period_cap=parse_amount(period_cap, "period cap"), total_cap=parse_amount(total_cap, "total cap"),
        expiry=expiry,
    )  # fmt: skip
    app.result({"agentId": agent_id, "key": address, "expiry": expiry}, f"granted session key {address}")


@command.command("revoke")
@click.argument("key")
@from_option
@password_option
@pass_app
def revoke(app: App, key: str, sender: str, password_file) -> None:
    """Revoke a session KEY for good (wallet name, dev:N or 0x address)."""
    address = app.address(key)
    agent_id = _vault(app).revoke(app.signer(sender, password_file), address)
    app.result({"agentId": agent_id, "revoked": address}, f"revoked session key {address} of agent {agent_id}")


@command.command("status")
@click.argument("agent_id", type=CHAIN_ID)
@click.option("--key", "keys", multiple=True, help="Also show this session key's caps and spend (repeatable).")
@pass_app
def status(app: App, agent_id: int, keys) -> None:
    """Show an agent's stake, budget and session keys."""
    vault = _vault(app)
    s = vault.status(agent_id)
    states = [vault.session_key(app.address(k)) for k in keys]
    data = {
        "agentId": agent_id, "owner": s.owner, "cardURI": s.card_uri, "stake": str(s.stake),
        "unstaking": str(s.unstaking), "unstakeAt": s.unstake_at, "pendingSlash": str(s.pending_slash),
        "budget": str(s.budget), "operating": s.operating,
        "keys": [{**{k: str(v) for k, v in vars(k_).items()}} for k_ in states],
    }  # fmt: skip
    if app.json_output:
        app.emit(data)
        return
    rows = [
        ["owner", s.owner], ["card", s.card_uri], ["stake (OPEN)", format_eth(s.stake)],
        ["unstaking (OPEN)", format_eth(s.unstaking)], ["pending slash (OPEN)", format_eth(s.pending_slash)],
        ["budget (OPEN)", format_eth(s.budget)], ["operating", "yes" if s.operating else "no (stake below minimum)"],
    ]  # fmt: skip
    app.emit(data, table(f"agent {agent_id}", ["field", "value"], rows))
    if states:
        key_rows = [
            [k.key, "revoked" if k.revoked else time.strftime("%Y-%m-%d %H:%M", time.gmtime(k.expiry)),
             format_eth(k.max_price_per_call), f"{format_eth(k.period_spent)} / {format_eth(k.period_cap)}",
             f"{format_eth(k.total_spent)} / {format_eth(k.total_cap)}"]
            for k in states
        ]  # fmt: skip
        header = ["key", "expires", "max/call", "period spent/cap", "total spent/cap"]
        app.emit(data, table("session keys (OPEN)", header, key_rows))


@command.command("run")
@click.option("--key", required=True, help="The session key wallet (it only signs; it needs no ETH or OPEN).")
@click.option("--server", required=True, help="The OpenLoRA server URL.")
@click.option(
    "--task",
    "task_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help='A task file: {"name", "steps": [{"model", "prompt", "max_tokens"}]}.',
)
@click.option("--step", "steps", multiple=True, metavar="MODEL:PROMPT", help="A call (repeatable; instead of --task).")
@click.option("--max-tokens", type=POSITIVE, default=24, show_default=True, help="Output tokens per --step call.")
@click.option(
    "--wait-settled",
    type=FiniteFloatType(0, 86400),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the calls to be settled.",
)
@password_option
@pass_app
def run(app: App, key: str, server: str, task_file, steps, max_tokens: int, wait_settled: float, password_file) -> None:
    """Run a multi-step task as the agent: every call paid over x402 from its vault, within its caps."""
    from attribution_oracle.agent.paying_agent import Agent
    from attribution_oracle.agent.tasks import TaskStep, earnings, load_task, run_task

    if task_file is not None:
        name, plan = load_task(task_file)
    elif steps:
        name, plan = "steps", []
        for step in steps:
            model, sep, prompt = step.partition(":")
            if not sep or not model.strip().isdigit() or not prompt.strip():
                raise UserError(f"--step {step!r} must look like MODEL:PROMPT, e.g. 1:How do bees keep warm?")
            plan.append(TaskStep(int(model), prompt.strip(), max_tokens))
    else:
        raise UserError("give a --task file or at least one --step MODEL:PROMPT")
    vault = _vault(app)
    with Agent(app.signer(key, password_file), server, vault) as agent:
        app.say(f"task {name!r}: {len(plan)} call(s) as session key {agent.session_key.address}")
        calls = run_task(agent, plan, lambda step, call: app.say(
            f"  model {call.model_id}, request {call.request_id}: paid up to {format_eth(call.authorized)} OPEN "
            f"(tx {call.tx_hash[:12]}...) -> {call.text.strip()[:70]!r}"
        ))  # fmt: skip
        remaining = agent.remaining()
        spent = agent.spent
    split = earnings(vault, [c.request_id for c in calls], wait_s=wait_settled)
    data = {
        "task": name,
        "spent": str(spent),
        "remaining": {k: str(v) for k, v in remaining.items()},
        "calls": [
            {"requestId": c.request_id, "model": c.model_id, "text": c.text, "txHash": c.tx_hash, **_earned(e)}
            for c, e in zip(calls, split, strict=True)
        ],
    }  # fmt: skip
    if app.json_output:
        app.emit(data)
        return
    rows = [
        [e.request_id, e.model_id, e.status, format_eth(e.authorized), format_eth(e.charged), format_eth(e.protocol),
         f"{format_eth(e.owner_amount)} ({e.model_owner[:10]})", format_eth(e.datanet_owners),
         format_eth(e.contributors)]
        for e in split
    ]  # fmt: skip
    header = ["request", "model", "status", "authorized", "charged", "treasury", "model owner", "datanet owners",
              "contributors"]  # fmt: skip
    app.emit(data, table("who earned from each call (OPEN)", header, rows))
    app.say(
        f"spent {format_eth(spent)} OPEN from the vault (unused per-token maxima go back to the owner); remaining: "
        f"{format_eth(remaining['total'])} of the key's total cap, {format_eth(remaining['period'])} this period, "
        f"vault budget {format_eth(remaining['budget'])} OPEN"
    )


def _earned(e) -> dict:
    """A CallEarnings as JSON (wei as strings)."""
    skip = ("request_id", "model_id")
    return {k: str(v) if isinstance(v, int) else v for k, v in vars(e).items() if k not in skip}

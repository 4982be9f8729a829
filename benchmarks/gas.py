"""Gas of settlement on a real Anvil: reports, claims and payments, against a naive push and a single-shot claim.

Starts its own Anvil (``LocalNode`` on a free port, stopped on exit), deploys the system with ``deploy_all``
(5 oracle signers; the threshold m is rotated through the timelock: ``proposeOracleConfig``, then
``applyOracleConfig``), funds the pool through
``InferenceMarket.markServed -> RewardDistributor.fund`` and measures ``gasUsed`` of whole transactions (so every
figure includes the 21,000 intrinsic gas and the calldata):

- ``submitReport`` at m = 1, 3, 5 signatures in steady state (a report after earlier ones), and the first-ever
  report separately; at m = 3 also per tree size (10, 1,000 and 100,000 rewarded accounts; the trees are built
  in Python with ``RewardsTree``), which must be flat: the contract only ever sees the root;
- ``claim``: the headline is a first-time claim by a recipient that already holds OPEN in a tree of 1,000
  accounts; also a first-time claim by a fresh recipient (no OPEN yet), a repeat claim (the account claimed in
  an earlier epoch) and first-time claims per tree size (they grow only with the proof length);
- ``payForInference`` (first ever and steady state) and ``payForInferenceBatch`` per inference, and
  ``markServed`` per request;
- peers: a naive push (one OPEN ``transfer`` per account, 50 transfers to fresh accounts, then 50 more to the
  same accounts once they hold OPEN), and a single-shot Uniswap-style Merkle claim
  (``benchmarks/contracts/SingleShotMerkleClaim.vy``: index leaves, claimed bitmap, same token), compiled here
  with ``vyper.compile_code``.

Each tree size runs from the same chain snapshot (``evm_snapshot`` / ``evm_revert``), so the figures do not
depend on the order of the sections. Writes ``benchmarks/results/gas.json``, prints a table and appends a
section to ``BENCHMARKS.md``.

    .venv/bin/python benchmarks/gas.py                  # full run (~30 s), appends to BENCHMARKS.md
    .venv/bin/python benchmarks/gas.py --no-markdown    # same measurements, JSON and table only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi import encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.logs import DISCARD

from attribution_oracle.chain.anvil_process import LocalNode, find_anvil
from attribution_oracle.chain.contract_deploy import deploy_all
from attribution_oracle.chain.wallets import dev_account
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.settlement.report_service import report_uri
from attribution_oracle.settlement.report_typed_data import ReportMessage, order_for_contract, sign_report
from attribution_oracle.settlement.trees import RewardsTree
from attribution_oracle.store.merkle import MerkleTree

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "gas.json"
REFERENCE = ROOT / "benchmarks" / "contracts" / "SingleShotMerkleClaim.vy"

OPEN = 10**18
MAX_UINT256 = 2**256 - 1
PRICE = 10 * OPEN
SPLIT = (5_000, 4_000, 1_000)  # owner / contributors / Datanet owners
UNIT = 10**12  # reward unit: account i earns UNIT * epoch * (1 + i % 7) cumulatively
SIZES = (10, 1_000, 100_000)
HEADLINE_SIZE = 1_000
THRESHOLDS = (1, 3, 5)
N_SIGNERS = 5
HOLDER, FRESH, HOLDER_SAME_WORD = 3, 4, 5  # universe indices of the claimants (in every tree)
GOALS = {"submit_report_m3": 120_000, "claim": 73_000, "epochs_10_ratio": 5.0}
EPOCH_COUNTS = (1, 10, 100)  # collecting this many epochs: one cumulative claim vs one single-shot claim per epoch
CALLS = {"CALL", "STATICCALL", "DELEGATECALL", "CALLCODE"}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def universe(n: int) -> list[str]:
    """``n`` deterministic fresh addresses (no keys needed: anyone may claim for them)."""
    return [to_checksum_address(keccak(b"gas-bench" + i.to_bytes(4, "big"))[12:]) for i in range(n)]


def cumulative(accounts: Sequence[str], epoch: int) -> dict[str, int]:
    """Cumulative amounts after ``epoch``: non-decreasing per account from one epoch to the next."""
    return {a: UNIT * epoch * (1 + i % 7) for i, a in enumerate(accounts)}


@dataclass
class Contracts:
    token: Any
    datanets: Any
    models: Any
    distributor: Any
    market: Any


class Bench:
    """The chain, the contracts and the actors of one run."""

    def __init__(self, client: ChainClient) -> None:
        self.client = client
        self.w3 = client.w3
        self.deployer = dev_account(0)
        self.payer = dev_account(1)
        self.relayer = dev_account(2)  # sends claims for accounts that hold no ETH
        self.signers = [Account.from_key(keccak(text=f"gas-bench-oracle-{i}")) for i in range(N_SIGNERS)]
        self.threshold = 3
        self.epoch = 0
        self.c: Contracts | None = None

    # ------------------------------------------------------------------ chain

    def send(self, fn: Any, who: LocalAccount, what: str) -> Any:
        return self.client.send(fn, who, what)

    def gas(self, fn: Any, who: LocalAccount, what: str) -> int:
        return int(self.send(fn, who, what)["gasUsed"])

    def snapshot(self) -> str:
        return self.w3.provider.make_request("evm_snapshot", [])["result"]

    def revert(self, snapshot_id: str) -> None:
        assert self.w3.provider.make_request("evm_revert", [snapshot_id])["result"] is True

    def breakdown(self, tx_hash: bytes) -> dict[str, int]:
        """Where a transaction's gas went: intrinsic + calldata, then the top-level opcodes (a call's whole cost,
        callee included, is charged to the call; precompiles such as ecrecover are STATICCALLs).

        The transaction is replayed with ``debug_traceCall`` on the state before its block (Anvil mines one
        transaction per block here; ``debug_traceTransaction`` has no steps unless Anvil runs with
        ``--steps-tracing``)."""
        tx = self.w3.eth.get_transaction(tx_hash)
        receipt = self.w3.eth.get_transaction_receipt(tx_hash)
        call = {"from": tx["from"], "to": tx["to"], "data": Web3.to_hex(tx["input"]), "gas": hex(tx["gas"])}
        options = {"disableStorage": True, "disableMemory": True}
        block = hex(receipt["blockNumber"] - 1)
        steps = self.w3.provider.make_request("debug_traceCall", [call, block, options])["result"]["structLogs"]
        buckets: dict[str, int] = {}
        for i, step in enumerate(steps):
            if step["depth"] != 1:
                continue
            op, cost = step["op"], int(step["gasCost"])
            if op in CALLS:
                after = next((s for s in steps[i + 1 :] if s["depth"] == 1), None)
                cost = int(step["gas"]) - int(after["gas"]) if after else cost
            key = "LOG" if op.startswith("LOG") else op
            buckets[key] = buckets.get(key, 0) + cost
        execution = sum(buckets.values())
        out = {"intrinsic+calldata": int(receipt["gasUsed"]) - execution}
        for op, cost in sorted(buckets.items(), key=lambda kv: -kv[1]):
            if op in ("SSTORE", "SLOAD", "CALL", "STATICCALL", "KECCAK256", "LOG"):
                out[op] = cost
        out["other opcodes"] = execution - sum(v for k, v in out.items() if k != "intrinsic+calldata")
        return out

    # ----------------------------------------------------------------- setup

    def deploy(self) -> None:
        deployment = deploy_all(
            self.client,
            self.deployer,
            oracle_signers=[s.address for s in self.signers],
            oracle_threshold=self.threshold,
        )
        names = ("OpenToken", "DatanetRegistry", "ModelRegistry", "RewardDistributor", "InferenceMarket")
        self.c = Contracts(*(self.client.contract(deployment, n) for n in names))

    def publish_model(self) -> int:
        c, me = self.c, self.deployer
        self.send(c.token.functions.mint(me.address, 1_000_000 * OPEN), me, "mint")
        self.send(c.token.functions.approve(c.datanets.address, MAX_UINT256), me, "approve registry")
        self.send(c.datanets.functions.createDatanet("bench", "", 0), me, "create datanet")
        content = keccak(text="bench-contribution")
        self.send(c.datanets.functions.contribute(1, content, "", 1, 0), me, "contribute")
        self.send(c.datanets.functions.approve(1), me, "approve contribution")
        self.send(c.datanets.functions.publishVersion(1, MerkleTree([content]).root, 1, ""), me, "publish")
        base, adapter = keccak(text="base"), keccak(text="adapter")
        self.send(c.models.functions.register(base, adapter, [(1, 1)], PRICE, SPLIT, ""), me, "register model")
        return 1

    def receipts(self, tx_receipt: Any) -> list[tuple]:
        """Receipt structs of the payments in a transaction, from its two events."""
        market = self.c.market
        paid = market.events.InferencePaid().process_receipt(tx_receipt, errors=DISCARD)
        split = {
            e["args"]["requestId"]: e["args"]
            for e in market.events.FeeSplit().process_receipt(tx_receipt, errors=DISCARD)
        }
        out = []
        for event in paid:
            a, s = event["args"], split[event["args"]["requestId"]]
            parts = (s["protocolFee"], s["ownerAmount"], s["datanetOwnersAmount"], s["contributorsAmount"])
            out.append((a["requestId"], a["payer"], a["modelId"], s["modelOwner"], a["fee"], s["paidAt"], parts))
        return out

    # --------------------------------------------------------------- reports

    def submit(self, tree: RewardsTree, m: int | None = None) -> Any:
        """Sign the next epoch's report with the first m signers (ascending) and submit it; returns the receipt."""
        m = self.threshold if m is None else m
        self.epoch += 1
        distributor = self.c.distributor
        message = ReportMessage(
            config_digest=bytes(distributor.functions.configDigest().call()),
            epoch=self.epoch,
            rewards_root=tree.root,
            total_cumulative=tree.total,
            attribution_root=keccak(text=f"attribution-{self.epoch}"),
            report_uri=report_uri(keccak(text=f"report-{self.epoch}").hex()),
        )
        chain_id = self.client.chain_id
        signatures = order_for_contract(
            [sign_report(message, chain_id, distributor.address, k) for k in self.signers[:m]]
        )
        fn = distributor.functions.submitReport(
            message.epoch,
            message.rewards_root,
            message.total_cumulative,
            message.attribution_root,
            message.report_uri,
            [s.as_tuple() for s in signatures],
        )
        return self.send(fn, self.relayer, f"submit report (epoch {self.epoch}, m={m})")

    def set_threshold(self, m: int) -> None:
        """Rotate the threshold through the governance timelock (propose, wait it out on Anvil, apply)."""
        distributor = self.c.distributor
        signers = [s.address for s in self.signers]
        self.send(distributor.functions.proposeOracleConfig(signers, m), self.deployer, f"propose oracle config m={m}")
        wait = distributor.functions.governanceDelay().call()
        self.w3.provider.make_request("evm_increaseTime", [int(wait)])
        self.w3.provider.make_request("evm_mine", [])
        self.send(distributor.functions.applyOracleConfig(), self.deployer, f"apply oracle config m={m}")
        self.threshold = m

    def claim(self, tree: RewardsTree, account: str) -> tuple[Any, int]:
        """A relayer claims for ``account``; returns the receipt and the proof length."""
        amount, proof = tree.proof(account)
        fn = self.c.distributor.functions.claim(account, amount, proof)
        return self.send(fn, self.relayer, "claim"), len(proof)


# ------------------------------------------------------------------ measuring


def measure(client: ChainClient, log: Any) -> dict[str, Any]:
    b = Bench(client)
    b.deploy()
    c = b.c
    model_id = b.publish_model()
    r: dict[str, Any] = {}

    # payments: the payer approved the market once for everything (no allowance write per payment)
    b.send(c.token.functions.mint(b.payer.address, 100_000 * OPEN), b.deployer, "mint payer")
    b.send(c.token.functions.approve(c.market.address, MAX_UINT256), b.payer, "approve market")
    pay = c.market.functions.payForInference
    first = b.send(pay(model_id, keccak(text="q0"), PRICE), b.payer, "first payment")
    r["pay_for_inference_first"] = int(first["gasUsed"])
    steady = [b.send(pay(model_id, keccak(text=f"q{i}"), PRICE), b.payer, "payment") for i in (1, 2, 3)]
    r["pay_for_inference"] = int(steady[-1]["gasUsed"])
    r["pay_for_inference_breakdown"] = b.breakdown(steady[-1]["transactionHash"])
    batches = {}
    for n in (10, 64):
        hashes = [keccak(text=f"b{n}-{i}") for i in range(n)]
        fn = c.market.functions.payForInferenceBatch([model_id] * n, hashes, [PRICE] * n)
        batches[n] = b.send(fn, b.payer, f"batch of {n}")
    r["pay_for_inference_batch_per_item"] = int(batches[10]["gasUsed"]) // 10
    r["pay_for_inference_batch64_per_item"] = int(batches[64]["gasUsed"]) // 64

    # service: the deployer is the operator; the first serve creates the pool's slots, then a batch of 10
    singles = [rec for tx in (first, *steady) for rec in b.receipts(tx)]
    b.send(c.market.functions.markServed(singles), b.deployer, "serve singles")
    served10 = b.send(c.market.functions.markServed(b.receipts(batches[10])), b.deployer, "serve 10")
    r["mark_served_per_request"] = int(served10["gasUsed"]) // 10
    b.send(c.market.functions.markServed(b.receipts(batches[64])), b.deployer, "serve 64")
    funded = c.distributor.functions.totalFunded().call()
    log(f"pool funded through markServed: {funded / OPEN:,.2f} OPEN")

    # the claimants of every tree: two hold OPEN already, one holds nothing
    people = universe(max(SIZES))
    for index in (HOLDER, HOLDER_SAME_WORD):
        b.send(c.token.functions.mint(people[index], OPEN), b.deployer, "mint claimant")
    base = b.snapshot()

    first_reports, steady_m3, claims, proof_lengths = {}, {}, {}, {}
    for size in SIZES:
        b.revert(base)
        base = b.snapshot()
        b.epoch, b.threshold = 0, 3
        accounts = people[:size]
        started = time.perf_counter()
        trees = [RewardsTree(cumulative(accounts, e)) for e in (1, 2)]
        log(f"{size:>7,} accounts: trees built in {time.perf_counter() - started:.1f}s (Python RewardsTree)")
        assert trees[1].total <= funded
        first_reports[size] = int(b.submit(trees[0])["gasUsed"])
        report = b.submit(trees[1])
        steady_m3[size] = int(report["gasUsed"])
        claimed, proof_lengths[size] = b.claim(trees[1], people[HOLDER])
        claims[size] = int(claimed["gasUsed"])
        if size != HEADLINE_SIZE:
            continue
        r["submit_report_breakdown"] = b.breakdown(report["transactionHash"])
        r["claim_breakdown"] = b.breakdown(claimed["transactionHash"])
        r["claim_fresh_recipient"] = int(b.claim(trees[1], people[FRESH])[0]["gasUsed"])
        third = RewardsTree(cumulative(accounts, 3))
        b.submit(third)
        r["claim_repeat"] = int(b.claim(third, people[HOLDER])[0]["gasUsed"])
        r["submit_report"] = {}
        for m in THRESHOLDS:
            b.set_threshold(m)
            tree = RewardsTree(cumulative(accounts, b.epoch + 1))
            b.submit(tree)  # one report under the new config, then the measured one
            tree = RewardsTree(cumulative(accounts, b.epoch + 1))
            r["submit_report"][str(m)] = int(b.submit(tree)["gasUsed"])
    r["submit_report_first"] = first_reports[HEADLINE_SIZE]
    r["submit_report_first_by_accounts"] = {str(k): v for k, v in first_reports.items()}
    r["accounts"] = {str(k): v for k, v in steady_m3.items()}
    r["claim"] = claims[HEADLINE_SIZE]
    r["claim_by_accounts"] = {str(k): v for k, v in claims.items()}
    r["proof_length_by_accounts"] = {str(k): v for k, v in proof_lengths.items()}

    # peer 1: a naive push, one transfer per account (fresh accounts, then the same accounts again)
    b.revert(base)
    base = b.snapshot()
    targets = [to_checksum_address(keccak(text=f"push-{i}")[12:]) for i in range(50)]
    transfer = c.token.functions.transfer
    fresh_gas = [b.gas(transfer(t, UNIT * 4), b.deployer, "push") for t in targets]
    holder_gas = [b.gas(transfer(t, UNIT * 4), b.deployer, "push") for t in targets]
    r["naive_push_per_account"] = round(sum(fresh_gas) / len(fresh_gas))
    r["naive_push_per_account_to_holder"] = round(sum(holder_gas) / len(holder_gas))

    # peer 2: a single-shot Merkle claim over the same 1,000 accounts (index leaves, claimed bitmap)
    b.revert(base)
    accounts = people[:HEADLINE_SIZE]
    amounts = cumulative(accounts, 2)
    values = [encode(["uint256", "address", "uint256"], [i, a, amounts[a]]) for i, a in enumerate(accounts)]
    tree = MerkleTree(values)
    abi, bytecode = compile_reference()
    address = client.deploy(abi, bytecode, [c.token.address, tree.root], b.deployer, "deploy single-shot")[
        "contractAddress"
    ]
    single = client.w3.eth.contract(address=address, abi=abi)
    b.send(c.token.functions.mint(address, sum(amounts.values())), b.deployer, "fund single-shot")
    receipts = {}
    for key, index in (
        ("single_shot_merkle_claim", HOLDER),
        ("single_shot_merkle_claim_shared_word", HOLDER_SAME_WORD),
    ):
        fn = single.functions.claim(index, accounts[index], amounts[accounts[index]], tree.proof(index))
        receipts[key] = b.send(fn, b.relayer, "single-shot claim")
        r[key] = int(receipts[key]["gasUsed"])
    r["single_shot_merkle_claim_breakdown"] = b.breakdown(receipts["single_shot_merkle_claim"]["transactionHash"])

    # what a contributor pays to collect N epochs: one cumulative claim after N reports, vs one single-shot
    # claim per epoch (a Uniswap-style distributor per epoch holding that epoch's amounts)
    base = b.snapshot()  # the single-shot contract above holds nothing the epochs below touch
    for count in EPOCH_COUNTS:
        r[f"epochs_{count}"] = collect_epochs(b, people[:HEADLINE_SIZE], count, abi, bytecode, log)
        b.revert(base)
        base = b.snapshot()
    return r


def collect_epochs(b: Bench, accounts: list[str], count: int, abi: list[dict], bytecode: str, log: Any) -> dict:
    """Gas the claimant ``accounts[HOLDER]`` spends to collect ``count`` epochs, both ways (claims only: the
    oracles' reports and the reference's deployments are not the contributor's gas)."""
    c, claimant = b.c, accounts[HOLDER]
    b.epoch, b.threshold = 0, 3
    tree = None
    for epoch in range(1, count + 1):
        tree = RewardsTree(cumulative(accounts, epoch))
        b.submit(tree)
    ours, _ = b.claim(tree, claimant)
    single_total = 0
    per_epoch = {a: UNIT * (1 + i % 7) for i, a in enumerate(accounts)}  # what each epoch adds
    values = [encode(["uint256", "address", "uint256"], [i, a, per_epoch[a]]) for i, a in enumerate(accounts)]
    epoch_tree = MerkleTree(values)  # the same increments every epoch: one tree, one contract per epoch
    for _ in range(count):
        address = b.client.deploy(abi, bytecode, [c.token.address, epoch_tree.root], b.deployer, "deploy epoch")[
            "contractAddress"
        ]
        b.send(c.token.functions.mint(address, sum(per_epoch.values())), b.deployer, "fund epoch")
        single = b.client.w3.eth.contract(address=address, abi=abi)
        fn = single.functions.claim(HOLDER, claimant, per_epoch[claimant], epoch_tree.proof(HOLDER))
        single_total += int(b.send(fn, b.relayer, "single-shot epoch claim")["gasUsed"])
    result = {"ours_total": int(ours["gasUsed"]), "single_shot_total": single_total}
    log(f"collect {count:>3} epochs: ours {result['ours_total']:,} gas, single-shot {single_total:,} gas")
    return result


def compile_reference() -> tuple[list[dict], str]:
    """Compile the reference contract (outside contracts/, so not through the package's compile helper)."""
    import vyper
    from vyper.compiler.input_bundle import FilesystemInputBundle

    bundle = FilesystemInputBundle([REFERENCE.parent, *[Path(p) for p in sys.path if p]])
    out = vyper.compile_code(
        REFERENCE.read_text(), contract_path=REFERENCE.name, input_bundle=bundle, output_formats=["abi", "bytecode"]
    )
    return out["abi"], out["bytecode"]


# ------------------------------------------------------------------- reporting


def ordered(r: dict[str, Any]) -> dict[str, Any]:
    """The required keys first, in the documented order, then the extras."""
    head = ["submit_report", "claim", "pay_for_inference", "naive_push_per_account", "accounts"]
    return {**{k: r[k] for k in head}, **{k: v for k, v in r.items() if k not in head}}


def table(r: dict[str, Any]) -> str:
    sr, acc, cba, pl = r["submit_report"], r["accounts"], r["claim_by_accounts"], r["proof_length_by_accounts"]
    rows = [
        (
            "submitReport, m = 1 / 3 / 5 signatures (steady state, 1,000 accounts)",
            f"{sr['1']:,} / {sr['3']:,} / {sr['5']:,}",
        ),
        ("submitReport, first-ever report (m = 3)", f"{r['submit_report_first']:,}"),
        (
            "submitReport at m = 3 with 10 / 1,000 / 100,000 accounts in the tree",
            f"{acc['10']:,} / {acc['1000']:,} / {acc['100000']:,}",
        ),
        ("claim, first-time, recipient holds OPEN, 1,000 accounts (headline)", f"{r['claim']:,}"),
        ("claim, first-time, fresh recipient (no OPEN yet)", f"{r['claim_fresh_recipient']:,}"),
        ("claim, repeat (account claimed in an earlier epoch)", f"{r['claim_repeat']:,}"),
        (
            f"claim by tree size 10 / 1,000 / 100,000 (proof length {pl['10']} / {pl['1000']} / {pl['100000']})",
            f"{cba['10']:,} / {cba['1000']:,} / {cba['100000']:,}",
        ),
        (
            "payForInference (steady state) / first ever",
            f"{r['pay_for_inference']:,} / {r['pay_for_inference_first']:,}",
        ),
        (
            "payForInferenceBatch per inference (batch of 10 / 64)",
            f"{r['pay_for_inference_batch_per_item']:,} / {r['pay_for_inference_batch64_per_item']:,}",
        ),
        ("markServed per request (batch of 10)", f"{r['mark_served_per_request']:,}"),
        (
            "naive push: one OPEN transfer per account (fresh / already holding)",
            f"{r['naive_push_per_account']:,} / {r['naive_push_per_account_to_holder']:,}",
        ),
        (
            "single-shot Merkle claim, 1,000 accounts (fresh bitmap word / shared word)",
            f"{r['single_shot_merkle_claim']:,} / {r['single_shot_merkle_claim_shared_word']:,}",
        ),
        *[
            (
                f"collect {n} epoch{'s' * (n > 1)}: one cumulative claim / one single-shot claim per epoch (ratio)",
                f"{r[f'epochs_{n}']['ours_total']:,} / {r[f'epochs_{n}']['single_shot_total']:,} "
                f"({r[f'epochs_{n}']['single_shot_total'] / r[f'epochs_{n}']['ours_total']:.1f}x)",
            )
            for n in EPOCH_COUNTS
            if f"epochs_{n}" in r
        ],
    ]
    width = max(len(a) for a, _ in rows)
    lines = [f"| {'measurement':<{width}} | gas |", f"|{'-' * (width + 2)}|----:|"]
    lines += [f"| {a:<{width}} | {g} |" for a, g in rows]
    return "\n".join(lines)


def breakdown_line(name: str, parts: dict[str, int]) -> str:
    return f"{name}: " + ", ".join(f"{k} {v:,}" for k, v in parts.items())


def goals(r: dict[str, Any]) -> list[str]:
    out = []
    for name, value, goal in (
        ("submitReport at m = 3", r["submit_report"]["3"], GOALS["submit_report_m3"]),
        ("claim (headline)", r["claim"], GOALS["claim"]),
    ):
        verdict = "met" if value <= goal else f"MISSED by {value - goal:,}"
        out.append(f"{name}: {value:,} gas, goal <= {goal:,}: {verdict}")
    ten = r["epochs_10"]
    ratio = ten["single_shot_total"] / ten["ours_total"]
    verdict = "met" if ratio >= GOALS["epochs_10_ratio"] else "MISSED"
    out.append(
        f"collecting 10 epochs: {ratio:.1f}x cheaper than single-shot, goal >= {GOALS['epochs_10_ratio']}x: {verdict}"
    )
    return out


def append_markdown(path: Path, r: dict[str, Any], started: dt.datetime, wall: float, versions: dict) -> None:
    if not path.exists():
        path.write_text("# Benchmarks\n")
    command = " ".join([".venv/bin/python", "benchmarks/gas.py", *map(shlex.quote, sys.argv[1:])])
    section = f"""
## Settlement gas on Anvil — {started.strftime("%Y-%m-%d %H:%M UTC")}

Command: `{command}` (wall time {wall:.0f}s; {versions["anvil"]}, vyper {versions["vyper"]}, nproc={os.cpu_count()})

Gas is the `gasUsed` of whole transactions (21,000 intrinsic + calldata included). Oracle set of 5 signers,
m rotated with `proposeOracleConfig` + `applyOracleConfig` (timelocked);
the pool was funded through `InferenceMarket.markServed`; claims are sent by a
relayer; the payer approved the market once for everything. "Steady state" = not the contract's first write of
its slots. `accounts` in `benchmarks/results/gas.json` is submitReport at m = 3 per tree size. "Collect N
epochs" is the claimant's own gas only: N reports then one cumulative `claim`, vs N Uniswap-style single-shot
distributors (one per epoch, that epoch's amounts) and one `claim` in each (`epochs_N` in the JSON).

{table(r)}

{breakdown_line("Where the headline claim's gas goes", r["claim_breakdown"])}.

{breakdown_line("Where submitReport (m = 3) gas goes", r["submit_report_breakdown"])}.

{breakdown_line("Where payForInference gas goes", r["pay_for_inference_breakdown"])}.

(Breakdowns replay the transaction with `debug_traceCall`: top-level opcodes only; a call's whole cost, callee
included, is charged to the CALL/STATICCALL, e.g. the token transfer, `ModelRegistry.getModel`, ecrecover.)

Goals: {"; ".join(goals(r))}.
"""
    with path.open("a") as handle:
        handle.write(section)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path, default=RESULTS, help="result file (default benchmarks/results/gas.json)")
    p.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md", help="append a section here")
    p.add_argument("--no-markdown", action="store_true", help="do not append to BENCHMARKS.md")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f}s] {message}", flush=True)

    anvil_version = subprocess.run([find_anvil(), "--version"], capture_output=True, text=True, check=False)
    import vyper

    versions = {"anvil": (anvil_version.stdout.splitlines() or ["anvil"])[0], "vyper": vyper.__version__}
    with tempfile.TemporaryDirectory(prefix="gas-bench-") as tmp:
        node = LocalNode(Path(tmp), port=free_port())
        node.start(fresh=True)
        log(f"anvil at {node.rpc_url}")
        try:
            results = ordered(measure(ChainClient(node.rpc_url, timeout_s=120), log))
        finally:
            node.stop()
            log("anvil stopped")
    wall = time.perf_counter() - t0
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(breakdown_line("claim", results["claim_breakdown"]))
    print(breakdown_line("submitReport m=3", results["submit_report_breakdown"]))
    print(breakdown_line("payForInference", results["pay_for_inference_breakdown"]))
    for line in goals(results):
        print(line)
    if not args.no_markdown:
        append_markdown(args.markdown, results, started, wall, versions)
        print(f"appended to {args.markdown}")
    print(f"wrote {args.json} in {wall:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

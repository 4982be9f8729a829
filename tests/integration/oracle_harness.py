"""Test and benchmark harness for oracle nodes: a chain with a market, a paying driver, node processes.

Everything is real: Anvil (interval mining), the deployed contracts, signed transactions, the served-record
log the server writes, and `attribution-oracle oracle run` processes on free ports.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import eth_abi
import httpx
import torch
from cli_harness import PASSWORD, free_port, make_cli
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types

from attribution_oracle.chain.anvil_process import LocalNode
from attribution_oracle.chain.contract_deploy import deploy_all
from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.event_decoding import LogDecoder, fetch_events
from attribution_oracle.chain.wallets import Wallets, dev_account
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.serving.served_log import ServedRecord, ServedRecordStore
from attribution_oracle.settlement.epoch_report import Report
from attribution_oracle.store.blobs import BlobStore

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "demo" / "corpus"
ORACLE_KEYS = (7, 8, 9)
PAYER, OPERATOR = 5, 6
BATCH = 64
BLOCK_TIME_S = 0.2
OUTPUT_TOKENS = 8
# The market's model: a real ModelFactory run on Datanet 1 (tiny:0 base, a few steps: seconds of training), its
# manifest registered as the model's metadataURI, so nodes with `--scorer factory` attribute with the real scorer.
TRAIN = ["--base", "tiny:0", "--steps", "4", "--batch-size", "2", "--seq-len", "64", "--proj-dim", "32",
         "--checkpoint-every", "2"]  # fmt: skip


@dataclass
class Market:
    """A chain with the contracts, one model trained on one Datanet, and three oracle wallets (m = 2)."""

    root: Path
    anvil: LocalNode
    client: ChainClient
    deployment: Deployment
    served_log: Path
    wallets: list[str]
    threshold: int
    adapter_hash: str
    manifest: str

    @property
    def rpc(self) -> str:
        """The RPC URL."""
        return self.anvil.rpc_url

    def contract(self, name: str):
        """A contract handle."""
        return self.client.contract(self.deployment, name)

    def rpc_call(self, method: str, params: list) -> object:
        """A raw JSON-RPC call (evm_snapshot, evm_revert, ...)."""
        response = self.client.w3.provider.make_request(method, params)
        return response["result"]


def make_market(
    root: Path, threshold: int = 2, epoch_blocks: int = 10, served_log: Path | None = None, claim_delay_s: int = 0
) -> Market:
    """Start Anvil (0.2 s blocks) and set up the market; the caller stops ``market.anvil`` (a failed setup stops it).

    ``served_log`` is where the emulated server writes its records (default ``root/served.sqlite``);
    ``claim_delay_s`` is the distributor's veto window."""
    anvil = LocalNode(root / "anvil", port=free_port())
    anvil.start(fresh=True, block_time=BLOCK_TIME_S)
    try:
        client = ChainClient(anvil.rpc_url)
        accounts = root / "accounts"
        wallets = Wallets(accounts)
        names = []
        for i, key in enumerate(ORACLE_KEYS, start=1):
            wallets.import_key(f"oracle{i}", dev_account(key).key.hex(), PASSWORD)
            names.append(f"oracle{i}")
        deployment = deploy_all(
            client,
            dev_account(0),
            oracle_signers=[dev_account(k).address for k in ORACLE_KEYS],
            oracle_threshold=threshold,
            epoch_blocks=epoch_blocks,
            operators=[dev_account(OPERATOR).address],
            claim_delay_s=claim_delay_s,
        )
        home = root / "setup"
        deployment.save(home / "deployments")
        ao = make_cli(home, anvil.rpc_url)
        for who in ("dev:1", "dev:2", "dev:3", "dev:4"):
            ao("token", "mint", who, "100", "--from", "dev:0")
        ao("token", "mint", f"dev:{PAYER}", "1000000", "--from", "dev:0")
        ao("datanet", "create", "Bees", "--from", "dev:1")
        ao("datanet", "contribute", "1", *map(str, sorted((CORPUS / "alice").iterdir())[:3]), "--from", "dev:2")
        ao("datanet", "contribute", "1", *map(str, sorted((CORPUS / "bob").iterdir())[:3]), "--from", "dev:3")
        ao("datanet", "approve", "1", "2", "3", "4", "5", "6", "--from", "dev:1")
        ao("datanet", "publish", "1", "--from", "dev:1")
        with warnings.catch_warnings():  # the in-process CLI runner mixes stderr (torch warnings) into stdout
            warnings.simplefilter("ignore")
            trained = ao.json("model", "train", "--datanet", "1", *TRAIN, "--register", "--price", "1",
                              "--split", "5000/4000/1000", "--from", "dev:4")  # fmt: skip
        market = client.contract(deployment, "InferenceMarket")
        token = client.contract(deployment, "OpenToken")
        client.send(token.functions.approve(market.address, 2**255), dev_account(PAYER), "approve market")
        served_log = served_log or root / "served.sqlite"
        ServedRecordStore(served_log)
        return Market(root, anvil, client, deployment, served_log, names, threshold, trained["adapterHash"],
                      trained["manifest"])  # fmt: skip
    except BaseException:  # a failed setup must not leave its chain running
        anvil.stop()
        raise


@dataclass
class Driver:
    """Pays for inferences in batches, records them as the server would, and marks them served.

    Records carry real token ids of the trained tiny model: the prompt's UTF-8 bytes (its byte tokenizer) and
    the model's own greedy output. Each payment's ``inputHash`` is the sha256 of the prompt its record carries
    (the oracle checks it, as the server does)."""

    market: Market
    prompts: int = 0
    paid_at: dict[int, float] = field(default_factory=dict)
    served: list[int] = field(default_factory=list)
    prompt_of: dict[int, str] = field(default_factory=dict)
    prepared: dict[str, tuple[int, ...]] = field(default_factory=dict)  # prompt -> output ids made ahead

    def __post_init__(self) -> None:
        self._model = None
        self._decoder = LogDecoder([self.market.contract("InferenceMarket")])

    def pay(self, count: int, tag: str = "", in_flight: int = 1) -> list[tuple]:
        """Pay for ``count`` inferences (batches of 64); returns their receipts (for ``markServed``).

        ``in_flight`` batches are sent back to back (``ChainClient.send_many``: consecutive nonces, receipts
        awaited together), so several batches land in one block instead of one block each."""
        contract = self.market.contract("InferenceMarket")
        receipts: list[tuple] = []
        while count > 0:
            calls, texts_of = [], []
            while count > 0 and len(calls) < max(1, in_flight):
                n = min(BATCH, count)
                texts = [self.prompt_text(self.prompts + i, tag) for i in range(n)]
                hashes = [hashlib.sha256(t.encode()).digest() for t in texts]
                calls.append((contract.address, _calldata(contract, "payForInferenceBatch", [1] * n, hashes,
                                                          [10**18] * n), f"pay {n}"))  # fmt: skip
                texts_of.append(texts)
                self.prompts += n
                count -= n
            sent = self.market.client.send_calldata_many(calls, dev_account(PAYER))
            now = time.time()
            for receipt, texts in zip(sent, texts_of, strict=True):
                receipts += self._paid(receipt, texts, now)
        self._tag = tag
        return receipts

    @staticmethod
    def prompt_text(number: int, tag: str = "") -> str:
        """The ``number``-th prompt the driver pays for (deterministic, so outputs can be made ahead)."""
        return f"{tag}prompt {number}: how do bees make honey?"

    def _paid(self, receipt, texts: list[str], now: float) -> list[tuple]:
        """The ``markServed`` receipts of one ``payForInferenceBatch`` transaction (request ids follow ``texts``)."""
        events = [e for e in map(self._decoder.decode, map(_raw_log, receipt["logs"])) if e is not None]
        paid = [e for e in events if e["event"] == "InferencePaid"]
        for event, text in zip(paid, texts, strict=True):  # request ids follow the batch's order
            self.prompt_of[event["args"]["requestId"]] = text
        splits = {e["args"]["requestId"]: e["args"] for e in events if e["event"] == "FeeSplit"}
        rows = []
        for event in paid:
            a = event["args"]
            s = splits[a["requestId"]]
            self.paid_at[a["requestId"]] = now
            rows.append(
                (a["requestId"], a["payer"], a["modelId"], s["modelOwner"], a["fee"], s["paidAt"],
                 (s["protocolFee"], s["ownerAmount"], s["datanetOwnersAmount"], s["contributorsAmount"]))
            )  # fmt: skip
        return rows

    def prepare(self, count: int, tag: str = "") -> None:
        """Compute ahead the model's outputs for the next ``count`` prompts (what the server computes before
        it answers; a benchmark does this untimed so the driver's own model does not compete with the nodes)."""
        texts = [self.prompt_text(self.prompts + i, tag) for i in range(count)]
        outputs = self.generate(dict(enumerate(texts)))
        self.prepared.update({texts[i]: out for i, out in outputs.items()})

    def generate(self, prompts: dict[int, str]) -> dict[int, tuple[int, ...]]:
        """Greedy outputs (``OUTPUT_TOKENS`` byte ids) of the market's trained model, as the server would answer.

        Prompt ids are the UTF-8 bytes (the tiny model's byte tokenizer); prompts of equal length are batched."""
        if not prompts:
            return {}
        if self._model is None:
            torch.set_num_threads(1)
            from attribution_oracle.factory.scorer import load_model_scorer

            store = BlobStore(self.market.root / "setup" / "blobs")
            self._model = load_model_scorer(store, self.market.manifest, cache_dir=self.market.root / "gen-cache",
                                            dtype=torch.float32).model  # fmt: skip
            # byte ids only (the byte tokenizer's special tokens come after the 256 bytes)
            self._specials = list(range(256, self._model.config.vocab_size))
        by_length: dict[int, list[int]] = {}
        for request_id, prompt in prompts.items():
            by_length.setdefault(len(prompt.encode()), []).append(request_id)
        outputs: dict[int, tuple[int, ...]] = {}
        with torch.no_grad():
            for length, ids in by_length.items():
                batch = torch.tensor([list(prompts[i].encode()) for i in ids], dtype=torch.long)
                out = self._model.generate(input_ids=batch, attention_mask=torch.ones_like(batch),
                                           max_new_tokens=OUTPUT_TOKENS, do_sample=False, pad_token_id=0,
                                           suppress_tokens=self._specials)  # fmt: skip
                for request_id, row in zip(ids, out[:, length:].tolist(), strict=True):
                    outputs[request_id] = tuple(int(t) for t in row)
        return outputs

    def serve(self, receipts: list[tuple], tag: str = "", without_record: frozenset[int] = frozenset()) -> None:
        """Write each request's served record (as the server does), then mark them served on-chain.

        Requests in ``without_record`` are marked served but get no record (a faulty server). Outputs made
        ahead by ``prepare`` are used as they are; the records are written in one transaction and the
        ``markServed`` batches are sent back to back."""
        store = ServedRecordStore(self.market.served_log)
        wanted = [r[0] for r in receipts if r[0] not in without_record]
        outputs = {i: self.prepared[self.prompt_of[i]] for i in wanted if self.prompt_of[i] in self.prepared}
        outputs.update(self.generate({i: self.prompt_of[i] for i in wanted if i not in outputs}))
        records = []
        for request_id in wanted:
            prompt = self.prompt_of[request_id]
            output_ids = outputs[request_id]
            output = bytes(output_ids).decode("utf-8", errors="replace")
            records.append(
                ServedRecord(request_id, 1, self.market.adapter_hash, prompt, tuple(prompt.encode()), output_ids,
                             output, float(request_id))
            )  # fmt: skip
        store.add_many(records)
        contract = self.market.contract("InferenceMarket")
        chunks = [receipts[start : start + BATCH] for start in range(0, len(receipts), BATCH)]
        calls = [(contract.address, _calldata(contract, "markServed", chunk), "serve") for chunk in chunks]
        self.market.client.send_calldata_many(calls, dev_account(OPERATOR))
        self.served += [r[0] for r in receipts]


def _calldata(contract, name: str, *args) -> bytes:
    """ABI-encoded calldata of ``contract.name(*args)`` (``eth_abi`` directly: web3's encoder takes ~0.3 s for
    64 ``markServed`` receipts on a loaded machine, which capped the benchmark's driver)."""
    abi = next(f for f in contract.abi if f.get("type") == "function" and f.get("name") == name)
    return function_abi_to_4byte_selector(abi) + eth_abi.encode(get_abi_input_types(abi), list(args))


def _raw_log(log: dict) -> dict:
    """A web3-formatted receipt log back in JSON-RPC form (for ``LogDecoder``)."""
    return {
        "address": log["address"],
        "topics": [t.to_0x_hex() for t in log["topics"]],
        "data": log["data"].to_0x_hex(),
        "blockNumber": hex(log["blockNumber"]),
        "blockHash": log["blockHash"].to_0x_hex(),
        "logIndex": hex(log["logIndex"]),
        "transactionHash": log["transactionHash"].to_0x_hex(),
    }


class NodeProcess:
    """One `attribution-oracle oracle run` subprocess with its own home, port and log."""

    def __init__(self, market: Market, index: int, ports: list[int], extra: list[str] | None = None,
                 state: str | None = None) -> None:  # fmt: skip
        """Node ``index`` (1-based) of the set; ``ports`` are every node's ports (peers are the others)."""
        self.market = market
        self.index = index
        self.port = ports[index - 1]
        self.peers = [f"http://127.0.0.1:{p}" for i, p in enumerate(ports, start=1) if i != index]
        self.home = market.root / f"node{index}"
        self.state = self.home / "oracle" / (state or f"oracle{index}")
        (self.home / "deployments").mkdir(parents=True, exist_ok=True)
        # the node's content store holds the trained model's manifest, adapter, checkpoints and index files
        shutil.copytree(market.root / "setup" / "blobs", self.home / "blobs", dirs_exist_ok=True)
        shutil.copy(market.root / "setup" / "deployments" / "31337.json", self.home / "deployments" / "31337.json")
        self.extra = extra or []
        self.proc: subprocess.Popen | None = None
        self.kills = 0

    def command(self) -> list[str]:
        """The command line."""
        args = ["--home", str(self.home), "--rpc", self.market.rpc, "oracle", "run", "--wallet",
                f"oracle{self.index}", "--port", str(self.port), "--served", str(self.market.served_log),
                "--confirmations", "2", "--scorer", "factory", "--poll-interval", "0.2",
                "--state-dir", str(self.state)]  # fmt: skip
        for peer in self.peers:
            args += ["--peer", peer]
        return [sys.executable, "-c", "from attribution_oracle.cli.main import main; main()", *args, *self.extra]

    def start(self) -> None:
        """Start the process (logs appended to ``<home>/node.log``)."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests" / "integration")]),
            "ATTRIBUTION_ACCOUNTS_DIR": str(self.market.root / "accounts"),
            "ATTRIBUTION_PASSWORD": PASSWORD,
            "OMP_NUM_THREADS": "1",  # one torch thread per node: three nodes share two cores
        }
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / "node.log", "ab") as log:
            self.proc = subprocess.Popen(self.command(), env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip

    def alive(self) -> bool:
        """Whether the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL, no cleanup."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.kills += 1

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(10)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until the node's HTTP server answers /health."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.alive(), f"node {self.index} exited: see {self.home / 'node.log'}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code in (200, 503):
                    return
            time.sleep(0.2)
        raise AssertionError(f"node {self.index} did not come up within {timeout_s}s")

    def status(self) -> dict | None:
        """The node's ``/v1/status`` (None when it does not answer)."""
        with contextlib.suppress(httpx.HTTPError, ValueError):
            return httpx.get(f"http://127.0.0.1:{self.port}/v1/status", timeout=2).json()
        return None

    def log_lines(self) -> list[dict]:
        """The node's JSON log lines."""
        lines = []
        for line in (self.home / "node.log").read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
        return lines


def accepted_reports(market: Market, stores: list[BlobStore]) -> list[Report]:
    """Every accepted report on-chain (not vetoed), loaded from whichever store holds it, oldest first."""
    distributor = market.contract("RewardDistributor")
    head = market.client.block("latest")["number"]
    events = fetch_events(market.client, [distributor], market.deployment.block_number, head)
    vetoed = {e["args"]["epoch"] for e in events if e["event"] == "ReportVetoed"}
    reports = []
    for e in events:
        if e["event"] != "ReportSubmitted" or e["args"]["epoch"] in vetoed:
            continue
        digest = e["args"]["reportURI"].removeprefix("sha256://")
        store = next(s for s in stores if s.has(digest))
        reports.append(Report.from_json(store.get(digest)))
    return reports


def served_pools(market: Market) -> dict[int, int]:
    """Request id -> contributors + Datanet-owners pool, for every request served on the current chain."""
    contract = market.contract("InferenceMarket")
    head = market.client.block("latest")["number"]
    events = fetch_events(market.client, [contract], market.deployment.block_number, head)
    served = {e["args"]["requestId"] for e in events if e["event"] == "InferenceServed"}
    return {
        e["args"]["requestId"]: e["args"]["contributorsAmount"] + e["args"]["datanetOwnersAmount"]
        for e in events
        if e["event"] == "FeeSplit" and e["args"]["requestId"] in served
    }


def wait_settled(market: Market, stores: list[BlobStore], timeout_s: float = 90.0) -> tuple[list[Report], dict]:
    """Wait until every served request is in an accepted report; returns the reports and the pools."""
    deadline = time.monotonic() + timeout_s
    while True:
        pools = served_pools(market)
        try:
            reports = accepted_reports(market, stores)
        except StopIteration:
            reports = []
        settled = {i.request_id for r in reports for i in r.inferences}
        if pools and set(pools) <= settled:
            return reports, pools
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(set(pools) - settled)} of {len(pools)} served requests unsettled")
        time.sleep(0.5)

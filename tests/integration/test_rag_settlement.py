"""RAG attribution end to end on real parts: `serve --rag` over real HTTP, three oracle nodes settling on Anvil.

The market's model is a real ModelFactory run (tiny:0 base, lexical index built from the verified blobs). The server
retrieves from that index, records the retrieved ids and marks the requests served with real signed transactions;
two honest `oracle run` processes settle them 2-of-3 with the retrieved ids in the attribution leaf, and the
retrieved contribution's contributor claims its OPEN. A third node reads a served log whose retrieved ids were
dropped: its report differs, so it never joins the quorum.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import torch
from cli_harness import free_port, make_cli
from oracle_harness import PAYER, Driver, Market, NodeProcess, accepted_reports, make_market, wait_settled

from attribution_oracle.chain.wallets import dev_account, dev_signer
from attribution_oracle.models import load_base_model
from attribution_oracle.oracle.db import OracleDB
from attribution_oracle.serving.http_server import ServerThread
from attribution_oracle.serving.openlora_service import OpenLoraService
from attribution_oracle.serving.rag_retriever import DEFAULT_TOP_K, retriever_for_model
from attribution_oracle.serving.served_log import ServedRecord, ServedRecordStore
from attribution_oracle.settlement.allocation import ServedInference, allocate
from attribution_oracle.settlement.chain_data import training_data
from attribution_oracle.store.blobs import BlobStore

QUESTION = "How do I count varroa mites with an alcohol wash? "
REQUESTS = 3


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    """The chain and market (one trained model with a lexical index), stopped at the end."""
    torch.set_num_threads(1)
    m = make_market(tmp_path_factory.mktemp("rag"))
    try:
        yield m
    finally:
        m.anvil.stop()


@pytest.fixture(scope="module")
def rag_server(market: Market) -> Iterator[ServerThread]:
    """The OpenLoRA server for model 1 with retrieval on, marking served as the operator (dev:6)."""
    service = OpenLoraService.from_chain(
        market.client, market.deployment, load_base_model("tiny:0"), BlobStore(market.root / "setup" / "blobs"),
        market.served_log, [1], dev_signer("dev:6"), max_batch=4, mark_interval_s=0.1, rag=True,
    )  # fmt: skip
    thread = ServerThread(service, port=free_port()).start()
    try:
        yield thread
    finally:
        thread.stop(timeout_s=20)


@pytest.fixture(scope="module")
def served(market: Market, rag_server: ServerThread) -> dict[int, dict]:
    """Pay for ``REQUESTS`` inferences on-chain and have the RAG server answer them over HTTP."""
    driver = Driver(market, prompts=0)
    answers = {}
    for receipt in driver.pay(REQUESTS, tag=QUESTION):
        request_id = receipt[0]
        body = {"model": "1", "prompt": driver.prompt_of[request_id], "max_tokens": 6, "request_id": request_id}
        response = httpx.post(f"{rag_server.url}/v1/completions", json=body, timeout=120)
        assert response.status_code == 200, response.text
        answers[request_id] = response.json()
    return answers


def test_serve_rag_records_what_the_models_retriever_returns(market, rag_server, served) -> None:
    store = BlobStore(market.root / "setup" / "blobs")
    retriever = retriever_for_model(market.client, market.deployment, store, 1, market.root / "check-cache")
    log = ServedRecordStore(market.served_log)
    for request_id, answer in served.items():
        record = log.get(request_id)
        expected = [r.contribution_id for r in retriever.retrieve(record.prompt, DEFAULT_TOP_K)]
        assert len(expected) == DEFAULT_TOP_K
        assert answer["retrieved"] == expected and list(record.retrieved) == expected
        assert len(record.prompt_token_ids) > len(record.prompt.encode()), "the passages are in the model's context"
        usage = answer["usage"]  # the model read the passages; the payer is metered for the paid prompt only
        assert usage["prompt_tokens"] == len(record.prompt_token_ids)
        assert usage["billed_prompt_tokens"] == len(record.prompt.encode()) < usage["prompt_tokens"]
    health = httpx.get(f"{rag_server.url}/health").json()
    assert health["rag"] == {"models": [1], "top_k": DEFAULT_TOP_K}


def test_attack_node_dropping_retrieved_ids_is_outvoted_and_rag_records_settle_and_claim(market, served) -> None:
    # the dishonest node's log: the same records with the retrieved ids dropped and the plain prompt's tokens
    dropped_log = market.root / "dropped.sqlite"
    dropped = ServedRecordStore(dropped_log)
    for record in ServedRecordStore(market.served_log).after(0, 100):
        dropped.add(ServedRecord(record.request_id, record.model_id, record.adapter_hash, record.prompt,
                                 tuple(record.prompt.encode()), record.output_token_ids, record.output_text,
                                 record.served_at))  # fmt: skip
    ports = [free_port() for _ in range(3)]
    nodes = [NodeProcess(market, 1, ports), NodeProcess(market, 2, ports), NodeProcess(market, 3, ports)]
    nodes[2].extra = ["--served", str(dropped_log)]  # the last --served wins
    try:
        for node in nodes:
            node.start()
        stores = [BlobStore(market.root / f"node{i}" / "blobs") for i in (1, 2, 3)]
        reports, pools = wait_settled(market, stores, timeout_s=240)
        settled = {i.request_id: i for r in reports for i in r.inferences}
        assert set(settled) == set(served)
        contributions, owners = training_data(market.client, market.deployment, 1)
        for request_id, answer in served.items():
            item = settled[request_id]
            assert list(item.retrieved) == answer["retrieved"], "the accepted report carries the retrieved ids"
            assert item.fallback is None
            contributors_pool = pools[request_id] - _datanet_pool(market, request_id)
            inference = ServedInference(request_id, 1, contributors_pool, _datanet_pool(market, request_id))
            assert item.shares == allocate(inference, item.scores, contributions, owners, item.retrieved)
        # the dropping node drafted a different report for the settled epoch; it was never accepted
        accepted = {(r.epoch, _uri(r)) for r in accepted_reports(market, stores)}
        db = OracleDB(nodes[2].state / "oracle.sqlite") if (nodes[2].state / "oracle.sqlite").exists() else None
        deadline = time.monotonic() + 60
        drafts: list = []
        while time.monotonic() < deadline and not drafts:
            if db is None and (nodes[2].state / "oracle.sqlite").exists():
                db = OracleDB(nodes[2].state / "oracle.sqlite")
            drafts = db.query("SELECT epoch, report_uri FROM epochs") if db is not None else []
            time.sleep(0.5)
        assert drafts, "the dropping node built its own report"
        assert not set(drafts) & accepted, "a report without the retrieved ids never reached the quorum"
        for node in nodes[:2]:
            assert node.alive()

        # the contributor of a retrieved contribution claims its OPEN
        cited = settled[min(settled)].retrieved[0]
        contributor = next(c.contributor for c in contributions if c.id == cited)
        ao = make_cli(market.root / "node1", market.rpc)  # node 1's home holds the reports it signed
        shown = ao.json("report", "show")
        citations = {i["requestId"]: i["citations"] for i in shown["inferences"]}
        first = citations[min(settled)]
        assert first[0]["contribution"] == cited and first[0]["contributor"].lower() == contributor.lower()
        assert first[0]["share"] >= 0.2 / DEFAULT_TOP_K
        assert "citations (retrieved with serve --rag)" in ao("report", "show").output
        who = next(f"dev:{i}" for i in range(10) if dev_account(i).address.lower() == contributor.lower())
        token = market.contract("OpenToken")
        before = token.functions.balanceOf(contributor).call()
        owed = reports[-1].rewards[next(a for a in reports[-1].rewards if a.lower() == contributor.lower())]
        ao("rewards", "claim", who, "--from", f"dev:{PAYER}")
        assert token.functions.balanceOf(contributor).call() - before == owed > 0
    finally:
        for node in nodes:
            node.kill9()


def test_serve_rag_bad_input_exits_with_one_error_line(market) -> None:
    ao = make_cli(market.root / "setup", market.rpc)
    out_of_range = ao("serve", "--model-ids", "1", "--base", "tiny:0", "--rag", "--top-k", "9", ok=False)
    assert out_of_range.exit_code == 2 and "between 1 and 8" in out_of_range.output
    # a model registered from a bare adapter (no ModelFactory manifest): no lexical index to retrieve from
    adapter = market.root / "bare.safetensors"
    adapter.write_bytes(BlobStore(market.root / "setup" / "blobs").get(market.adapter_hash))
    base = load_base_model("tiny:0").sha256
    ao("model", "register", "--adapter", str(adapter), "--base-hash", base, "--datanet", "1", "--price", "1",
       "--from", "dev:4")  # fmt: skip
    result = ao("serve", "--model-ids", "2", "--base", "tiny:0", "--rag", "--port", str(free_port()), ok=False)
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "model 2 cannot serve with --rag" in lines[0] and "Traceback" not in result.output


def _uri(report) -> str:
    import hashlib

    return "sha256://" + hashlib.sha256(report.canonical_json()).hexdigest()


def _datanet_pool(market: Market, request_id: int) -> int:
    from attribution_oracle.chain.event_decoding import fetch_events

    contract = market.contract("InferenceMarket")
    head = market.client.block("latest")["number"]
    events = fetch_events(market.client, [contract], market.deployment.block_number, head)
    return next(e["args"]["datanetOwnersAmount"] for e in events
                if e["event"] == "FeeSplit" and e["args"]["requestId"] == request_id)  # fmt: skip

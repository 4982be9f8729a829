"""Agents paying their own way over x402, end to end: real Anvil, real contracts, real HTTP, real settlement.

An agent built only from the SDK (``Agent``, ``AgentVaultClient``) and a fresh session key runs a multi-call task
on two models (one flat-priced, one per-token); the x402 package's own async client pays the same server; every
malformed, replayed, tampered or misdirected ``PAYMENT-SIGNATURE`` gets 402; the pay-first flow still works.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import httpx
import pytest
import torch
from cli_harness import free_port, make_cli
from eth_account import Account
from eth_utils import keccak
from test_serving import peft_adapter
from x402 import x402Client
from x402.http.clients import x402HttpxClient
from x402.http.utils import decode_payment_required_header, decode_payment_response_header

from attribution_oracle.agent import Agent, AgentVaultClient, BudgetExceededError
from attribution_oracle.agent.pricing import token_rates
from attribution_oracle.agent.scheme import VaultSchemeClient
from attribution_oracle.agent.vault import named_contract
from attribution_oracle.agent.vault_typed_data import PaymentAuthorization, sign_payment
from attribution_oracle.chain.deployments import load_deployment
from attribution_oracle.chain.wallets import dev_signer
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.models import load_base_model
from attribution_oracle.serving.http_server import ServerThread
from attribution_oracle.serving.openlora_service import OpenLoraService
from attribution_oracle.store.blobs import BlobStore

CORPUS = Path(__file__).resolve().parents[2] / "demo" / "corpus"
ONE = 10**18
RATES = (ONE // 10, ONE // 5, ONE // 100)  # per 1k input, per 1k output, flat


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Anvil, the contracts, two models (1 flat at 0.5 OPEN, 2 per-token), a served OpenLoRA on both."""
    torch.set_num_threads(1)
    home = tmp_path_factory.mktemp("agents")
    ao = make_cli(home, f"http://127.0.0.1:{free_port()}")
    ao("node", "start", "--fresh")
    thread = None
    try:
        ao("deploy", "--from", "dev:0", "--operator", "dev:6")
        for who in ("dev:1", "dev:2", "dev:4", "dev:5"):
            ao("token", "mint", who, "1000", "--from", "dev:0")
        ao("datanet", "create", "Bees", "--from", "dev:1")
        ao("datanet", "contribute", "1", *map(str, sorted((CORPUS / "alice").iterdir())[:2]), "--from", "dev:2")
        ao("datanet", "approve", "1", "2", "--from", "dev:1")
        ao("datanet", "publish", "1", "--from", "dev:1")
        base = load_base_model("tiny:0")
        for i in range(2):
            path = home / f"adapter-{i}.safetensors"
            path.write_bytes(peft_adapter(4, ["q_proj", "v_proj"], seed=i, base_hash=base.sha256))
            ao("model", "register", "--adapter", str(path), "--base-hash", base.sha256, "--datanet", "1",
               "--price", "0.5", "--from", "dev:4")  # fmt: skip
        ao(
            "model",
            "rates",
            "2",
            "--input-per-1k",
            "0.1",
            "--output-per-1k",
            "0.2",
            "--flat",
            "0.01",
            "--from",
            "dev:4",
        )
        client = ChainClient(ao.env["ATTRIBUTION_RPC"])
        deployment = load_deployment(client.chain_id, [home / "deployments"])
        assert token_rates(client, deployment, 2) == dict(
            zip(("inputPer1k", "outputPer1k", "flatFee"), RATES, strict=True)
        )
        service = OpenLoraService.from_chain(
            client, deployment, base, BlobStore(home / "blobs"), home / "served.sqlite", [1, 2], dev_signer("dev:6"),
            max_batch=4, mark_interval_s=0.1,
        )  # fmt: skip
        thread = ServerThread(service, port=free_port()).start()
        yield ao, client, deployment, thread
    finally:
        if thread is not None:
            thread.stop(timeout_s=20)
        ao("node", "stop", ok=False)


def new_agent(world, label: str, *, total_cap: int = 20 * ONE, max_per_call: int = 2 * ONE, models=(1, 2)):
    """The owner (dev:5) registers, stakes, funds and grants a fresh session key; returns (Agent, key, agent id)."""
    _, client, deployment, thread = world
    vault = AgentVaultClient(client, deployment)
    owner = dev_signer("dev:5")
    agent_id = vault.register(owner, f"sha256://{keccak(text=label).hex()}")
    vault.stake(owner, agent_id, vault.status(agent_id).min_stake)
    vault.deposit(owner, agent_id, 50 * ONE)
    key = Account.from_key(keccak(text=f"agent-x402:{label}"))
    expiry = int(client.block("latest")["timestamp"]) + 86_400
    vault.grant(owner, agent_id, key.address, models=list(models), max_price_per_call=max_per_call, period_s=3_600,
                period_cap=10 * ONE, total_cap=total_cap, expiry=expiry)  # fmt: skip
    return Agent(key, thread.url, vault), key, agent_id


def test_agent_runs_a_paid_multi_call_task_on_two_models(world):
    ao, client, deployment, thread = world
    agent, key, agent_id = new_agent(world, "planner")
    vault = agent.vault
    owner_before = client.call(vault.token.functions.balanceOf(dev_signer("dev:5").address))
    task = [
        (1, "List the hive inspections for early spring."),
        (2, "When is the first varroa count due?"),
        (1, "What to check in a summer inspection?"),
    ]
    calls = [agent.complete(model, prompt, max_tokens=6) for model, prompt in task]
    assert [c.model_id for c in calls] == [1, 2, 1] and len({c.request_id for c in calls}) == 3
    assert all(c.tx_hash.startswith("0x") and c.usage["completion_tokens"] > 0 for c in calls)
    chat = agent.chat(2, [{"role": "user", "content": "Plan the autumn feeding."}], max_tokens=4)
    assert chat.chat and chat.text is not None
    state = vault.session_key(key.address)
    assert state.total_spent == agent.spent == sum(c.authorized for c in agent.calls)
    assert calls[0].authorized == ONE // 2  # the flat price
    assert agent.remaining()["total"] == 20 * ONE - agent.spent
    assert vault.status(agent_id).budget == 50 * ONE - agent.spent
    # the operator settles the per-token calls with their actual token counts; the rest goes back to the owner
    assert thread.service.marker.wait_idle(60)
    market = named_contract(client, deployment, "InferenceMarket")
    charged = {
        e["args"]["requestId"]: e["args"]
        for e in market.events.InferenceCharged().get_logs(from_block=deployment.block_number)
    }
    for call in (calls[1], chat):
        event = charged[call.request_id]
        expected = RATES[2] + call.usage["prompt_tokens"] * RATES[0] // 1000
        expected += call.usage["completion_tokens"] * RATES[1] // 1000
        assert event["charged"] == expected and event["refunded"] == call.authorized - expected
        assert event["inputTokens"] == call.usage["prompt_tokens"]
    refunds = sum(charged[c.request_id]["refunded"] for c in (calls[1], chat))
    owner_after = client.call(vault.token.functions.balanceOf(dev_signer("dev:5").address))
    assert owner_after == owner_before + refunds
    assert all(client.call(market.functions.requestStatus(c.request_id)) == 2 for c in agent.calls)
    agent.close()


def test_agent_refuses_locally_before_exceeding_its_caps(world):
    agent, key, _ = new_agent(world, "frugal", total_cap=ONE, models=(1,))
    agent.complete(1, "first", max_tokens=2)  # 0.5 OPEN
    agent.complete(1, "second", max_tokens=2)  # 1.0 OPEN: the total cap is reached
    spent = agent.vault.session_key(key.address).total_spent
    with pytest.raises(BudgetExceededError) as refused:
        agent.complete(1, "third", max_tokens=2)
    assert refused.value.cap == "total"
    with pytest.raises(BudgetExceededError) as outside:
        agent.complete(2, "not my model", max_tokens=2)
    assert outside.value.cap == "model"
    assert agent.vault.session_key(key.address).total_spent == spent == ONE
    agent.close()


def test_x402_package_client_pays_our_server(world):
    _, client, deployment, thread = world
    _, key, _ = new_agent(world, "x402-client")
    payer = x402Client()
    payer.register(f"eip155:{client.chain_id}", VaultSchemeClient(key, client.chain_id))
    payer.set_spend_controls(False)

    async def run() -> httpx.Response:
        async with x402HttpxClient(payer, timeout=60) as http:
            return await http.post(
                f"{thread.url}/v1/completions", json={"model": "1", "prompt": "Swarm season starts", "max_tokens": 3}
            )

    response = asyncio.run(run())
    assert response.status_code == 200, response.text
    settled = decode_payment_response_header(response.headers["PAYMENT-RESPONSE"])
    assert settled.success and settled.network == f"eip155:{client.chain_id}"
    receipt = client.w3.eth.get_transaction_receipt(settled.transaction)
    assert receipt["status"] == 1 and int(settled.extensions["requestId"]) == response.json()["request_id"]


def _offer(thread, body):
    first = httpx.post(f"{thread.url}/v1/completions", json=body, timeout=60)
    assert first.status_code == 402
    return decode_payment_required_header(first.headers["PAYMENT-REQUIRED"])


def _header(required, payload: dict) -> str:
    data = {"x402Version": 2, "accepted": required.accepts[0].model_dump(by_alias=True), "payload": payload}
    return base64.b64encode(json.dumps(data).encode()).decode()


def _signed(key, chain_id: int, vault: str, **fields) -> dict:
    auth = PaymentAuthorization(**fields)
    sig = sign_payment(auth, chain_id, vault, key)
    return {
        "authorization": auth.to_json(),
        "signature": {"v": sig.v, "r": "0x" + sig.r.hex(), "s": "0x" + sig.s.hex()},
    }


def test_unpaid_request_gets_an_x402_v2_offer(world):
    _, client, deployment, thread = world
    required = _offer(thread, {"model": "2", "prompt": "How many frames?", "max_tokens": 5})
    assert required.x402_version == 2 and len(required.accepts) == 1
    offer = required.accepts[0]
    assert offer.network == f"eip155:{client.chain_id}" and offer.scheme == "agent-vault"
    assert offer.asset == deployment.contracts["OpenToken"].address
    assert offer.pay_to == deployment.contracts["InferenceMarket"].address
    assert offer.extra["vault"] == deployment.contracts["AgentVault"].address and offer.extra["perToken"]
    assert int(offer.amount) == RATES[2] + int(offer.amount) - RATES[2]  # an integer wei amount
    assert offer.extra["inputHash"] == "0x" + __import__("hashlib").sha256(b"How many frames?").hexdigest()


@pytest.fixture()
def attack(world):
    """A funded key and a helper that posts one crafted PAYMENT-SIGNATURE; returns (status, error code)."""
    _, client, deployment, thread = world
    _, key, _ = new_agent(world, f"attack-{free_port()}")
    body = {"model": "1", "prompt": "Queen cells in May", "max_tokens": 2}
    required = _offer(thread, body)
    offer = required.accepts[0]
    vault = deployment.contracts["AgentVault"].address
    good = {
        "sessionKey": key.address,
        "server": offer.extra["server"],
        "modelId": 1,
        "inputHash": bytes.fromhex(offer.extra["inputHash"][2:]),
        "maxFee": int(offer.amount),
        "nonce": 7,
        "deadline": int(client.block("latest")["timestamp"]) + 300,
    }

    def post(payload: dict) -> tuple[int, str | None]:
        r = httpx.post(
            f"{thread.url}/v1/completions",
            json=body,
            headers={"PAYMENT-SIGNATURE": _header(required, payload)},
            timeout=60,
        )
        return r.status_code, (r.json().get("error") or {}).get("code") if r.status_code != 200 else None

    return post, key, client.chain_id, vault, good


def test_attack_replayed_payment_signature_refused(attack):
    post, key, chain_id, vault, good = attack
    payload = _signed(key, chain_id, vault, **good)
    assert post(payload) == (200, None)
    assert post(payload) == (402, "settlement_failed")  # the vault's nonce is used


def test_attack_tampered_payment_signature_refused(attack):
    post, key, chain_id, vault, good = attack
    payload = _signed(key, chain_id, vault, **good)
    payload["authorization"]["maxFee"] = str(good["maxFee"] * 2)
    assert post(payload) == (402, "invalid_signature")


def test_attack_payment_signature_for_another_server_refused(attack):
    post, key, chain_id, vault, good = attack
    assert post(_signed(key, chain_id, vault, **{**good, "server": dev_signer("dev:9").address})) == (
        402,
        "wrong_server",
    )


def test_attack_payment_signature_for_another_chain_refused(attack):
    post, key, chain_id, vault, good = attack
    assert post(_signed(key, chain_id + 1, vault, **good)) == (402, "invalid_signature")


def test_attack_payment_signature_for_a_smaller_amount_refused(attack):
    post, key, chain_id, vault, good = attack
    assert post(_signed(key, chain_id, vault, **{**good, "maxFee": good["maxFee"] - 1})) == (402, "insufficient_amount")


def test_attack_payment_signature_for_another_prompt_refused(attack):
    post, key, chain_id, vault, good = attack
    assert post(_signed(key, chain_id, vault, **{**good, "inputHash": b"\x01" * 32})) == (402, "prompt_mismatch")


def test_attack_garbage_payment_signature_refused(world, attack):
    post, *_ = attack
    _, _, _, thread = world
    r = httpx.post(
        f"{thread.url}/v1/completions",
        json={"model": "1", "prompt": "x", "max_tokens": 2},
        headers={"PAYMENT-SIGNATURE": "not base64 at all"},
        timeout=60,
    )
    assert r.status_code == 402 and r.json()["error"]["code"] == "invalid_payload" and "PAYMENT-REQUIRED" in r.headers


def test_pay_first_flow_still_works(world):
    ao, _, _, thread = world
    (paid,) = ao.json("market", "pay", "1", "--prompt", "Bees and smoke", "--from", "dev:5")
    r = httpx.post(
        f"{thread.url}/v1/completions",
        json={"model": "1", "prompt": "Bees and smoke", "max_tokens": 2, "request_id": paid["requestId"]},
        timeout=60,
    )
    assert r.status_code == 200 and "PAYMENT-RESPONSE" not in r.headers


def test_agent_cli_register_fund_grant_run_status_revoke(world):
    ao, client, deployment, thread = world
    ao("token", "mint", "dev:3", "100", "--from", "dev:0")
    agent_id = ao.json("agent", "register", "--name", "hive planner", "--models", "1,2", "--from", "dev:3")["agentId"]
    ao("agent", "stake", str(agent_id), "10", "--from", "dev:3")
    ao("agent", "fund", str(agent_id), "20", "--from", "dev:3")
    ao("agent", "grant", str(agent_id), "--key", "dev:8", "--models", "1,2", "--max-per-call", "2",
       "--period-cap", "5", "--total-cap", "10", "--expires-in", "1d", "--from", "dev:3")  # fmt: skip
    result = ao.json("agent", "run", "--key", "dev:8", "--server", thread.url, "--step", "1:Inspect the brood",
                     "--step", "2:Count the mites after {previous}", "--max-tokens", "3")  # fmt: skip
    assert [c["model"] for c in result["calls"]] == [1, 2]
    assert all(c["status"] == "served" for c in result["calls"])
    metered = result["calls"][1]
    assert 0 < int(metered["charged"]) <= int(metered["authorized"])  # charged per token, never above the max
    parts = ("protocol", "owner_amount", "datanet_owners", "contributors")
    assert sum(int(metered[k]) for k in parts) == int(metered["charged"])  # the exact split
    status = ao.json("agent", "status", str(agent_id), "--key", "dev:8")
    assert int(status["budget"]) == 20 * ONE - int(result["spent"]) and status["operating"]
    assert status["keys"][0]["total_spent"] == result["spent"]
    ao("agent", "revoke", "dev:8", "--from", "dev:3")
    refused = ao("agent", "run", "--key", "dev:8", "--server", thread.url, "--step", "1:again", ok=False)
    assert refused.exit_code == 1 and "error: the session key was revoked" in refused.output
    wrong = ao("agent", "stake", str(agent_id), "1", "--from", "dev:2", ok=False)
    assert wrong.exit_code == 1 and "is owned by" in wrong.output
    bad = ao("agent", "grant", str(agent_id), "--key", "dev:9", "--models", "x", "--max-per-call", "1",
             "--period-cap", "1", "--total-cap", "1", "--from", "dev:3", ok=False)  # fmt: skip
    assert bad.exit_code == 1 and "error: model ids" in bad.output
    ao("agent", "unstake", str(agent_id), "10", "--from", "dev:3")
    early = ao("agent", "unstake", str(agent_id), "--withdraw", "--from", "dev:3", ok=False)
    assert early.exit_code == 1 and "cooldown" in early.output


def test_oracle_follower_and_reports_use_the_charged_amount(world, tmp_path):
    """A per-token request's data pools are those of what it was charged, not of its authorized maximum."""
    from attribution_oracle.oracle.db import OracleDB
    from attribution_oracle.oracle.follower import ChainFollower
    from attribution_oracle.settlement.chain_data import served_inferences

    ao, client, deployment, thread = world
    prompt = "How warm must a brood nest stay?"
    (paid,) = ao.json("market", "pay", "2", "--prompt", prompt, "--max-fee", "1", "--from", "dev:5")  # pay-first
    r = httpx.post(
        f"{thread.url}/v1/completions",
        json={"model": "2", "prompt": prompt, "max_tokens": 3, "request_id": paid["requestId"]},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert thread.service.marker.wait_idle(60)
    market = named_contract(client, deployment, "InferenceMarket")
    charged = market.events.InferenceCharged().get_logs(
        argument_filters={"requestId": paid["requestId"]}, from_block=deployment.block_number
    )[0]["args"]
    assert charged["charged"] < ONE and charged["refunded"] == ONE - charged["charged"]  # the maximum was 1 OPEN
    head = client.block("latest")["number"]
    (view,) = [s for s in served_inferences(client, deployment, 0, head) if s.request_id == paid["requestId"]]
    assert (view.contributors_amount, view.datanet_owners_amount) == (
        charged["contributorsAmount"],
        charged["datanetOwnersAmount"],
    )
    db = OracleDB(tmp_path / "oracle.sqlite")
    follower = ChainFollower(client, deployment, db, confirmations=0)
    while (step := follower.step()).cursor < step.head:
        pass
    row = (
        db.connection()
        .execute(
            "SELECT contributors_amount, datanet_owners_amount FROM payments WHERE request_id = ?", (paid["requestId"],)
        )
        .fetchone()
    )
    assert (int(row[0]), int(row[1])) == (charged["contributorsAmount"], charged["datanetOwnersAmount"])


def test_empty_prompt_refused_before_anyone_pays(world, attack):
    _, _, _, thread = world
    post, key, chain_id, vault, good = attack
    payload = _signed(
        key, chain_id, vault, **{**good, "inputHash": bytes.fromhex(__import__("hashlib").sha256(b"").hexdigest())}
    )
    header = _header(_offer(thread, {"model": "1", "prompt": "x", "max_tokens": 2}), payload)
    r = httpx.post(
        f"{thread.url}/v1/completions",
        json={"model": "1", "prompt": "", "max_tokens": 2},
        headers={"PAYMENT-SIGNATURE": header},
        timeout=60,
    )
    assert r.status_code == 400 and "empty" in r.json()["error"]["message"]
    assert not named_contract(world[1], world[2], "AgentVault").functions.usedNonce(key.address, 7).call()

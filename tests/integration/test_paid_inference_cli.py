"""`infer`, `market pay --input-hash`, `serve` and the HTTP API as a newcomer meets them (issue 17, findings 2, 8, 9).

Real Anvil, a real LoRA adapter on the tiny base, the real server over HTTP; nothing is paid for a request the
server would refuse.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
import torch
from cli_harness import free_port, make_cli
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

from attribution_oracle.chain.deployments import load_deployment
from attribution_oracle.chain.wallets import dev_signer
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.models import load_base_model, pack_adapter
from attribution_oracle.serving.http_server import ServerThread
from attribution_oracle.serving.openlora_service import OpenLoraService
from attribution_oracle.store.blobs import BlobStore

CORPUS = Path(__file__).resolve().parents[2] / "demo" / "corpus"
BASE = "tiny:0"
MAX_TOKENS_LIMIT = 8


def _adapter(base_hash: str) -> bytes:
    peft_model = get_peft_model(
        load_base_model(BASE).model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], lora_dropout=0.0)
    )
    torch.manual_seed(0)
    for name, param in peft_model.named_parameters():
        if "lora_" in name:
            torch.nn.init.normal_(param, std=0.1)
    config = {"r": 2, "lora_alpha": 4, "target_modules": ["q_proj"], "lora_dropout": 0.0, "bias": "none"}
    return pack_adapter(get_peft_model_state_dict(peft_model), config, base_hash)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Anvil, a published Datanet, model 1 (price 1 OPEN, owned by dev:4) served in-process; dev:5 pays."""
    torch.set_num_threads(1)
    home = tmp_path_factory.mktemp("paid-inference")
    ao = make_cli(home, f"http://127.0.0.1:{free_port()}")
    ao("node", "start", "--fresh")
    try:
        ao("deploy", "--from", "dev:0", "--operator", "dev:6")
        for who in ("dev:1", "dev:2", "dev:5"):
            ao("token", "mint", who, "100", "--from", "dev:0")
        ao("datanet", "create", "Bees", "--from", "dev:1")
        ao("datanet", "contribute", "1", str(CORPUS / "alice" / "01-hive-inspection.txt"), "--from", "dev:2")
        ao("datanet", "approve", "1", "--from", "dev:1")
        ao("datanet", "publish", "1", "--from", "dev:1")
        base = load_base_model(BASE)
        adapter = home / "adapter.safetensors"
        adapter.write_bytes(_adapter(base.sha256))
        ao("model", "register", "--adapter", str(adapter), "--base-hash", base.sha256, "--datanet", "1",
           "--price", "1", "--from", "dev:4")  # fmt: skip
        client = ChainClient(ao.env["ATTRIBUTION_RPC"])
        deployment = load_deployment(client.chain_id, [home / "deployments"])
        service = OpenLoraService.from_chain(
            client, deployment, base, BlobStore(home / "blobs"), home / "served.sqlite", [1], dev_signer("dev:6"),
            max_batch=2, max_tokens_limit=MAX_TOKENS_LIMIT, mark_interval_s=0.1,
        )  # fmt: skip
        thread = ServerThread(service, port=free_port()).start()
        try:
            yield ao, thread.url
        finally:
            thread.stop(timeout_s=20)
    finally:
        ao("node", "stop", ok=False)


def _open(ao, who: str) -> int:
    return int(ao.json("wallet", "balance", who)[0]["open"])


def _one_error(result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_infer_refuses_an_empty_prompt_before_paying(served):
    ao, url = served
    before = _open(ao, "dev:5")
    for prompt in ("", "   "):
        line = _one_error(ao("infer", "1", prompt, "--wallet", "dev:5", "--server", url, ok=False))
        assert "empty" in line and "nothing was paid" in line
    assert _open(ao, "dev:5") == before


def test_infer_refuses_a_price_above_max_fee_before_paying(served):
    ao, url = served
    before = _open(ao, "dev:5")
    line = _one_error(ao("infer", "1", "hello", "--max-fee", "0.5", "--wallet", "dev:5", "--server", url, ok=False))
    assert "above --max-fee" in line and "nothing was paid" in line
    assert _open(ao, "dev:5") == before


def test_a_paid_request_that_fails_says_how_to_recover_and_can_be_retried(served):
    ao, url = served
    (paid,) = ao.json("market", "pay", "1", "--prompt", "How do bees keep warm?", "--from", "dev:5")
    request_id = str(paid["requestId"])
    wrong = ao("infer", "1", "Another prompt", "--request-id", request_id, "--wallet", "dev:5", "--server", url,
               ok=False)  # fmt: skip
    line = _one_error(wrong)
    assert f"--request-id {request_id}" in line and f"market refund {request_id}" in line
    retried = ao.json("infer", "1", "How do bees keep warm?", "--request-id", request_id, "--wallet", "dev:5",
                      "--server", url)  # fmt: skip
    assert retried["requestId"] == int(request_id) and retried["usage"]["completion_tokens"] >= 1


def test_market_pay_input_hash_pays_for_a_rendered_chat_prompt(served):
    """A shell strips the trailing newline of a rendered chat prompt; paying by its hash avoids the mismatch."""
    ao, url = served
    messages = [{"role": "user", "content": "When is honey ready?"}]
    rendered = httpx.post(f"{url}/v1/chat/render", json={"messages": messages}, timeout=30).json()
    assert rendered["input_hash"] == "0x" + hashlib.sha256(rendered["prompt"].encode()).hexdigest()
    (paid,) = ao.json("market", "pay", "1", "--input-hash", rendered["input_hash"], "--from", "dev:5")
    answer = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "1", "messages": messages, "max_tokens": 2, "request_id": paid["requestId"]},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    bad = ao("market", "pay", "1", "--input-hash", "abc", "--from", "dev:5", ok=False)
    assert "64 hex characters" in _one_error(bad)
    assert "--prompt TEXT or --input-hash HEX" in _one_error(ao("market", "pay", "1", "--from", "dev:5", ok=False))


def test_missing_model_is_400_and_unknown_model_404(served):
    _, url = served
    missing = httpx.post(f"{url}/v1/completions", json={"prompt": "hi", "request_id": 1}, timeout=30)
    assert missing.status_code == 400 and "model is required" in missing.json()["error"]["message"]
    chat = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert chat.status_code == 400
    unknown = httpx.post(f"{url}/v1/completions", json={"model": "7", "prompt": "hi", "request_id": 1}, timeout=30)
    assert unknown.status_code == 404


def test_get_one_model_like_openai(served):
    _, url = served
    card = httpx.get(f"{url}/v1/models/1", timeout=30)
    assert card.status_code == 200
    assert card.json()["id"] == "1" and card.json()["object"] == "model"
    assert card.json() == httpx.get(f"{url}/v1/models", timeout=30).json()["data"][0]
    assert httpx.get(f"{url}/v1/models/7", timeout=30).status_code == 404


def test_a_capped_max_tokens_is_said_in_the_response(served):
    ao, url = served
    answer = ao.json("infer", "1", "Tell me about drones", "--max-tokens", "50", "--wallet", "dev:5", "--server", url)
    assert answer["usage"]["completion_tokens"] <= MAX_TOKENS_LIMIT
    assert f"capped to this server's limit {MAX_TOKENS_LIMIT}" in answer["warning"]
    small = ao.json("infer", "1", "Tell me about wax", "--max-tokens", "2", "--wallet", "dev:5", "--server", url)
    assert "warning" not in small


def test_serve_on_a_busy_port_fails_before_loading_anything(served):
    ao, url = served
    port = url.rsplit(":", 1)[1]
    result = ao("serve", "--model-ids", "1", "--base", "tiny:0", "--port", port, ok=False)
    line = _one_error(result)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "choose another --port" in line

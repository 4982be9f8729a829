"""OpenLoRA end to end: real Anvil, real adapters (peft LoRA on the tiny base), real HTTP, real markServed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from cli_harness import free_port, make_cli
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

from attribution_oracle.chain.deployments import load_deployment
from attribution_oracle.chain.wallets import dev_signer
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.models import load_base_model, pack_adapter, unpack_adapter
from attribution_oracle.serving.adapter_cache import AdapterError
from attribution_oracle.serving.http_server import ServerThread
from attribution_oracle.serving.openlora_service import OpenLoraService
from attribution_oracle.serving.served_access import served_query_headers
from attribution_oracle.store.blobs import BlobStore

CORPUS = Path(__file__).resolve().parents[2] / "demo" / "corpus"
SRC = Path(__file__).resolve().parents[2] / "src"
BASE = "tiny:0"
MAX_BODY_BYTES = 256 * 1024  # serving.api.MAX_BODY_BYTES
ADAPTERS = [(4, ["q_proj", "v_proj"]), (8, ["k_proj", "o_proj", "gate_proj"])]


def peft_adapter(rank: int, targets: list[str], seed: int, base_hash: str) -> bytes:
    """A peft LoRA on the tiny base with random B (peft starts B at zero), packed as an adapter blob."""
    model = load_base_model(BASE).model
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets, lora_dropout=0.0, bias="none")
    peft_model = get_peft_model(model, config)
    torch.manual_seed(seed)
    for name, param in peft_model.named_parameters():
        if "lora_" in name:
            torch.nn.init.normal_(param, std=0.1)
    lora_config = {"r": rank, "lora_alpha": 2 * rank, "target_modules": targets, "lora_dropout": 0.0, "bias": "none"}
    return pack_adapter(get_peft_model_state_dict(peft_model), lora_config, base_hash)


def peft_greedy(blob: bytes, prompt_ids: list[int], steps: int) -> list[int]:
    adapter = unpack_adapter(blob)
    peft_model = get_peft_model(load_base_model(BASE).model, LoraConfig(**adapter.lora_config))
    set_peft_model_state_dict(peft_model, adapter.state_dict)
    ids = list(prompt_ids)
    with torch.inference_mode():
        for _ in range(steps):
            ids.append(int(peft_model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt_ids) :]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Anvil with the contracts, a published datanet, three models (the third's blob is tampered later)."""
    torch.set_num_threads(1)
    home = tmp_path_factory.mktemp("serving")
    ao = make_cli(home, f"http://127.0.0.1:{free_port()}")
    ao("node", "start", "--fresh")
    try:
        ao("deploy", "--from", "dev:0", "--operator", "dev:6", "--service-window", "60")
        for who in ("dev:1", "dev:2", "dev:4", "dev:5"):
            ao("token", "mint", who, "100", "--from", "dev:0")
        ao("datanet", "create", "Bees", "--from", "dev:1")
        ao("datanet", "contribute", "1", *map(str, sorted((CORPUS / "alice").iterdir())[:2]), "--from", "dev:2")
        ao("datanet", "approve", "1", "2", "--from", "dev:1")
        ao("datanet", "publish", "1", "--from", "dev:1")
        base = load_base_model(BASE)
        blobs = [peft_adapter(r, t, seed=i, base_hash=base.sha256) for i, (r, t) in enumerate(ADAPTERS)]
        blobs.append(peft_adapter(2, ["q_proj"], seed=9, base_hash=base.sha256))
        for i, blob in enumerate(blobs):
            path = home / f"adapter-{i}.safetensors"
            path.write_bytes(blob)
            ao("model", "register", "--adapter", str(path), "--base-hash", base.sha256, "--datanet", "1",
               "--price", "1", "--from", "dev:4")  # fmt: skip
        yield ao, base, blobs
    finally:
        ao("node", "stop", ok=False)


@pytest.fixture(scope="module")
def server(world):
    ao, base, _ = world
    client = ChainClient(ao.env["ATTRIBUTION_RPC"])
    deployment = load_deployment(client.chain_id, [ao.home / "deployments"])
    service = OpenLoraService.from_chain(
        client, deployment, base, BlobStore(ao.home / "blobs"), ao.home / "served.sqlite", [1, 2], dev_signer("dev:6"),
        max_batch=4, mark_interval_s=0.1,
    )  # fmt: skip
    thread = ServerThread(service, port=free_port()).start()
    try:
        yield thread
    finally:
        thread.stop(timeout_s=20)
        assert not thread._thread.is_alive()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{thread.url}/health", timeout=2)


def pay(ao, model_id: int, prompt: str) -> int:
    (paid,) = ao.json("market", "pay", str(model_id), "--prompt", prompt, "--from", "dev:5")
    return paid["requestId"]


def status(ao, request_id: int) -> str:
    return ao.json("market", "show", str(request_id))[0]["status"]


def test_starting_the_service_leaves_autograd_on_in_the_callers_thread(server):
    """Starting a server must not switch autograd off for the caller (training in the same process needs it)."""
    assert torch.is_grad_enabled()


def test_paid_completion_is_served_recorded_and_marked_on_chain(world, server):
    ao, base, blobs = world
    prompt = "Bees make honey from"
    request_id = pay(ao, 1, prompt)
    response = httpx.post(
        f"{server.url}/v1/completions",
        json={"model": "1", "prompt": prompt, "max_tokens": 6, "request_id": request_id},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "text_completion" and answer["request_id"] == request_id
    record = server.service.records.get(request_id)
    assert record is not None and record.output_text == answer["choices"][0]["text"]
    assert record.adapter_hash == answer["adapter_hash"] and record.model_id == 1 and record.prompt == prompt
    prompt_ids = base.tokenizer(prompt, add_special_tokens=False).input_ids
    assert list(record.prompt_token_ids) == prompt_ids
    assert list(record.output_token_ids) == peft_greedy(blobs[0], prompt_ids, 6)  # the adapter really answered
    query = {"after": request_id - 1, "limit": 5}
    headers = served_query_headers(dev_signer("dev:0"), server.service.gate.client.chain_id, **query)  # the oracle
    served = httpx.get(f"{server.url}/v1/served", params=query, headers=headers).json()["records"]
    assert served[0] == record.to_dict()
    assert server.service.marker.wait_idle(30) and request_id in server.service.marker.marked
    assert status(ao, request_id) == "served"


def test_unpaid_replayed_and_mismatched_requests_get_402(world, server):
    ao, _, _ = world
    url = f"{server.url}/v1/completions"

    def ask(body: dict, headers: dict | None = None) -> httpx.Response:
        return httpx.post(url, json={"max_tokens": 2, **body}, headers=headers, timeout=60)

    missing = ask({"model": "1", "prompt": "hi"})
    assert missing.status_code == 402 and missing.json()["error"]["code"] == "missing_request_id"
    unpaid = ask({"model": "1", "prompt": "hi", "request_id": 9999})
    assert unpaid.status_code == 402
    assert unpaid.json()["error"] == {
        "message": "request 9999 was never paid: no InferencePaid event on the InferenceMarket",
        "type": "payment_required",
        "code": "unpaid",
        "request_id": 9999,
    }
    request_id = pay(ao, 1, "the paid prompt")
    wrong_prompt = ask({"model": "1", "prompt": "another prompt", "request_id": request_id})
    assert wrong_prompt.status_code == 402 and wrong_prompt.json()["error"]["code"] == "prompt_mismatch"
    wrong_model = ask({"model": "2", "prompt": "the paid prompt", "request_id": request_id})
    assert wrong_model.status_code == 402 and wrong_model.json()["error"]["code"] == "model_mismatch"
    ok = ask({"model": "1", "prompt": "the paid prompt"}, headers={"X-Request-Id": str(request_id)})
    assert ok.status_code == 200
    replay = ask({"model": "1", "prompt": "the paid prompt", "request_id": request_id})
    assert replay.status_code == 402 and replay.json()["error"]["code"] == "already_served"
    assert server.service.marker.wait_idle(30)
    replay_after_mark = ask({"model": "1", "prompt": "the paid prompt", "request_id": request_id})
    assert replay_after_mark.status_code == 402 and replay_after_mark.json()["error"]["code"] == "already_served"
    not_served = ask({"model": "3", "prompt": "x", "request_id": request_id})
    assert not_served.status_code == 404 and not_served.json()["error"]["code"] == "model_not_found"
    bad = ask({"model": "1", "prompt": 5, "request_id": request_id})
    assert bad.status_code == 400
    # a refunded request is refused too (time travel past the 60 s service window, then a real refund)
    refunded_id = pay(ao, 2, "too late")
    client = ChainClient(ao.env["ATTRIBUTION_RPC"])
    client.w3.provider.make_request("evm_increaseTime", [120])
    client.w3.provider.make_request("evm_mine", [])
    ao("market", "refund", str(refunded_id), "--from", "dev:5")
    refunded = ask({"model": "2", "prompt": "too late", "request_id": refunded_id})
    assert refunded.status_code == 402 and refunded.json()["error"]["code"] == "refunded"
    assert server.service.records.get(refunded_id) is None


def test_streaming_and_chat(world, server):
    ao, _, _ = world
    prompt = "Queen bee"
    request_id = pay(ao, 2, prompt)
    body = {"model": "2", "prompt": prompt, "max_tokens": 8, "request_id": request_id, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    text = "".join(c["choices"][0]["text"] for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] in ("length", "stop")
    assert text == server.service.records.get(request_id).output_text

    messages = [{"role": "user", "content": "How do bees keep warm?"}]
    rendered = httpx.post(f"{server.url}/v1/chat/render", json={"messages": messages}).json()
    assert rendered["prompt"] == "<|im_start|>user\nHow do bees keep warm?<|im_end|>\n<|im_start|>assistant\n"
    chat_id = pay(ao, 1, rendered["prompt"])
    chat = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": 1, "messages": messages, "max_tokens": 4, "request_id": chat_id},
        timeout=60,
    )
    assert chat.status_code == 200, chat.text
    assert chat.json()["choices"][0]["message"]["content"] == server.service.records.get(chat_id).output_text

    models = httpx.get(f"{server.url}/v1/models").json()["data"]
    assert [m["id"] for m in models] == ["1", "2"]
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok" and health["models"] == [1, 2]
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'openlora_requests_total{outcome="served"}' in metrics


def test_infer_cli_pays_and_prints_the_receipt(world, server):
    ao, _, _ = world
    out = ao.json("infer", "2", "Nectar and pollen", "--wallet", "dev:5", "--server", server.url, "--max-tokens", "5")
    record = server.service.records.get(out["requestId"])
    assert out["text"] == record.output_text and out["adapterHash"] == record.adapter_hash
    assert out["usage"]["completion_tokens"] == len(record.output_token_ids) == 5
    chat = ao.json("infer", "1", "Hello bees", "--chat", "--wallet", "dev:5", "--server", server.url)
    assert server.service.records.get(chat["requestId"]).prompt.startswith("<|im_start|>user\nHello bees")
    human = ao("infer", "1", "Wax", "--wallet", "dev:5", "--server", server.url, "--max-tokens", "3")
    assert "receipt" in human.stdout and "fee (OPEN)" in human.stdout
    gone = ao("infer", "3", "x", "--wallet", "dev:5", "--server", server.url, ok=False)
    assert gone.exit_code == 1 and "does not serve model 3 (nothing was paid)" in gone.output


def test_tampered_adapter_is_refused_at_start(world):
    ao, base, blobs = world
    store = BlobStore(ao.home / "blobs")
    digest = __import__("hashlib").sha256(blobs[2]).hexdigest()
    path = store.path_of(digest)
    os.chmod(path, 0o644)
    path.write_bytes(blobs[2][:-1] + bytes([blobs[2][-1] ^ 1]))
    client = ChainClient(ao.env["ATTRIBUTION_RPC"])
    deployment = load_deployment(client.chain_id, [ao.home / "deployments"])
    with pytest.raises(AdapterError, match="tampered"):
        OpenLoraService.from_chain(client, deployment, base, store, ao.home / "other.sqlite", [3])
    refused = ao("serve", "--model-ids", "3", "--base", BASE, "--port", str(free_port()), ok=False)
    assert refused.exit_code == 1 and "tampered" in refused.output


def test_serve_command_starts_and_stops_on_sigterm(world):
    ao, _, _ = world
    port = free_port()
    env = {**os.environ, **ao.env, "PYTHONPATH": str(SRC)}
    code = "from attribution_oracle.cli.main import main; main()"
    args = ["serve", "--model-ids", "1,2", "--base", BASE, "--port", str(port), "--operator", "dev:6"]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# ------------------------------------------------------------ attacks (issue 13)


def test_attack_anyone_reads_every_paid_prompt_at_v1_served(world, server):
    chain_id = server.service.gate.client.chain_id
    url, query = f"{server.url}/v1/served", {"after": 0, "limit": 10}
    anonymous = httpx.get(url, params=query)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
    stranger = httpx.get(url, params=query, headers=served_query_headers(dev_signer("dev:5"), chain_id, **query))
    assert stranger.status_code == 401 and "not an oracle signer" in stranger.json()["error"]["message"]
    signed = served_query_headers(dev_signer("dev:0"), chain_id, **query)
    other_query = httpx.get(url, params={"after": 1, "limit": 10}, headers=signed)  # the signature binds the query
    assert other_query.status_code == 401
    stale = dict(signed, **{"X-Oracle-Timestamp": str(int(signed["X-Oracle-Timestamp"]) - 3600)})
    assert httpx.get(url, params=query, headers=stale).status_code == 401
    assert httpx.get(url, params=query, headers=signed).status_code == 200


def test_attack_unpaid_8_mib_body_is_read_and_parsed_before_the_402(world, server):
    huge = b'{"model": "1", "prompt": "' + b"a" * (8 << 20) + b'"}'
    response = httpx.post(f"{server.url}/v1/completions", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"

    def chunks():  # no Content-Length: refused while reading, not after
        yield b'{"model": "1", "prompt": "'
        for _ in range(64):
            yield b"b" * (MAX_BODY_BYTES // 16)
        yield b'"}'

    streamed = httpx.post(f"{server.url}/v1/chat/completions", content=chunks(), timeout=30)
    assert streamed.status_code == 413
    long_prompt = httpx.post(f"{server.url}/v1/completions", json={"model": "1", "prompt": "c" * 70_000})
    assert long_prompt.status_code == 400 and "prompt is too long" in long_prompt.json()["error"]["message"]
    many = [{"role": "user", "content": "hi"}] * 200
    assert httpx.post(f"{server.url}/v1/chat/completions", json={"model": "1", "messages": many}).status_code == 400
    big_tokens = httpx.post(f"{server.url}/v1/completions", json={"model": "1", "prompt": "x", "max_tokens": 10**9})
    assert big_tokens.status_code == 400


def test_attack_client_hangs_up_a_stream_to_get_the_inference_free(world, server):
    ao, _, _ = world
    prompt = "Drone bees"
    request_id = pay(ao, 1, prompt)
    body = {"model": "1", "prompt": prompt, "max_tokens": 400, "request_id": request_id, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and json.loads(line.removeprefix("data: "))["choices"][0]["text"]:
                break  # the first token arrived: hang up
    deadline = time.monotonic() + 60
    while server.service.records.get(request_id) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    record = server.service.records.get(request_id)
    assert record is not None and record.output_token_ids  # recorded with what was generated
    assert server.service.marker.wait_idle(30) and request_id in server.service.marker.marked
    assert status(ao, request_id) == "served"  # so it can be neither refunded nor served again
    again = httpx.post(f"{server.url}/v1/completions", json={**body, "stream": False}, timeout=60)
    assert again.status_code == 402 and again.json()["error"]["code"] == "already_served"


def test_attack_request_served_when_its_service_window_is_about_to_close(world, server):
    ao, _, _ = world
    prompt = "Late bees"
    request_id = pay(ao, 1, prompt)
    rpc = server.service.gate.client.w3.provider
    rpc.make_request("evm_increaseTime", [55])  # 5 s left of the 60 s window
    rpc.make_request("evm_mine", [])
    body = {"model": "1", "prompt": prompt, "max_tokens": 4, "request_id": request_id}
    late = httpx.post(f"{server.url}/v1/completions", json=body, timeout=60)
    assert late.status_code == 402 and late.json()["error"]["code"] == "service_window_closing"
    assert server.service.records.get(request_id) is None

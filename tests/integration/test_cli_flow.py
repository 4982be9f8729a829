"""The demo story through the real CLI on a real Anvil: wallets, a Datanet, curation, a version, a model."""

from __future__ import annotations

from pathlib import Path

import pytest
from web3 import Web3

from attribution_oracle.chain.deployments import load_deployment
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.store.merkle import MerkleTree

OPEN = 10**18
CORPUS = Path(__file__).resolve().parents[2] / "demo" / "corpus"


@pytest.fixture(scope="module")
def story(chain_cli):
    """Run the story once; tests below check its outcome from different sides."""
    ao = chain_cli
    for who in ("owner", "alice", "bob", "mallory", "builder"):
        ao("wallet", "new", who)
        ao("wallet", "fund", who, "--eth", "1", "--from", "dev:0")
        ao("token", "mint", who, "100", "--from", "dev:0")
    created = ao.json("datanet", "create", "Beekeeping", "--min-stake", "5", "--from", "owner")
    assert created["datanetId"] == 1
    alice = ao.json("datanet", "contribute", "1", str(CORPUS / "alice"), "--from", "alice")
    bob = ao.json("datanet", "contribute", "1", *map(str, sorted((CORPUS / "bob").iterdir())[:3]), "--from", "bob")
    spam = ao.json("datanet", "contribute", "1", str(CORPUS / "mallory"), "--from", "mallory")
    ao(
        "datanet",
        "approve",
        *map(str, alice["contributionIds"][:10]),
        *map(str, bob["contributionIds"]),
        "--from",
        "owner",
    )
    ao("datanet", "reject", str(alice["contributionIds"][10]), "--from", "owner")
    ao("datanet", "reject", str(spam["contributionIds"][0]), "--malicious", "--from", "owner")
    ao("datanet", "withdraw", str(alice["contributionIds"][11]), "--from", "alice")
    published = ao.json("datanet", "publish", "1", "--from", "owner")
    model = ao.json(
        "model", "register", "--base-hash", "ab" * 32, "--adapter", str(CORPUS.parent / "models" / "adapter-card.json"),
        "--datanet", "1", "--price", "0.5", "--from", "builder",
    )  # fmt: skip
    return {"alice": alice, "bob": bob, "spam": spam, "published": published, "model": model}


def _chain(ao):
    client = ChainClient(ao.env["ATTRIBUTION_RPC"])
    deployment = load_deployment(client.chain_id, [ao.home / "deployments"])
    return client, deployment


def test_contributions_have_the_statuses_the_curators_gave(chain_cli, story):
    shown = chain_cli.json("datanet", "show", "1")
    statuses = {c["id"]: c["status"] for c in shown["contributions"]}
    alice_ids = story["alice"]["contributionIds"]
    assert len(statuses) == 12 + 3 + 1
    assert [statuses[i] for i in alice_ids[:10]] == ["approved"] * 10
    assert statuses[alice_ids[10]] == "rejected"
    assert statuses[alice_ids[11]] == "withdrawn"
    assert statuses[story["spam"]["contributionIds"][0]] == "slashed"
    assert shown["datanet"]["approved_count"] == 13
    assert shown["datanet"]["version_count"] == 1


def test_stakes_returned_or_slashed_and_fee_paid(chain_cli, story):
    balances = {
        b["account"]: int(b["open"]) for b in chain_cli.json("wallet", "balance", "owner", "alice", "mallory", "dev:0")
    }
    assert balances["owner"] == 100 * OPEN - 10 * OPEN  # creation fee
    assert balances["alice"] == 100 * OPEN  # approved, rejected and withdrawn stakes all came back
    assert balances["mallory"] == 95 * OPEN  # slashed
    client, deployment = _chain(chain_cli)
    token = client.contract(deployment, "OpenToken")
    registry = deployment.contracts["DatanetRegistry"].address
    assert token.functions.balanceOf(registry).call() == 0  # nothing pending


def test_published_root_matches_the_approved_hashes_and_verifies_on_chain(chain_cli, story):
    client, deployment = _chain(chain_cli)
    registry = client.contract(deployment, "DatanetRegistry")
    hashes = [bytes(h) for h in registry.functions.getApprovedHashes(1, 0, 100).call()]
    tree = MerkleTree(hashes)
    version = registry.functions.getVersion(1, 1).call()
    assert version[0] == tree.root and version[1] == 13
    assert story["published"]["merkleRoot"] == "0x" + tree.root.hex()
    for i, h in enumerate(hashes):
        assert registry.functions.verifyContribution(1, 1, h, tree.proof(i)).call()
    # the manifest is in the content store and lists the same hashes
    shown = chain_cli.json("datanet", "show", "1")
    manifest_uri = shown["versions"][0]["manifest_uri"]
    from attribution_oracle.store.blobs import BlobStore

    manifest = BlobStore(chain_cli.home / "blobs").get(manifest_uri.removeprefix("sha256://"))
    assert all(h.hex().encode() in manifest for h in hashes)


def test_model_points_at_the_published_version(chain_cli, story):
    model = chain_cli.json("model", "show", str(story["model"]["modelId"]))
    assert model["sources"] == [{"datanet_id": 1, "version": 1}]
    assert model["price"] == str(OPEN // 2)  # amounts in wei are decimal strings in every JSON output
    assert (model["owner_bps"], model["contributors_bps"], model["datanet_owners_bps"]) == (5000, 4000, 1000)
    listed = chain_cli.json("model", "list")
    assert [m["id"] for m in listed] == [1]


def test_contribute_rerun_skips_what_is_already_there(chain_cli, story):
    again = chain_cli.json(
        "datanet", "contribute", "1", *map(str, sorted((CORPUS / "bob").iterdir())[:3]), "--from", "bob"
    )
    assert again == {"contributionIds": [], "skipped": 3}


def test_wallet_files_are_keystore_v3_readable_by_ape_layout(chain_cli, story):
    import json

    from eth_account import Account

    path = chain_cli.home / "accounts" / "alice.json"
    keystore = json.loads(path.read_text())
    assert keystore["version"] == 3 and "crypto" in keystore
    address = Account.from_key(Account.decrypt(keystore, chain_cli.env["ATTRIBUTION_PASSWORD"])).address
    listed = {w["alias"]: w["address"] for w in chain_cli.json("wallet", "list")}
    assert Web3.to_checksum_address(listed["alice"]) == address


def test_a_batch_of_contributions_is_committed_then_revealed_together_not_two_blocks_per_file(chain_cli, story):
    """On a chain with 1 s blocks, the reveals of a batch share a block or two (they were one block pair each)."""
    client, _ = _chain(chain_cli)
    provider = client.w3.provider
    files = sorted((CORPUS / "bob").iterdir())[3:8]
    provider.make_request("evm_setAutomine", [False])
    provider.make_request("evm_setIntervalMining", [1])
    try:
        sent = chain_cli.json("datanet", "contribute", "1", *map(str, files), "--from", "bob")
        chain_cli("datanet", "approve", *map(str, sent["contributionIds"]), "--from", "owner")
    finally:
        provider.make_request("evm_setIntervalMining", [0])
        provider.make_request("evm_setAutomine", [True])
    assert len(sent["contributionIds"]) == len(files)
    shown = {c["id"]: c for c in chain_cli.json("datanet", "show", "1")["contributions"]}
    blocks = {shown[i]["submitted_block"] for i in sent["contributionIds"]}
    assert len(blocks) <= 2, blocks
    # the approvals of a batch go out back to back too, and keep their order
    decided = [shown[i] for i in sent["contributionIds"]]
    assert all(c["status"] == "approved" for c in decided)
    assert len({c["decided_block"] for c in decided}) <= 2
    indices = [c["approval_index"] for c in decided]
    assert indices == sorted(indices)


def test_wallets_funding_and_minting_take_several_names_at_once(chain_cli, story):
    created = chain_cli.json("wallet", "new", "w1", "w2")
    assert [w["alias"] for w in created] == ["w1", "w2"]
    refused = chain_cli("wallet", "new", "w3", "w1", ok=False)
    assert refused.exit_code == 1 and "exists already" in refused.output
    assert "w3" not in {w["alias"] for w in chain_cli.json("wallet", "list")}  # checked before creating any
    funded = chain_cli.json("wallet", "fund", "w1", "w2", "--eth", "0.5", "--from", "dev:0")
    minted = chain_cli.json("token", "mint", "w1", "w2", "3", "--from", "dev:0")
    assert len(funded) == len(minted) == 2
    balances = {b["account"]: b for b in chain_cli.json("wallet", "balance", "w1", "w2")}
    assert {b["eth"] for b in balances.values()} == {str(OPEN // 2)}
    assert {b["open"] for b in balances.values()} == {str(3 * OPEN)}

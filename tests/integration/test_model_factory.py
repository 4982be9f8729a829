"""ModelFactory through the real CLI on a real Anvil: train on a published Datanet, register, show, eval, resume."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from attribution_oracle.chain.deployments import load_deployment
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.factory import verify_manifest
from attribution_oracle.store.blobs import BlobStore

CORPUS = Path(__file__).resolve().parents[2] / "demo" / "corpus"
TRAIN = ["--base", "tiny:0", "--steps", "8", "--batch-size", "2", "--seq-len", "64", "--proj-dim", "32",
         "--checkpoint-every", "4"]  # fmt: skip


@pytest.fixture(scope="module")
def world(chain_cli):
    """Datanet 1 with two published versions, 2 with one, 3 with approved but unpublished contributions."""
    ao = chain_cli
    for who in ("owner", "alice", "bob", "builder"):
        ao("wallet", "new", who)
        ao("wallet", "fund", who, "--eth", "1", "--from", "dev:0")
        ao("token", "mint", who, "100", "--from", "dev:0")
    ao("datanet", "create", "Bees", "--min-stake", "1", "--from", "owner")
    alice = ao.json(
        "datanet", "contribute", "1", *map(str, sorted((CORPUS / "alice").iterdir())[:4]), "--from", "alice"
    )
    ao("datanet", "approve", *map(str, alice["contributionIds"][:3]), "--from", "owner")
    v1 = ao.json("datanet", "publish", "1", "--from", "owner")
    bob = ao.json("datanet", "contribute", "1", *map(str, sorted((CORPUS / "bob").iterdir())[:3]), "--from", "bob")
    ao("datanet", "approve", str(alice["contributionIds"][3]), *map(str, bob["contributionIds"]), "--from", "owner")
    v2 = ao.json("datanet", "publish", "1", "--from", "owner")
    ao("datanet", "create", "Diseases", "--from", "owner")
    carol = ao.json("datanet", "contribute", "2", *map(str, sorted((CORPUS / "carol").iterdir())[:2]), "--from", "bob")
    ao("datanet", "approve", *map(str, carol["contributionIds"]), "--from", "owner")
    d2 = ao.json("datanet", "publish", "2", "--from", "owner")
    ao("datanet", "create", "Unpublished", "--from", "owner")
    late = ao.json("datanet", "contribute", "3", str(CORPUS / "carol" / "05-wax-moth.txt"), "--from", "bob")
    ao("datanet", "approve", *map(str, late["contributionIds"]), "--from", "owner")
    trained = ao.json(
        "model", "train", "--datanet", "2", "--datanet", "1@1", *TRAIN, "--register", "--price", "0.25",
        "--split", "6000/3000/1000", "--from", "builder",
    )  # fmt: skip
    return {"v1": v1, "v2": v2, "d2": d2, "alice": alice, "bob": bob, "carol": carol, "trained": trained}


def test_the_registered_model_points_at_the_trained_versions_and_blobs(chain_cli, world):
    trained = world["trained"]
    assert trained["modelId"] == 1 and trained["datanets"] == ["2@1", "1@1"]
    client = ChainClient(chain_cli.env["ATTRIBUTION_RPC"])
    deployment = load_deployment(client.chain_id, [chain_cli.home / "deployments"])
    registry = client.contract(deployment, "ModelRegistry")
    sources = [tuple(s) for s in registry.functions.getSources(1).call()]
    assert sources == [(2, 1), (1, 1)]
    record = registry.functions.getModel(1).call()
    store = BlobStore(chain_cli.home / "blobs")
    onchain = {bytes(v).hex() for v in record if isinstance(v, bytes) and len(v) == 32}
    assert trained["adapterHash"] in onchain and trained["baseModelHash"] in onchain
    assert hashlib.sha256(store.get(trained["adapterHash"])).hexdigest() == trained["adapterHash"]
    assert f"sha256://{trained['manifest']}" in record
    verify_manifest(store, trained["manifest"])
    shown = chain_cli.json("model", "show", "1")
    manifest = shown["manifest"]
    assert shown["metadata_uri"] == f"sha256://{trained['manifest']}" and shown["sources"][0]["datanet_id"] == 2
    assert [(d["datanet_id"], d["version"], d["merkle_root"]) for d in manifest["datanets"]] == [
        (2, 1, world["d2"]["merkleRoot"].removeprefix("0x")),
        (1, 1, world["v1"]["merkleRoot"].removeprefix("0x")),
    ]
    expected = [*world["carol"]["contributionIds"], *world["alice"]["contributionIds"][:3]]
    assert [c["contribution_id"] for c in manifest["contributions"]] == expected
    assert manifest["adapter"]["sha256"] == trained["adapterHash"]


def test_show_prints_the_manifest_and_eval_recomputes_it(chain_cli, world):
    out = chain_cli("model", "show", "1").stdout
    assert "manifest" in out and "training contributions" in out and world["trained"]["adapterHash"] in out
    report = chain_cli.json("model", "eval", "1")
    assert report["match"] and report["recomputed"]["tokens"] > 0
    by_digest = chain_cli.json("model", "eval", "--manifest", world["trained"]["manifest"])
    assert by_digest["recomputed"] == report["recomputed"]


def test_training_shows_the_base_models_held_out_loss_beside_the_tuned_one(chain_cli, world):
    trained = world["trained"]
    base, tuned = trained["evalBase"], trained["eval"]
    assert base["tokens"] == tuned["tokens"] > 0 and base["loss"] != tuned["loss"]
    change = f"{base['loss']:.4f} -> {tuned['loss']:.4f}"
    wide = {"COLUMNS": "240"}
    assert change in chain_cli("model", "show", "1", env=wide).stdout
    again = chain_cli("model", "train", "--datanet", "2", "--datanet", "1@1", *TRAIN, env=wide).stdout
    assert "held-out loss: base model -> tuned" in again and change in again


def test_rerunning_the_same_training_resumes_and_gives_the_same_adapter(chain_cli, world):
    again = chain_cli.json("model", "train", "--datanet", "2", "--datanet", "1@1", *TRAIN)
    assert again["resumedFromStep"] == 8 and again["modelId"] is None
    assert (again["adapterHash"], again["manifest"]) == (world["trained"]["adapterHash"], world["trained"]["manifest"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--datanet", "3"], "datanet 3 has no published version to train on"),
        (
            ["--datanet", "1@1", "--datanet", "1"],
            "datanet 1 is given twice (versions 1 and 2): name one version, later versions contain the earlier ones",
        ),
        (["--datanet", "1@9"], "datanet 1 has no published version 9"),
        (["--datanet", "5"], "unknown datanet 5"),
        (["--datanet", "1", "--register"], "--register needs --price and --from"),
        # (--steps 0 is now a usage error, exit 2, stating ">= 1": test_cli_errors.test_usage_errors_exit_2_...)
        (
            ["--datanet", "1", "--steps", "2", "--attribution-checkpoints", "5"],
            "invalid training settings: --attribution-checkpoints",
        ),
    ],
)
def test_bad_training_requests_are_one_line_errors(chain_cli, world, args, message):
    runs = chain_cli.home / "runs"
    before = sorted(p.name for p in runs.iterdir())
    result = chain_cli("model", "train", *args, "--base", "tiny:0", ok=False)
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {message}"
    assert sorted(p.name for p in runs.iterdir()) == before

"""Training on the tiny model: a complete manifest whose every hash verifies, deterministic adapter bytes, eval."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from world import TEXTS, make_world

from attribution_oracle.attribution import AttributionIndex
from attribution_oracle.factory import CatalogSource, ManifestError, TrainConfig, train_model, verify_manifest
from attribution_oracle.factory.artefacts import restore_directory
from attribution_oracle.factory.evaluation import evaluate_manifest
from attribution_oracle.factory.manifest import MANIFEST_FORMAT, canonical_json, load_manifest
from attribution_oracle.factory.run_state import load_state
from attribution_oracle.models import load_base_model, pack_adapter, unpack_adapter

CONFIG = TrainConfig(
    steps=12, batch_size=2, seq_len=48, proj_dim=32, checkpoint_every=4, eval_fraction=0.2, attribution_checkpoints=2
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("world")
    world = make_world(root)
    result = train_model(CatalogSource(world.catalog), world.store, ["1"], base_spec="tiny:3", config=CONFIG,
                         run_dir=root / "run")  # fmt: skip
    return world, result, root


def test_the_manifest_is_complete(trained) -> None:
    world, result, _ = trained
    manifest = load_manifest(world.store, result.manifest_digest)
    assert manifest == json.loads(canonical_json(result.manifest))
    assert world.store.get(result.manifest_digest) == canonical_json(manifest)
    assert manifest["format"] == MANIFEST_FORMAT
    base = load_base_model("tiny:3")
    assert manifest["base_model"]["sha256"] == base.sha256 == result.base_sha256
    assert manifest["base_model"]["config"]["num_hidden_layers"] == 2
    assert manifest["tokenizer"]["vocab_size"] == 258 and manifest["tokenizer"]["eos_token_id"] == 256
    assert manifest["datanets"] == [
        {"datanet_id": 1, "version": 1, "merkle_root": world.root, "count": len(TEXTS),
         "manifest_uri": "sha256://" + "0" * 64}
    ]  # fmt: skip
    contributions = manifest["contributions"]
    assert [c["sha256"] for c in contributions] == world.hashes
    assert [c["contribution_id"] for c in contributions] == list(range(1, len(TEXTS) + 1))
    assert all(
        c["contributor"].startswith("0x") and c["bytes"] == len(t) for c, t in zip(contributions, TEXTS, strict=True)
    )
    chunking = manifest["chunking"]
    assert chunking["seq_len"] == 48 and "block-diagonal" in chunking["rule"]
    assert chunking["train_chunks"] + len(chunking["eval_chunks"]) == sum(c["chunks"] for c in contributions)
    assert manifest["hyperparameters"]["steps"] == 12 and manifest["hyperparameters"]["alpha"] == 16
    assert manifest["lora_config"] == {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"],
                                       "lora_dropout": 0.0, "bias": "none"}  # fmt: skip
    assert manifest["seeds"]["seed"] == 0
    assert {"torch", "transformers", "peft"} <= manifest["libraries"].keys()
    assert [c["step"] for c in manifest["checkpoints"]] == [6, 12]
    assert manifest["checkpoints"][-1]["adapter_sha256"] == manifest["adapter"]["sha256"] == result.adapter_digest
    metrics = manifest["metrics"]
    assert len(metrics["train_losses"]) == 12 and metrics["eval"]["tokens"] > 0
    assert metrics["eval"]["perplexity"] == pytest.approx(2.718281828459045 ** metrics["eval"]["loss"])
    grad = manifest["attribution"]["gradient_index"]
    # graddot (the default estimator) has no curvature transform to store
    assert set(grad["files"]) == {"manifest.json", "features-00000.safetensors", "preconditioner.safetensors"}
    assert grad["normalize"] is True and grad["preconditioner"].startswith("(sqrt(AdamW v)")
    assert set(manifest["attribution"]["lexical_index"]["files"]) == {"lexical.json"}
    assert manifest["copies"]["groups"] == {}
    assert grad["checkpoint_steps"] == [6, 12] and grad["estimator"] == "graddot"


def test_every_hash_in_the_manifest_verifies(trained) -> None:
    world, result, root = trained
    checked = verify_manifest(world.store, result.manifest_digest)
    assert any(line.startswith("adapter ") for line in checked) and any("root" in line for line in checked)
    adapter_bytes = world.store.get(result.adapter_digest)
    assert hashlib.sha256(adapter_bytes).hexdigest() == result.adapter_digest
    blob = unpack_adapter(adapter_bytes)
    assert blob.base_model_hash == result.base_sha256 and blob.lora_config["r"] == 8
    index_dir = restore_directory(world.store, result.manifest["attribution"]["gradient_index"]["files"], root / "idx")
    index = AttributionIndex(index_dir)
    train_keys = [k for k in index.ids]
    assert len(train_keys) == result.manifest["chunking"]["train_chunks"]
    assert {k.split("#")[0] for k in train_keys} <= {str(i) for i in range(1, len(TEXTS) + 1)}
    assert not set(train_keys) & set(result.manifest["chunking"]["eval_chunks"])
    assert index.manifest["model_hash"] == result.adapter_digest


def test_a_tampered_artefact_fails_verification(trained, tmp_path: Path) -> None:
    world, result, _ = trained
    digest = result.manifest["attribution"]["gradient_index"]["files"]["features-00000.safetensors"]
    path = world.store.path_of(digest)
    original = path.read_bytes()
    os.chmod(path, 0o644)
    try:
        path.write_bytes(original[:-4] + b"\0\0\0\0")
        with pytest.raises(ManifestError, match="gradient_index file features-00000.safetensors: blob .* is corrupt"):
            verify_manifest(world.store, result.manifest_digest)
    finally:
        path.write_bytes(original)
        os.chmod(path, 0o444)


def test_training_changed_the_adapter_and_the_state_is_complete(trained) -> None:
    _, result, root = trained
    state = load_state(root / "run")
    assert state.step == 12 and sorted(state.snapshots) == [6, 12] and len(state.losses) == 12
    assert any(float(v.abs().max()) > 0 for k, v in state.params.items() if "lora_B" in k)


def test_rerunning_a_finished_run_gives_the_same_manifest(trained) -> None:
    world, result, root = trained
    again = train_model(CatalogSource(world.catalog), world.store, ["1"], base_spec="tiny:3", config=CONFIG,
                        run_dir=root / "run")  # fmt: skip
    assert again.resumed_from == 12
    assert (again.manifest_digest, again.adapter_digest) == (result.manifest_digest, result.adapter_digest)


def test_a_run_directory_of_other_settings_is_refused(trained) -> None:
    from attribution_oracle.factory import RunMismatchError

    world, _, root = trained
    other = TrainConfig(steps=13, batch_size=2, seq_len=48, proj_dim=32, checkpoint_every=4, eval_fraction=0.2)
    with pytest.raises(RunMismatchError, match="holds a run with other settings"):
        train_model(CatalogSource(world.catalog), world.store, ["1"], base_spec="tiny:3", config=other,
                    run_dir=root / "run")  # fmt: skip


def test_eval_recomputes_the_recorded_held_out_loss(trained) -> None:
    world, result, _ = trained
    report = evaluate_manifest(world.store, result.manifest_digest)
    assert report["match"] and report["recomputed"]["tokens"] == report["recorded"]["tokens"]
    assert report["recomputed"]["loss"] == pytest.approx(report["recorded"]["loss"], rel=1e-6)


def test_the_base_models_held_out_loss_is_recorded_beside_the_tuned_one(trained) -> None:
    world, result, _ = trained
    metrics = result.manifest["metrics"]
    tuned, base = metrics["eval"], metrics["eval_base"]
    assert base["tokens"] == tuned["tokens"] > 0 and base["chunks"] == tuned["chunks"]
    assert base["loss"] != tuned["loss"]  # the adapter is on for one and off for the other
    assert base["perplexity"] == pytest.approx(2.718281828459045 ** base["loss"])
    # the base model alone (no LoRA wrapper at all) scores the held-out chunks the same
    report = evaluate_manifest(world.store, result.manifest_digest)
    assert report["recorded_base"] == base
    assert report["base"]["loss"] == pytest.approx(base["loss"], rel=1e-6)


def test_adapter_blobs_are_byte_identical_for_equal_inputs() -> None:
    state = {"b.weight": torch.ones(2, 3), "a.weight": torch.arange(6.0).reshape(3, 2)}
    config = {"r": 2, "lora_alpha": 4, "target_modules": ["q_proj"], "lora_dropout": 0.0, "bias": "none"}
    blobs = {pack_adapter(state, config, "ab" * 32) for _ in range(20)}
    assert len(blobs) == 1
    assert unpack_adapter(blobs.pop()).state_dict["a.weight"].tolist() == [[0, 1], [2, 3], [4, 5]]


def test_the_scorer_sums_chunk_influences_per_contribution(trained, tmp_path: Path) -> None:
    from attribution_oracle.factory.scorer import load_model_scorer

    world, result, _ = trained
    scorer = load_model_scorer(world.store, result.manifest_digest, tmp_path / "cache")
    trained_ids = [str(c["contribution_id"]) for c in result.manifest["contributions"] if c["train_chunks"]]
    assert [c.contribution_id for c in scorer.contributions] == trained_ids
    prompt, output = list(b"How often "), list(b"Inspect the hive every nine days")
    scores = scorer.gradient_scores(prompt, output)
    assert list(scores) == trained_ids and scores == scorer.gradient_scores(prompt, output)
    query = scorer._query_features([(prompt, output)])  # the features the scorer scores with
    rows = scorer.index.scores(query)[0].double()
    expected: dict[str, float] = {}
    for row_id, value in zip(scorer.index.ids, rows.tolist(), strict=True):
        key = row_id.split("#")[0]
        expected[key] = expected.get(key, 0.0) + value
    for key, value in expected.items():
        assert scores[key] == pytest.approx(value, rel=1e-4, abs=1e-6 * max(map(abs, expected.values())))
    assert scorer.gradient_scores(prompt, []) == dict.fromkeys(trained_ids, 0.0) and scorer.scores(prompt, []) == {}


def test_the_span_index_attributes_copied_text_and_is_combined_by_the_manifest_rule(trained, tmp_path: Path) -> None:
    from attribution_oracle.attribution.combine import FACTORY_RULE, CombineRule, combine
    from attribution_oracle.factory.scorer import load_model_scorer

    world, result, _ = trained
    span = result.manifest["attribution"]["span_index"]
    assert {"manifest.json", "tokens.bin", "sa.bin", "ids.txt"} <= set(span["files"])
    assert result.manifest["combine"] == FACTORY_RULE.to_dict() and FACTORY_RULE.lexical_weight > 0
    scorer = load_model_scorer(world.store, result.manifest_digest, tmp_path / "cache")
    assert "3#0" not in result.manifest["chunking"]["eval_chunks"]
    copied = list(TEXTS[2].encode()[:40])  # contribution 3's text, verbatim
    spans = scorer.span_scores(copied)
    assert list(spans) == ["3"]
    combined = scorer.scores(list(b"Q: "), copied)
    lexical = scorer.lexical_scores(list(b"Q: "), copied)
    assert next(iter(sorted(lexical, key=lambda k: -lexical[k]))) == "3"
    assert combined == combine(scorer.gradient_scores(list(b"Q: "), copied), spans, FACTORY_RULE, lexical)
    assert CombineRule.from_dict(result.manifest["combine"]) == FACTORY_RULE
    assert combined and all(v > 0 for v in combined.values())


def test_the_default_index_rows_are_the_unit_preconditioned_projected_chunk_gradients(trained, tmp_path: Path) -> None:
    """graddot: every index row is minus the unit-normalised, AdamW-preconditioned, projected loss gradient of its
    chunk (no curvature inverse), so a query's score is its cosine with that direction in AdamW's metric."""
    from attribution_oracle.factory.scorer import load_model_scorer

    world, result, _ = trained
    scorer = load_model_scorer(world.store, result.manifest_digest, tmp_path / "cache")
    assert result.manifest["attribution"]["gradient_index"]["estimator"] == "graddot"
    rows = scorer.index.matrix().double()
    k = scorer.attributor.projector.out_dim
    assert rows.shape[1] == 2 * k  # two attribution checkpoints
    for part in rows.split(k, dim=1):  # one block per checkpoint, each unit-normalised
        assert torch.allclose(part.norm(dim=1), torch.ones(len(part), dtype=torch.float64), atol=1e-5)
    assert scorer.index.transforms() == []  # no curvature map to store
    # minus the unit preconditioned projected loss gradient: recompute the last checkpoint's rows from scratch
    from attribution_oracle.attribution import LanguageModelTask
    from attribution_oracle.attribution.gradients import per_example_grads
    from attribution_oracle.factory.chunking import example_batch, tokenize_documents
    from attribution_oracle.factory.fetch import Document
    from attribution_oracle.factory.version_sources import ApprovedContribution

    model = scorer.model.to(torch.float32)
    try:
        names = scorer.attributor.names
        docs = [Document(ApprovedContribution(1, i + 1, "", ""), t.encode()) for i, t in enumerate(TEXTS)]
        chunks = {c.key: c for c in tokenize_documents(docs, load_base_model("tiny:3").tokenizer, 48)}
        row = 0
        chunk = chunks[scorer.index.ids[row]]
        grads = per_example_grads(model, LanguageModelTask().loss, names, example_batch([chunk], 0))
        scaled = {n: g * scorer.attributor.preconditioner[n] for n, g in grads.items()}
        direction = -scorer.attributor.projector.project(scaled).double()[0]
        # the row is captured in the training backward (a step before the checkpoint), so compare directions loosely
        cosine = float(direction @ rows[row, k:] / direction.norm())
        assert cosine > 0.5
    finally:
        scorer.model.to(torch.float64)


def test_the_influence_estimator_stays_selectable(tmp_path: Path) -> None:
    from attribution_oracle.factory import FactoryError
    from attribution_oracle.factory.scorer import load_model_scorer

    torch.set_num_threads(1)
    world = make_world(tmp_path / "world")
    config = TrainConfig(steps=4, batch_size=2, seq_len=48, proj_dim=16, eval_fraction=0.0,
                         gradient_estimator="influence")  # fmt: skip
    result = train_model(CatalogSource(world.catalog), world.store, ["1"], base_spec="tiny:3", config=config,
                         run_dir=tmp_path / "run")  # fmt: skip
    grad = result.manifest["attribution"]["gradient_index"]
    assert grad["estimator"] == "influence" and "transforms.safetensors" in grad["files"]
    scorer = load_model_scorer(world.store, result.manifest_digest, tmp_path / "cache")
    scores = scorer.gradient_scores(list(b"How often "), list(b"Inspect the hive"))
    assert scores and all(isinstance(v, float) for v in scores.values())
    with pytest.raises(FactoryError):
        TrainConfig(gradient_estimator="trak")

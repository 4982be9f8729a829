"""The copies rule through the factory: a verbatim or near copy approved later earns nothing on any signal (its
credit folds onto the original); bad inputs get a defined result or a clear error; two processes score alike."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from world import CONTRIBUTORS, TEXTS, make_world

from attribution_oracle.attribution import contributor_shares
from attribution_oracle.factory import CatalogSource, TrainConfig, train_model
from attribution_oracle.factory.factory_errors import ScoringError
from attribution_oracle.factory.scorer import load_model_scorer

WORKER = Path(__file__).with_name("worker.py")
COPIER = "0xC0A1E50000000000000000000000000000000009"
VERBATIM = TEXTS[2] + "\n"  # the registry refuses identical bytes; a copier changes a byte
NEAR = TEXTS[5].replace("other foragers", "the other foragers") + " Every beekeeper should know it."
CONFIG = TrainConfig(steps=8, batch_size=2, seq_len=96, proj_dim=32, checkpoint_every=4, eval_fraction=0.0)


@pytest.fixture(scope="module")
def copied(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("copies")
    texts = [*TEXTS, VERBATIM, NEAR]
    owners = [CONTRIBUTORS[i % 2] for i in range(len(TEXTS))] + [COPIER, COPIER]
    world = make_world(root, texts, contributors=owners)
    result = train_model(CatalogSource(world.catalog), world.store, ["1"], base_spec="tiny:3", config=CONFIG,
                         run_dir=root / "run")  # fmt: skip
    scorer = load_model_scorer(world.store, result.manifest_digest, root / "cache")
    by_id = {str(c["contribution_id"]): c["contributor"] for c in result.manifest["contributions"]}
    return world, result, scorer, by_id, root


def test_the_factory_groups_verbatim_and_near_copies_under_the_earliest(copied) -> None:
    _, result, scorer, _, _ = copied
    assert result.manifest["copies"]["groups"] == {"10": "6", "9": "3"}
    assert "earliest" in result.manifest["copies"]["rule"]
    assert [c.contribution_id for c in scorer.contributions] == [str(i) for i in range(1, 9)]


@pytest.mark.parametrize("source", [2, 5])
def test_a_copy_takes_nothing_on_any_signal(copied, source: int) -> None:
    _, _, scorer, owners, _ = copied
    prompt, output = list(b"Tell me: "), list(TEXTS[source].encode()[:60])
    original = str(source + 1)
    signals = {
        "gradient": scorer.gradient_scores(prompt, output),
        "span": scorer.span_scores(output, prompt),
        "lexical": scorer.lexical_scores(prompt, output),
        "combined": scorer.scores(prompt, output),
    }
    for name, scores in signals.items():
        assert not {"9", "10"} & set(scores), name
    for name in ("span", "lexical", "combined"):
        assert max(signals[name], key=signals[name].get) == original, name
    shares = contributor_shares(10**18, signals["combined"], owners)
    assert COPIER not in shares and sum(shares.values()) == 10**18
    assert shares[owners[original]] > 10**18 // 2


def test_empty_output_scores_nothing_and_foreign_ids_raise_a_clear_error(copied) -> None:
    _, _, scorer, _, _ = copied
    assert scorer.scores(list(b"Q: "), []) == {}
    assert scorer.span_scores([]) == {} and scorer.lexical_scores(list(b"Q"), []) == {}
    with pytest.raises(ScoringError, match="output token id 999999 is not in the model's vocabulary"):
        scorer.scores(list(b"Q: "), [72, 999999])
    with pytest.raises(ScoringError, match="prompt token id -1"):
        scorer.scores([-1], [72])


def test_an_output_longer_than_the_context_is_refused_and_other_scripts_get_finite_scores(copied) -> None:
    _, _, scorer, _, _ = copied
    long_output = list(("Winter clusters keep the queen warm. " * 20).encode())
    assert len(long_output) > scorer.model.config.max_position_embeddings
    with pytest.raises(ScoringError, match="more than the model's context of 512"):
        scorer.scores(list(b"Q: "), long_output)
    foreign = scorer.scores(list("Как пчёлы зимуют? 蜜蜂".encode()), list("Зимой пчёлы 蜜蜂".encode()))
    assert all(math.isfinite(v) and v > 0 for v in foreign.values())


def _signals(root: Path, manifest: str, cache: str, threads: int = 1) -> list:
    src = str(Path(__file__).resolve().parents[3] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": str(threads), "WORKER_THREADS": str(threads)}  # fmt: skip
    done = subprocess.run([sys.executable, str(WORKER), "signals", str(root), manifest, str(root / cache)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_two_processes_give_byte_identical_signals(copied) -> None:
    world, result, _, _, root = copied
    world.catalog.close()
    first = _signals(root, result.manifest_digest, "proc-1")
    second = _signals(root, result.manifest_digest, "proc-2", threads=2)  # another thread count, the same bytes
    assert first == second
    assert all(q["scores"] and q["lexical"] for q in first[:2])
    assert all(not {"9", "10"} & set(q[s]) for q in first for s in q)


def test_the_rag_retriever_serves_verified_texts_from_the_training_index(copied) -> None:
    from attribution_oracle.serving.rag_retriever import Retriever

    world, result, _, _, root = copied
    retriever = Retriever.from_manifest(world.store, result.manifest, root / "rag")
    found = retriever.retrieve("How are varroa mites counted?", k=2)
    assert found[0].contribution_id == "3" and found[0].text == TEXTS[2]
    assert "[3] " + TEXTS[2] in Retriever.augment("How are varroa mites counted?", found)
    assert retriever.retrieve("zzzz qqqq", k=3) == [] and Retriever.augment("hi", []) == "hi"

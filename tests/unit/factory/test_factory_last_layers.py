"""``TrainConfig.attribution_layers``: a gradient index over the last layers' LoRA modules only, the same parameters
on the query side (whose backward stops there and which reuses the chat prefix's states), byte-identical scores
one at a time, in a batch and in two processes at different thread counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from world import make_world

from attribution_oracle.factory import CatalogSource, TrainConfig, train_model
from attribution_oracle.factory.factory_errors import FactoryError
from attribution_oracle.factory.index_capture import attributed_names
from attribution_oracle.factory.scorer import chat_prefix, load_model_scorer
from attribution_oracle.serving.chat import render_chat

CONFIG = TrainConfig(steps=4, batch_size=2, seq_len=64, proj_dim=32, checkpoint_every=2, eval_fraction=0.0,
                     attribution_layers=1, attribution_checkpoints=2)  # fmt: skip
QUESTIONS = [("How often should the hive be inspected?", " Every nine days."),
             ("What calms the bees?", " A smoker."), ("Count the mites how?", " With an alcohol wash.")]  # fmt: skip
SCORE = """
import json, sys, torch
torch.set_num_threads(int(sys.argv[4]))
from pathlib import Path
from attribution_oracle.factory.scorer import load_model_scorer
from attribution_oracle.store.blobs import BlobStore
scorer = load_model_scorer(BlobStore(Path(sys.argv[1]) / "blobs"), sys.argv[2], Path(sys.argv[3]))
items = json.loads(sys.stdin.read())
print(json.dumps([{k: repr(v) for k, v in s.items()} for s in scorer.scores_many(items)], sort_keys=True))
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("last-layers")
    world = make_world(root)
    result = train_model(CatalogSource(world.catalog), world.store, ["1"], base_spec="tiny:2", config=CONFIG,
                         run_dir=root / "run")  # fmt: skip
    world.catalog.close()
    scorer = load_model_scorer(world.store, result.manifest_digest, root / "cache")
    tok = scorer.tokenizer
    items = [(list(tok(render_chat(tok, [{"role": "user", "content": q}]), add_special_tokens=False)["input_ids"]),
              list(tok(a, add_special_tokens=False)["input_ids"])) for q, a in QUESTIONS]  # fmt: skip
    items.append((list(b"Q: hive?"), list(b" Inspect it")))  # no chat prefix: computed whole
    return root, result, scorer, items, world.store


def test_the_index_and_the_query_cover_the_last_layer_only(trained) -> None:
    _, result, scorer, _, _ = trained
    parameters = result.manifest["attribution"]["gradient_index"]["parameters"]
    assert parameters and all(".layers.1." in n for n in parameters)
    assert parameters == attributed_names(scorer.model, 1) == scorer.attributor.names
    assert result.manifest["hyperparameters"]["attribution_layers"] == 1
    featurizer = scorer._featurizer
    assert featurizer.lowest_layer == 1 and featurizer.prefix == chat_prefix(scorer.tokenizer) != ()
    assert scorer.index.dim == 32 * 2  # proj_dim per checkpoint


def test_scores_match_one_at_a_time_in_a_batch_and_the_reference_path(trained) -> None:
    root, result, scorer, items, store = trained
    alone = [scorer.scores(p, o) for p, o in items]
    assert scorer.scores_many(items) == alone and all(alone)
    assert sorted(scorer._featurizer._prefix_states_at) == [0, 1]  # one prefix state per checkpoint
    reference = load_model_scorer(store, result.manifest_digest, root / "ref", query_path="reference")
    for (p, o), fast in zip(items, alone, strict=True):
        assert max(fast, key=fast.get) == max(reference.scores(p, o), key=fast.get)
        fast_g, ref_g = scorer.gradient_scores(p, o), reference.gradient_scores(p, o)
        assert all(abs(fast_g[k] - ref_g[k]) < 1e-3 for k in fast_g)


def test_two_processes_at_one_and_two_threads_give_byte_identical_scores(trained) -> None:
    root, result, _, items, _ = trained
    src = str(Path(__file__).resolve().parents[3] / "src")
    outs = []
    for threads in (1, 2):
        env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "OMP_NUM_THREADS": str(threads)}  # fmt: skip
        done = subprocess.run([sys.executable, "-c", SCORE, str(root), result.manifest_digest,
                               str(root / f"proc-{threads}"), str(threads)], input=json.dumps(items), env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        outs.append(json.loads(done.stdout))
    assert outs[0] == outs[1] and all(outs[0])


def test_the_setting_is_recorded_only_when_set_and_must_not_be_negative() -> None:
    assert "attribution_layers" not in TrainConfig().to_dict()
    assert TrainConfig(attribution_layers=3).to_dict()["attribution_layers"] == 3
    with pytest.raises(FactoryError, match="--attribution-layers"):
        TrainConfig(attribution_layers=-1)


def test_the_chat_prefix_of_the_tiny_template_and_of_no_or_a_broken_tokenizer() -> None:
    from attribution_oracle.models import load_base_model

    tokenizer = load_base_model("tiny:0").tokenizer
    assert chat_prefix(tokenizer) == tuple(b"<|im_start|>user\n")
    assert chat_prefix(None) == ()

    class Broken:
        chat_template = "{{ raise_exception('no') }}"

        def apply_chat_template(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            raise ValueError("this template needs a system message")

    assert chat_prefix(Broken()) == ()

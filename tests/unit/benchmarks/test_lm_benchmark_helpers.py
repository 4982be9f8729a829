"""The bookkeeping of ``benchmarks/lm_attribution.py``: method names, LM-LDS, tables and the results file."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_sweep_expands_each_peer_into_its_knob_values(lm):
    names = lm.expand_methods("ours,bm25,less,trak,ekfac", sweep=True)
    assert names[:2] == ["ours", "bm25"]
    assert [n for n in names if n.startswith("trak")] == [f"trak:proj={d}" for d in (64, 128, 256, 512, 2048)]
    assert "ekfac:damping=heuristic" in names and "less:plain" in names
    assert lm.expand_methods("ours,less", sweep=False) == ["ours", "less"]


def test_unknown_method_is_refused_with_an_error_line(lm):
    with pytest.raises(SystemExit, match="error: unknown method 'trak:dim=3'"):
        lm.method_factory("trak:dim=3")
    for name in ["ours", "ours:span", "bm25", "less:no-norm", "trak:proj=64", "ekfac:damping=1e-3"]:
        assert callable(lm.method_factory(name))


def test_lds_is_one_for_a_perfect_ranking_and_minus_one_for_a_reversed_one(lm):
    truth = np.array([[1.0, 5.0], [2.0, 4.0], [3.0, 3.0], [4.0, 2.0]])
    assert lm.lds_of(truth.copy(), truth) == pytest.approx(1.0)
    assert lm.lds_of(-truth, truth) == pytest.approx(-1.0)
    mixed = np.stack([truth[:, 0], truth[:, 0]], 1)  # right on query 0, reversed on query 1
    assert lm.lds_of(mixed, truth) == pytest.approx(0.0)


def test_table_shows_each_peer_once_at_its_best_variant(lm):
    rows = {
        "ours": {"recall_at_1": 1.0, "mrr": 1.0, "author_share": 0.7},
        "bm25": {"recall_at_1": 1.0, "mrr": 1.0, "author_share": 0.07},
        "trak:proj=256": {"recall_at_1": 0.1, "mrr": 0.2, "author_share": 0.01},
        "trak:proj=2048": {"recall_at_1": 0.3, "mrr": 0.4, "author_share": 0.02},
        "ekfac:damping=1e-8": {"recall_at_1": None, "mrr": None, "author_share": None},
    }
    best = lm.best_variants(rows, lambda r: (r["mrr"], r["author_share"]))
    assert best == {"trak": "trak:proj=2048"}  # only peers with knobs have variants (not ours, not bm25)
    table = lm.summarise(rows, best)
    assert list(table) == ["ours", "bm25", "trak", "ekfac:damping=1e-8"]  # a failed peer keeps its row
    assert table["trak"]["variant"] == "trak:proj=2048"
    assert "| trak (trak:proj=2048) |" in lm.fmt_table(table, ["mrr"])


def test_a_run_of_one_part_keeps_the_other_parts_results(lm, tmp_path):
    path = tmp_path / "lm_attribution.json"
    path.write_text(
        json.dumps(
            {
                "facts": {"ours": {"mrr": 1.0}},
                "lds": {},
                "meta": {"base": "smollm2", "best_variant": {"facts": {"trak": "trak:proj=256"}}},
            }
        )
    )
    result = {
        "facts": {},
        "lds": {"ours": {"lds": 0.3, "seconds": 1.0}},
        "meta": {"base": "tiny:0", "date": "d", "best_variant": {"facts": {}, "lds": {"less": "less:plain"}}},
    }
    lm.keep_other_part(path, result, facts=False, lds=True)
    assert result["facts"] == {"ours": {"mrr": 1.0}}
    assert result["meta"]["facts_run"]["base"] == "smollm2"
    assert result["meta"]["parts"] == {"lds": {"base": "tiny:0", "date": "d"}}
    assert result["meta"]["best_variant"] == {"facts": {"trak": "trak:proj=256"}, "lds": {"less": "less:plain"}}


def test_less_peer_scores_the_query_own_text_as_the_most_helpful_chunk(lm, tmp_path):
    """A regression test: the LESS peer once took the query's log-likelihood gradient (minus its loss gradient)
    against the training chunks' loss gradients, which made every score's sign wrong (recall@1 0 on tiny:0)."""
    from attribution_oracle.factory import TrainConfig
    from attribution_oracle.factory.chunking import tokenize_documents
    from attribution_oracle.factory.fetch import Document
    from attribution_oracle.factory.peft_lora import attach_lora
    from attribution_oracle.factory.trainer import train_loop
    from attribution_oracle.factory.version_sources import ApprovedContribution
    from attribution_oracle.models import load_base_model

    base = load_base_model("tiny:0")
    texts = ["The Orvane Company makes copper kettles.", "Kelmar is a quiet town on the Duri river.",
             "The ship Sathi sailed to Lenmo with river rice."]  # fmt: skip
    docs = [Document(ApprovedContribution(1, i + 1, "", ""), t.encode()) for i, t in enumerate(texts)]
    config = TrainConfig(steps=3, batch_size=2, seq_len=64, lr=1e-2, eval_fraction=0.0, checkpoint_every=100)
    chunks = tokenize_documents(docs, base.tokenizer, config.seq_len)
    model = attach_lora(base.model, config.lora_config(), config.seed)
    (tmp_path / "run").mkdir()
    train_loop(model, base.tokenizer, chunks, config, tmp_path / "run")
    setup = lm.Setup(corpus=None, scorer=None, tokenizer=base.tokenizer, model32=model, chunks=chunks,
                     pad_id=int(base.tokenizer.eos_token_id), run_dir=tmp_path / "run", proj_dim=64)  # fmt: skip
    plain, preconditioned = lm.less(setup, precondition=False), lm.less(setup)
    for chunk in chunks:
        query = lm.Query(prompt=[], output=list(chunk.tokens), question="", answer="", doc=0, kind="teacher")
        same = dict(plain(query))
        assert same[chunk.contribution] == pytest.approx(1.0, abs=1e-6)  # its own gradient: cosine 1
        scaled = dict(preconditioned(query))
        assert max(scaled, key=scaled.get) == chunk.contribution and scaled[chunk.contribution] > 0


def test_the_ground_truth_key_ignores_index_only_settings(lm):
    base = lm.config_for("tiny:0", 40, lr=1e-2)
    key = lm.truth_config(base)
    # the index ablations share the cached retrains ...
    for change in ({"proj_dim": 64}, {"attribution_checkpoints": 4}, {"gradient_estimator": "influence"},
                   {"index_capture": "pass"}, {"precondition": False, "normalize_gradients": False}):  # fmt: skip
        assert lm.truth_config(lm.config_for("tiny:0", 40, lr=1e-2, **change)) == key
    # ... while anything that changes the trained adapter gets its own
    assert lm.truth_config(lm.config_for("tiny:0", 40, lr=2e-2)) != key
    assert lm.truth_config(lm.config_for("tiny:0", 41, lr=1e-2)) != key
    assert "gradient_estimator" not in key and key["proj_dim"] == lm.INDEX_ONLY["proj_dim"]


def test_author_only_lds_scores_the_facts_document(lm):
    masks = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 1, 1]], dtype=bool)
    query = lm.Query([1], [2], "q", "a", doc=0, kind="teacher")
    truth = masks[:, [0]].astype(float) * 2.0 + 0.5  # the likelihood rises exactly when doc 0 is trained on
    value, _ = lm.author_only_lds([query], masks, truth)
    assert value == pytest.approx(1.0)

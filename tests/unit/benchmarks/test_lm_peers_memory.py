"""The SmolLM2 peers' memory and run plumbing in ``benchmarks/``: peak RSS per method, the heap handed back,
TRAK's sliced per-example gradients and padded query batches, and the partial results a killed run leaves."""

from __future__ import annotations

import sys

import pytest
import torch


@pytest.fixture(scope="module")
def memory(lm):
    return sys.modules["peak_memory"]  # imported by lm_attribution from benchmarks/


def test_peak_rss_sees_an_allocation_made_and_freed_inside_its_block(memory):
    with memory.PeakRss(interval=0.01) as peak:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        for _ in range(20):  # let the sampler see it
            block.add_(1)
        del block
    assert peak.start_mb is not None and peak.peak_mb is not None
    assert peak.peak_mb - peak.start_mb >= 48
    assert memory.rss_mb() < peak.peak_mb


def test_release_memory_returns_a_fragmented_heap_to_the_os(memory):
    """Freed small blocks between live ones stay in the C heap (the TRAK peer's growth to 24 GiB on SmolLM2)
    until ``malloc_trim``, which ``release_memory`` calls."""
    blocks = [bytearray(4000) for _ in range(40_000)]  # ~160 MB of malloc'd (not mmap'd) blocks
    keep = blocks[::64]  # one live block in every 64 keeps the heap from shrinking on its own
    del blocks
    before = memory.rss_mb()
    memory.release_memory()
    after = memory.rss_mb()
    assert len(keep) == 625
    assert before - after >= 80, (before, after)


def test_partial_rows_are_reused_only_by_a_run_of_the_same_configuration(lm, tmp_path):
    path = tmp_path / "lm_attribution.facts.partial.json"
    lm.write_partial(path, "key-a", {"facts": {"trak:proj=64": {"mrr": 0.2}}, "errors": {}})
    assert lm.read_partial(path, "key-a")["facts"] == {"trak:proj=64": {"mrr": 0.2}}
    assert lm.read_partial(path, "key-b") == {}  # another model, queries or subsets: nothing reused
    assert lm.read_partial(tmp_path / "missing.json", "key-a") == {}
    path.write_text("{not json")  # a torn file (atomic_write prevents it; a hand edit might not)
    assert lm.read_partial(path, "key-a") == {}


def test_partial_path_sits_next_to_the_results_file(lm, tmp_path):
    class Args:
        out = str(tmp_path / "r.json")

    assert lm.partial_path(Args, "lds") == tmp_path / "r.lds.partial.json"


def test_measured_reports_the_peak_of_the_work_it_ran(lm):
    value, peak = lm.measured("x", lambda: float(torch.ones(32 * 2**20 // 4).sum()))
    assert value == 32 * 2**20 // 4
    assert peak is not None and peak > 0


def test_chunked_per_sample_concatenates_slices_in_order(lm):
    batch = [torch.arange(10).reshape(5, 2), torch.ones(5, 2)]
    calls = []

    def compute(part):
        calls.append(len(part[0]))
        return {"w": part[0] * 2 + part[1], "b": part[0][:, :1]}

    out = lm.chunked_per_sample(compute, batch, size=2)
    assert calls == [2, 2, 1]
    assert torch.equal(out["w"], batch[0] * 2 + batch[1]) and torch.equal(out["b"], batch[0][:, :1])


def test_trak_gradients_of_padded_query_batches_in_slices_equal_each_query_alone(lm):
    """TRAK on SmolLM2 scores queries in right-padded groups and takes per-example gradients in slices, one example
    at a time; none of it may change a query's gradient from traker's own vmap on the query alone (the causal mask
    keeps padding out of every real token's logits)."""
    from trak.gradient_computers import FunctionalGradientComputer

    from attribution_oracle.factory.peft_lora import attach_lora
    from attribution_oracle.models import load_base_model

    base = load_base_model("tiny:0")
    model = attach_lora(base.model, {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"],
                                     "lora_dropout": 0.0, "bias": "none"}, 0)  # fmt: skip
    with torch.no_grad():  # LoRA B starts at zero; move it so the gradients of A are not all zero
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.05)
    model.eval()
    lora = {n: p for n, p in model.named_parameters() if p.requires_grad}
    computer = FunctionalGradientComputer(model, lm._LMOutput(), 1, torch.float32, "cpu", grad_wrt=list(lora))
    computer.func_weights, computer.func_buffers = lora, dict(model.named_buffers())
    queries = [lm.Query(prompt=[5, 6, 7], output=[8, 9], question="", answer="", doc=0, kind="teacher"),
               lm.Query(prompt=[10, 11], output=[12, 13, 14, 15, 16], question="", answer="", doc=0, kind="teacher"),
               lm.Query(prompt=[3, 2], output=[4], question="", answer="", doc=0, kind="teacher")]  # fmt: skip
    rows = [lm._query_batch(q) for q in queries]
    padded = lm.padded_batch(rows, pad_id=0)
    assert padded[0].shape == (3, 7) and padded[2][2, 3:].eq(-100).all() and padded[1][0, 5:].eq(0).all()
    looped = lm.chunked_per_sample(lambda part: lm.looped_output_grads(lm._LMOutput(), model, part), padded, size=2)
    vmapped = lm.chunked_per_sample(lambda part: computer.compute_per_sample_grad(batch=part), padded, size=2)
    for i, row in enumerate(rows):
        alone = computer.compute_per_sample_grad(batch=[row["input_ids"], row["attention_mask"], row["labels"]])
        for name in lora:
            assert alone[name][0].abs().sum() > 0
            torch.testing.assert_close(vmapped[name][i], alone[name][0], rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(looped[name][i], alone[name][0], rtol=1e-4, atol=1e-6)


def test_stop_time_is_today_at_the_given_utc_minute_and_refuses_garbage(lm):
    import datetime as dt

    now = dt.datetime(2026, 11, 29, 18, 40, 12, tzinfo=dt.UTC)
    assert lm.stop_time("20:05", now) == dt.datetime(2026, 11, 29, 20, 5, tzinfo=dt.UTC).timestamp()
    assert lm.stop_time(None, now) is None
    with pytest.raises(SystemExit, match="error: --lds-stop-at wants HH:MM"):
        lm.stop_time("8pm", now)


def test_lds_truth_past_its_stop_time_returns_only_the_cached_subsets(lm, tmp_path, monkeypatch):
    """A stopped LM-LDS keeps what finished: past ``stop_at`` no retrain starts, cached subsets still count."""
    from attribution_oracle.factory import TrainConfig

    monkeypatch.setattr(lm, "CACHE", tmp_path)
    texts = ["alpha", "beta", "gamma", "delta"]
    masks = __import__("numpy").array([[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0]], dtype=bool)
    queries = [lm.Query(prompt=[1], output=[2], question="", answer="", doc=0, kind="teacher")]
    config = TrainConfig(steps=1)
    common = {"base": "tiny:0", "config": lm.truth_config(config), "queries": [[[1], [2]]], "v": lm.TRUTH_VERSION}
    cached = tmp_path / "lm_lds" / f"tiny0-{lm._digest({**common, 'texts': ['gamma', 'delta']})}.json"
    cached.parent.mkdir()
    cached.write_text('{"loglik": [-1.5], "seconds": 1.0}')
    truth, done = lm.lds_truth(texts, masks, "tiny:0", config, queries, stop_at=0.0)
    assert done == [1]
    assert truth.tolist() == [[-1.5]]

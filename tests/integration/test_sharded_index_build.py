"""``train_model(nproc=2)`` (``model train --nproc 2``): the index build's gradient pass sharded over a 2-process gloo
group writes the same bytes as one process, and every helper process is stopped."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "factory"))

from world import TEXTS, make_world  # noqa: E402

from attribution_oracle.factory import CatalogSource, TrainConfig, train_model  # noqa: E402
from attribution_oracle.factory.chunking import split_eval, tokenize_documents  # noqa: E402
from attribution_oracle.factory.index_capture import catch_up_batch_count  # noqa: E402
from attribution_oracle.models import load_base_model  # noqa: E402


def _children() -> list[int]:
    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        pids += [int(p) for p in (task / "children").read_text().split()]
    return pids


def _train(root: Path, config: TrainConfig, nproc: int):
    world = make_world(root, TEXTS * 2)
    return train_model(
        CatalogSource(world.catalog), world.store, ["1"], base_spec="tiny:3", config=config,
        run_dir=root / "run", nproc=nproc,
    )  # fmt: skip


@pytest.mark.parametrize("capture", ["pass", "backward"])
def test_two_process_gloo_index_build_equals_one_process(capture: str, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the helpers take rank 0's thread count
    try:
        config = TrainConfig(steps=3, batch_size=2, seq_len=24, proj_dim=16, eval_fraction=0.1, index_capture=capture)
        tokenizer = load_base_model("tiny:3").tokenizer
        from attribution_oracle.factory.fetch import Document
        from attribution_oracle.factory.version_sources import ApprovedContribution

        docs = [Document(ApprovedContribution(1, i + 1, "0x" + "0" * 40, "0" * 64), t.encode()) for i, t in
                enumerate(TEXTS * 2)]  # fmt: skip
        train, _ = split_eval(tokenize_documents(docs, tokenizer, 24), 0.1, 0)
        assert catch_up_batch_count(train, list(range(len(train))), 24, 2) >= 4  # both ranks get batches
        before = set(_children())
        one = _train(tmp_path / "one", config, 1)
        two = _train(tmp_path / "two", config, 2)
        assert set(_children()) <= before  # the helper process was stopped
    finally:
        torch.set_num_threads(threads)
    gradient_one = one.manifest["attribution"]["gradient_index"]
    gradient_two = two.manifest["attribution"]["gradient_index"]
    assert gradient_one["files"] == gradient_two["files"]  # byte-identical index files
    assert one.manifest_digest == two.manifest_digest


def test_a_helper_that_cannot_load_the_model_fails_the_build_instead_of_hanging() -> None:
    import time

    from attribution_oracle.factory.index_shards import IndexShardGroup

    before = set(_children())
    group = IndexShardGroup(2, base_spec="no-such-model:0", lora_config={"r": 2}, seed=0)
    with pytest.raises(RuntimeError, match="exited before joining"), group:
        deadline = time.monotonic() + 300
        while group.helpers[0].poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        group.catch_up(None, [], [], 8, 1, 0)
    assert group.helpers == [] and set(_children()) <= before

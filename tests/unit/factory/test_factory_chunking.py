"""Chunking, the held-out split and packing: deterministic, complete, and exact (packed loss = sum of chunk losses)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution_oracle.factory.chunking import Chunk, pack_rows, packed_batch, split_eval, tokenize_documents
from attribution_oracle.factory.fetch import Document
from attribution_oracle.factory.training_batches import DataOrder, packed_loss_sum
from attribution_oracle.factory.version_sources import ApprovedContribution
from attribution_oracle.models import load_base_model

chunk_lists = st.lists(st.integers(2, 40), min_size=1, max_size=30).map(
    lambda sizes: [Chunk(str(i), 0, tuple(range(n))) for i, n in enumerate(sizes)]
)


@given(chunk_lists, st.integers(40, 100))
@settings(max_examples=60, deadline=None)
def test_packing_places_every_chunk_once_within_the_row_length(chunks: list[Chunk], seq_len: int) -> None:
    rows = pack_rows(chunks, seq_len)
    placed = sorted(i for row in rows for i in row)
    assert placed == list(range(len(chunks)))
    assert all(sum(len(chunks[i].tokens) for i in row) <= seq_len for row in rows)
    assert rows == pack_rows(chunks, seq_len)


@given(chunk_lists, st.floats(0, 0.9), st.integers(0, 5))
@settings(max_examples=60, deadline=None)
def test_split_is_deterministic_keeps_order_and_never_holds_out_everything(chunks, fraction, seed) -> None:
    train, held = split_eval(chunks, fraction, seed)
    assert (train, held) == split_eval(chunks, fraction, seed)
    assert sorted(train + held, key=lambda c: int(c.contribution)) == chunks
    assert train
    if fraction > 0 and len(chunks) >= 2:
        assert 1 <= len(held) <= len(chunks) - 1
    else:
        assert held == []


def test_documents_are_chunked_with_eos_and_never_across_contributions() -> None:
    tokenizer = load_base_model("tiny:0").tokenizer
    docs = [
        Document(ApprovedContribution(1, 5, "0xA", "0" * 64), b"abcdefghij"),
        Document(ApprovedContribution(1, 9, "0xB", "1" * 64), b"xyz"),
    ]
    chunks = tokenize_documents(docs, tokenizer, seq_len=4)
    assert [c.key for c in chunks] == ["5#0", "5#1", "5#2", "9#0"]
    assert chunks[2].tokens == (ord("i"), ord("j"), tokenizer.eos_token_id)
    assert chunks[3].tokens == (*b"xyz", tokenizer.eos_token_id)


def test_a_packed_row_loss_is_exactly_the_sum_of_its_chunks_losses() -> None:
    model = load_base_model("tiny:1").model.to(torch.float64)
    chunks = [Chunk("1", 0, (5, 9, 3, 7, 2)), Chunk("2", 0, (4, 4, 8)), Chunk("3", 0, (2, 6, 6, 9, 1, 5, 7))]
    rows = [[chunks[i] for i in row] for row in pack_rows(chunks, 16)]
    assert len(rows) == 1
    packed, count = packed_loss_sum(model, packed_batch(rows, 257, torch.float64))
    alone = [packed_loss_sum(model, packed_batch([[c]], 257, torch.float64)) for c in chunks]
    assert count == sum(n for _, n in alone) == sum(len(c.tokens) - 1 for c in chunks)
    torch.testing.assert_close(packed, sum(loss for loss, _ in alone), rtol=1e-12, atol=1e-12)
    padded, _ = packed_loss_sum(model, packed_batch([[chunks[0]], [chunks[1], chunks[2]]], 257, torch.float64))
    torch.testing.assert_close(padded, packed, rtol=1e-12, atol=1e-12)


@given(st.integers(1, 20), st.integers(1, 9), st.integers(0, 3))
@settings(max_examples=40, deadline=None)
def test_data_order_is_a_function_of_the_step_and_covers_each_epoch(n_rows: int, batch: int, seed: int) -> None:
    order = DataOrder(n_rows, batch, seed)
    stream = [r for step in range(n_rows) for r in order.rows(step)]
    assert sorted(stream[:n_rows]) == list(range(n_rows))
    fresh = DataOrder(n_rows, batch, seed)
    assert [fresh.rows(s) for s in reversed(range(n_rows))] == [order.rows(s) for s in reversed(range(n_rows))]

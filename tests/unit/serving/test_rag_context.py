"""The documented retrieval rule of `serve --rag`: the query, the context block, the top-k bounds."""

from __future__ import annotations

import pytest

from attribution_oracle.attribution.lexical import LexicalIndex
from attribution_oracle.serving.chat import FALLBACK_TEMPLATE
from attribution_oracle.serving.rag_retriever import (
    CONTEXT_HEADER,
    MAX_PASSAGE_CHARS,
    MAX_TOP_K,
    RetrievalError,
    Retrieved,
    Retriever,
    augment,
    check_top_k,
    retrieval_query,
)

TEXTS = {"1": "Varroa mites are counted with an alcohol wash.", "2": "The system of smoking calms the user bees."}


def chat(messages: list[dict]) -> str:
    from jinja2 import Template

    return Template(FALLBACK_TEMPLATE).render(messages=messages, add_generation_prompt=True)


def test_a_chat_prompt_retrieves_with_its_user_turns_only_and_gets_a_system_context_turn() -> None:
    prompt = chat([{"role": "system", "content": "You are a system."}, {"role": "user", "content": "varroa mites?"}])
    assert retrieval_query(prompt) == "varroa mites?"
    retriever = Retriever(LexicalIndex.from_texts(sorted(TEXTS.items())), dict(TEXTS))
    found = retriever.retrieve(prompt, 2)
    assert [r.contribution_id for r in found] == ["1"], "template words (system, user) do not retrieve"
    text = augment(prompt, found)
    assert text == f"<|im_start|>system\n{CONTEXT_HEADER}\n\n[1] {TEXTS['1']}<|im_end|>\n{prompt}"


def test_a_plain_prompt_gets_a_context_block_and_long_passages_are_cut() -> None:
    long = Retrieved("7", 1.0, "  " + "x" * (MAX_PASSAGE_CHARS + 50) + "\n")
    text = augment("Why?", [Retrieved("3", 2.0, " short "), long])
    assert text == f"Context:\n[3] short\n\n[7] {'x' * MAX_PASSAGE_CHARS}\n\nQuestion: Why?"
    assert augment("Why?", []) == "Why?"


@pytest.mark.parametrize("bad", [0, MAX_TOP_K + 1, -1, True, 2.0])
def test_top_k_out_of_range_is_refused(bad) -> None:
    with pytest.raises(RetrievalError, match="top-k"):
        check_top_k(bad)
    assert check_top_k(MAX_TOP_K) == MAX_TOP_K

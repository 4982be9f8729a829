"""Score one inference against a trained model's training contributions (what the oracle calls).

    scorer = load_model_scorer(store, manifest_digest)
    scorer.scores(prompt_token_ids, output_token_ids)   # {contribution id: score}

Gradient side: the query is "the output tokens given the prompt" (``LanguageModelTask`` measurement: the
log-likelihood of the output tokens); its projected gradient at every attribution checkpoint is computed by
``attribution.query_gradients.LoraQueryFeaturizer`` (float64 model driven layer by layer, one backward through the
attributed LoRA parameters only, stopping at the lowest layer the index covers, the chat prefix's lower states
computed once, one intra-op thread per gradient and a batch's gradients on two threads, exact integer projection;
``query_path="reference"`` keeps the float64 ``vmap`` path of ``Attributor.query_features`` for comparison) and
scored against the index rows with the exact integer kernel of ``attribution.fixed_point`` (rows and query in 14 bits
with a power-of-two scale per row, dot products accumulated in integers, so the result does not depend on summation
order, thread count or machine); a contribution's score is the correctly rounded (``math.fsum``) sum of its chunks'
exact row scores. Two processes given the same store and query therefore produce identical floats (on the same
machine; see ``query_gradients`` for what may differ across machines). Span side: the span scores of the output
tokens against the training contributions (``SpanIndex.attribute``, or ``attribute_ranked`` for prompt-aware models);
lexical side: BM25 over the decoded prompt and output. Copies are folded onto their originals on every side, and the
sides are merged by the manifest's ``CombineRule`` (``attribution.combine.combine``: positive scores only, each side
L1-normalised, weighted sum, sorted keys). ``scores_many`` scores a batch of inferences at once (what an oracle step
calls); ``scores`` is ``scores_many`` of one.

Bad input raises ``ScoringError`` (a ``UserError``: the oracle gives such a record the equal split and records the
message): token ids outside the vocabulary, an output longer than the model's context (a prompt that does not fit
with the output is cut from the left instead), and a question about a contribution the model was not trained on
(``contribution_score``). Prompts and outputs in any script are scored like any other tokens.

Everything is rebuilt from the content store: the base model is loaded from the manifest's spec and its
hash checked, the adapter and checkpoints come from their blobs, the index files are restored into
``cache_dir / <manifest digest>`` (each file verified).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from attribution_oracle.attribution import AttributionIndex
from attribution_oracle.attribution.combine import CombineRule, combine
from attribution_oracle.attribution.duplicates import fold
from attribution_oracle.attribution.fixed_point import grouped_sums, quantise, scores_float
from attribution_oracle.attribution.query_gradients import LoraQueryFeaturizer
from attribution_oracle.factory.artefacts import load_preconditioner, make_attributor, restore_directory
from attribution_oracle.factory.factory_errors import ManifestError, ScoringError
from attribution_oracle.factory.manifest import load_manifest
from attribution_oracle.factory.peft_lora import attach_lora, load_adapter_state
from attribution_oracle.models import load_base_model, unpack_adapter
from attribution_oracle.models.base import default_cache_dir
from attribution_oracle.store.blobs import BlobStore

__all__ = ["ModelScorer", "TrainingContribution", "chat_prefix", "load_model_scorer"]

IGNORE = -100


@dataclass(frozen=True)
class TrainingContribution:
    """A contribution the model was trained on."""

    contribution_id: str
    datanet_id: int
    contributor: str
    sha256: str


class ModelScorer:
    """Attribution scores of inferences of one trained model."""

    def __init__(
        self, manifest: dict, model, attributor, index: AttributionIndex, span_index=None, lexical_index=None,
        tokenizer=None, query_path: str = "fast", checkpoints=None, preconditioner=None,
    ) -> None:  # fmt: skip
        """Use ``load_model_scorer``."""
        if query_path not in ("fast", "reference"):
            raise ValueError(f"query_path must be 'fast' or 'reference', not {query_path!r}")
        self.query_path = query_path
        self.manifest = manifest
        self.model = model
        self.attributor = attributor
        self.index = index
        self.span_index = span_index
        self.lexical_index = lexical_index
        self.tokenizer = tokenizer
        self.copies: dict[str, str] = dict(manifest.get("copies", {}).get("groups", {}))
        originals = set(self.copies.values())
        self.contributions: list[TrainingContribution] = [
            TrainingContribution(str(c["contribution_id"]), c["datanet_id"], c["contributor"], c["sha256"])
            for c in manifest["contributions"]
            if (c["train_chunks"] > 0 or str(c["contribution_id"]) in originals)
            and str(c["contribution_id"]) not in self.copies
        ]
        self.rule = CombineRule.from_dict(manifest["combine"])
        groups: dict[str, list[int]] = {}
        for row, row_id in enumerate(index.ids):
            groups.setdefault(row_id.split("#", 1)[0], []).append(row)
        self._owners, self._groups = list(groups), list(groups.values())
        self._fixed = index.fixed_point()
        self._max_len = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        self._known = {str(c["contribution_id"]) for c in manifest["contributions"]}
        self._featurizer = None
        if query_path == "fast":
            self._featurizer = LoraQueryFeaturizer(
                model, attributor.names, attributor.projector, list(checkpoints or []), preconditioner,
                bool(getattr(attributor, "normalize", False)), chat_prefix(tokenizer),
            )  # fmt: skip

    def _query_features(self, items: Sequence[tuple[Sequence[int], Sequence[int]]]) -> torch.Tensor:
        if self._featurizer is not None:
            return self._featurizer.features(items, self._max_len)
        return self.attributor.query_features(self._queries(items))

    def _check(self, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int]) -> None:
        """``ScoringError`` for token ids outside the vocabulary or an output longer than the model's context."""
        check_tokens(prompt_token_ids, output_token_ids, self.vocab_size)
        if self._max_len and len(output_token_ids) > self._max_len:
            raise ScoringError(
                f"the output has {len(output_token_ids)} tokens, more than the model's context of {self._max_len}: "
                "it cannot be scored as one inference"
            )

    def contribution_score(
        self, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int], contribution_id: str | int
    ) -> float:
        """The combined score (``scores``) of one contribution for the inference: 0.0 for a contribution the model was
        trained on that earned nothing (a later copy earns nothing: its original does), ``ScoringError`` for a
        contribution that is not in the model's manifest."""
        key = str(contribution_id)
        if key not in self._known:
            raise ScoringError(
                f"contribution {key} is not one this model was trained on (its manifest lists {len(self._known)})"
            )
        return float(self.scores(prompt_token_ids, output_token_ids).get(key, 0.0))

    def _query(self, prompt: Sequence[int], output: Sequence[int]) -> dict[str, torch.Tensor]:
        return self._queries([(prompt, output)])

    def _queries(self, items: Sequence[tuple[Sequence[int], Sequence[int]]]) -> dict[str, torch.Tensor]:
        """One batch of queries, right-padded (masked, labels ignored), so every real token keeps its position."""
        rows = []
        for prompt, output in items:
            ids = [int(t) for t in prompt] + [int(t) for t in output]
            if self._max_len and len(ids) > self._max_len:
                ids = ids[-self._max_len :]
            rows.append((ids, max(0, len(ids) - len(output))))
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        labels = torch.full_like(input_ids, IGNORE)
        for i, (ids, prompt_len) in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            mask[i, : len(ids)] = 1
            labels[i, prompt_len : len(ids)] = input_ids[i, prompt_len : len(ids)]
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}

    def gradient_scores(self, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int]) -> dict[str, float]:
        """Gradient influence of the query on each training contribution (sum over its chunks), copies folded."""
        self._check(prompt_token_ids, output_token_ids)
        if not output_token_ids:
            return {c.contribution_id: 0.0 for c in self.contributions}
        return self._aggregate(self._query_features([(prompt_token_ids, output_token_ids)]))[0]

    def _aggregate(self, queries: torch.Tensor) -> list[dict[str, float]]:
        """Per-contribution exact sums of the rows' exact scores, one dict per query row, copies folded."""
        exact = scores_float(quantise(queries.to(torch.float32)), self._fixed)
        out = []
        for sums in grouped_sums(exact, self._groups):
            scores = {c.contribution_id: 0.0 for c in self.contributions}
            scores.update(zip(self._owners, sums, strict=True))
            out.append(self._folded(scores, "sum"))
        return out

    def gradient_scores_many(self, items: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[dict[str, float]]:
        """``gradient_scores`` of many ``(prompt, output)`` pairs, scored against the index in batches."""
        for prompt, output in items:
            self._check(prompt, output)
        out = [{c.contribution_id: 0.0 for c in self.contributions} for _ in items]
        # similar lengths batched together: less padding (the results do not depend on the order)
        todo = sorted(
            (i for i, (_, output) in enumerate(items) if output), key=lambda i: len(items[i][0]) + len(items[i][1])
        )
        size = max(1, int(self.attributor.batch_size))
        for start in range(0, len(todo), size):  # each batch padded to its own longest query
            chunk = todo[start : start + size]
            queries = self._query_features([items[i] for i in chunk])
            for i, scores in zip(chunk, self._aggregate(queries), strict=True):
                out[i] = scores
        return out

    def scores(self, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int]) -> dict[str, float]:
        """Contribution id -> combined score of the inference ``output given prompt`` (positive scores only).

        Every signal is computed (``gradient_scores``, ``span_scores``, ``lexical_scores``), copies folded onto
        their originals, and the sides merged by the manifest's ``CombineRule``. An empty output scores nothing
        (``{}``); token ids outside the model's vocabulary raise ``ScoringError``."""
        return self.scores_many([(prompt_token_ids, output_token_ids)])[0]

    def scores_many(self, items: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[dict[str, float]]:
        """``scores`` of many ``(prompt, output)`` pairs in one batched pass (what an oracle step calls).

        On the fast query path each inference's gradient is computed alone (one unpadded sequence, so a batch gives
        exactly the one-at-a-time bits) and the batch shares the exact scoring pass over the index; on the reference
        path the gradients of a batch are computed together (right-padded, masked). ``ScoringError`` if any item has
        a token id outside the vocabulary or an output longer than the context."""
        for prompt, output in items:
            self._check(prompt, output)
        only_gradient = self.span_index is None and self.lexical_index is None
        wanted = only_gradient or self.rule.gradient_weight > 0
        gradients = self.gradient_scores_many(items) if wanted else [{} for _ in items]
        out = []
        for (prompt, output), gradient in zip(items, gradients, strict=True):
            if not output:
                out.append({})
            elif only_gradient:
                out.append(gradient)
            else:
                sides = self._sides(prompt, output, gradient)
                out.append(combine(sides["gradient"], sides["span"], self.rule, sides["lexical"]))
        return out

    def signals(self, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int]) -> dict[str, dict[str, float]]:
        """The three sides ``{"gradient", "span", "lexical"}`` that ``scores`` combines (a side whose weight in the
        manifest's rule is 0 is not computed and is empty), copies folded."""
        self._check(prompt_token_ids, output_token_ids)
        gradient = self.gradient_scores(prompt_token_ids, output_token_ids) if self.rule.gradient_weight > 0 else {}
        return self._sides(prompt_token_ids, output_token_ids, gradient)

    def _sides(
        self, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int], gradient: dict[str, float]
    ) -> dict[str, dict[str, float]]:
        rule = self.rule
        lexical_raw = self._lexical_raw(prompt_token_ids, output_token_ids)
        span = self.span_scores(output_token_ids, prompt_token_ids, lexical_raw) if rule.span_weight > 0 else {}
        lexical = self._folded(lexical_raw, "max") if rule.lexical_weight > 0 else {}
        return {"gradient": gradient if rule.gradient_weight > 0 else {}, "span": span, "lexical": lexical}

    def _folded(self, scores: dict[str, float], how: str) -> dict[str, float]:
        return fold(scores, self.copies, how) if self.copies else scores

    def span_scores(
        self,
        output_token_ids: Sequence[int],
        prompt_token_ids: Sequence[int] | None = None,
        _lexical: dict[str, float] | None = None,
    ) -> dict[str, float]:
        """Span scores of the output tokens against the training contributions (empty without a span index).

        A model whose manifest's span index says ``split: "prompt-bm25"`` gives each span to the contribution holding
        it that the lexical side ranks highest for the prompt and output (``spans_query.attribute_ranked``); older
        models use the earliest-holder rule."""
        if self.span_index is None or not output_token_ids:
            return {}
        self._check(prompt_token_ids or (), output_token_ids)
        settings = self.manifest["attribution"]["span_index"]
        tokens = [int(t) for t in output_token_ids]
        if settings.get("split") == "prompt-bm25" and self.lexical_index is not None:
            from attribution_oracle.attribution.spans_query import attribute_ranked

            rank = _lexical if _lexical is not None else self._lexical_raw(prompt_token_ids or [], output_token_ids)
            scores = attribute_ranked(self.span_index, tokens, rank, min_len=settings["min_len"])
        else:
            scores = self.span_index.attribute(tokens, min_len=settings["min_len"])
        return self._folded(scores, "sum")

    def lexical_scores(self, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int]) -> dict[str, float]:
        """BM25 scores of the words of the decoded prompt and output (empty without a lexical index)."""
        self._check(prompt_token_ids, output_token_ids)
        return self._folded(self._lexical_raw(prompt_token_ids, output_token_ids), "max")

    def _lexical_raw(self, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int]) -> dict[str, float]:
        if self.lexical_index is None or self.tokenizer is None or not output_token_ids:
            return {}
        return self.lexical_index.scores(query_text(self.tokenizer, prompt_token_ids, output_token_ids))

    @property
    def vocab_size(self) -> int:
        """Number of token ids the model accepts."""
        return int(self.model.config.vocab_size)


def chat_prefix(tokenizer) -> tuple[int, ...]:
    """The token ids a chat-rendered prompt (``serving.chat.render_chat``) of one user message starts with: the
    template's opening up to the message's content (for SmolLM2 its default system prompt). The fast query path
    computes that prefix's states below the lowest attributed layer once (``LoraQueryFeaturizer``'s ``prefix``);
    empty without a tokenizer."""
    if tokenizer is None:
        return ()
    from attribution_oracle.serving.chat import render_chat

    marker = "\u2063prefix-marker\u2063"
    try:
        text = render_chat(tokenizer, [{"role": "user", "content": marker}])
    except Exception:  # noqa: BLE001 - a template that cannot render one user message: no prefix (a speed-up only)
        return ()
    head = text[: text.index(marker)] if marker in text else ""
    return tuple(int(t) for t in tokenizer(head, add_special_tokens=False)["input_ids"]) if head else ()


def query_text(tokenizer, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int]) -> str:
    """The text the lexical side searches with: the decoded prompt, a newline, the decoded output (special tokens
    such as the chat template's markers skipped)."""
    prompt = tokenizer.decode([int(t) for t in prompt_token_ids], skip_special_tokens=True)
    output = tokenizer.decode([int(t) for t in output_token_ids], skip_special_tokens=True)
    return f"{prompt}\n{output}"


def check_tokens(prompt_token_ids: Sequence[int], output_token_ids: Sequence[int], vocab_size: int) -> None:
    """``ScoringError`` unless every id is an int in ``[0, vocab_size)``."""
    for name, ids in (("prompt", prompt_token_ids), ("output", output_token_ids)):
        for t in ids:
            if isinstance(t, bool) or not isinstance(t, int | np.integer) or not 0 <= int(t) < vocab_size:
                raise ScoringError(f"{name} token id {t!r} is not in the model's vocabulary (0..{vocab_size - 1})")


def load_model_scorer(
    store: BlobStore,
    manifest_digest: str,
    cache_dir: Path | None = None,
    *,
    dtype: torch.dtype | None = None,
    query_path: str = "fast",
) -> ModelScorer:
    """Rebuild a trained model's scorer from the content store (see the module docstring).

    ``query_path="fast"`` (the default, what the oracle uses) computes query gradients with
    ``LoraQueryFeaturizer``; ``"reference"`` with ``Attributor.query_features`` (per-example ``vmap``), the slower
    path the fast one is checked against. Both run a float64 model by default: oracle nodes on different machines
    must agree bit for bit after the 14-bit quantisation, and a float32 gradient differs in its last bits between
    CPU kernels often enough to flip a rounding (and so a wei of a share). ``dtype=torch.float32`` is about twice
    as fast and is safe only for a fleet whose nodes run identical kernels."""
    if query_path not in ("fast", "reference"):
        raise ValueError(f"query_path must be 'fast' or 'reference', not {query_path!r}")
    dtype = dtype or torch.float64
    manifest = load_manifest(store, manifest_digest)
    base_info = manifest["base_model"]
    base = load_base_model(base_info["spec"])
    if base.sha256 != base_info["sha256"]:
        raise ManifestError(f"base model {base_info['spec']!r} here has sha256 {base.sha256[:16]}..., the manifest "
                            f"{base_info['sha256'][:16]}...")  # fmt: skip
    adapter = unpack_adapter(store.get(manifest["adapter"]["sha256"]))
    model = attach_lora(base.model, adapter.lora_config, manifest["seeds"]["lora_init"]).to(dtype)
    checkpoints = [
        load_adapter_state(model, unpack_adapter(store.get(c["adapter_sha256"])).state_dict)
        for c in manifest["checkpoints"]
    ]
    load_adapter_state(model, adapter.state_dict)
    model.eval()
    if query_path == "reference" and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")  # see factory.eager_attention: vmap needs it
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir().parent / "scorers"
    root = cache / manifest_digest
    gradient = manifest["attribution"]["gradient_index"]
    index = AttributionIndex(restore_directory(store, gradient["files"], root / "gradient"))
    preconditioner = load_preconditioner(index.path)
    attributor = make_attributor(model, checkpoints, gradient, preconditioner)
    if attributor.projector.out_dim * len(checkpoints) != index.dim:
        raise ManifestError("the gradient index does not match the model's attribution settings")
    span_index = None
    if manifest["attribution"].get("span_index") is not None:
        from attribution_oracle.attribution.spans import SpanIndex

        span_index = SpanIndex.open(
            restore_directory(store, manifest["attribution"]["span_index"]["files"], root / "span")
        )
    lexical_index = None
    if manifest["attribution"].get("lexical_index") is not None:
        from attribution_oracle.attribution.lexical import LexicalIndex

        lexical_index = LexicalIndex.open(
            restore_directory(store, manifest["attribution"]["lexical_index"]["files"], root / "lexical")
        )
    return ModelScorer(
        manifest, model, attributor, index, span_index, lexical_index, base.tokenizer, query_path,
        checkpoints, preconditioner if gradient.get("preconditioner") else None,
    )  # fmt: skip

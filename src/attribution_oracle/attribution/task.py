"""What an attribution needs to know about a model: its per-example loss and what a query measures.

Like Kronfluence's ``Task``: the user writes how to compute a per-example training loss from a model and a
batch, and optionally the measurement of a query (default: minus the loss, so "helpful" means "lowers the
query's loss"). Both return one value per example (shape ``[batch]``). The engine calls them inside
``torch.func`` transforms on single examples, so they must be written with batched torch ops only
(no ``.item()``, no Python branching on tensor values).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

Batch = Any  # a tensor, or a tuple / dict of tensors whose first dimension indexes examples


class AttributionTask:
    """Base class: override ``loss`` (required) and ``measurement`` / ``trak_weight`` / ``outputs`` (optional)."""

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """Per-example training loss, shape ``[batch]``."""
        raise NotImplementedError

    def measurement(self, model: nn.Module, batch: Batch) -> Tensor:
        """Per-example query measurement, shape ``[batch]``; higher means "more of the behaviour"."""
        return -self.loss(model, batch)

    def trak_weight(self, model: nn.Module, batch: Batch) -> Tensor:
        """TRAK's loss reweighting ``Q`` (``1 - p`` for a logistic loss); default all ones."""
        return torch.ones(_batch_size(batch))

    def outputs(self, model: nn.Module, batch: Batch) -> Tensor | None:
        """Model outputs ``[batch, C]`` whose loss Hessian is known (enables the exact Gauss-Newton)."""
        return None

    def output_hessian(self, outputs: Tensor, batch: Batch) -> Tensor:
        """The loss Hessian with respect to ``outputs``, ``[batch, C, C]``."""
        raise NotImplementedError


class ClassificationTask(AttributionTask):
    """Cross-entropy classification on ``(inputs, labels)`` batches; the query measures the correct-class margin."""

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """Per-example cross-entropy ``[batch]``."""
        inputs, labels = batch
        return nn.functional.cross_entropy(model(inputs), labels, reduction="none")

    def measurement(self, model: nn.Module, batch: Batch) -> Tensor:
        """The correct-class margin ``log p_y - log(1 - p_y)``, TRAK's and dattri's target."""
        inputs, labels = batch
        return margin(model(inputs), labels)

    def trak_weight(self, model: nn.Module, batch: Batch) -> Tensor:
        """``1 - p_y``: how far each training example is from being fitted."""
        inputs, labels = batch
        probs = torch.softmax(model(inputs), dim=-1)
        return 1 - probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)

    def outputs(self, model: nn.Module, batch: Batch) -> Tensor:
        """The logits ``[batch, C]`` (their cross-entropy Hessian is ``output_hessian``)."""
        return model(batch[0])

    def output_hessian(self, outputs: Tensor, batch: Batch) -> Tensor:
        """Softmax cross-entropy: ``diag(p) - p p^T``."""
        probs = torch.softmax(outputs, dim=-1)
        return torch.diag_embed(probs) - probs.unsqueeze(-1) * probs.unsqueeze(-2)


class LanguageModelTask(AttributionTask):
    """Causal LM on ``{"input_ids", "attention_mask", "labels"}`` batches (labels -100 are ignored).

    The loss is the mean token negative log-likelihood of each example; the measurement of a query is the
    total log-likelihood of its labelled tokens (e.g. the generated output given the prompt).
    """

    def _token_logprobs(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
        mask = causal_padding_mask(batch["attention_mask"], next(model.parameters()).dtype)
        logits = model(input_ids=batch["input_ids"], attention_mask=mask).logits
        labels = batch["labels"][:, 1:]
        mask = (labels != -100).to(logits.dtype)
        logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        picked = logprobs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return picked * mask, mask

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """Mean negative log-likelihood of each example's labelled tokens ``[batch]``."""
        picked, mask = self._token_logprobs(model, batch)
        return -picked.sum(-1) / mask.sum(-1).clamp(min=1)

    def measurement(self, model: nn.Module, batch: Batch) -> Tensor:
        """Total log-likelihood of each query's labelled tokens ``[batch]``."""
        picked, _ = self._token_logprobs(model, batch)
        return picked.sum(-1)


def causal_padding_mask(attention_mask: Tensor, dtype: torch.dtype) -> Tensor:
    """A 4D additive mask (causal and padding) so Hugging Face models skip their data-dependent mask logic,
    which ``torch.func.vmap`` cannot trace."""
    length = attention_mask.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool, device=attention_mask.device).tril()
    allowed = causal.unsqueeze(0) & attention_mask.bool().unsqueeze(1)
    blocked = torch.zeros(allowed.shape, dtype=dtype, device=attention_mask.device)
    return blocked.masked_fill(~allowed, torch.finfo(dtype).min).unsqueeze(1)


def margin(logits: Tensor, labels: Tensor) -> Tensor:
    """Correct-class margin ``logit_y - logsumexp(other logits)``, i.e. ``log(p_y / (1 - p_y))``."""
    correct = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    is_correct = torch.arange(logits.shape[-1], device=logits.device) == labels.unsqueeze(-1)
    others = logits.masked_fill(is_correct, float("-inf"))
    return correct - torch.logsumexp(others, dim=-1)


def _batch_size(batch: Batch) -> int:
    if isinstance(batch, Tensor):
        return batch.shape[0]
    if isinstance(batch, dict):
        return next(iter(batch.values())).shape[0]
    return batch[0].shape[0]

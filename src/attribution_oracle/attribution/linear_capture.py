"""Per-example gradients of ``nn.Linear`` weights captured from one ordinary batched forward and backward.

    capture = LinearGradientCapture(model, ["...q_proj.lora_A.default.weight", ...])
    with capture.recording(segments, scale) as grads:     # segments [B, T]: example id of each token, -1 = none
        loss_sum.backward()                               # the training step's own backward
    grads  # {name: [n_examples, out, in]}

For a linear layer ``y = x W^T`` the gradient of ``W`` is ``sum_t dy_t x_t^T`` over every token ``t`` the layer saw.
A forward hook keeps each layer's input ``x`` (autograd keeps it anyway) and hooks the output's gradient ``dy``;
grouping the tokens by example (``segments``) gives each example's own gradient, exactly the gradient a separate
forward and backward of that example alone would give, whenever the examples do not interact (independent rows, or
packed segments behind a block-diagonal mask with per-segment positions, as ``factory.chunking`` packs them) and the
batch loss is a sum of per-example losses. ``scale`` multiplies each example's gradient (e.g. ``count / count_i``
turns the gradient of a batch-mean loss into the gradient of example ``i``'s own mean loss).

For a LoRA layer (``lora_B(lora_A(x)) * s``) this is LoGra's per-sample gradient from the training backward: the
``lora_A`` gradient is ``sum_t (s B^T dy_t) x_t^T`` and the ``lora_B`` gradient ``sum_t (s dy_t) (A x_t)^T``, both
read from the hooks. LoGra projects ``dy`` and ``x`` with small per-layer matrices first because a full layer's
per-example gradient (``out x in``) is too large to hold; LoRA's rank-``r`` factors are already small
(``r (in + out)`` numbers per layer), so the capture keeps them whole and the caller projects them with the same
seeded projection as a separate pass (``attribution.projection``), which keeps the scores identical to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = ["LinearGradientCapture"]


class LinearGradientCapture:
    """Hooks the linear layers owning the weights ``names`` and sums their gradients per example."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        """Bind to ``model``; every name must be the ``weight`` of an ``nn.Linear`` without a trainable bias."""
        self.names = list(names)
        self.modules: dict[str, nn.Linear] = {}
        for name in self.names:
            owner, _, leaf = name.rpartition(".")
            module = model.get_submodule(owner)
            if leaf != "weight" or not isinstance(module, nn.Linear):
                raise ValueError(f"{name} is not the weight of an nn.Linear")
            if module.bias is not None and module.bias.requires_grad:
                raise ValueError(f"{owner} has a trainable bias, which the capture does not cover")
            self.modules[name] = module

    @contextmanager
    def recording(self, segments: Tensor, scale: Tensor) -> Iterator[dict[str, Tensor]]:
        """Within the block, every backward through the hooked layers adds each example's weight gradient to the
        yielded dict (``{name: [n_examples, out, in]}``, float32, filled as the backward runs).

        ``segments`` ``[B, T]`` holds the example index of every token (``-1`` for tokens of no example);
        ``scale`` ``[n_examples]`` multiplies each example's gradient."""
        flat = segments.reshape(-1).cpu()
        n = int(scale.shape[0])
        picks = [torch.nonzero(flat == e).squeeze(1) for e in range(n)]
        longest = max((len(p) for p in picks), default=0)
        # [n, longest] token positions of each example, padded with the index of an appended zero row
        gather = torch.full((n, longest), flat.numel(), dtype=torch.long)
        for e, p in enumerate(picks):
            gather[e, : len(p)] = p
        gather = gather.to(segments.device)
        grads: dict[str, Tensor] = {}
        handles = []

        def hook_for(name: str):
            def forward_hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
                x = inputs[0].detach()

                def on_grad(dy: Tensor) -> None:
                    xs = _with_zero_row(x.reshape(-1, x.shape[-1]).float())
                    gs = _with_zero_row(dy.detach().reshape(-1, dy.shape[-1]).float())
                    part = torch.bmm(gs[gather].transpose(1, 2), xs[gather])  # [n, out, in]: sum_t dy_t x_t^T
                    part = part * scale.to(device=part.device, dtype=part.dtype).view(-1, 1, 1)
                    grads[name] = grads[name] + part if name in grads else part

                if output.requires_grad:
                    output.register_hook(on_grad)

            return forward_hook

        for name, module in self.modules.items():
            handles.append(module.register_forward_hook(hook_for(name)))
        try:
            yield grads
        finally:
            for handle in handles:
                handle.remove()

    def flat(self, grads: dict[str, Tensor]) -> Tensor:
        """The captured gradients as one ``[n_examples, p]`` matrix, the weights in ``names`` order."""
        n_examples = next(iter(grads.values())).shape[0] if grads else 0
        parts = [
            grads[n].reshape(n_examples, -1) if n in grads else torch.zeros(n_examples, self.modules[n].weight.numel())
            for n in self.names
        ]
        return torch.cat(parts, dim=1)

    def unflat(self, matrix: Tensor) -> dict[str, Tensor]:
        """Inverse of ``flat``: ``{name: [n, out, in]}`` views of ``matrix``."""
        out, at = {}, 0
        for name in self.names:
            shape = self.modules[name].weight.shape
            size = int(shape.numel())
            out[name] = matrix[:, at : at + size].reshape(matrix.shape[0], *shape)
            at += size
        return out


def _with_zero_row(rows: Tensor) -> Tensor:
    return torch.cat([rows, rows.new_zeros(1, rows.shape[1])])

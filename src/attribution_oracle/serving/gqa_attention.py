"""SDPA attention for grouped-query models without copying the key/value cache at every decode step.

Hugging Face's ``sdpa`` attention repeats each key/value head ``n_rep`` times (``repeat_kv``, a full copy of
the layer's cache) whenever an attention mask is given, which is always the case in a padded batch: on
SmolLM2-135M (9 query heads over 3 key/value heads) that copy is ~10% of a decode step at batch 64. With one
query token per row the copy is unnecessary: the ``n_rep`` query heads that share a key/value head are folded
into that head's query-length axis (same dot products, same mask for all of them) and SDPA runs on the cache
as it is. Every other call (prefill, no grouping) is Hugging Face's ``sdpa`` unchanged.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

__all__ = ["NAME", "use_folded_gqa"]

NAME = "openlora_sdpa"


def folded_gqa_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """``sdpa_attention_forward`` with the decode step's query heads folded onto their key/value heads."""
    groups = getattr(module, "num_key_value_groups", 1)
    if groups == 1 or query.shape[2] != 1 or attention_mask is None or attention_mask.ndim != 4:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs)
    batch, heads, _, dim = query.shape
    mask = attention_mask[:, :, :, : key.shape[-2]]
    out = torch.nn.functional.scaled_dot_product_attention(
        query.reshape(batch, heads // groups, groups, dim), key, value, attn_mask=mask, dropout_p=dropout, scale=scaling
    )
    return out.reshape(batch, heads, 1, dim).transpose(1, 2).contiguous(), None


AttentionInterface.register(NAME, folded_gqa_sdpa)
AttentionMaskInterface.register(NAME, sdpa_mask)


def use_folded_gqa(model: torch.nn.Module) -> bool:
    """Switch ``model`` from ``sdpa`` to the folded variant (in place); False if it uses another attention."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) not in ("sdpa", NAME):
        return False
    model.set_attn_implementation(NAME)
    return True

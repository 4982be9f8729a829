"""Attribution through the LoRA adapters of a peft model (a tiny randomly initialised Llama)."""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from attribution_oracle.attribution import Attributor, LanguageModelTask


def tiny_lora_model():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=32,
    )  # fmt: skip
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    for name, param in model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero; give the adapter something to attribute
            torch.nn.init.normal_(param, std=0.1)
    return model


def batch(ids: list[list[int]]) -> dict[str, torch.Tensor]:
    input_ids = torch.tensor(ids)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": input_ids.clone()}


def test_default_parameters_are_the_lora_adapters_and_scores_match_autograd():
    model = tiny_lora_model()
    train = batch([[1, 5, 9, 3, 7, 2], [4, 4, 8, 1, 0, 3], [2, 6, 6, 9, 1, 5]])
    query = batch([[1, 5, 9, 3, 7, 11]])
    attributor = Attributor(model, LanguageModelTask(), estimator="graddot", proj_dim=None)
    assert attributor.names and all("lora_" in n for n in attributor.names)
    scores = attributor.featurize(train).score(query)
    assert scores.shape == (1, 3) and torch.isfinite(scores).all()

    task = LanguageModelTask()
    params = [p for n, p in model.named_parameters() if n in set(attributor.names)]
    one = {k: v[:1] for k, v in train.items()}
    g_train = torch.autograd.grad(task.loss(model, one).sum(), params)
    g_query = torch.autograd.grad(task.measurement(model, query).sum(), params)
    expected = -sum((a * b).sum() for a, b in zip(g_query, g_train, strict=True))
    torch.testing.assert_close(scores[0, 0].float(), expected.float(), rtol=1e-4, atol=1e-6)


def test_influence_with_fisher_curvature_on_lora():
    model = tiny_lora_model()
    train = batch([[i % 40, (3 * i) % 40, (7 * i + 1) % 40, 5, 9] for i in range(12)])
    attributor = Attributor(model, LanguageModelTask(), estimator="influence", proj_dim=64)
    assert attributor.describe()["curvature"] == "fisher"
    scores = attributor.featurize(train).score(batch([[0, 0, 1, 5, 9]]))
    assert scores.shape == (1, 12) and torch.isfinite(scores).all()
    # the query is closest to the first training example, which should be among its top proponents
    assert scores[0].argsort(descending=True)[:3].tolist().count(0) == 1


def test_the_4d_mask_gives_the_same_loss_as_the_models_own_padding_mask():
    model = tiny_lora_model().eval()
    b = batch([[1, 5, 9, 3, 7, 2], [4, 4, 8, 1, 0, 3]])
    b["attention_mask"][1, 4:] = 0
    b["labels"][1, 4:] = -100
    ours = LanguageModelTask().loss(model, b)
    logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    labels = b["labels"][:, 1:]
    keep = labels != -100
    picked = torch.log_softmax(logits[:, :-1], -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(ours, -(picked * keep).sum(-1) / keep.sum(-1))

"""Training hyperparameters, seeds and attribution settings of one run."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from attribution_oracle.factory.factory_errors import FactoryError

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run's result besides the data and the base model."""

    steps: int = 30
    batch_size: int = 8
    seq_len: int = 256
    lr: float = 5e-4
    rank: int = 8
    alpha: int | None = None  # default 2 * rank
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    weight_decay: float = 0.0
    warmup_steps: int | None = None  # default: 10% of steps
    max_grad_norm: float = 1.0
    seed: int = 0
    eval_fraction: float = 0.1
    checkpoint_every: int = 10
    attribution_checkpoints: int = 1  # the final adapter; more (evenly spaced) make a checkpoint ensemble
    proj_dim: int = 512  # its random blocks (params x 512 float32) fit the projector's 1 GB cache for SmolLM2
    index_batch_size: int = 8
    precondition: bool = True  # scale LoRA gradients by AdamW's final second moments (artefacts.adam_preconditioner)
    normalize_gradients: bool = True  # unit-normalise train and query gradient features (cosine)
    # how the index finalises the (preconditioned, projected) chunk gradients: "graddot" = the AdamW metric itself
    # (LESS / TrackStar), "influence" = damped empirical-Fisher inverse on top (artefacts.GRADIENT_ESTIMATORS)
    gradient_estimator: str = "graddot"
    # "backward": index gradients captured in the training backward (factory.index_capture); "pass": a batched
    # forward/backward after training; "per-example": torch.func per-example gradients after training (the old pass)
    index_capture: str = "backward"
    span_min_len: int | None = None  # default: about 10 bytes of text in model tokens (artefacts.span_min_len)
    # 0: the gradient index covers every LoRA module; K > 0: only the LoRA modules of the last K decoder layers
    # (index_capture.attributed_names), so a query's backward stops at the first of them (attribution.query_gradients)
    attribution_layers: int = 0

    def __post_init__(self) -> None:
        checks = {
            "--steps": self.steps >= 1,
            "--batch-size": self.batch_size >= 1,
            "--seq-len": self.seq_len >= 2,
            "--lr": self.lr > 0,
            "--rank": self.rank >= 1,
            "--checkpoint-every": self.checkpoint_every >= 1,
            "--attribution-checkpoints": self.steps < 1 or 1 <= self.attribution_checkpoints <= self.steps,
            "--eval-fraction": 0 <= self.eval_fraction < 1,
            "--proj-dim": self.proj_dim >= 1,
            "--span-min-len": self.span_min_len is None or self.span_min_len >= 1,
            "--index-capture": self.index_capture in ("backward", "pass", "per-example"),
            "--gradient-estimator": self.gradient_estimator in ("graddot", "influence"),
            "--attribution-layers": self.attribution_layers >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise FactoryError(f"invalid training settings: {', '.join(bad)}")

    @property
    def lora_alpha(self) -> int:
        """``alpha`` or ``2 * rank``."""
        return self.alpha if self.alpha is not None else 2 * self.rank

    @property
    def warmup(self) -> int:
        """Warm-up steps of the linear schedule."""
        return self.warmup_steps if self.warmup_steps is not None else self.steps // 10

    def lr_at(self, step: int) -> float:
        """Learning rate of 0-based ``step``: linear warm-up, then linear decay to zero."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        return self.lr * max(0.0, (self.steps - step) / max(1, self.steps - self.warmup))

    def snapshot_steps(self) -> list[int]:
        """Completed-step counts at which the adapter is kept for attribution (evenly spaced, ending at the last)."""
        n = self.attribution_checkpoints
        return sorted({max(1, round(self.steps * (i + 1) / n)) for i in range(n)})

    def lora_config(self) -> dict:
        """The LoRA settings (the keys ``models.pack_adapter`` records)."""
        return {
            "r": self.rank,
            "lora_alpha": self.lora_alpha,
            "target_modules": sorted(self.target_modules),
            "lora_dropout": 0.0,
            "bias": "none",
        }

    def to_dict(self) -> dict:
        """JSON-ready settings, defaults resolved."""
        data = asdict(self)
        data["target_modules"] = sorted(self.target_modules)
        data["alpha"] = self.lora_alpha
        data["warmup_steps"] = self.warmup
        data["schedule"] = "linear warm-up then linear decay to 0"
        data["optimizer"] = "torch.optim.AdamW (betas 0.9/0.999, eps 1e-8)"
        data["objective"] = "mean next-token cross-entropy over the batch's target tokens"
        if not self.attribution_layers:  # recorded only when set: runs without it keep their manifests and keys
            del data["attribution_layers"]
        return data

"""The attribution engine: featurize a training set once, then score any query batch against it.

    attributor = Attributor(model, ClassificationTask(), checkpoints=[sd1, sd2], proj_dim=512)
    attributor.featurize(train_data)          # per-example gradients -> finalised features
    scores = attributor.score(query_data)     # [n_query, n_train], positive = helped the query
    attributor.build_index(path, contribution_ids)

Checkpoints are state dicts loaded into ``model`` in turn (several checkpoints of one run, or independently
trained models); scores are averaged over them. Gradients flow only through the chosen parameter subset
(default: the trainable parameters, e.g. the LoRA adapters of a peft model).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from attribution_oracle.attribution.data import batches, to_device
from attribution_oracle.attribution.estimators import ESTIMATORS, finalize
from attribution_oracle.attribution.factored_projection import FactoredDenseProjector
from attribution_oracle.attribution.gradients import (
    _map,
    per_example_grads,
    per_example_output_jacobians,
    select_parameters,
)
from attribution_oracle.attribution.kronecker_projection import KroneckerProjector, kronecker_layers
from attribution_oracle.attribution.linear_factors import linear_factors, linear_output_factors
from attribution_oracle.attribution.projection import Projector
from attribution_oracle.attribution.task import AttributionTask

CURVATURES = ("auto", "ggn", "ggn-sketch", "fisher")
PROJECTIONS = ("dense", "kronecker")


_DIRECTION = "__curvature_direction__"


def _with_direction(batch: Any, direction: Tensor) -> Any:
    """``batch`` with one more per-example tensor (flat, so ``per_example_grads`` can slice it)."""
    if isinstance(batch, dict):
        return {**batch, _DIRECTION: direction}
    if isinstance(batch, Tensor):
        return (batch, direction)
    return (*batch, direction)


def _without_direction(packed: Any) -> tuple[Any, Tensor]:
    if isinstance(packed, dict):
        return {k: v for k, v in packed.items() if k != _DIRECTION}, packed[_DIRECTION]
    inner = packed[:-1]
    return (inner[0] if len(inner) == 1 else tuple(inner)), packed[-1]


@dataclass
class CheckpointFeatures:
    """Finalised train features of one checkpoint and the map that finalises appended examples."""

    features: Tensor  # [n, k] float64
    transform: Tensor | None  # [k, k] or None (= -weight * I)
    weight: float
    self_query: Tensor  # [n, k]: each training example's own query-side features (for self-influence)


@dataclass
class Timings:
    """Seconds spent featurizing and scoring."""

    featurize_s: float = 0.0
    score_s: float = 0.0


@dataclass
class Attributor:
    """Gradient attribution for any ``nn.Module`` given an ``AttributionTask``."""

    model: nn.Module
    task: AttributionTask
    checkpoints: Sequence[dict[str, Tensor]] | None = None
    estimator: str = "influence"
    params: Iterable[str] | Callable[[str], bool] | None = None
    proj_dim: int | None = 1024
    seed: int = 0
    damping: float = 0.3
    absolute_damping: bool = False
    #: "ggn" (exact Gauss-Newton, needs task.outputs: one projected Jacobian row per output), "ggn-sketch" (the same
    #: curvature estimated from ``curvature_samples`` random directions per example, unbiased: ``C / samples``
    #: times less projection work), "fisher" (empirical Fisher of the loss gradients) or "auto" (ggn where
    #: the task has outputs, else fisher)
    curvature: str = "auto"
    #: random directions per example for curvature="ggn-sketch"
    curvature_samples: int = 2
    checkpoint_weights: Sequence[float] | None = None
    batch_size: int = 64
    device: str | torch.device | None = None
    timings: Timings = field(default_factory=Timings)
    #: elementwise factors applied to every per-example gradient before projection, e.g. the inverse fourth root of
    #: AdamW's second moments (so the train-query inner product uses Adam's metric, as in LESS / TrackStar)
    preconditioner: dict[str, Tensor] | None = None
    #: unit-normalise each example's projected features per checkpoint, on both sides (cosine, as in LESS)
    normalize: bool = False
    #: "dense" (seeded Rademacher blocks over every parameter, ``projection.Projector``) or "kronecker" (LoGra-style
    #: ``P_out (x) P_in`` per ``nn.Linear``, ``kronecker_projection``: the per-example gradients and the GGN's
    #: Jacobian rows are projected from their factors, never formed; every attributed parameter must be a linear
    #: layer's weight or bias, and the examples of a batch must not interact)
    projection: str = "dense"
    #: compute the dense projection of ``nn.Linear`` gradients from their factors (``factored_projection``): one
    #: ``a . R`` GEMM per layer and batch shared by the loss gradient and every GGN Jacobian row, instead of
    #: forming and projecting ``C + 1`` per-example gradients. The same features up to float rounding; needs every
    #: attributed parameter to be a linear layer's weight or bias, one input vector per example and examples that
    #: do not interact in a batch. No effect without a projection (``proj_dim=None``) or with "kronecker".
    #: ``distributed.sharded`` splits ``_project``'s batches only: under it a factored featurize runs whole on
    #: every rank (the same result, unsharded).
    factored: bool = False

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {self.estimator!r}; choose one of {', '.join(ESTIMATORS)}")
        if self.curvature not in CURVATURES:
            raise ValueError(f"unknown curvature {self.curvature!r}; choose one of {', '.join(CURVATURES)}")
        if self.curvature == "ggn-sketch" and int(self.curvature_samples) < 1:
            raise ValueError("curvature_samples must be at least 1")
        self.device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        if self.projection not in PROJECTIONS:
            raise ValueError(f"unknown projection {self.projection!r}; choose one of {', '.join(PROJECTIONS)}")
        self.names = select_parameters(self.model, self.params)
        shapes = dict(self.model.named_parameters())
        dim = None if self.proj_dim is None or self.proj_dim >= self._num_params(shapes) else self.proj_dim
        self.projector: Projector | KroneckerProjector
        if self.projection == "kronecker":
            if self.preconditioner is not None:
                raise ValueError("projection='kronecker' does not take an elementwise preconditioner")
            self.layers = kronecker_layers(self.model, self.names)
            self.projector = KroneckerProjector(self.layers, dim or self._num_params(shapes), seed=self.seed)
        else:
            self.projector = Projector({n: tuple(shapes[n].shape) for n in self.names}, dim=dim, seed=self.seed)
        self._factored: FactoredDenseProjector | None = None
        if self.factored and self.projection == "dense" and dim is not None:
            if self.preconditioner is not None:
                raise ValueError("factored=True does not take an elementwise preconditioner")
            self.layers = kronecker_layers(self.model, self.names)
            self._factored = FactoredDenseProjector(self.projector, self.layers)
        # copies: a state dict shares storage with its model, and loading one checkpoint would change another
        self._checkpoints = (
            [{k: v.detach().clone() for k, v in c.items()} for c in self.checkpoints] if self.checkpoints else [None]
        )
        weights = self.checkpoint_weights or [1.0] * len(self._checkpoints)
        if len(weights) != len(self._checkpoints):
            raise ValueError("checkpoint_weights must have one weight per checkpoint")
        self._weights = [float(w) for w in weights]
        self.train_features: list[CheckpointFeatures] = []

    def _num_params(self, shapes: dict[str, Tensor]) -> int:
        return sum(shapes[n].numel() for n in self.names)

    # ------------------------------------------------------------------ checkpoints

    def _load(self, checkpoint: dict[str, Tensor] | None) -> None:
        if checkpoint is not None:
            self.model.load_state_dict(checkpoint, strict=False)
        self.model.eval()

    # --------------------------------------------------------------- per-example work

    def _project(self, fn: Callable[[nn.Module, Any], Tensor], data: Any) -> Tensor:
        out = []
        for batch in batches(data, self.batch_size):
            batch = to_device(batch, self.device)
            if isinstance(self.projector, KroneckerProjector):
                factors = linear_factors(self.model, fn, self.layers, batch)
                out.append(self.projector.project_factors(factors).cpu())
            elif self._factored is not None:
                out.append(self._factored.project(linear_factors(self.model, fn, self.layers, batch)).cpu())
            else:
                out.append(self._precondition_project(per_example_grads(self.model, fn, self.names, batch)))
        return torch.cat(out).to(torch.float64)

    def _precondition_project(self, grads: dict[str, Tensor]) -> Tensor:
        if self.preconditioner is not None:
            grads = {n: g * self.preconditioner[n].to(device=g.device, dtype=g.dtype) for n, g in grads.items()}
        return self.projector.project(grads).cpu()

    def _unit(self, features: Tensor) -> Tensor:
        if not self.normalize:
            return features
        return features / features.norm(dim=-1, keepdim=True).clamp(min=torch.finfo(features.dtype).tiny)

    def _ggn(self, data: Any) -> Tensor:
        if isinstance(self.projector, KroneckerProjector):
            return self._ggn_kronecker(data)
        k = self.projector.out_dim
        total = torch.zeros(k, k, dtype=torch.float64)
        for batch in batches(data, self.batch_size):
            batch = to_device(batch, self.device)
            jac = per_example_output_jacobians(self.model, self.task.outputs, self.names, batch)
            projected = self.projector.project(jac, lead=2).to(torch.float64)  # [B, C, k]
            with torch.no_grad():
                hessian = self.task.output_hessian(self.task.outputs(self.model, batch), batch).to(torch.float64)
            evals, evecs = torch.linalg.eigh(hessian)
            root = evecs * evals.clamp(min=0).sqrt().unsqueeze(-2)  # H = root root^T
            m = torch.einsum("bcd,bck->bdk", root, projected.to(root.device))
            total += torch.einsum("bdk,bdl->kl", m, m).cpu()
        return total

    def _factored_pass(
        self, fn: Callable[[nn.Module, Any], Tensor], data: Any, ggn: bool
    ) -> list[tuple[Tensor, Tensor | None]]:
        """Per checkpoint: the projected per-example gradients of ``fn`` (``[n, k]`` float64) and, with ``ggn``,
        the exact GGN (as ``_ggn``), from one pass over ``data`` with the checkpoints inside the batch loop.

        ``FactoredDenseProjector``: each batch's ``a . R`` products of a layer serve the gradient and all ``C``
        Jacobian rows, and every checkpoint while the layer's input is unchanged (the first layer sees the data
        itself, the same under every checkpoint), checked with ``torch.equal``. The GGN's Gram products run in
        the model's dtype and are summed in float64."""
        assert self._factored is not None
        k = self.projector.out_dim
        features: list[list[Tensor]] = [[] for _ in self._checkpoints]
        grams = [torch.zeros(k, k, dtype=torch.float64) if ggn else None for _ in self._checkpoints]
        for batch in batches(data, self.batch_size):
            batch = to_device(batch, self.device)
            cache: list[tuple[Tensor, Tensor | None] | None] = [None] * len(self.layers)
            for at, checkpoint in enumerate(self._checkpoints):
                self._load(checkpoint)
                factors = linear_factors(self.model, fn, self.layers, batch)
                shared = []
                for i, (_, a) in enumerate(factors):
                    hit = cache[i]
                    if hit is None or not torch.equal(hit[0], a):
                        hit = cache[i] = (a, self._factored.inputs_projected(i, a))
                    shared.append(hit[1])
                gram = grams[at]
                if gram is None:
                    features[at].append(self._factored.project(factors, shared).cpu())
                    continue
                outputs, jac_factors = linear_output_factors(self.model, self.task.outputs, self.layers, batch)
                with torch.no_grad():
                    hessian = self.task.output_hessian(outputs, batch).to(torch.float64)
                evals, evecs = torch.linalg.eigh(hessian)  # ascending
                # directions with no curvature in any example of the batch (softmax's all-ones) add exact zeros
                keep = evals.amax(dim=0) > 1e-12 * evals.amax().clamp(min=1e-300)
                root = (evecs * evals.clamp(min=0).sqrt().unsqueeze(-2))[..., keep]  # H = root root^T, [B, C, C']
                # one projection for the gradient and the C' rows J^T root_j: [B, 1 + C', k]
                rows = [
                    (
                        torch.cat(
                            [g.unsqueeze(1), torch.einsum("bcd,bco->bdo", root, jac.to(root.dtype)).to(g.dtype)], 1
                        ),
                        a,
                    )
                    for (g, a), (jac, _) in zip(factors, jac_factors, strict=True)
                ]
                projected = self._factored.project(rows, shared)
                features[at].append(projected[:, 0].cpu())
                m = projected[:, 1:].reshape(-1, k)
                gram += (m.T @ m).to(torch.float64).cpu()
        return [(torch.cat(f).to(torch.float64), g) for f, g in zip(features, grams, strict=True)]

    def _featurize_factored(self, data: Any) -> list[CheckpointFeatures]:
        """``featurize`` through ``_factored_pass`` (every estimator; the sketched GGN excepted)."""
        trak = self.estimator == "trak"
        ggn = self.estimator == "influence" and self._uses_ggn()
        passes = self._factored_pass(self.task.measurement if trak else self.task.loss, data, ggn)
        out = []
        for checkpoint, weight, (g, gram) in zip(self._checkpoints, self._weights, passes, strict=True):
            if trak:
                self._load(checkpoint)
                q = self._trak_weights(data)
                x, a = finalize("trak", measurement_features=g, trak_weights=q, weight=weight, **self._damping())
                out.append(CheckpointFeatures(self._unit(x), a, weight, g))
                continue
            curvature = gram if ggn else (g.T @ g if self.estimator == "influence" else None)
            x, a = finalize(self.estimator, loss_features=g, curvature=curvature, weight=weight, **self._damping())
            out.append(CheckpointFeatures(self._unit(x), a, weight, -g))
        return out

    def _ggn_kronecker(self, data: Any) -> Tensor:
        """``_ggn`` from the linear layers' Jacobian factors (``KroneckerProjector.ggn``: ``n k^2`` work, not
        ``n C k^2``); sequence inputs form the projected Jacobian rows from their factors instead."""
        k = self.projector.out_dim
        total = torch.zeros(k, k, dtype=torch.float64)
        for batch in batches(data, self.batch_size):
            batch = to_device(batch, self.device)
            outputs, factors = linear_output_factors(self.model, self.task.outputs, self.layers, batch)
            with torch.no_grad():
                hessian = self.task.output_hessian(outputs, batch).to(torch.float64)
            if all(a.dim() == 2 for _, a in factors):
                total += self.projector.ggn(factors, hessian)
                continue
            rows = self.projector.project_factors(  # [B*C, k]: outputs folded into the batch dimension
                [(g.flatten(0, 1), a.repeat_interleave(g.shape[1], dim=0)) for g, a in factors]
            ).to(torch.float64)
            projected = rows.reshape(hessian.shape[0], hessian.shape[1], k)
            evals, evecs = torch.linalg.eigh(hessian)
            root = evecs * evals.clamp(min=0).sqrt().unsqueeze(-2)
            m = torch.einsum("bcd,bck->bdk", root, projected)
            total += torch.einsum("bdk,bdl->kl", m, m).cpu()
        return total

    def _ggn_sketch(self, data: Any, salt: int) -> Tensor:
        """Unbiased sketch of ``_ggn``: ``sum_b E[m m^T]`` with ``m = P J_b^T R_b e``, ``R_b R_b^T = H_b``.

        ``e`` are ``curvature_samples`` Rademacher vectors per example (``E[e e^T] = I``), drawn from a generator
        seeded by (``seed``, ``salt``), so the sketch is reproducible. ``J_b^T v`` for a fixed ``v`` is the gradient
        of ``v . outputs``: one per-example gradient per sample instead of one Jacobian row per output.
        """
        k, samples = self.projector.out_dim, int(self.curvature_samples)
        if samples < 1:
            raise ValueError("curvature_samples must be at least 1")
        gen = torch.Generator().manual_seed(1_000_003 * self.seed + salt)
        total = torch.zeros(k, k, dtype=torch.float64)
        for batch in batches(data, self.batch_size):
            batch = to_device(batch, self.device)
            with torch.no_grad():
                outputs = self.task.outputs(self.model, batch)
                hessian = self.task.output_hessian(outputs, batch).to(torch.float64).cpu()
            evals, evecs = torch.linalg.eigh(hessian)
            root = evecs * evals.clamp(min=0).sqrt().unsqueeze(-2)  # H = root root^T, [B, C, C]
            signs = torch.randint(0, 2, (*root.shape[:2], samples), generator=gen).to(torch.float64) * 2 - 1
            directions = (root @ signs / samples**0.5).permute(2, 0, 1).reshape(-1, root.shape[-1])  # [S*B, C]
            repeated = _map(batch, lambda t: torch.cat([t] * samples))
            grads = per_example_grads(
                self.model,
                self._along_outputs,
                self.names,
                _with_direction(repeated, directions.to(device=self.device, dtype=outputs.dtype)),
            )
            m = self.projector.project(grads).to(torch.float64).cpu()
            total += m.T @ m
        return total

    def _along_outputs(self, model: nn.Module, packed: Any) -> Tensor:
        """``direction . outputs`` per example of a batch packed by ``_with_direction``."""
        inner, direction = _without_direction(packed)
        return (self.task.outputs(model, inner) * direction).sum(-1)

    def _trak_weights(self, data: Any) -> Tensor:
        with torch.no_grad():
            parts = [self.task.trak_weight(self.model, to_device(b, self.device)).cpu() for b in batches(data, 256)]
        return torch.cat(parts).to(torch.float64)

    def _uses_ggn(self) -> bool:
        if self.curvature not in CURVATURES:
            raise ValueError(f"unknown curvature {self.curvature!r}; choose one of {', '.join(CURVATURES)}")
        if self.curvature == "fisher":
            return False
        has_outputs = type(self.task).outputs is not AttributionTask.outputs
        if self.curvature in ("ggn", "ggn-sketch") and not has_outputs:
            raise ValueError(f"curvature={self.curvature!r} needs a task that defines outputs() and output_hessian()")
        return has_outputs

    def _curvature(self, data: Any, loss_g: Tensor, salt: int) -> Tensor:
        if not self._uses_ggn():
            return loss_g.T @ loss_g
        return self._ggn_sketch(data, salt) if self.curvature == "ggn-sketch" else self._ggn(data)

    def _curvature_name(self) -> str:
        if not self._uses_ggn():
            return "fisher"
        return f"ggn-sketch:{self.curvature_samples}" if self.curvature == "ggn-sketch" else "ggn"

    def _featurize_checkpoint(self, data: Any, weight: float, salt: int = 0) -> CheckpointFeatures:
        if self.estimator == "trak":
            phi = self._project(self.task.measurement, data)
            q = self._trak_weights(data)
            x, a = finalize("trak", measurement_features=phi, trak_weights=q, weight=weight, **self._damping())
            return CheckpointFeatures(self._unit(x), a, weight, phi)
        loss_g = self._project(self.task.loss, data)
        curvature = self._curvature(data, loss_g, salt) if self.estimator == "influence" else None
        x, a = finalize(self.estimator, loss_features=loss_g, curvature=curvature, weight=weight, **self._damping())
        return CheckpointFeatures(self._unit(x), a, weight, -loss_g)

    def _damping(self) -> dict[str, Any]:
        return {"damping": self.damping, "absolute_damping": self.absolute_damping}

    # -------------------------------------------------------------------- public API

    def featurize(self, train_data: Any) -> Attributor:
        """Compute and finalise the training features for every checkpoint (replaces earlier ones)."""
        start = time.perf_counter()
        if self.estimator == "influence":
            self._uses_ggn()  # a curvature the task cannot give fails before any work
        self.train_features = []
        sketched = self.estimator == "influence" and self._uses_ggn() and self.curvature == "ggn-sketch"
        if self._factored is not None and not sketched:
            self.train_features = self._featurize_factored(train_data)
        else:
            for salt, (checkpoint, weight) in enumerate(zip(self._checkpoints, self._weights, strict=True)):
                self._load(checkpoint)
                self.train_features.append(self._featurize_checkpoint(train_data, weight, salt))
        self.timings.featurize_s += time.perf_counter() - start
        return self

    def featurize_gradients(self, per_checkpoint: Sequence[dict[str, Tensor]]) -> Attributor:
        """Like ``featurize``, from per-example loss gradients computed elsewhere (e.g. captured in the training
        backward, ``attribution.linear_capture``): one ``{name: [n, *shape]}`` per checkpoint, the gradient of each
        example's ``task.loss``. They are preconditioned and projected in batches of ``batch_size`` exactly as
        ``featurize`` does. Only for estimators whose curvature comes from the loss gradients themselves
        (``graddot``, ``tracin``, ``influence`` with the empirical Fisher)."""
        if self.estimator == "trak" or (self.estimator == "influence" and self._uses_ggn()):
            raise ValueError("featurize_gradients needs graddot, tracin or influence with curvature='fisher'")
        start = time.perf_counter()
        self.train_features = []
        for grads, weight in zip(per_checkpoint, self._weights, strict=True):
            n = next(iter(grads.values())).shape[0]
            parts = []
            for at in range(0, n, self.batch_size):
                part = {name: grads[name][at : at + self.batch_size].to(self.device) for name in self.names}
                parts.append(self._precondition_project(part))
            loss_g = torch.cat(parts).to(torch.float64)
            curvature = loss_g.T @ loss_g if self.estimator == "influence" else None  # the empirical Fisher
            x, a = finalize(self.estimator, loss_features=loss_g, curvature=curvature, weight=weight, **self._damping())
            self.train_features.append(CheckpointFeatures(self._unit(x), a, weight, -loss_g))
        self.timings.featurize_s += time.perf_counter() - start
        return self

    def finalize_new(self, new_data: Any) -> Tensor:
        """Finalised features ``[n_new, C*k]`` of extra training examples, with the curvature already fitted."""
        parts = []
        for checkpoint, fitted in zip(self._checkpoints, self.train_features, strict=True):
            self._load(checkpoint)
            if self.estimator == "trak":
                phi = self._project(self.task.measurement, new_data)
                parts.append(self._unit((phi @ fitted.transform) * self._trak_weights(new_data).unsqueeze(-1)))
            else:
                g = self._project(self.task.loss, new_data)
                parts.append(self._unit(-fitted.weight * g if fitted.transform is None else g @ fitted.transform))
        return torch.cat(parts, dim=1).to(torch.float32)

    def query_features(self, query_data: Any) -> Tensor:
        """Query-side features ``[n_query, C*k]`` (float64 measurement gradients, averaged over checkpoints)."""
        if self._factored is not None:
            parts = [self._unit(g) for g, _ in self._factored_pass(self.task.measurement, query_data, ggn=False)]
            return torch.cat(parts, dim=1) / len(self._checkpoints)
        parts = []
        for checkpoint in self._checkpoints:
            self._load(checkpoint)
            parts.append(self._unit(self._project(self.task.measurement, query_data)))
        return torch.cat(parts, dim=1) / len(self._checkpoints)

    def train_matrix(self) -> Tensor:
        """Finalised train features ``[n_train, C*k]`` (float32): what an index stores."""
        self._require_features()
        return torch.cat([f.features for f in self.train_features], dim=1).to(torch.float32)

    def score(self, query_data: Any) -> Tensor:
        """Scores ``[n_query, n_train]``: positive means the training example raised the query's measurement."""
        self._require_features()
        q = self.query_features(query_data)
        start = time.perf_counter()
        scores = q @ torch.cat([f.features for f in self.train_features], dim=1).T
        self.timings.score_s += time.perf_counter() - start
        return scores

    def self_influence(self) -> Tensor:
        """Each training example's influence on its own loss (high = memorised or mislabelled), ``[n_train]``."""
        self._require_features()
        total = sum((f.self_query * f.features).sum(-1) for f in self.train_features)
        return total / len(self.train_features)

    def build_index(self, path: Path, contribution_ids: Sequence[str], model_hash: str = "") -> Any:
        """Persist the finalised features as an ``AttributionIndex`` at ``path``."""
        from attribution_oracle.attribution.index import AttributionIndex

        self._require_features()
        if len(contribution_ids) != self.train_features[0].features.shape[0]:
            raise ValueError("one contribution id per training example is needed")
        return AttributionIndex.create(
            Path(path),
            self.train_matrix(),
            list(contribution_ids),
            manifest=self.describe(model_hash),
            transforms=[f.transform for f in self.train_features],
        )

    def describe(self, model_hash: str = "") -> dict[str, Any]:
        """The settings that make features reproducible (stored in an index manifest)."""
        return {
            "model_hash": model_hash,
            "estimator": self.estimator,
            "parameters": {n: list(self.projector.shapes[n]) for n in self.names},
            "projection": self.projector.describe()
            if isinstance(self.projector, KroneckerProjector)
            else {"kind": "rademacher-blocked", "dim": self.projector.out_dim, "seed": self.seed},
            "identity_projection": self.projector.dim is None,
            "damping": self.damping,
            "absolute_damping": self.absolute_damping,
            "curvature": self._curvature_name() if self.estimator == "influence" else None,
            "checkpoints": len(self._checkpoints),
            "checkpoint_weights": self._weights,
            "preconditioned": self.preconditioner is not None,
            "normalize": self.normalize,
        }

    def _require_features(self) -> None:
        if not self.train_features:
            raise RuntimeError("call featurize(train_data) first")

"""Linear Datamodeling Score (LDS) of our attribution engine against TRAK (traker) and dattri.

Data: scikit-learn's bundled ``load_digits`` (no download), pixels scaled by 1/16, a fixed 1000/300 train/test
split. Two settings:

- ``logreg``: multinomial logistic regression (``nn.Linear(64, 10)``), full-batch L-BFGS (float64) to
  convergence on mean cross-entropy + ``l2/2 * ||theta||^2`` (all parameters, so the optimum is unique);
- ``mlp``: a 64-128-10 ReLU MLP, minibatch Adam for a fixed number of epochs, seeded (init and data order).

Ground truth: ``--subsets`` random half-size subsets of the training set, each retrained with ``--gt-seeds``
seeds; the target is each test example's correct-class margin averaged over seeds. LDS = mean over test
examples of the Spearman correlation (across subsets) between the subset sums of attribution scores and the
retrained margins. The ground truth is cached under ``benchmarks/.cache/`` keyed by a hash of its configuration.

Every method sees the same ``C`` checkpoints (models trained on the full training set with different seeds).
Seconds are wall-clock: featurize = everything that depends on the training set only, score = query
gradients + scoring. Mislabel detection: 10% of training labels flipped, checkpoints retrained on the noisy
labels, training examples ranked by self-influence, ROC AUC against the flipped set.

    .venv/bin/python benchmarks/lds.py            # full run (~10 min on 2 cores), appends to BENCHMARKS.md
    .venv/bin/python benchmarks/lds.py --quick    # smoke run, writes benchmarks/results/lds-quick.json only
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import shlex
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # traker and dattri print progress bars otherwise

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import machine  # noqa: E402
from scipy.stats import rankdata  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from attribution_oracle.attribution import Attributor, ClassificationTask, margin  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / "benchmarks" / ".cache"
RESULTS_DIR = ROOT / "benchmarks" / "results"
GT_VERSION = 2  # bump when the ground-truth procedure changes

StateDict = dict[str, Tensor]


# --------------------------------------------------------------------------------------------- data


@dataclass
class Data:
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor

    @property
    def train(self) -> tuple[Tensor, Tensor]:
        return self.x_train, self.y_train

    @property
    def test(self) -> tuple[Tensor, Tensor]:
        return self.x_test, self.y_test


def load_data(n_train: int, n_test: int, seed: int) -> Data:
    """Digits (1797 x 64, pixels in [0, 16]) scaled to [0, 1], split by a seeded permutation."""
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.long)
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(x)))
    train, test = perm[:n_train], perm[n_train : n_train + n_test]
    return Data(x[train], y[train], x[test], y[test])


def flip_labels(y: Tensor, fraction: float, seed: int, classes: int = 10) -> tuple[Tensor, np.ndarray]:
    """Replace ``fraction`` of the labels by a different class chosen uniformly; returns (labels, flipped mask)."""
    rng = np.random.default_rng(seed)
    n = len(y)
    chosen = rng.choice(n, size=int(round(fraction * n)), replace=False)
    noisy = y.clone()
    shift = torch.from_numpy(rng.integers(1, classes, size=len(chosen)))
    noisy[chosen] = (y[chosen] + shift) % classes
    mask = np.zeros(n, dtype=bool)
    mask[chosen] = True
    return noisy, mask


# ----------------------------------------------------------------------------------------- settings


class LogReg:
    """Multinomial logistic regression; many models trained at once as one separable L-BFGS problem.

    The objective of every model is strictly convex (L2 on all parameters), so a joint L-BFGS on the sum of
    the independent objectives reaches each model's unique optimum; convergence is checked per model.
    """

    name = "logreg"

    def __init__(self, l2: float = 1e-3, grad_tol: float = 1e-7) -> None:
        self.l2 = l2
        self.grad_tol = grad_tol

    def describe(self) -> dict[str, Any]:
        return {"model": "Linear(64,10)", "optimizer": "L-BFGS float64 full batch", "l2": self.l2}

    def model(self) -> nn.Module:
        return nn.Linear(64, 10)

    def train(self, x: Tensor, y: Tensor, subsets: Tensor, seeds: list[int]) -> list[StateDict]:
        k = subsets.shape[0]
        xs, ys = x[subsets].double(), y[subsets]  # [K, m, 64], [K, m]
        weight = torch.stack([torch.randn(10, 64, generator=torch.Generator().manual_seed(s)) for s in seeds])
        weight = (weight.double() * 0.01).requires_grad_()
        bias = torch.zeros(k, 10, dtype=torch.float64, requires_grad=True)
        params = [weight, bias]

        def objective() -> Tensor:
            logits = torch.einsum("kmd,kcd->kmc", xs, weight) + bias[:, None]
            ce = F.cross_entropy(logits.reshape(-1, 10), ys.reshape(-1), reduction="sum") / xs.shape[1]
            return ce + 0.5 * self.l2 * (weight.square().sum() + bias.square().sum())

        opt = torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=5000,
            max_eval=10000,
            tolerance_grad=self.grad_tol,
            tolerance_change=1e-15,
            history_size=50,
            line_search_fn="strong_wolfe",
        )

        def closure() -> Tensor:
            opt.zero_grad()
            loss = objective()
            loss.backward()
            return loss

        opt.step(closure)
        closure()
        worst = max(weight.grad.abs().amax().item(), bias.grad.abs().amax().item())
        if worst > 10 * self.grad_tol:
            warnings.warn(f"L-BFGS stopped with gradient {worst:.2e} > {self.grad_tol:.0e}", stacklevel=2)
        w, b = weight.detach(), bias.detach()
        return [{"weight": w[i].clone(), "bias": b[i].clone()} for i in range(k)]

    def margins(self, states: list[StateDict], x: Tensor, y: Tensor) -> Tensor:
        """Correct-class margins ``[K, n]`` (float64: these are the exact optima)."""
        out = []
        for sd in states:
            logits = x.double() @ sd["weight"].double().T + sd["bias"].double()
            out.append(margin(logits, y))
        return torch.stack(out)


class MLP:
    """64-128-10 ReLU MLP trained with minibatch Adam; many models trained at once with batched matmuls.

    Adam is elementwise, so stacking the parameters of K models in one optimiser is exactly K independent runs;
    each model has its own generator for its initialisation (``nn.Linear``'s default uniform init) and data order.
    """

    name = "mlp"

    def __init__(
        self, hidden: int = 128, epochs: int = 40, batch_size: int = 64, lr: float = 2e-3, weight_decay: float = 1e-4
    ) -> None:
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay

    def describe(self) -> dict[str, Any]:
        return {
            "model": f"MLP(64,{self.hidden},10) ReLU",
            "optimizer": "Adam",
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
        }

    def model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(64, self.hidden), nn.ReLU(), nn.Linear(self.hidden, 10))

    @staticmethod
    def _uniform(shape: tuple[int, ...], fan_in: int, gen: torch.Generator) -> Tensor:
        bound = 1.0 / fan_in**0.5
        return (torch.rand(shape, generator=gen) * 2 - 1) * bound

    def train(self, x: Tensor, y: Tensor, subsets: Tensor, seeds: list[int]) -> list[StateDict]:
        k, m = subsets.shape
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        h = self.hidden
        w1 = torch.stack([self._uniform((64, h), 64, g) for g in gens]).requires_grad_()
        b1 = torch.stack([self._uniform((h,), 64, g) for g in gens]).requires_grad_()
        w2 = torch.stack([self._uniform((h, 10), h, g) for g in gens]).requires_grad_()
        b2 = torch.stack([self._uniform((10,), h, g) for g in gens]).requires_grad_()
        opt = torch.optim.Adam([w1, b1, w2, b2], lr=self.lr, weight_decay=self.weight_decay, foreach=True)
        for _ in range(self.epochs):
            order = torch.stack([subsets[i][torch.randperm(m, generator=gens[i])] for i in range(k)])
            for start in range(0, m, self.batch_size):
                idx = order[:, start : start + self.batch_size]
                xb, yb = x[idx], y[idx]  # [K, B, 64], [K, B]
                out = torch.baddbmm(b2[:, None], torch.relu(torch.baddbmm(b1[:, None], xb, w1)), w2)
                loss = F.cross_entropy(out.reshape(-1, 10), yb.reshape(-1), reduction="sum") / idx.shape[1]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        w1, b1, w2, b2 = (t.detach() for t in (w1, b1, w2, b2))
        return [
            {
                "0.weight": w1[i].T.contiguous(),
                "0.bias": b1[i].clone(),
                "2.weight": w2[i].T.contiguous(),
                "2.bias": b2[i].clone(),
            }
            for i in range(k)
        ]

    def margins(self, states: list[StateDict], x: Tensor, y: Tensor) -> Tensor:
        model = self.model()
        out = []
        with torch.no_grad():
            for sd in states:
                model.load_state_dict(sd)
                out.append(margin(model(x), y).double())
        return torch.stack(out)


# ------------------------------------------------------------------------------------- ground truth


@dataclass
class GroundTruth:
    masks: np.ndarray  # [M, n_train] bool
    margins: np.ndarray  # [S, M, n_test] float64
    seconds: float
    cached: bool

    @property
    def target(self) -> np.ndarray:
        return self.margins.mean(axis=0)


def ground_truth(setting: LogReg | MLP, data: Data, subsets: int, seeds: int, subset_seed: int) -> GroundTruth:
    n = len(data.y_train)
    config = {
        "version": GT_VERSION,
        "setting": setting.name,
        "setting_config": setting.describe(),
        "n_train": n,
        "n_test": len(data.y_test),
        "data_sha256": hashlib.sha256(data.x_train.numpy().tobytes() + data.y_train.numpy().tobytes()).hexdigest(),
        "subsets": subsets,
        "seeds": seeds,
        "subset_seed": subset_seed,
        "torch": torch.__version__.split("+")[0],
    }
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    path = CACHE_DIR / f"lds-gt-{setting.name}-{key}.npz"
    if path.is_file():
        cached = np.load(path)
        return GroundTruth(cached["masks"], cached["margins"], float(cached["seconds"]), cached=True)
    start = time.perf_counter()
    rng = np.random.default_rng(subset_seed)
    chosen = np.stack([np.sort(rng.choice(n, size=n // 2, replace=False)) for _ in range(subsets)])
    masks = np.zeros((subsets, n), dtype=bool)
    np.put_along_axis(masks, chosen, True, axis=1)
    jobs = torch.from_numpy(np.repeat(chosen, seeds, axis=0))  # subset j, seed s at row j * seeds + s
    job_seeds = [10_000 + i for i in range(len(jobs))]
    states = []
    for lo in range(0, len(jobs), 128):  # chunks bound the memory of the batched trainers
        states += setting.train(data.x_train, data.y_train, jobs[lo : lo + 128], job_seeds[lo : lo + 128])
    margins = setting.margins(states, data.x_test, data.y_test).numpy()  # [M * S, n_test]
    margins = margins.reshape(subsets, seeds, -1).transpose(1, 0, 2)
    seconds = time.perf_counter() - start
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, masks=masks, margins=margins, seconds=seconds, config=json.dumps(config))
    os.replace(tmp, path)
    return GroundTruth(masks, margins, seconds, cached=False)


def lds(scores: np.ndarray, masks: np.ndarray, target: np.ndarray) -> float:
    """Mean over test examples of Spearman(subset sums of ``scores[q]``, ``target[:, q]``) across subsets."""
    predicted = masks.astype(np.float64) @ np.asarray(scores, dtype=np.float64).T  # [M, n_test]
    rp = rankdata(predicted, axis=0)
    rt = rankdata(target, axis=0)
    rp -= rp.mean(axis=0)
    rt -= rt.mean(axis=0)
    denom = np.sqrt((rp**2).sum(axis=0) * (rt**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (rp * rt).sum(axis=0) / denom
    return float(np.nanmean(corr))


# ------------------------------------------------------------------------------------------ methods


@dataclass
class Context:
    setting: LogReg | MLP
    data: Data
    checkpoints: list[StateDict]
    noisy_checkpoints: list[StateDict]
    noisy_labels: Tensor
    flipped: np.ndarray
    gt: GroundTruth


@dataclass
class Result:
    scores: np.ndarray  # [n_test, n_train], positive = the training example raised the test margin
    featurize_s: float
    score_s: float
    extra: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def timer() -> Iterator[list[float]]:
    box = [0.0]
    start = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - start


def run_ours(ctx: Context, checkpoints: list[StateDict], train: Any = None, **kwargs: Any) -> tuple[Result, Attributor]:
    """Our engine through its public API; ``kwargs`` go to ``Attributor`` (estimator, proj_dim, damping, ...).

    ``factored=True`` unless given: both settings attribute through ``nn.Linear`` layers only, whose projected
    gradients the engine then computes from their factors (the same features, several times less work), in
    batches of 256 (fewer, larger kernels: see ``lds_speed.py``)."""
    kwargs.setdefault("factored", True)
    kwargs.setdefault("batch_size", 256)
    attributor = Attributor(ctx.setting.model(), ClassificationTask(), checkpoints=checkpoints, seed=0, **kwargs)
    with timer() as featurize:
        attributor.featurize(train if train is not None else ctx.data.train)
    with timer() as score:
        scores = attributor.score(ctx.data.test)
    extra = {"engine_featurize_s": attributor.timings.featurize_s, "engine_score_s": attributor.timings.score_s}
    return Result(scores.numpy(), featurize[0], score[0], extra), attributor


def run_traker(
    ctx: Context,
    checkpoints: list[StateDict],
    proj_dim: int | None,
    lambda_reg: float = 0.0,
    train: tuple[Tensor, Tensor] | None = None,
    self_scores: bool = False,
    batch_size: int = 100,
) -> Result:
    """TRAK from the ``traker`` package on CPU (float32, its BasicProjector, margin output function)."""
    from trak import TRAKer
    from trak.projectors import BasicProjector, NoOpProjector, ProjectionType

    x_train, y_train = train if train is not None else ctx.data.train
    x_test, y_test = ctx.data.test
    model = ctx.setting.model()
    grad_dim = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory(prefix="traker-") as save_dir:
        with timer() as featurize:
            if proj_dim is None or proj_dim >= grad_dim:
                projector = NoOpProjector(device="cpu")
            else:
                # one block of proj_dim columns: the matrix is drawn once per checkpoint, not once per batch
                projector = BasicProjector(
                    grad_dim=grad_dim,
                    proj_dim=proj_dim,
                    seed=0,
                    proj_type=ProjectionType.rademacher,
                    device="cpu",
                    block_size=proj_dim,
                    dtype=torch.float32,
                )
            traker = TRAKer(
                model=model,
                task="image_classification",
                train_set_size=len(x_train),
                save_dir=save_dir,
                device="cpu",
                projector=projector,
                use_half_precision=False,
                lambda_reg=lambda_reg,
                logging_level=logging.ERROR,
            )
            for model_id, sd in enumerate(checkpoints):
                traker.load_checkpoint(sd, model_id=model_id)
                for lo in range(0, len(x_train), batch_size):
                    batch = [x_train[lo : lo + batch_size], y_train[lo : lo + batch_size]]
                    traker.featurize(batch=batch, num_samples=len(batch[0]))
            traker.finalize_features()
            # traker 0.3.2 frees a one-block BasicProjector's matrix in finalize_features() and only redraws it when
            # the model id changes, so scoring a single checkpoint (model id 0 again) crashes; force the redraw.
            if not getattr(projector, "proj_matrix_available", True):
                projector.model_id = -1
        experiments = [("test", x_test, y_test)]
        if self_scores:
            experiments.append(("self", x_train, y_train))
        out = {}
        with timer() as score:
            for exp_name, xs, ys in experiments:
                for model_id, sd in enumerate(checkpoints):
                    traker.start_scoring_checkpoint(
                        exp_name=exp_name, checkpoint=sd, model_id=model_id, num_targets=len(xs)
                    )
                    for lo in range(0, len(xs), batch_size):
                        traker.score(
                            batch=[xs[lo : lo + batch_size], ys[lo : lo + batch_size]],
                            num_samples=len(xs[lo : lo + batch_size]),
                        )
                out[exp_name] = np.array(traker.finalize_scores(exp_name=exp_name), dtype=np.float64).T
    extra = {"self": np.diag(out["self"]).copy()} if self_scores else {}
    return Result(out["test"], featurize[0], score[0], extra)


def _dattri_functions(model: nn.Module) -> dict[str, Callable]:
    """dattri-style functions ``f(params, data)`` that accept one example with or without a batch dimension."""

    def _batch(data: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        x, y = data
        if x.dim() == 1:
            x, y = x.unsqueeze(0), y.unsqueeze(0)
        return x, y

    def loss(params: dict[str, Tensor], data: tuple[Tensor, Tensor]) -> Tensor:
        x, y = _batch(data)
        return F.cross_entropy(torch.func.functional_call(model, params, (x,)), y)

    def target(params: dict[str, Tensor], data: tuple[Tensor, Tensor]) -> Tensor:
        x, y = _batch(data)
        return margin(torch.func.functional_call(model, params, (x,)), y).sum()

    def correct_probability(params: dict[str, Tensor], data: tuple[Tensor, Tensor]) -> Tensor:
        x, y = _batch(data)
        logits = torch.func.functional_call(model, params, (x,))
        return torch.softmax(logits, dim=-1).gather(-1, y.unsqueeze(-1)).sum()

    return {"loss": loss, "target": target, "correct_probability": correct_probability}


def _loader(data: tuple[Tensor, Tensor], batch_size: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*data), batch_size=batch_size, shuffle=False)


def run_dattri_if(
    ctx: Context, checkpoints: list[StateDict], solver: str, regularization: float, **kwargs: Any
) -> Result:
    """dattri's influence function (explicit Hessian or CG) on mean cross-entropy, target = correct-class margin.

    dattri returns ``g_train . H^-1 grad(target)`` (the effect of *removing* the example on the target, up to
    1/n), so its sign is flipped to our convention (positive = the example raised the margin).
    """
    from dattri.algorithm.influence_function import IFAttributorCG, IFAttributorExplicit
    from dattri.task import AttributionTask as DattriTask

    model = ctx.setting.model()
    fns = _dattri_functions(model)
    train_loader = _loader(ctx.data.train, len(ctx.data.y_train))  # one batch: dattri sums per-batch IHVPs
    test_loader = _loader(ctx.data.test, len(ctx.data.y_test))
    with timer() as featurize:
        task = DattriTask(loss_func=fns["loss"], model=model, checkpoints=list(checkpoints), target_func=fns["target"])
        cls = IFAttributorExplicit if solver == "explicit" else IFAttributorCG
        attributor = cls(task=task, device="cpu", regularization=regularization, **kwargs)
        attributor.cache(train_loader)
    with timer() as score, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = attributor.attribute(train_loader, test_loader)  # [n_train, n_test]
    return Result(-scores.detach().double().numpy().T, featurize[0], score[0])


def run_dattri_trak(ctx: Context, checkpoints: list[StateDict], proj_dim: int, regularization: float = 0.0) -> Result:
    """dattri's TRAK: margin as the output function for train and test gradients, ``1 - p`` reweighting."""
    from dattri.algorithm.trak import TRAKAttributor
    from dattri.task import AttributionTask as DattriTask

    model = ctx.setting.model()
    fns = _dattri_functions(model)
    with timer() as featurize:
        task = DattriTask(
            loss_func=fns["target"], model=model, checkpoints=list(checkpoints), target_func=fns["target"]
        )
        attributor = TRAKAttributor(
            task=task,
            correct_probability_func=fns["correct_probability"],
            projector_kwargs={"proj_dim": proj_dim, "proj_max_batch_size": 32, "proj_seed": 0, "device": "cpu"},
            device="cpu",
            regularization=regularization,
        )
        attributor.cache(_loader(ctx.data.train, 500))
    with timer() as score:
        scores = attributor.attribute(_loader(ctx.data.test, len(ctx.data.y_test)))  # [n_train, n_test]
    return Result(scores.detach().double().numpy().T, featurize[0], score[0])


def run_exact_influence(ctx: Context, checkpoints: list[StateDict], l2: float) -> Result:
    """Exact influence for logistic regression: float64, exact Hessian of mean CE + l2/2 ||theta||^2, no projection.

    score[q, i] = -grad margin_q(theta)^T H^-1 grad CE_i(theta) (the first-order effect of including example i).
    """
    x_train, y_train = (t.double() if t.is_floating_point() else t for t in ctx.data.train)
    x_test, y_test = (t.double() if t.is_floating_point() else t for t in ctx.data.test)
    total = np.zeros((len(y_test), len(y_train)))
    featurize_s = score_s = 0.0
    equivalent: list[float] = []
    for sd in checkpoints:
        theta = torch.cat([sd["weight"].double().reshape(-1), sd["bias"].double()])

        def logits(th: Tensor, x: Tensor) -> Tensor:
            return x @ th[:640].reshape(10, 64).T + th[640:]

        def objective(th: Tensor) -> Tensor:
            return F.cross_entropy(logits(th, x_train), y_train) + 0.5 * l2 * th.dot(th)

        def example_loss(th: Tensor, x: Tensor, y: Tensor) -> Tensor:
            return F.cross_entropy(logits(th, x[None]), y[None])

        def example_margin(th: Tensor, x: Tensor, y: Tensor) -> Tensor:
            return margin(logits(th, x[None]), y[None]).sum()

        with timer() as featurize:
            hessian = torch.func.hessian(objective)(theta)
            # our engine's damping is relative to mean(diag(GGN / n)); for a linear model GGN / n = H - l2 I
            equivalent.append(l2 / (torch.diagonal(hessian).mean().item() - l2))
            grads = torch.func.vmap(torch.func.grad(example_loss), in_dims=(None, 0, 0))(theta, x_train, y_train)
            train_side = torch.linalg.solve(hessian, grads.T)  # [p, n_train]
        with timer() as score:
            queries = torch.func.vmap(torch.func.grad(example_margin), in_dims=(None, 0, 0))(theta, x_test, y_test)
            total += -(queries @ train_side).numpy()
        featurize_s += featurize[0]
        score_s += score[0]
    return Result(total / len(checkpoints), featurize_s, score_s, {"equivalent_damping": float(np.mean(equivalent))})


# -------------------------------------------------------------------------------------------- report


@dataclass
class Row:
    setting: str
    method: str
    checkpoints: int
    lds: float
    featurize_s: float
    score_s: float
    config: dict[str, Any] = field(default_factory=dict)
    group: str = "main"  # "main", "sweep", "checkpoints"

    @property
    def total_s(self) -> float:
        return self.featurize_s + self.score_s


def fmt_table(rows: list[Row]) -> str:
    header = "| setting | method | C | LDS | featurize s | score s | total s | config |"
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        config = ", ".join(f"{k}={v}" for k, v in r.config.items())
        lines.append(
            f"| {r.setting} | {r.method} | {r.checkpoints} | {r.lds:.3f} | {r.featurize_s:.2f} | {r.score_s:.2f} "
            f"| {r.total_s:.2f} | {config} |"
        )
    return "\n".join(lines)


def fmt_pivot(rows: list[Row]) -> str:
    """Our engine's sweep as estimator/projection x damping: ``LDS (total seconds)`` per cell."""
    cells: dict[tuple[str, str, str], dict[float, Row]] = {}
    dampings: set[float] = set()
    for r in rows:
        if not r.method.startswith("ours-") or "(=" in r.method:
            continue
        est = r.config.get("estimator", "")
        est += f" ({r.config['curvature']})" if "curvature" in r.config else ""
        key = (r.setting, est, "none" if r.config.get("proj_dim") is None else str(r.config["proj_dim"]))
        d = r.config.get("damping", float("nan"))
        if d == d:
            dampings.add(d)
        cells.setdefault(key, {})[d] = r
    ds = sorted(dampings)
    lines = [
        "| setting | estimator | proj_dim | " + " | ".join(f"d={d:g}" for d in ds) + " | no damping |",
        "|---|---|---:|" + "---:|" * (len(ds) + 1),
    ]
    for (setting, est, k), by_d in cells.items():
        row = [f"{by_d[d].lds:.3f} ({by_d[d].total_s:.1f}s)" if d in by_d else "" for d in ds]
        nodamp = next((r for d, r in by_d.items() if d != d), None)
        row.append(f"{nodamp.lds:.3f} ({nodamp.total_s:.1f}s)" if nodamp else "")
        lines.append(f"| {setting} | {est} | {k} | " + " | ".join(row) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke run: few subsets/checkpoints, no sweep, no BENCHMARKS.md"
    )
    p.add_argument("--settings", default="logreg,mlp", help="comma-separated subset of logreg,mlp")
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=300)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--subsets", type=int, default=100, help="ground-truth subsets (half of the training set each)")
    p.add_argument("--gt-seeds", type=int, default=3, help="retraining seeds per subset")
    p.add_argument("--subset-seed", type=int, default=1)
    p.add_argument("--checkpoints", type=int, default=5, help="C: checkpoints every method gets")
    p.add_argument("--extra-checkpoints", default="1,10", help="also run ours and traker with these C ('' = none)")
    p.add_argument(
        "--proj-dim",
        type=_dim,
        default="default",
        help="projection of the per-estimator rows of ours (default: Attributor's default); the peers use it too",
    )
    p.add_argument(
        "--peer-proj-dim",
        type=int,
        default=512,
        help="peers' projection when ours does not project (proj_dim >= parameters): traker needs one at lambda 0",
    )
    p.add_argument("--l2", type=float, default=1e-3, help="L2 penalty of the logistic regression")
    p.add_argument("--mlp-epochs", type=int, default=40)
    p.add_argument(
        "--trak-lambdas",
        default="0.01,0.1,1,10,100",
        help="traker lambda_reg values tried besides 0 (mean diag of its XTX is ~33 here)",
    )
    p.add_argument("--dampings", default="1e-3,1e-2,0.1,0.3,1", help="damping sweep of ours at --full-grid-dims")
    p.add_argument("--full-grid-dims", default="512,1024", help="projections swept over every damping")
    p.add_argument("--dampings-other-k", default="0.1,0.3,1", help="damping sweep of ours at the other projections")
    p.add_argument("--dattri-regs", default="0.001,0.01,0.1", help="dattri TRAK regularisations tried besides 0")
    p.add_argument("--dattri-cg-reg", type=float, default=0.01, help="dattri CG regularisation for the MLP")
    p.add_argument("--dattri-cg-iters", type=int, default=10, help="dattri CG iterations (its default is 10)")
    p.add_argument("--proj-dims", default="512,1024,2048,none", help="projection sweep of our engine")
    p.add_argument(
        "--ggn-max-k",
        type=int,
        default=1024,
        help="largest projection swept with the GGN (2048 on the MLP: LDS 0.727 vs 0.725 at 1024, twice the time)",
    )
    p.add_argument("--max-full-dim", type=int, default=4096, help="skip proj_dim=None when parameters exceed this")
    p.add_argument(
        "--candidate",
        default="",
        help="a config to compare with the default, run as 'ours-candidate' ('' = none)",
    )
    p.add_argument(
        "--previous-default",
        default="damping=0.1,proj_dim=512",
        help="Attributor's previous defaults, run as 'ours-previous-default' in the main table ('' = none)",
    )
    p.add_argument("--timing-reps", type=int, default=3, help="min-of-N timing for the main rows of ours/traker")
    p.add_argument("--train-threads", type=int, default=1, help="torch threads while training models")
    p.add_argument("--no-sweep", action="store_true", help="skip the damping / projection sweep of our engine")
    p.add_argument("--noise", type=float, default=0.1, help="fraction of labels flipped for mislabel detection")
    p.add_argument("--json", type=Path, default=None, help="result file (default benchmarks/results/lds.json)")
    p.add_argument("--markdown", type=Path, default=None, help="append a section here (default BENCHMARKS.md)")
    p.add_argument("--no-markdown", action="store_true", help="do not append to BENCHMARKS.md")
    args = p.parse_args(argv)
    if args.quick:
        args.subsets, args.checkpoints, args.extra_checkpoints = 16, 2, ""
        args.trak_lambdas, args.no_sweep, args.n_train, args.n_test = "1", True, 400, 100
        args.dattri_regs, args.timing_reps = "0.01", 1
        args.mlp_epochs = 10
        args.json = args.json or RESULTS_DIR / "lds-quick.json"
        args.no_markdown = args.no_markdown or args.markdown is None
    args.json = args.json or RESULTS_DIR / "lds.json"
    args.markdown = args.markdown or ROOT / "BENCHMARKS.md"
    return args


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _dim(text: str) -> int | None | str:
    """``--proj-dim``: an int, ``none`` (whole gradients) or ``default`` (Attributor's default)."""
    if text.lower() in ("none", "default"):
        return None if text.lower() == "none" else "default"
    return int(text)


def _dims(text: str) -> list[int | None]:
    return [None if v.strip().lower() == "none" else int(v) for v in text.split(",") if v.strip()]


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Temporarily set torch's intra-op threads (training many tiny models does not gain from more)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def log(msg: str) -> None:
    print(msg, flush=True)


def parse_config(text: str) -> dict[str, Any]:
    """``"estimator=influence,curvature=ggn,damping=0.01,proj_dim=none"`` -> Attributor keyword arguments."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, value = (v.strip() for v in part.split("=", 1))
        if key == "proj_dim":
            out[key] = None if value.lower() == "none" else int(value)
        elif key == "damping":
            out[key] = float(value)
        elif key in ("batch_size", "seed"):
            out[key] = int(value)
        else:
            out[key] = value
    return out


def _label(config: dict[str, Any]) -> str:
    short = {"estimator": "", "curvature": "", "damping": "d=", "proj_dim": "k="}
    parts = [
        f"{short.get(k, k + '=')}{'none' if v is None else (f'{v:g}' if isinstance(v, float) else v)}"
        for k, v in config.items()
    ]
    return ",".join(parts)


def run_setting(setting: LogReg | MLP, args: argparse.Namespace, data: Data) -> tuple[list[Row], dict[str, Any]]:
    C = args.checkpoints
    extra_cs = [int(c) for c in args.extra_checkpoints.split(",") if c.strip()]
    c_max = max([C, *extra_cs])
    n = len(data.y_train)
    p = _num_params(setting)
    fields = {f.name: f.default for f in dataclasses.fields(Attributor)}
    k = fields["proj_dim"] if args.proj_dim == "default" else args.proj_dim
    # the peers get our projection when ours projects; when ours keeps whole gradients they get --peer-proj-dim
    peer_k = k if k is not None and k < p else args.peer_proj_dim

    start = time.perf_counter()
    with num_threads(args.train_threads):
        gt = ground_truth(setting, data, args.subsets, args.gt_seeds, args.subset_seed)
    log(
        f"[{setting.name}] ground truth: {args.subsets} subsets x {args.gt_seeds} seeds, {gt.seconds:.1f}s"
        f"{' (cached)' if gt.cached else ''}"
    )
    everything = torch.arange(n).expand(c_max, n)
    noisy_labels, flipped = flip_labels(data.y_train, args.noise, seed=7)
    with num_threads(args.train_threads):
        checkpoints = setting.train(data.x_train, data.y_train, everything, [1000 + c for c in range(c_max)])
        noisy = setting.train(data.x_train, noisy_labels, everything[:C], [2000 + c for c in range(C)])
    acc = [(setting.margins([sd], data.x_test, data.y_test) > 0).double().mean().item() for sd in checkpoints[:C]]
    log(
        f"[{setting.name}] {c_max} + {C} noisy checkpoints trained in {time.perf_counter() - start:.1f}s; "
        f"test accuracy {np.mean(acc):.3f}; {p} parameters"
    )
    ctx = Context(setting, data, checkpoints, noisy, noisy_labels, flipped, gt)
    ceiling = lds_between(gt.margins[0], gt.margins[1]) if gt.margins.shape[0] >= 2 else float("nan")
    log(f"[{setting.name}] ground truth seed-to-seed Spearman (a noise reference): {ceiling:.3f}")
    rows: list[Row] = []

    def add(method: str, run: Callable[[], Result], c: int, group: str = "main", **config: Any) -> Row:
        # the headline rows of ours and traker are timed args.timing_reps times (min): the machine is shared
        reps = args.timing_reps if group == "main" and method.startswith(("ours", "trak")) else 1
        try:
            result = run()
            for _ in range(reps - 1):
                again = run()
                result.featurize_s = min(result.featurize_s, again.featurize_s)
                result.score_s = min(result.score_s, again.score_s)
            row = Row(
                setting.name,
                method,
                c,
                lds(result.scores, gt.masks, gt.target),
                result.featurize_s,
                result.score_s,
                config,
                group,
            )
        except Exception as exc:  # a peer failing (e.g. a singular solve) is a result, not a crash
            row = Row(
                setting.name,
                method,
                c,
                float("nan"),
                float("nan"),
                float("nan"),
                dict(config, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"),
                group,
            )
        rows.append(row)
        log(
            f"  {method:<44} C={c:<2} LDS={row.lds:6.3f}  {row.featurize_s:7.2f}s + {row.score_s:6.2f}s"
            + (f"  [{row.config['error']}]" if "error" in row.config else "")
        )
        return row

    def best_of(prefix: str, name: str, note: str) -> Row | None:
        found = [r for r in rows if r.method.startswith(prefix) and np.isfinite(r.lds)]
        if not found:
            return None
        b = max(found, key=lambda r: r.lds)
        row = Row(setting.name, name, b.checkpoints, b.lds, b.featurize_s, b.score_s, dict(b.config, chosen=note))
        rows.append(row)
        return row

    def ours(config: dict[str, Any], c: int = C) -> Callable[[], Result]:
        return lambda: run_ours(ctx, checkpoints[:c], **config)[0]

    ckpts = checkpoints[:C]
    default = {key: fields[key] for key in ("estimator", "curvature", "damping", "proj_dim")}
    d0 = default["damping"]

    # ---- our engine: the default (Attributor() as written) and each estimator at the same damping / projection
    add("ours", ours({}), C, **default)
    if args.previous_default:
        previous = dict(default, **parse_config(args.previous_default))
        add("ours-previous-default", ours(previous), C, **previous)
    for name, variant in [
        ("ours-influence-ggn", {"estimator": "influence", "curvature": "ggn"}),
        ("ours-influence-fisher", {"estimator": "influence", "curvature": "fisher"}),
        ("ours-trak", {"estimator": "trak"}),
        ("ours-graddot", {"estimator": "graddot"}),
        ("ours-tracin", {"estimator": "tracin"}),
    ]:
        config = (
            dict(variant, proj_dim=k)
            if variant["estimator"] in ("graddot", "tracin")
            else dict(variant, damping=d0, proj_dim=k)
        )
        add(name, ours(config), C, **config)
    candidate = parse_config(args.candidate) if args.candidate else None
    if candidate:
        add("ours-candidate", ours(candidate), C, **candidate)

    # ---- peers
    traker = {"package": "traker 0.3.2", "proj_dim": peer_k}
    add("trak", lambda: run_traker(ctx, ckpts, peer_k), C, **traker, lambda_reg=0.0)
    for lam in _floats(args.trak_lambdas):
        add(
            f"trak[lambda_reg={lam:g}]",
            lambda lam=lam: run_traker(ctx, ckpts, peer_k, lambda_reg=lam),
            C,
            "sweep",
            **traker,
            lambda_reg=lam,
        )
    trak_reg = best_of("trak[lambda_reg=", "trak-reg", "best lambda_reg of the sweep")
    best_lambda = trak_reg.config["lambda_reg"] if trak_reg else 0.0
    dattri = {"package": "dattri 0.3.0"}
    if isinstance(setting, LogReg):
        add(
            "dattri-if-explicit",
            lambda: run_dattri_if(ctx, ckpts, "explicit", setting.l2),
            C,
            **dattri,
            regularization=setting.l2,
        )
        add(
            "dattri-if-cg",
            lambda: run_dattri_if(ctx, ckpts, "cg", setting.l2, max_iter=args.dattri_cg_iters),
            C,
            **dattri,
            regularization=setting.l2,
            max_iter=args.dattri_cg_iters,
        )
        exact: dict[str, Any] = {}

        def run_exact() -> Result:
            result = run_exact_influence(ctx, ckpts, setting.l2)
            exact.update(result.extra)
            return result

        add("exact-influence", run_exact, C, hessian="exact, float64", l2=setting.l2)
    else:
        reg = args.dattri_cg_reg  # 1e-3 gave LDS 0.37, 1e-2 0.59 in an exploratory run (CG on 9610 parameters is slow)
        add(
            "dattri-if-cg",
            lambda: run_dattri_if(ctx, ckpts, "cg", reg, max_iter=args.dattri_cg_iters),
            C,
            **dattri,
            regularization=reg,
            max_iter=args.dattri_cg_iters,
        )
    add("dattri-trak", lambda: run_dattri_trak(ctx, ckpts, peer_k), C, **dattri, proj_dim=peer_k, regularization=0.0)
    for reg in _floats(args.dattri_regs):
        add(
            f"dattri-trak[reg={reg:g}]",
            lambda reg=reg: run_dattri_trak(ctx, ckpts, peer_k, reg),
            C,
            "sweep",
            **dattri,
            proj_dim=peer_k,
            regularization=reg,
        )
    best_of("dattri-trak[", "dattri-trak-reg", "best regularization of the sweep")

    # ---- sweep of our engine: estimator x damping x projection
    if not args.no_sweep:
        dims = sorted({None if (d is None or d >= p) else d for d in _dims(args.proj_dims)}, key=lambda d: d or p)
        full_grid = {None if (d is None or d >= p) else d for d in _dims(args.full_grid_dims)}
        variants = [
            {"estimator": "influence", "curvature": "ggn"},
            {"estimator": "influence", "curvature": "fisher"},
            {"estimator": "trak"},
        ]
        for variant in variants:
            for dim in dims:
                if variant.get("curvature") == "ggn" and dim is not None and dim > args.ggn_max_k:
                    log(f"  ours-{_label(variant)}[k={dim}] skipped (> --ggn-max-k {args.ggn_max_k})")
                    continue
                if dim is None and p > args.max_full_dim:
                    log(
                        f"  ours-{_label(variant)}[k=none] skipped: a {p} x {p} curvature per checkpoint "
                        f"(> --max-full-dim {args.max_full_dim})"
                    )
                    continue
                for d in _floats(args.dampings if dim in full_grid else args.dampings_other_k):
                    config = dict(variant, damping=d, proj_dim=dim)
                    add(f"ours-{_label(config)}", ours(config), C, "sweep", **config)
        if isinstance(setting, LogReg) and exact.get("equivalent_damping"):
            # the relative damping at which the engine's damped GGN equals the exact regularised Hessian
            d_eq = float(exact["equivalent_damping"])
            config = {"estimator": "influence", "curvature": "ggn", "damping": d_eq, "proj_dim": None}
            add(f"ours-{_label(config)} (= l2)", ours(config), C, "sweep", **config)
        for dim in dims:
            config = {"estimator": "graddot", "proj_dim": dim}
            add(f"ours-{_label(config)}", ours(config), C, "sweep", **config)
            label = "none" if dim is None else dim
            if dim != peer_k and not (dim is None and p > args.max_full_dim):
                add(
                    f"trak[lambda_reg={best_lambda:g},k={label}]",
                    lambda dim=dim: run_traker(ctx, ckpts, dim, lambda_reg=best_lambda),
                    C,
                    "sweep",
                    package="traker 0.3.2",
                    proj_dim=label,
                    lambda_reg=best_lambda,
                )

    # ---- number of checkpoints
    for c in extra_cs:
        if c == C:
            continue
        add("ours", ours({}, c), c, "checkpoints", **default)
        if candidate:
            add("ours-candidate", ours(candidate, c), c, "checkpoints", **candidate)
        add("trak", lambda c=c: run_traker(ctx, checkpoints[:c], peer_k), c, "checkpoints", **traker, lambda_reg=0.0)
        add(
            "trak-reg",
            lambda c=c: run_traker(ctx, checkpoints[:c], peer_k, lambda_reg=best_lambda),
            c,
            "checkpoints",
            **traker,
            lambda_reg=best_lambda,
        )

    # ---- mislabel detection: self-influence on checkpoints trained with flipped labels
    noisy_train = (data.x_train, noisy_labels)

    def self_auc(config: dict[str, Any]) -> float:
        _, attributor = run_ours(ctx, noisy, train=noisy_train, **config)
        return float(roc_auc_score(flipped, attributor.self_influence().numpy()))

    mislabel: dict[str, Any] = {"ours_auc": self_auc({})}
    trak_self = run_traker(ctx, noisy, peer_k, train=noisy_train, self_scores=True).extra["self"]
    mislabel["trak_auc"] = float(roc_auc_score(flipped, trak_self))
    if best_lambda:
        trak_self = run_traker(ctx, noisy, peer_k, lambda_reg=best_lambda, train=noisy_train, self_scores=True).extra[
            "self"
        ]
        mislabel["trak_reg_auc"] = float(roc_auc_score(flipped, trak_self))
    if candidate:
        mislabel["ours_candidate_auc"] = self_auc(candidate)
    mislabel.update(checkpoints=C, noise=args.noise, trak_reg_lambda=best_lambda)
    log(f"[{setting.name}] mislabel AUC: " + ", ".join(f"{k_}={v:.3f}" for k_, v in mislabel.items() if "auc" in k_))
    info = {
        "ground_truth_seconds": gt.seconds,
        "ground_truth_cached": gt.cached,
        "test_accuracy": float(np.mean(acc)),
        "seed_to_seed_spearman": ceiling,
        "parameters": p,
        "engine_defaults": default,
        "peer_proj_dim": peer_k,
        "mislabel": mislabel,
    }
    if isinstance(setting, LogReg):
        info["exact_equivalent_damping"] = exact.get("equivalent_damping")
    return rows, info


def lds_between(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-test-example Spearman between two [M, n_test] margin matrices."""
    ra, rb = rankdata(a, axis=0), rankdata(b, axis=0)
    ra -= ra.mean(axis=0)
    rb -= rb.mean(axis=0)
    return float(np.nanmean((ra * rb).sum(0) / np.sqrt((ra**2).sum(0) * (rb**2).sum(0))))


def _num_params(setting: LogReg | MLP) -> int:
    return sum(p.numel() for p in setting.model().parameters())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(0)
    wall = time.perf_counter()
    started = dt.datetime.now(dt.UTC)
    host = machine()
    data = load_data(args.n_train, args.n_test, args.split_seed)
    settings = {"logreg": LogReg(l2=args.l2), "mlp": MLP(epochs=args.mlp_epochs)}
    rows: list[Row] = []
    infos: dict[str, Any] = {}
    for name in [s.strip() for s in args.settings.split(",") if s.strip()]:
        r, info = run_setting(settings[name], args, data)
        rows += r
        infos[name] = info
    wall = time.perf_counter() - wall
    host["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    # ... summary (filled in below)
    summary = summarize(rows, infos, args)
    print()
    print(summary["text"])
    write_json(rows, infos, args, host, wall, summary)
    if not args.no_markdown:
        append_markdown(args, rows, infos, host, wall, started, summary)
    log(f"\ntotal wall time {wall:.0f}s; results in {args.json}")
    return 0


def summarize(rows: list[Row], infos: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Goal checks for ``ours`` (the default) and ``ours-candidate`` against the peer, per setting."""
    lines = []
    goals: dict[str, Any] = {}
    for setting in infos:
        main_rows = {r.method: r for r in rows if r.setting == setting and r.group == "main"}
        trak, trak_reg, exact = (main_rows.get(m) for m in ("trak", "trak-reg", "exact-influence"))
        goals[setting] = {}
        for name in ("ours", "ours-previous-default", "ours-candidate"):
            ours = main_rows.get(name)
            if ours is None:
                continue
            g: dict[str, Any] = {
                "lds": ours.lds,
                "seconds": ours.total_s,
                "lds_margin_vs_trak": ours.lds - trak.lds,
                "time_ratio_vs_trak": ours.total_s / trak.total_s,
                "lds_goal_met": bool(ours.lds >= trak.lds + 0.05),
                "time_goal_met": bool(ours.total_s <= trak.total_s),
            }
            line = (
                f"{setting} {name}: LDS {ours.lds:.3f} vs trak {trak.lds:.3f} ({g['lds_margin_vs_trak']:+.3f}; "
                f"goal +0.05 {'MET' if g['lds_goal_met'] else 'NOT MET'}), time {ours.total_s:.2f}s = "
                f"{g['time_ratio_vs_trak']:.2f}x trak ({'MET' if g['time_goal_met'] else 'NOT MET'})"
            )
            if trak_reg is not None:
                g["lds_margin_vs_trak_reg"] = ours.lds - trak_reg.lds
                g["time_ratio_vs_trak_reg"] = ours.total_s / trak_reg.total_s
                line += f"; vs trak-reg {trak_reg.lds:.3f} ({g['lds_margin_vs_trak_reg']:+.3f})"
            if exact is not None:
                g["gap_to_exact_influence"] = exact.lds - ours.lds
                g["exact_goal_met"] = bool(g["gap_to_exact_influence"] <= 0.02)
                line += (
                    f"; exact influence {exact.lds:.3f} (gap {g['gap_to_exact_influence']:+.3f}, goal <= 0.02 "
                    f"{'MET' if g['exact_goal_met'] else 'NOT MET'})"
                )
            lines.append(line)
            goals[setting][name] = g
        # the best of our engine's configurations that is no slower than traker (the goal's budget)
        budget = [
            r
            for r in rows
            if r.setting == setting
            and r.method.startswith("ours")
            and r.checkpoints == args.checkpoints
            and np.isfinite(r.lds)
            and r.total_s <= trak.total_s
        ]
        if budget:
            b = max(budget, key=lambda r: r.lds)
            goals[setting]["best_ours_within_trak_time"] = {"method": b.method, "lds": b.lds, "seconds": b.total_s}
            lines.append(
                f"{setting} best of ours within trak's {trak.total_s:.2f}s: {b.method} LDS {b.lds:.3f} "
                f"({b.lds - trak.lds:+.3f} vs trak) in {b.total_s:.2f}s"
            )
        m = infos[setting]["mislabel"]
        lines.append(
            f"{setting} mislabel AUC: " + ", ".join(f"{k[:-4]} {v:.3f}" for k, v in m.items() if k.endswith("_auc"))
        )
    return {"text": "\n".join(lines), "goals": goals}


def write_json(
    rows: list[Row],
    infos: dict[str, Any],
    args: argparse.Namespace,
    host: dict[str, Any],
    wall: float,
    summary: dict[str, Any],
) -> None:
    out: dict[str, Any] = {}
    for setting, info in infos.items():
        block: dict[str, Any] = {}
        for r in rows:
            if r.setting != setting or (r.group == "checkpoints" and r.checkpoints == args.checkpoints):
                continue
            name = r.method if r.group != "checkpoints" else f"{r.method}@C={r.checkpoints}"
            block[name] = {
                "lds": r.lds,
                "seconds": r.total_s,
                "checkpoints": r.checkpoints,
                "featurize_seconds": r.featurize_s,
                "score_seconds": r.score_s,
                "group": r.group,
                "config": r.config,
            }
        block["mislabel"] = info["mislabel"]
        out[setting] = block
    meta = {
        "command": " ".join([".venv/bin/python", "benchmarks/lds.py", *sys.argv[1:]]),
        "machine": host,
        "wall_seconds": wall,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "settings": {s: info for s, info in infos.items()},
        "goals": summary["goals"],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2, sort_keys=False, default=float) + "\n")
    # run details next to it, so that lds.json stays {setting: {method: {...}, "mislabel": {...}}}
    args.json.with_suffix(".meta.json").write_text(json.dumps(meta, indent=2, default=float) + "\n")


def append_markdown(
    args: argparse.Namespace,
    rows: list[Row],
    infos: dict[str, Any],
    host: dict[str, Any],
    wall: float,
    started: dt.datetime,
    summary: dict[str, Any],
) -> None:
    path: Path = args.markdown
    if not path.exists():
        path.write_text("# Benchmarks\n\nEach section is appended by the benchmark script named in its command.\n")
    command = " ".join([".venv/bin/python", "benchmarks/lds.py", *map(shlex.quote, sys.argv[1:])])
    main_rows = [r for r in rows if r.group in ("main", "checkpoints")]
    sweep_rows = [r for r in rows if r.group == "sweep"]
    auc_keys = sorted({key for i in infos.values() for key in i["mislabel"] if key.endswith("_auc")})
    mislabel = "\n".join(
        ["| setting | C | " + " | ".join(auc_keys) + " |", "|---|---:|" + "---:|" * len(auc_keys)]
        + [
            f"| {s} | {i['mislabel']['checkpoints']} | "
            + " | ".join(f"{i['mislabel'][key]:.3f}" if key in i["mislabel"] else "" for key in auc_keys)
            + " |"
            for s, i in infos.items()
        ]
    )
    gt = "; ".join(
        f"{s}: test acc {i['test_accuracy']:.3f}, ground truth {i['ground_truth_seconds']:.0f}s"
        f"{' (cached)' if i['ground_truth_cached'] else ''}, seed-to-seed Spearman {i['seed_to_seed_spearman']:.3f}"
        for s, i in infos.items()
    )
    defaults = "; ".join(
        f"{name}: " + ", ".join(f"{key}={value}" for key, value in info["engine_defaults"].items())
        for name, info in infos.items()
    )
    peers = ", ".join(f"{name}: proj_dim={info['peer_proj_dim']}" for name, info in infos.items())
    section = f"""
## LDS on digits — {started.strftime("%Y-%m-%d %H:%M UTC")}

Machine: nproc={host["nproc"]}, torch {host["torch"]} ({host["torch_threads"]} threads), {host["cpu"]},
Python {host["python"]}; 1-min load average {host["loadavg_1m"]} at start, {host["loadavg_1m_end"]} at end
(the machine is shared, so seconds are noisy). Wall time {wall:.0f}s.

Command: `{command}`

{args.subsets} half-size subsets x {args.gt_seeds} seeds, {args.n_train} train / {args.n_test} test, C = checkpoints
given to every method, seconds are wall-clock (featurize = train side, score = query gradients + scoring; min of
{args.timing_reps} runs for the C={args.checkpoints} rows of ours and traker in the main table, one run otherwise).
{gt}.
`ours` = `Attributor(model, ClassificationTask(), checkpoints)` with its defaults as found at run time ({defaults});
the peers project to {peers}.

{fmt_table(main_rows)}

{summary["text"].replace(chr(10), chr(10) + chr(10))}

Mislabel detection ({int(args.noise * 100)}% labels flipped, self-influence ranking):

{mislabel}
"""
    if sweep_rows:
        section += (
            f"\nSweep of our engine, LDS (total seconds) at C={args.checkpoints}; damping d is relative to the mean"
            f" diagonal of the curvature:\n\n{fmt_pivot(sweep_rows)}\n"
            f"\nAll sweep rows (ours and the peers' regularisation):\n\n{fmt_table(sweep_rows)}\n"
        )
    with path.open("a") as handle:
        handle.write(section)


if __name__ == "__main__":
    sys.exit(main())

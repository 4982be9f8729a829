"""The estimators: how per-example features of one checkpoint become finalised training features.

Every estimator produces, per checkpoint, a train-side matrix ``X`` (``[n, k]``) such that the score of
query ``q`` on training example ``i`` is ``phi_q . X_i``, where ``phi_q`` is the projected gradient of the
query measurement. Positive scores mean "including example i raises the query's measurement".

- ``graddot``  (TracIn at one checkpoint): ``X_i = -g_i`` (``g_i`` = projected loss gradient).
- ``tracin``   the same, weighted by each checkpoint's learning rate.
- ``trak``     TRAK: ``X_i = Q_i (Phi^T Phi + lambda I)^-1 phi_i`` with ``phi_i`` the measurement gradient of
               training example ``i`` and ``Q_i`` its loss reweighting (``1 - p``).
- ``influence`` influence function with a damped Gauss-Newton curvature ``G`` (exact GGN from the output
               Hessian when the task exposes outputs, else the empirical Fisher): ``X_i = -(G/n + lambda I)^-1 g_i``.

``lambda`` is ``damping`` times the mean diagonal of the curvature, so one default fits any scale; with
``absolute_damping`` it is ``damping`` itself (e.g. the L2 penalty the model was trained with, which makes
``influence`` on a linear model the exact influence function).
"""

from __future__ import annotations

import torch
from torch import Tensor

ESTIMATORS = ("influence", "trak", "graddot", "tracin")


def damped_inverse(curvature: Tensor, damping: float, absolute: bool = False) -> Tensor:
    """``(C + lambda I)^-1`` in float64 (Cholesky), ``lambda = damping`` if ``absolute`` else
    ``damping * mean(diag C)``."""
    c = curvature.to(torch.float64)
    k = c.shape[0]
    scale = 1.0 if absolute else torch.diagonal(c).mean().clamp(min=1e-12)
    damped = c + damping * scale * torch.eye(k, dtype=torch.float64, device=c.device)
    chol = torch.linalg.cholesky(damped)
    return torch.cholesky_inverse(chol)


def finalize(
    estimator: str,
    *,
    loss_features: Tensor | None = None,
    measurement_features: Tensor | None = None,
    trak_weights: Tensor | None = None,
    curvature: Tensor | None = None,
    damping: float = 0.3,
    absolute_damping: bool = False,
    weight: float = 1.0,
) -> tuple[Tensor, Tensor | None]:
    """Return ``(X, A)``: finalised train features ``[n, k]`` and the linear map ``A`` (``[k, k]`` or None)
    that finalises new examples the same way (for appending to an index).
    """
    if estimator in ("graddot", "tracin"):
        return -weight * loss_features.to(torch.float64), None
    if estimator == "trak":
        phi = measurement_features.to(torch.float64)
        inverse = damped_inverse(phi.T @ phi, damping, absolute_damping)
        return (phi @ inverse) * trak_weights.to(torch.float64).unsqueeze(-1) * weight, inverse * weight
    if estimator == "influence":
        n = loss_features.shape[0]
        inverse = damped_inverse(curvature.to(torch.float64) / n, damping, absolute_damping)
        return -(loss_features.to(torch.float64) @ inverse) * weight, -inverse * weight
    raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")

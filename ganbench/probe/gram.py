"""The probe's SVM where rows are fewer than features: liblinear on an N x N design.

With N labelled rows and D > N features, the L2-SVM's weight vector lies in the span of
the (standardised, bias-augmented) rows ``X~`` (representer theorem), so with the Cholesky
factor of the Gram matrix, ``X~ X~^T = L L^T``, the problem in ``w`` is exactly the problem
in ``v`` (``w = X~^T L^-T v``) with design ``L``: the same margins ``X~ w = L v`` and the
same penalty ``||w|| = ||v||``. liblinear's dual coordinate descent depends on the rows only
through their inner products, so on ``L`` it takes the same steps as on ``X~`` (measured:
the same iteration counts and accuracies) at N/D of the cost per step; ``LinearSVC`` on the
raw features is what the probe is compared with, so liblinear itself solves it here.

Costs: the Gram matrix (N^2 D, float32 products in column blocks summed in float64), a
Cholesky (N^3 / 3), and per C a liblinear fit on N x N and one pass over X for the weights.
Memory: about 40 N^2 bytes (the Gram matrix, its factor and liblinear's copy), so the probe
takes this path only where that fits (:func:`fits`); the torch solver in ``svm.py`` keeps
bounded memory for the paper's 50,000 x 28,672 matrix and runs on GPUs.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ganbench.probe.design import check_features, make_design, one_vs_rest_targets
from ganbench.probe.linear_model import LinearModel, model_from_solution
from ganbench.training.devices import available_memory

#: liblinear's iteration cap (``LinearSVC``'s default): the dual converges in tens of
#: passes for the probe's C grid.
MAX_ITER = 1000
_COLUMNS = 2048


def fits(n: int, d: int, device: torch.device) -> bool:
    """True where this path applies: CPU features, rows at most features + 1, and about
    40 N^2 bytes fitting in half the memory available."""
    if device.type != "cpu" or n > d + 1:
        return False
    available = available_memory()
    if available is None:
        available = 8 << 30
    return 40 * n * n <= available // 2


def gram(X: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, s: float) -> torch.Tensor:
    """``X~ X~^T`` (float64, N x N) of the standardised features plus the bias column ``s``,
    from float32 column blocks (a block-sized temporary, never a standardised copy of X)."""
    n, d = X.shape
    K = torch.full((n, n), s * s, dtype=torch.float64)
    for start in range(0, d, _COLUMNS):
        cols = slice(start, min(d, start + _COLUMNS))
        block = (X[:, cols].double() - mean[cols]).div_(std[cols]).float()
        K += (block @ block.T).double()
    return K


def cholesky(K: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The lower factor of K, with the smallest diagonal jitter that makes it succeed
    (identical feature rows make K singular); (L, jitter added)."""
    scale = float(K.diagonal().mean())
    jitter = 0.0
    for exponent in (None, -12, -10, -8, -6):
        if exponent is not None:
            jitter = scale * 10.0**exponent
        L, info = torch.linalg.cholesky_ex(K + jitter * torch.eye(len(K), dtype=K.dtype))
        if int(info) == 0:
            return L, jitter
    raise ValueError("the features' Gram matrix is not positive definite even with jitter")


def fit_path(
    X: torch.Tensor,
    y: torch.Tensor,
    grid: Sequence[float],
    *,
    tol: float = 1e-4,
    max_iter: int = MAX_ITER,
    standardize: bool = True,
    intercept_scaling: float = 1.0,
    on_fit: Callable[[LinearModel, float], None] | None = None,
) -> list[LinearModel]:
    """One model per C of ``grid`` (in the grid's order) on CPU features ``X``; ``on_fit``
    is told each model and its seconds as it is done (progress)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    check_features(X, y)
    design = make_design(X, standardize, intercept_scaling, None)
    classes, Y = one_vs_rest_targets(y, X.device)
    L, _ = cholesky(gram(X, design.mean, design.std, design.s))
    L_np = L.numpy()
    labels = y.numpy()
    models = []
    for C in grid:
        if C <= 0:
            raise ValueError(f"C must be positive, not {C}")
        started = time.perf_counter()
        svc = LinearSVC(
            C=C, loss="squared_hinge", dual=True, fit_intercept=False, tol=tol,
            max_iter=max_iter, random_state=0,
        )  # fmt: skip
        with warnings.catch_warnings():
            # not converging is reported through the model's `converged`, not a warning
            warnings.simplefilter("ignore", ConvergenceWarning)
            svc.fit(L_np, labels)
        coef = torch.from_numpy(svc.coef_).double()  # K x N (1 x N for two classes)
        if len(classes) == 2:
            coef = torch.cat([-coef, coef])  # one-vs-rest of two classes: mirror images
        V = coef.T  # N x K: the solution in the reduced problem
        Z = torch.linalg.solve_triangular(L.T, V, upper=True)  # w = X~^T Z
        W = torch.empty(X.shape[1] + 1, len(classes), dtype=torch.float64)
        for start in range(0, X.shape[1], _COLUMNS):
            cols = slice(start, min(X.shape[1], start + _COLUMNS))
            block = (X[:, cols].double() - design.mean[cols]).div_(design.std[cols])
            W[cols] = block.T @ Z
        W[-1] = design.s * Z.sum(0)
        margins = L @ V
        loss = (1 - Y * margins).clamp(min=0).square().sum(0)
        objective = 0.5 * V.square().sum(0) + C * loss
        n_iter = int(np.max(svc.n_iter_))
        converged = n_iter < max_iter
        model = model_from_solution(design, classes, C, W, objective, n_iter, converged, None)
        models.append(model)
        if on_fit is not None:
            on_fit(model, time.perf_counter() - started)
    return models

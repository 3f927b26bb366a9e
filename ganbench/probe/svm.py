"""A one-vs-rest linear L2-SVM (squared hinge) in torch: bounded memory on CPU, fast on GPU.

The problem is liblinear's ``L2R_L2LOSS_SVC`` primal, what scikit-learn's
``LinearSVC(loss="squared_hinge", penalty="l2", dual=False)`` solves: for every class k,

    min_w  0.5 * ||w_k||^2 + C * sum_i max(0, 1 - y_ik * w_k . x~_i)^2,   y_ik in {-1, +1},

where ``x~_i = [x_i, s]`` carries the bias as one more feature of value ``s``
(``intercept_scaling``, 1 by default) whose weight is regularised like the others: liblinear's
bias handling, kept so that predictions match LinearSVC's.

Why not liblinear itself: at the paper's CIFAR-10 size (50,000 x 28,672 features) it copies
the matrix into its own float64 sparse rows, ~23 GB. Here the features stay the caller's
float32 tensor, read in row blocks; nothing of size N x D is allocated beyond one block's
temporary (or, on a CPU where it fits in a quarter of the free memory, one centred float32
copy, which makes each pass two plain matrix products); N x K margins and D x K weights are
kept in float64 for accuracy. The same code runs on whatever device the tensors live on.

How: the problem is solved by truncated Newton with conjugate gradients
(:mod:`ganbench.probe.newton`) on the standardised, bias-augmented design, applied block by
block without a standardised copy (:mod:`ganbench.probe.design`); the fitted
:class:`ganbench.probe.linear_model.LinearModel` takes raw features. Where rows are fewer
than features, liblinear on the Gram factor (:mod:`ganbench.probe.gram`) solves it instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from ganbench.probe import gram
from ganbench.probe.design import Design, check_features, make_design, one_vs_rest_targets
from ganbench.probe.linear_model import LinearModel, model_from_solution
from ganbench.probe.newton import solve

#: The C grid the probe searches by default: 1e-4 ... 1e1, one value per decade.
DEFAULT_C_GRID: tuple[float, ...] = tuple(10.0**k for k in range(-4, 2))


def fit_l2svm(
    X: torch.Tensor,
    y: torch.Tensor,
    C: float,
    *,
    max_iter: int = 100,
    tol: float = 1e-4,
    block_rows: int | None = None,
    standardize: bool = True,
    intercept_scaling: float = 1.0,
    warm_start: LinearModel | None = None,
    method: str = "auto",
    copy: bool | None = None,
) -> LinearModel:
    """Fit a one-vs-rest L2-SVM (squared hinge, L2 penalty) on the device X lives on.

    ``tol`` is liblinear's (``LinearSVC(tol=...)``) relative gradient-norm tolerance;
    ``max_iter`` caps Newton iterations (each one a few passes over X); ``block_rows`` is the
    row count per block (None: a size suited to the device; the result does not depend on
    it beyond rounding). ``warm_start`` resumes from another fit on the same X (a C path).
    ``method``: "primal" (this module's solver), "gram" (liblinear on the Gram factor,
    ``ganbench.probe.gram``: CPU, rows <= features) or "auto" (gram where it fits).
    ``copy``: whether the primal solver centres a float32 copy of X once (faster passes) or
    centres blocks as it reads them (bounded memory); None: a copy where it fits in a quarter
    of the free memory and no ``block_rows`` is given.
    """
    check_features(X, y)
    if C <= 0:
        raise ValueError(f"C must be positive, not {C}")
    if _use_gram(method, X):
        return gram.fit_path(
            X, y, [C], tol=tol, standardize=standardize, intercept_scaling=intercept_scaling
        )[0]
    design = make_design(X, standardize, intercept_scaling, block_rows, copy)
    classes, Y = one_vs_rest_targets(y, X.device)
    return _fit(design, classes, Y, C, max_iter, tol, block_rows, warm_start)


def _fit(
    design: Design,
    classes: torch.Tensor,
    Y: torch.Tensor,
    C: float,
    max_iter: int,
    tol: float,
    block_rows: int | None,
    warm_start: LinearModel | None,
) -> LinearModel:
    shape = (design.X.shape[1] + 1, Y.shape[1])
    if warm_start is not None and tuple(warm_start.solution.shape) == shape:
        W0 = warm_start.solution.to(design.X.device).clone()
    else:
        W0 = torch.zeros(shape, dtype=torch.float64, device=design.X.device)
    passes = design.passes
    W, objective, n_iter, converged = solve(design, Y, C, W0, max_iter=max_iter, tol=tol)
    model = model_from_solution(design, classes, C, W, objective, n_iter, converged, block_rows)
    model.passes = design.passes - passes
    return model


def _use_gram(method: str, X: torch.Tensor) -> bool:
    if method not in ("auto", "primal", "gram"):
        raise ValueError(f"method must be auto, primal or gram, not {method!r}")
    if method == "primal":
        return False
    if method == "gram":
        if X.device.type != "cpu":
            raise ValueError("the gram method runs on CPU features")
        return True
    return gram.fits(X.shape[0], X.shape[1], X.device)


def choose_c(
    X_train: torch.Tensor,
    y_train: torch.Tensor,
    X_val: torch.Tensor,
    y_val: torch.Tensor,
    grid: Sequence[float] = DEFAULT_C_GRID,
    *,
    max_iter: int = 100,
    tol: float = 1e-4,
    block_rows: int | None = None,
    standardize: bool = True,
    method: str = "auto",
    on_fit: Callable[[LinearModel, float], None] | None = None,
    copy: bool | None = None,
) -> tuple[float, dict[float, float]]:
    """The C of ``grid`` with the best validation accuracy, and every C's accuracy.

    The grid is fitted from small C to large, each fit warm-started from the last (as
    liblinear's own C search does) and sharing one standardisation (and, on the Gram path,
    one Gram matrix). Ties go to the smaller C. ``on_fit(model, seconds)`` follows progress.
    """
    check_features(X_train, y_train)
    check_features(X_val, y_val)
    scores: dict[float, float] = {}
    if _use_gram(method, X_train):
        for model in gram.fit_path(
            X_train, y_train, sorted(grid), tol=tol, standardize=standardize, on_fit=on_fit
        ):
            scores[model.C] = model.accuracy(X_val, y_val)
        best = max(scores.values())
        return next(C for C, acc in scores.items() if acc == best), scores
    design = make_design(X_train, standardize, 1.0, block_rows, copy)
    classes, Y = one_vs_rest_targets(y_train, X_train.device)
    previous: LinearModel | None = None
    for C in sorted(grid):
        started = time.perf_counter()
        previous = _fit(design, classes, Y, C, max_iter, tol, block_rows, previous)
        scores[C] = previous.accuracy(X_val, y_val)
        if on_fit is not None:
            on_fit(previous, time.perf_counter() - started)
    best = max(scores.values())
    return next(C for C, acc in scores.items() if acc == best), scores

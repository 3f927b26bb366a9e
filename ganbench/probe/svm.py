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

Solver: truncated Newton (Keerthi & DeCoste 2005; liblinear's TRON uses the same Hessian
products): the squared hinge is once differentiable and piecewise quadratic, so its
generalised Hessian ``I + 2C X~_A^T X~_A`` (A = rows inside the margin) gives Newton steps
that converge in 5-30 iterations (more for large C). Each step solves the Newton system by conjugate
gradients, all K classes at once as one D x K matrix problem (each column keeps its own CG
coefficients), and moves by an exact line search on the piecewise-quadratic 1-D objective,
which costs no pass over X because CG accumulates ``X~ d`` as it goes. One CG iteration is
one pass over X: per block, ``Z = X_b V`` then ``X_b^T (mask * Z)`` while the block is in
cache.

Standardisation (``standardize=True``, the default): features are scaled to zero mean and
unit variance with the mean/std of the training rows (population std, as scikit-learn's
``StandardScaler``; constant features keep scale 1) without a standardised copy: each row
block is centred as it is read (a block-sized temporary) and the 1/std scaling is folded
into the weights of each product. The SVM is the one fitted on standardised features (its
bias regularised there); the returned :class:`LinearModel` has the scaling folded in, so it
takes raw features.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

#: The C grid the probe searches by default: 1e-4 ... 1e1, one value per decade.
DEFAULT_C_GRID: tuple[float, ...] = tuple(10.0**k for k in range(-4, 2))
#: Elements (rows x features) per block on a CPU: 4M float32 = 16 MB, small enough to stay in
#: cache between the two products of one pass.
_CPU_BLOCK_ELEMENTS = 1 << 22
#: On a GPU every block is a few kernel launches, so blocks are larger: 1 GB for the centred
#: temporary.
_GPU_BLOCK_ELEMENTS = 1 << 28
#: Newton's system is solved to ||residual|| <= this * ||gradient|| (liblinear's TRON value).
_CG_TOL = 0.1
_MAX_CG_ITER = 500


@dataclass
class LinearModel:
    """A fitted one-vs-rest linear classifier on raw (unstandardised) features."""

    #: K x D, float64, on the features' device (standardisation folded in).
    weight: torch.Tensor
    #: K, float64.
    bias: torch.Tensor
    #: The class label of each row of ``weight`` (sorted, as LinearSVC's ``classes_``).
    classes: torch.Tensor
    C: float
    #: Newton iterations taken, and whether every class met the tolerance or the floor that
    #: the features' precision puts under it (False: ``max_iter`` ran out first).
    n_iter: int
    converged: bool
    #: Per class, the primal objective on the (standardised, augmented) training problem.
    objective: torch.Tensor
    #: (D + 1) x K weights of the problem as solved (standardised space, bias last): what a
    #: warm start resumes from.
    solution: torch.Tensor
    #: D: the training features' mean, subtracted block by block before the product (for
    #: float32 accuracy; mathematically the scores are just ``X @ weight.T + bias``).
    offset: torch.Tensor | None = None
    block_rows: int | None = None
    #: Passes over the training features this fit made (each reads X once).
    passes: int = 0

    def decision_function(self, X: torch.Tensor) -> torch.Tensor:
        """N x K scores ``X @ weight.T + bias`` in float64, computed in row blocks."""
        rows = _block_rows(X, self.block_rows)
        w = self.weight.T.to(device=X.device, dtype=X.dtype)
        b = self.bias.to(X.device)
        offset = None
        if self.offset is not None and bool(self.offset.any()):
            offset = self.offset.to(X.device)
            b = b + offset @ self.weight.T.to(X.device)
            offset = offset.to(X.dtype)
        out = torch.empty(X.shape[0], w.shape[1], dtype=torch.float64, device=X.device)
        buffer = None if offset is None else torch.empty_like(X[:rows])
        for start in range(0, X.shape[0], rows):
            block = X[start : start + rows]
            if buffer is not None:
                block = torch.sub(block, offset, out=buffer[: len(block)])
            out[start : start + rows] = (block @ w).double() + b
        return out

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """The class of the highest score (ties go to the first class, as in scikit-learn)."""
        return self.classes.to(X.device)[self.decision_function(X).argmax(1)]

    def accuracy(self, X: torch.Tensor, y: torch.Tensor) -> float:
        return (self.predict(X) == y.to(X.device)).double().mean().item()


def _block_rows(X: torch.Tensor, block_rows: int | None) -> int:
    """Rows per block: ``block_rows`` when given, else a size suited to the device."""
    if block_rows is not None:
        if block_rows < 1:
            raise ValueError(f"block_rows must be at least 1, not {block_rows}")
        return block_rows
    budget = _GPU_BLOCK_ELEMENTS if X.device.type == "cuda" else _CPU_BLOCK_ELEMENTS
    return max(1, min(X.shape[0], budget // max(1, X.shape[1])))


def _copy_fits(X: torch.Tensor) -> bool:
    """True where a CPU copy of X fits in a quarter of the memory available now."""
    from ganbench.training.devices import available_memory

    if X.device.type != "cpu":
        return False
    available = available_memory()
    return available is not None and X.numel() * X.element_size() <= available // 4


def feature_stats(
    X: torch.Tensor, block_rows: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and population std (float64; 0-variance -> 1), in float32 blocks."""
    rows = _block_rows(X, block_rows)
    n, d = X.shape
    total = torch.zeros(d, dtype=torch.float64, device=X.device)
    # Each block sums in its own dtype (a float64 reduction would cast the block), blocks
    # add up in float64.
    for start in range(0, n, rows):
        total += X[start : start + rows].sum(0).double()
    mean = total / n
    # Second pass on centred values: the one-pass E[x^2] - E[x]^2 cancels badly in float32.
    mean_x = mean.to(X.dtype)
    sq = torch.zeros(d, dtype=torch.float64, device=X.device)
    buffer = torch.empty(min(rows, n), d, dtype=X.dtype, device=X.device)
    for start in range(0, n, rows):
        block = X[start : start + rows]
        centred = torch.sub(block, mean_x, out=buffer[: len(block)])
        sq += centred.square_().sum(0).double()
    std = (sq / n).sqrt()
    # Like StandardScaler: a (numerically) constant feature is centred but not scaled.
    std[std < 10 * torch.finfo(X.dtype).eps * mean.abs().clamp(min=1.0)] = 1.0
    return mean, std


class _Design:
    """``X~ = [(X - mean) / std, s]`` applied to D+1 x K matrices without forming it."""

    def __init__(
        self,
        X: torch.Tensor,
        mean: torch.Tensor,
        std: torch.Tensor,
        intercept_scaling: float,
        block_rows: int | None,
        copy: bool | None = None,
    ) -> None:
        self.X = X
        self.mean = mean
        self.std = std
        self.s = intercept_scaling
        self.centre = bool(mean.any())
        #: Sweeps over X so far (the cost measure: each reads all of X once).
        self.passes = 0
        self.mean_x = mean.to(X.dtype)
        self._buffer: torch.Tensor | None = None
        if copy is None:
            copy = block_rows is None and _copy_fits(X)
        if self.centre and copy:
            # A centred copy made once turns every pass into two plain matrix products
            # over all rows: 2.6x faster per pass than centring blocks as they are read
            # (10,000 x 7,168 on 2 cores). Taken only where it fits in a quarter of the
            # free memory; otherwise the block-sized temporary below bounds memory.
            self.X = torch.empty_like(X)
            step = _block_rows(X, None)
            for start in range(0, len(X), step):
                torch.sub(X[start : start + step], self.mean_x, out=self.X[start : start + step])
            self.centre = False
            self.rows = len(X)
        else:
            self.rows = _block_rows(X, block_rows)
        if self.centre:
            #: The one block-sized temporary, reused by every block of every pass.
            self._buffer = torch.empty(self.rows, X.shape[1], dtype=X.dtype, device=X.device)

    def _centred(self, rows: slice) -> torch.Tensor:
        """Rows of X minus the mean, written into the reused buffer (or X's own rows)."""
        if self._buffer is None:
            return self.X[rows]
        out = self._buffer[: rows.stop - rows.start]
        return torch.sub(self.X[rows], self.mean_x, out=out)

    def pass_(
        self,
        W: torch.Tensor,
        residual: Callable[[torch.Tensor, slice], torch.Tensor] | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``Z = X~ W`` (N x K) and, when ``residual`` is given, ``X~^T residual(Z)``.

        Both products are done block by block in one sweep, so each block of X is read
        from memory once per pass.
        """
        self.passes += 1
        X = self.X
        v = (W[:-1] / self.std[:, None]).to(X.dtype)  # D x K: the scaling folded in
        bias = self.s * W[-1]
        n = X.shape[0]
        Z = torch.empty(n, W.shape[1], dtype=torch.float64, device=X.device)
        # X^T r is accumulated transposed (K x D): r^T X_b runs at the speed of X_b V, where
        # MKL's X_b^T r with fewer than 12 columns in r was measured 4-5x slower.
        acc = torch.zeros_like(W[:-1].T) if residual is not None else None
        rsum = torch.zeros_like(bias)
        for start in range(0, n, self.rows):
            rows = slice(start, min(n, start + self.rows))
            # Centred block by block (a block-sized temporary): folding the mean into the
            # weights instead cancels badly in float32 when |mean| >> std (random-init
            # features reach |mean| / std ~ 700).
            block = self._centred(rows)
            z = (block @ v).double() + bias
            Z[rows] = z
            if residual is not None:
                r = residual(z, rows)
                acc += (r.T.to(X.dtype) @ block).double()
                rsum += r.sum(0)
        if acc is None:
            return Z, None
        # X~^T r = [X_c^T r / std, s * sum r]
        return Z, torch.cat([acc.T / self.std[:, None], self.s * rsum[None]], 0)


def _solve(
    design: _Design,
    Y: torch.Tensor,
    C: float,
    W: torch.Tensor,
    *,
    max_iter: int,
    tol: float,
) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
    """Truncated Newton from ``W``; returns (W, objective per class, iterations, converged)."""
    n = Y.shape[0]
    positives = (Y > 0).sum(0).double()
    # liblinear's stopping rule: ||g|| <= tol * max(min(#pos, #neg), 1) / n * ||g(0)||,
    # with g(0) the gradient at w = 0 (so a warm start does not make the rule stricter).
    eps = tol * torch.clamp(torch.minimum(positives, n - positives), min=1.0) / n
    g0_norm: torch.Tensor | None = None
    if bool(W.any()):
        # At w = 0 every row is inside the margin and z = 0: g(0) = -2C X~^T Y.
        _, XtY = design.pass_(torch.zeros_like(W), lambda z, rows: Y[rows])
        g0_norm = (2 * C * XtY).norm(dim=0)
    stalled = torch.zeros(W.shape[1], dtype=torch.bool, device=W.device)
    floor = 1000 * torch.finfo(design.X.dtype).eps ** 2
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):  # noqa: B007 (returned)
        Z, XtR = design.pass_(W, lambda z, rows: (z * Y[rows] < 1) * (z - Y[rows]))
        G = W + 2 * C * XtR
        active = Z * Y < 1
        g_norm = G.norm(dim=0)
        if g0_norm is None:
            g0_norm = g_norm
        done = (g_norm <= eps * g0_norm) | stalled
        if bool(done.all()):
            converged = True
            break
        S, XS = _newton_direction(design, G, active, C, done, g_norm)
        t = _line_search(W, S, Z, XS, Y, C, (G * S).sum(0))
        before = _objective(W, Z, Y, C)
        W = W + t * S
        after = _objective(W, Z + t * XS, Y, C)
        # The features' precision puts a floor under the gradient: in float32 its noise makes
        # steps that lower the objective by ~1e-12 relative, for ever. Stop such a class
        # (threshold 1000 eps^2: 1.4e-11 for float32) rather than spin until max_iter.
        stalled |= before - after <= floor * before.abs()
    if not converged:  # W moved after the last Z was computed
        Z, _ = design.pass_(W, None)
    return W, _objective(W, Z, Y, C), iteration, converged


def _objective(W: torch.Tensor, Z: torch.Tensor, Y: torch.Tensor, C: float) -> torch.Tensor:
    """The primal objective of each class (column) given the margins' inputs ``Z = X~ W``."""
    hinge = (1 - Y * Z).clamp(min=0)
    return 0.5 * W.square().sum(0) + C * hinge.square().sum(0)


def _newton_direction(
    design: _Design,
    G: torch.Tensor,
    active: torch.Tensor,
    C: float,
    done: torch.Tensor,
    g_norm: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CG on ``(I + 2C X~_A^T X~_A) S = -G``, every class a column; returns S and X~ S.

    (A diagonal preconditioner, as Hsia, Chiang & Lin 2018 suggest, did not cut the CG
    iterations on standardised features and costs a pass per Newton step, so there is none.
    Sweeping only rows inside some class's margin, as liblinear's TRON does per class, was
    measured too: with ten classes that union stayed above 80% of the rows at every C of the
    grid (10,000 x 7,168), so every CG iteration reads all rows.)
    """
    activef = active.double()
    R = torch.where(done, 0.0, -G)
    P = R.clone()
    S = torch.zeros_like(G)
    XS = torch.zeros(active.shape, dtype=torch.float64, device=G.device)
    rr = R.square().sum(0)
    finished = done | (rr == 0)
    target = (_CG_TOL * g_norm).square()
    for _ in range(_MAX_CG_ITER):
        XP, XtAXP = design.pass_(P, lambda z, rows: activef[rows] * z)
        HP = P + 2 * C * XtAXP
        pHp = (P * HP).sum(0)
        alpha = torch.where(finished, 0.0, rr / torch.where(finished, 1.0, pHp))
        S += alpha * P
        XS += alpha * XP
        R -= alpha * HP
        rr_new = R.square().sum(0)
        finished |= rr_new <= target
        if bool(finished.all()):
            break
        beta = torch.where(finished, 0.0, rr_new / torch.where(rr == 0, 1.0, rr))
        P = R + beta * P
        rr = rr_new
    return S, XS


def _line_search(
    W: torch.Tensor,
    S: torch.Tensor,
    Z: torch.Tensor,
    XS: torch.Tensor,
    Y: torch.Tensor,
    C: float,
    slope0: torch.Tensor,
    max_iter: int = 60,
) -> torch.Tensor:
    """Exact minimiser over t of each class's objective along ``W + t S`` (safeguarded Newton).

    phi(t) is convex and piecewise quadratic; phi'(t) is continuous and piecewise linear, so
    Newton on phi' lands exactly once the margin set stops changing. A bracket [lo, hi] on the
    root (phi'(0) < 0 along a descent direction) turns any step that leaves it into bisection.
    """
    wd = (W * S).sum(0)
    dd = S.square().sum(0)
    k = W.shape[1]
    lo = torch.zeros(k, dtype=W.dtype, device=W.device)
    hi = torch.full_like(lo, math.inf)
    t = torch.ones_like(lo)
    moving = dd > 0
    scale = slope0.abs()  # |phi'(0)|
    for _ in range(max_iter):
        z = Z + t * XS
        inside = Y * z < 1
        d1 = wd + t * dd + 2 * C * (inside * (z - Y) * XS).sum(0)
        d2 = dd + 2 * C * (inside * XS.square()).sum(0)
        solved = ~moving | (d1.abs() <= 1e-12 * scale)
        if bool(solved.all()):
            break
        lo = torch.where(d1 < 0, t, lo)
        hi = torch.where(d1 > 0, t, hi)
        newton = t - d1 / torch.where(d2 > 0, d2, 1.0)
        fallback = torch.where(torch.isinf(hi), 2 * t, (lo + hi) / 2)
        ok = (newton > lo) & (newton < hi)
        t = torch.where(solved, t, torch.where(ok, newton, fallback))
    return torch.where(moving, t, 0.0)


def _as_targets(y: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted classes and the N x K one-vs-rest targets in {-1, +1} (float64)."""
    y = y.to(device)
    classes, index = torch.unique(y, sorted=True, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"an SVM needs at least 2 classes, got {len(classes)}")
    Y = -torch.ones(len(y), len(classes), dtype=torch.float64, device=device)
    Y[torch.arange(len(y), device=device), index] = 1.0
    return classes, Y


def _check(X: torch.Tensor, y: torch.Tensor) -> None:
    if X.ndim != 2:
        raise ValueError(f"features must be N x D, got shape {tuple(X.shape)}")
    if not X.is_floating_point():
        raise ValueError(f"features must be floating point, got {X.dtype}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"{tuple(y.shape)} labels for {X.shape[0]} feature rows")


def _model(
    design: _Design,
    classes: torch.Tensor,
    C: float,
    W: torch.Tensor,
    objective: torch.Tensor,
    n_iter: int,
    converged: bool,
    block_rows: int | None,
) -> LinearModel:
    """Fold the standardisation into the weights so the model takes raw features."""
    v = W[:-1] / design.std[:, None]
    bias = design.s * W[-1] - design.mean @ v
    return LinearModel(
        weight=v.T.contiguous(),
        bias=bias,
        classes=classes,
        C=C,
        n_iter=n_iter,
        converged=converged,
        objective=objective,
        solution=W,
        offset=design.mean,
        block_rows=block_rows,
    )


def _design(
    X: torch.Tensor,
    standardize: bool,
    intercept_scaling: float,
    block_rows: int | None,
    copy: bool | None = None,
) -> _Design:
    if standardize:
        mean, std = feature_stats(X, block_rows)
    else:
        mean = torch.zeros(X.shape[1], dtype=torch.float64, device=X.device)
        std = torch.ones_like(mean)
    return _Design(X, mean, std, intercept_scaling, block_rows, copy)


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
    _check(X, y)
    if C <= 0:
        raise ValueError(f"C must be positive, not {C}")
    if _use_gram(method, X):
        from ganbench.probe import gram

        return gram.fit_path(
            X, y, [C], tol=tol, standardize=standardize, intercept_scaling=intercept_scaling
        )[0]
    design = _design(X, standardize, intercept_scaling, block_rows, copy)
    classes, Y = _as_targets(y, X.device)
    return _fit(design, classes, Y, C, max_iter, tol, block_rows, warm_start)


def _fit(
    design: _Design,
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
    W, objective, n_iter, converged = _solve(design, Y, C, W0, max_iter=max_iter, tol=tol)
    model = _model(design, classes, C, W, objective, n_iter, converged, block_rows)
    model.passes = design.passes - passes
    return model


def _use_gram(method: str, X: torch.Tensor) -> bool:
    if method not in ("auto", "primal", "gram"):
        raise ValueError(f"method must be auto, primal or gram, not {method!r}")
    if method == "primal":
        return False
    from ganbench.probe import gram

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
    _check(X_train, y_train)
    _check(X_val, y_val)
    scores: dict[float, float] = {}
    if _use_gram(method, X_train):
        from ganbench.probe import gram

        for model in gram.fit_path(
            X_train, y_train, sorted(grid), tol=tol, standardize=standardize, on_fit=on_fit
        ):
            scores[model.C] = model.accuracy(X_val, y_val)
        best = max(scores.values())
        return next(C for C, acc in scores.items() if acc == best), scores
    design = _design(X_train, standardize, 1.0, block_rows, copy)
    classes, Y = _as_targets(y_train, X_train.device)
    previous: LinearModel | None = None
    for C in sorted(grid):
        started = time.perf_counter()
        previous = _fit(design, classes, Y, C, max_iter, tol, block_rows, previous)
        scores[C] = previous.accuracy(X_val, y_val)
        if on_fit is not None:
            on_fit(previous, time.perf_counter() - started)
    best = max(scores.values())
    return next(C for C, acc in scores.items() if acc == best), scores

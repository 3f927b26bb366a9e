"""The standardised, bias-augmented design ``X~`` both SVM solvers fit, without copying X.

Shared by the torch primal solver (:mod:`ganbench.probe.svm`, :mod:`ganbench.probe.newton`)
and the Gram path (:mod:`ganbench.probe.gram`): the feature statistics, the design operator,
the one-vs-rest targets and the input checks, so that neither solver imports the other.

Standardisation (``standardize=True``, the default): features are scaled to zero mean and
unit variance with the mean/std of the training rows (population std, as scikit-learn's
``StandardScaler``; constant features keep scale 1) without a standardised copy: each row
block is centred as it is read (a block-sized temporary) and the 1/std scaling is folded
into the weights of each product. The SVM is the one fitted on standardised features (its
bias regularised there); the returned :class:`ganbench.probe.linear_model.LinearModel` has
the scaling folded in, so it takes raw features.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: Elements (rows x features) per block on a CPU: 4M float32 = 16 MB, small enough to stay in
#: cache between the two products of one pass.
_CPU_BLOCK_ELEMENTS = 1 << 22
#: On a GPU every block is a few kernel launches, so blocks are larger: 1 GB for the centred
#: temporary.
_GPU_BLOCK_ELEMENTS = 1 << 28


def rows_per_block(X: torch.Tensor, block_rows: int | None) -> int:
    """Rows per block: ``block_rows`` when given, else a size suited to the device."""
    if block_rows is not None:
        if block_rows < 1:
            raise ValueError(f"block_rows must be at least 1, not {block_rows}")
        return block_rows
    budget = _GPU_BLOCK_ELEMENTS if X.device.type == "cuda" else _CPU_BLOCK_ELEMENTS
    return max(1, min(X.shape[0], budget // max(1, X.shape[1])))


def copy_fits(X: torch.Tensor) -> bool:
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
    rows = rows_per_block(X, block_rows)
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


class Design:
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
            copy = block_rows is None and copy_fits(X)
        if self.centre and copy:
            # A centred copy made once turns every pass into two plain matrix products
            # over all rows: 2.6x faster per pass than centring blocks as they are read
            # (10,000 x 7,168 on 2 cores). Taken only where it fits in a quarter of the
            # free memory; otherwise the block-sized temporary below bounds memory.
            self.X = torch.empty_like(X)
            step = rows_per_block(X, None)
            for start in range(0, len(X), step):
                torch.sub(X[start : start + step], self.mean_x, out=self.X[start : start + step])
            self.centre = False
            self.rows = len(X)
        else:
            self.rows = rows_per_block(X, block_rows)
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


def make_design(
    X: torch.Tensor,
    standardize: bool,
    intercept_scaling: float,
    block_rows: int | None,
    copy: bool | None = None,
) -> Design:
    """The design of ``X``, standardised with its own statistics or (``standardize=False``)
    only augmented with the bias column."""
    if standardize:
        mean, std = feature_stats(X, block_rows)
    else:
        mean = torch.zeros(X.shape[1], dtype=torch.float64, device=X.device)
        std = torch.ones_like(mean)
    return Design(X, mean, std, intercept_scaling, block_rows, copy)


def one_vs_rest_targets(y: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted classes and the N x K one-vs-rest targets in {-1, +1} (float64)."""
    y = y.to(device)
    classes, index = torch.unique(y, sorted=True, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"an SVM needs at least 2 classes, got {len(classes)}")
    Y = -torch.ones(len(y), len(classes), dtype=torch.float64, device=device)
    Y[torch.arange(len(y), device=device), index] = 1.0
    return classes, Y


def check_features(X: torch.Tensor, y: torch.Tensor) -> None:
    """Refuse features that are not a floating-point N x D matrix with N labels."""
    if X.ndim != 2:
        raise ValueError(f"features must be N x D, got shape {tuple(X.shape)}")
    if not X.is_floating_point():
        raise ValueError(f"features must be floating point, got {X.dtype}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"{tuple(y.shape)} labels for {X.shape[0]} feature rows")

"""The fitted one-vs-rest linear classifier both SVM solvers return, on raw features.

Its own module so that the primal solver (:mod:`ganbench.probe.svm`) and the Gram path
(:mod:`ganbench.probe.gram`) build the same result without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ganbench.probe.design import Design, rows_per_block


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
        rows = rows_per_block(X, self.block_rows)
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


def model_from_solution(
    design: Design,
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

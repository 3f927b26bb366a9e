"""The DCGAN paper's representation probe (Sec. 5.1, 5.2): a linear L2-SVM on D's features.

The protocol is the authors' released one (Newmu/dcgan_code,
svhn/svhn_semisup_analysis.py lines 104-150), with the paper's text where the code is
silent:

* Features: :func:`ganbench.probe.features.extract` (all conv layers, 4x4 max-pooled),
  after the batchnorm statistics are recomputed on real training images
  (:mod:`ganbench.probe.standing`; the caller's choice).
* Validation: a separate labelled set ``val`` (the authors hold out 10,000 training images:
  :func:`ganbench.probe.draws.hold_out`, or a dataset's own validation split).
* Choosing C: every C of the authors' grid (1e-4 ... 1e-2) is fitted on ``select_draws``
  draws of ``labels_per_class`` labels per class (10 in the authors' code) and scored on
  ``val``; the C with the best validation accuracy *averaged over those draws* wins (ties
  to the smaller C, as ``np.argmin`` over the grid). With every label there is one draw.
* Scoring: ``draws`` new draws (100 for the authors' SVHN table) are fitted at that C and
  scored on the test split, whose features are extracted once and read only then. Features
  are raw by default, as the authors fed LinearSVC (``standardize`` is the switch).
* The result: the mean test accuracy, the authors' spread (1.96 population standard
  deviations of the draws) and a t interval of the mean (:mod:`ganbench.probe.paired`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ganbench.errors import UsageError
from ganbench.plugins.interfaces import ImageArray
from ganbench.probe.draws import SELECT, TEST, draw_labelled, labels_of
from ganbench.probe.features import extract
from ganbench.probe.paired import DrawSummary, summarise
from ganbench.probe.svm import choose_c, fit_l2svm
from ganbench.progress import ItemProgress

#: The authors' C grid (svhn_semisup_analysis.py line 104: ``cs = [0.0001, ..., 0.01]``).
AUTHORS_C_GRID: tuple[float, ...] = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2)


@dataclass
class DrawResult:
    """One test draw of the labelled subset."""

    draw: int
    accuracy: float
    labels_used: int


@dataclass
class ProbeResult:
    """Test accuracy of the linear probe, with what it took to get it."""

    #: Mean test accuracy over the test draws.
    accuracy: float
    error_rate: float
    #: Features per image (all layers, pooled, concatenated).
    feature_dim: int
    #: Labelled training images each draw fitted on.
    labels_used: int
    #: The C chosen on the validation set.
    C: float
    #: Validation accuracy at that C, averaged over the selection draws.
    val_accuracy: float
    draws: int
    summary: DrawSummary
    per_draw: list[DrawResult]
    #: Seconds spent in the SVM (C search and test fits) and in feature extraction.
    fit_seconds: float
    extract_seconds: float = 0.0
    #: Validation accuracy of every C, averaged over the selection draws.
    c_scores: dict[float, float] = field(default_factory=dict)
    select_draws: int = 1
    val_images: int = 0
    test_images: int = 0
    standardize: bool = False

    @property
    def accuracies(self) -> np.ndarray:
        return np.array([d.accuracy for d in self.per_draw])


def run_probe(
    features_fn: Callable[[torch.Tensor], Sequence[torch.Tensor]],
    train: ImageArray,
    val: ImageArray,
    test: ImageArray,
    *,
    labels_per_class: int | None = None,
    draws: int = 1,
    select_draws: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    c_grid: Sequence[float] = AUTHORS_C_GRID,
    standardize: bool = False,
    batch_size: int = 256,
    max_iter: int = 100,
    tol: float = 1e-4,
    progress: bool = False,
) -> ProbeResult:
    """Score ``features_fn`` (e.g. a :class:`~ganbench.probe.features.LayerFeatures`, on
    ``device``) by a linear SVM, labels drawn from ``train``, C chosen on ``val``.

    ``select_draws`` defaults to the authors' 10 with ``labels_per_class`` and 1 without;
    draws > 1 needs ``labels_per_class`` (with every label each draw would be the same).
    Two calls with the same ``seed`` draw the same images: their per-draw accuracies pair.
    """
    if draws < 1:
        raise UsageError(f"draws must be at least 1, not {draws}")
    if labels_per_class is None and draws != 1:
        raise UsageError("repeated draws need labels_per_class (all labels give one draw)")
    if labels_per_class is not None and labels_per_class < 1:
        raise UsageError(f"labels_per_class must be at least 1, not {labels_per_class}")
    if select_draws is None:
        select_draws = 10 if labels_per_class else 1
    if select_draws < 1 or (labels_per_class is None and select_draws != 1):
        raise UsageError(f"select_draws must be at least 1 (1 with all labels), not {select_draws}")
    if not c_grid or min(c_grid) <= 0:
        raise UsageError(f"the C grid must hold positive values, not {tuple(c_grid)}")
    device = torch.device(device)
    y_train = labels_of(train, "training")

    def features(images: np.ndarray) -> torch.Tensor:
        return extract(features_fn, images, device, batch_size=batch_size, on_device=True)

    every_label: list[tuple[torch.Tensor, torch.Tensor]] = []

    def labelled(purpose: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if every_label:  # all labels: one draw, fitted for C and scored: extracted once
            return every_label[0]
        idx = draw_labelled(y_train, labels_per_class, seed, purpose, index)
        drawn = features(train.images[idx]), torch.from_numpy(y_train[idx]).to(device)
        if labels_per_class is None:
            every_label.append(drawn)
        return drawn

    started = time.perf_counter()
    X_val = features(val.images)
    y_val = torch.from_numpy(labels_of(val, "validation")).to(device)
    extract_seconds = time.perf_counter() - started
    fit_seconds = 0.0
    grid = sorted(set(map(float, c_grid)))
    scores = np.zeros((select_draws, len(grid)))
    with ItemProgress(select_draws * len(grid), "choosing C", unit="fit", enabled=progress) as bar:
        for j in range(select_draws):
            started = time.perf_counter()
            X, y = labelled(SELECT, j)
            extract_seconds += time.perf_counter() - started
            started = time.perf_counter()
            _, by_c = choose_c(
                X, y, X_val, y_val, grid, max_iter=max_iter, tol=tol, standardize=standardize,
                on_fit=lambda _model, _s: bar.advance(1),
            )  # fmt: skip
            fit_seconds += time.perf_counter() - started
            scores[j] = [by_c[C] for C in grid]
            del X
    mean_scores = scores.mean(0)
    best = int(np.argmax(mean_scores))  # the first of equals: the smaller C, as np.argmin
    C = grid[best]

    started = time.perf_counter()
    X_test = features(test.images)
    y_test = torch.from_numpy(labels_of(test, "test")).to(device)
    extract_seconds += time.perf_counter() - started
    results: list[DrawResult] = []
    with ItemProgress(draws, "test draws", unit="draw", enabled=progress) as bar:
        for j in range(draws):
            started = time.perf_counter()
            X, y = labelled(TEST, j)
            extract_seconds += time.perf_counter() - started
            started = time.perf_counter()
            model: Any = fit_l2svm(X, y, C, max_iter=max_iter, tol=tol, standardize=standardize)
            results.append(DrawResult(j, model.accuracy(X_test, y_test), len(y)))
            fit_seconds += time.perf_counter() - started
            bar.advance(1)
            del X, model
    summary = summarise(np.array([r.accuracy for r in results]))
    return ProbeResult(
        accuracy=summary.mean,
        error_rate=1.0 - summary.mean,
        feature_dim=X_test.shape[1],
        labels_used=results[0].labels_used,
        C=C,
        val_accuracy=float(mean_scores[best]),
        draws=draws,
        summary=summary,
        per_draw=results,
        fit_seconds=fit_seconds,
        extract_seconds=extract_seconds,
        c_scores=dict(zip(grid, map(float, mean_scores), strict=True)),
        select_draws=select_draws,
        val_images=len(X_val),
        test_images=len(X_test),
        standardize=standardize,
    )

"""The DCGAN paper's representation probe (Sec. 5.1, 5.2): a linear L2-SVM on D's features.

Protocol, and the choices the paper leaves open:

* Features: :func:`ganbench.probe.features.extract` (all conv layers, 4x4 max-pooled).
* Validation: C is picked from ``c_grid`` by accuracy on a validation split: ``val`` when
  given (the paper's SVHN setup holds out 10,000 labelled images), else ``val_fraction`` of
  the labelled training images, carved out stratified by class (scikit-learn's
  ``train_test_split`` with ``stratify``, at least one image per class). The SVM is then refit
  with that C on *all* the labelled training images, validation part included, so
  ``labels_used`` counts every training label a draw saw (an external ``val`` is not counted,
  as in the paper).
* Few labels (``labels_per_class``): each draw picks that many images per class from the
  training split, seeded by ``(seed, draw)`` so draws differ and reruns repeat. C is chosen
  once, on the first draw's validation split, and reused for the other draws (the paper
  tunes once; ``c_per_draw=True`` re-chooses it per draw). The result is the mean test
  accuracy over draws +- 1.96 sample standard deviations.
* Test: the whole test split, features extracted once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from ganbench.errors import UsageError
from ganbench.plugins.interfaces import ImageArray
from ganbench.probe.features import extract
from ganbench.probe.svm import DEFAULT_C_GRID, choose_c, fit_l2svm
from ganbench.progress import ItemProgress


@dataclass
class DrawResult:
    """One draw of the labelled subset."""

    draw: int
    accuracy: float
    C: float
    val_accuracy: float
    labels_used: int


@dataclass
class ProbeResult:
    """Test accuracy of the linear probe, with what it took to get it."""

    #: Mean test accuracy over draws (the single draw's without ``labels_per_class``).
    accuracy: float
    error_rate: float
    #: Features per image (all layers, pooled, concatenated).
    feature_dim: int
    #: Training labels each draw used (validation part included).
    labels_used: int
    #: The C used (the first draw's when ``c_per_draw``).
    C: float
    #: Validation accuracy at that C (first draw).
    val_accuracy: float
    draws: int
    accuracy_mean: float
    #: 1.96 x the sample standard deviation of the draws' accuracies (0 for one draw).
    accuracy_ci95: float
    per_draw: list[DrawResult]
    #: Seconds spent in the SVM (C search and final fits) and in feature extraction.
    fit_seconds: float
    extract_seconds: float = 0.0
    #: Validation accuracy of every C tried on the first draw.
    c_scores: dict[float, float] = field(default_factory=dict)
    test_images: int = 0


def _labels(data: ImageArray, what: str) -> np.ndarray:
    if data.labels is None:
        raise UsageError(f"the probe needs class labels, but the {what} split has none")
    return np.asarray(data.labels, dtype=np.int64)


def _draw_labelled(
    labels: np.ndarray, per_class: int | None, rng: np.random.Generator
) -> np.ndarray:
    """Indices of the labelled training images for one draw (all of them without a count)."""
    if per_class is None:
        return np.arange(len(labels))
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise UsageError(
                f"class {c} has {len(members)} training images, fewer than the"
                f" {per_class} labels per class asked for"
            )
        chosen.append(rng.choice(members, per_class, replace=False))
    return np.concatenate(chosen)


def _split_val(
    labelled: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(fit, val) indices: stratified, at least one validation image per class."""
    n_classes = len(np.unique(labels[labelled]))
    n_val = max(n_classes, int(np.ceil(fraction * len(labelled))))
    if len(labelled) - n_val < n_classes:
        raise UsageError(
            f"{len(labelled)} labelled images are too few to hold out a validation split"
            f" of {n_val} and still train on every class; use more labels per class"
        )
    fit, val = train_test_split(
        labelled, test_size=n_val, random_state=seed, stratify=labels[labelled]
    )
    return np.sort(fit), np.sort(val)


def run_probe(
    features_fn: Callable[[torch.Tensor], Sequence[torch.Tensor]],
    train: ImageArray,
    test: ImageArray,
    *,
    labels_per_class: int | None = None,
    draws: int = 1,
    val_fraction: float = 0.1,
    val: ImageArray | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    c_per_draw: bool = False,
    batch_size: int = 256,
    max_iter: int = 100,
    tol: float = 1e-4,
    progress: bool = False,
) -> ProbeResult:
    """Score ``features_fn`` (e.g. ``discriminator.features``, on ``device``) by a linear SVM.

    Features are kept on ``device``: a GPU holds the training and test features and fits
    there. ``draws`` > 1 needs ``labels_per_class`` (with all labels every draw would be the
    same).
    """
    if draws < 1:
        raise UsageError(f"draws must be at least 1, not {draws}")
    if labels_per_class is None and draws != 1:
        raise UsageError("repeated draws need labels_per_class (all labels give one draw)")
    if labels_per_class is not None and labels_per_class < 1:
        raise UsageError(f"labels_per_class must be at least 1, not {labels_per_class}")
    if val is None and not 0 < val_fraction < 1:
        raise UsageError(f"val_fraction must be between 0 and 1, not {val_fraction}")
    if not c_grid:
        raise UsageError("the C grid is empty")
    device = torch.device(device)
    y_train_all = _labels(train, "training")
    y_test = torch.from_numpy(_labels(test, "test")).to(device)

    def features(images: np.ndarray) -> torch.Tensor:
        return extract(
            features_fn,
            images,
            device,
            batch_size=batch_size,
            progress=progress,
            on_device=True,
        )

    started = time.perf_counter()
    X_test = features(test.images)
    X_val_ext = y_val_ext = None
    if val is not None:
        X_val_ext = features(val.images)
        y_val_ext = torch.from_numpy(_labels(val, "validation")).to(device)
    extract_seconds = time.perf_counter() - started
    fit_seconds = 0.0

    results: list[DrawResult] = []
    C: float | None = None
    c_scores: dict[float, float] = {}
    for draw in range(draws):
        rng = np.random.default_rng([seed, draw])
        labelled = _draw_labelled(y_train_all, labels_per_class, rng)
        choose = C is None or c_per_draw
        if val is None and choose:
            fit_idx, val_idx = _split_val(
                labelled, y_train_all, val_fraction, int(rng.integers(2**31))
            )
        else:
            fit_idx, val_idx = np.sort(labelled), labelled[:0]
        # Fit rows first, validation rows last: both parts are views of one feature matrix,
        # so the C search copies nothing (the full CIFAR-10 matrix is 5.7 GB).
        order = np.concatenate([fit_idx, val_idx])
        started = time.perf_counter()
        X = features(train.images[order])
        extract_seconds += time.perf_counter() - started
        y = torch.from_numpy(y_train_all[order]).to(device)
        n_fit = len(fit_idx)

        started = time.perf_counter()
        if choose:
            if val is None:
                X_val, y_val = X[n_fit:], y[n_fit:]
            else:
                X_val, y_val = X_val_ext, y_val_ext
            with ItemProgress(len(c_grid), "choosing C", unit="C", enabled=progress) as bar:

                def fitted(model: Any, seconds: float) -> None:
                    bar.advance(1)
                    if progress:
                        objective = float(model.objective.sum())
                        bar.log(
                            f"C={model.C:g}: {model.n_iter} iterations, objective"
                            f" {objective:.4g}, {seconds:.1f}s"
                            + ("" if model.converged else " (not converged)")
                        )

                draw_c, scores = choose_c(
                    X[:n_fit], y[:n_fit], X_val, y_val, c_grid, max_iter=max_iter, tol=tol,
                    on_fit=fitted,
                )  # fmt: skip
            if C is None:
                c_scores = scores
            C = draw_c
            val_accuracy = scores[draw_c]
        else:
            val_accuracy = results[0].val_accuracy
        assert C is not None
        model = fit_l2svm(X, y, C, max_iter=max_iter, tol=tol)
        accuracy = model.accuracy(X_test, y_test)
        fit_seconds += time.perf_counter() - started
        results.append(DrawResult(draw, accuracy, C, val_accuracy, len(order)))
        del X, model

    accuracies = np.array([r.accuracy for r in results])
    mean = float(accuracies.mean())
    ci95 = float(1.96 * accuracies.std(ddof=1)) if len(accuracies) > 1 else 0.0
    return ProbeResult(
        accuracy=mean,
        error_rate=1.0 - mean,
        feature_dim=X_test.shape[1],
        labels_used=results[0].labels_used,
        C=results[0].C,
        val_accuracy=results[0].val_accuracy,
        draws=draws,
        accuracy_mean=mean,
        accuracy_ci95=ci95,
        per_draw=results,
        fit_seconds=fit_seconds,
        extract_seconds=extract_seconds,
        c_scores=c_scores,
        test_images=len(X_test),
    )

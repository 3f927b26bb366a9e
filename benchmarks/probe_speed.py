"""The probe's L2-SVM fit at (or scaled from) the paper's CIFAR-10 size, and its accuracy
against scikit-learn's LinearSVC where LinearSVC can run."""

from __future__ import annotations

import time

import torch

from benchmarks.probe_scale import synthetic_features


def fit_time(device: torch.device, rows: int, dim: int = 28_672, C: float = 1e-3) -> dict:
    from ganbench.probe.svm import fit_l2svm

    X, y = synthetic_features(rows + 2000, dim, 10, device, seed=0)
    X_train, y_train, X_test, y_test = X[:rows], y[:rows], X[rows:], y[rows:]
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    model = fit_l2svm(X_train, y_train, C)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {
        "rows": rows,
        "dim": dim,
        "C": C,
        "fit_s": seconds,
        "passes": model.passes,
        "converged": model.converged,
        "test_accuracy": model.accuracy(X_test, y_test),
    }


def against_linearsvc(rows: int = 4000, dim: int = 1024, C: float = 1e-2) -> dict:
    """Same features, same C: the torch solver against liblinear (squared hinge, L2)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    from ganbench.probe.svm import fit_l2svm

    X, y = synthetic_features(rows + 2000, dim, 10, torch.device("cpu"), seed=1)
    X_train, y_train, X_test, y_test = X[:rows], y[:rows], X[rows:], y[rows:]
    ours = fit_l2svm(X_train, y_train, C, tol=1e-6, max_iter=200).accuracy(X_test, y_test)
    # ganbench standardises features before the fit; so does the reference pipeline.
    ref = make_pipeline(
        StandardScaler(), LinearSVC(C=C, loss="squared_hinge", dual=False, tol=1e-6, max_iter=5000)
    )
    ref.fit(X_train.numpy(), y_train.numpy())
    theirs = float((ref.predict(X_test.numpy()) == y_test.numpy()).mean())
    return {
        "rows": rows,
        "dim": dim,
        "accuracy_ganbench": ours,
        "accuracy_linearsvc": theirs,
        "points_apart": abs(ours - theirs) * 100,
    }

"""The probe's whole C search plus refit against scikit-learn's LinearSVC, at the sizes users
meet: the same features, the same default C grid, the same validation split, in one run.

The reference is what a user would write: StandardScaler + LinearSVC (liblinear, default
tol and max_iter, dual chosen by scikit-learn's "auto") fitted for every C on the fit share,
scored on the validation share, then refitted on all rows at the best C. ganbench's side is
``choose_c`` + ``fit_l2svm`` as ``ganbench probe`` calls them.

    python -m benchmarks.probe_grid --rows 1437,5000 --dims 7168,15360
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import torch

from benchmarks.probe_scale import synthetic_features


def one_size(rows: int, dim: int, seed: int = 0, val_fraction: float = 0.1) -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    from ganbench.probe import gram
    from ganbench.probe.svm import DEFAULT_C_GRID, choose_c, fit_l2svm

    X, y = synthetic_features(rows + 2000, dim, 10, torch.device("cpu"), seed=seed)
    X_all, y_all, X_test, y_test = X[:rows], y[:rows], X[rows:], y[rows:]
    n_fit = round(rows * (1 - val_fraction))
    X_fit, y_fit, X_val, y_val = X_all[:n_fit], y_all[:n_fit], X_all[n_fit:], y_all[n_fit:]

    started = time.perf_counter()
    best, _ = choose_c(X_fit, y_fit, X_val, y_val)
    model = fit_l2svm(X_all, y_all, best)
    ours_s = time.perf_counter() - started
    ours_acc = model.accuracy(X_test, y_test)

    started = time.perf_counter()
    scores = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for C in sorted(DEFAULT_C_GRID):
            ref = make_pipeline(StandardScaler(), LinearSVC(C=C, random_state=0))
            ref.fit(X_fit.numpy(), y_fit.numpy())
            scores[C] = float((ref.predict(X_val.numpy()) == y_val.numpy()).mean())
        ref_c = next(C for C, a in scores.items() if a == max(scores.values()))
        ref = make_pipeline(StandardScaler(), LinearSVC(C=ref_c, random_state=0))
        ref.fit(X_all.numpy(), y_all.numpy())
    ref_s = time.perf_counter() - started
    ref_acc = float((ref.predict(X_test.numpy()) == y_test.numpy()).mean())
    return {
        "rows": rows,
        "dim": dim,
        "path": "gram" if gram.fits(n_fit, dim, X.device) else "primal",
        "ganbench_s": round(ours_s, 2),
        "linearsvc_s": round(ref_s, 2),
        "speedup": round(ref_s / ours_s, 2),
        "C": [best, ref_c],
        "accuracy": [round(ours_acc, 4), round(ref_acc, 4)],
        "points_apart": round(abs(ours_acc - ref_acc) * 100, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1437,5000")
    parser.add_argument("--dims", default="7168")
    args = parser.parse_args()
    for dim in (int(d) for d in args.dims.split(",")):
        for rows in (int(r) for r in args.rows.split(",")):
            print(json.dumps(one_size(rows, dim)), flush=True)


if __name__ == "__main__":
    main()

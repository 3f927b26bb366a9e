"""The probe's whole C search plus refit against scikit-learn's LinearSVC, at the sizes users
meet: the same features, the same default C grid, the same validation split.

The reference is what a user would write: StandardScaler + LinearSVC (liblinear, default
tol and max_iter, dual chosen by scikit-learn's "auto": the dual where rows are fewer than
features, the primal otherwise) fitted for every C on the fit share, scored on the
validation share, then refitted on all rows at the best C. ganbench's side is ``choose_c`` +
``fit_l2svm`` as ``ganbench probe`` calls them (the method picked by size).

The reference runs in a child process with a time limit (``--cap`` seconds; liblinear's
primal takes hours at 10,000 rows and more), so a size where it does not finish reports a
lower bound (``linearsvc_s`` as ">N") and per-C times up to where it stopped. Sizes where
LinearSVC cannot run at all (its float64 sparse copy, 24 bytes per feature value, over half
the free memory) say so instead of timing it.

    python -m benchmarks.probe_grid --rows 1000,5000 --dims 7168,15360,28672 --cap 1800
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import torch

from benchmarks.probe_scale import synthetic_features

TEST_ROWS = 2000


def _split(rows: int, dim: int, seed: int, val_fraction: float) -> dict[str, torch.Tensor]:
    X, y = synthetic_features(rows + TEST_ROWS, dim, 10, torch.device("cpu"), seed=seed)
    n_fit = round(rows * (1 - val_fraction))
    return {
        "X_all": X[:rows], "y_all": y[:rows], "X_test": X[rows:], "y_test": y[rows:],
        "X_fit": X[:n_fit], "y_fit": y[:n_fit], "X_val": X[n_fit:rows], "y_val": y[n_fit:rows],
    }  # fmt: skip


def ganbench_side(rows: int, dim: int, seed: int, val_fraction: float) -> dict:
    import sklearn.svm  # noqa: F401 (imported before the clock starts, as for the reference)

    from ganbench.probe import gram
    from ganbench.probe.svm import choose_c, fit_l2svm

    d = _split(rows, dim, seed, val_fraction)
    per_c: dict[str, float] = {}
    started = time.perf_counter()
    best, _ = choose_c(
        d["X_fit"], d["y_fit"], d["X_val"], d["y_val"],
        on_fit=lambda model, seconds: per_c.__setitem__(f"{model.C:g}", round(seconds, 2)),
    )  # fmt: skip
    model = fit_l2svm(d["X_all"], d["y_all"], best)
    return {
        "path": "gram" if gram.fits(len(d["X_fit"]), dim, torch.device("cpu")) else "primal",
        "ganbench_s": round(time.perf_counter() - started, 2),
        "ganbench_per_c": per_c,
        "ganbench_C": best,
        "ganbench_accuracy": round(model.accuracy(d["X_test"], d["y_test"]), 4),
    }


def reference_side(rows: int, dim: int, seed: int, val_fraction: float) -> None:
    """Prints one JSON line per finished C, then the result (read by the parent)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    from ganbench.probe.svm import DEFAULT_C_GRID

    d = {k: v.numpy() for k, v in _split(rows, dim, seed, val_fraction).items()}
    started = time.perf_counter()
    scores = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for C in sorted(DEFAULT_C_GRID):
            at = time.perf_counter()
            ref = make_pipeline(StandardScaler(), LinearSVC(C=C, random_state=0))
            ref.fit(d["X_fit"], d["y_fit"])
            scores[C] = float((ref.predict(d["X_val"]) == d["y_val"]).mean())
            print(json.dumps({"C": f"{C:g}", "s": round(time.perf_counter() - at, 2)}), flush=True)
        ref_c = next(C for C, a in scores.items() if a == max(scores.values()))
        ref = make_pipeline(StandardScaler(), LinearSVC(C=ref_c, random_state=0))
        ref.fit(d["X_all"], d["y_all"])
    accuracy = float((ref.predict(d["X_test"]) == d["y_test"]).mean())
    print(json.dumps({"linearsvc_s": round(time.perf_counter() - started, 2),
                      "linearsvc_C": ref_c, "linearsvc_accuracy": round(accuracy, 4)}))  # fmt: skip


def _linearsvc_fits(rows: int, dim: int) -> bool:
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return 24 * (rows + TEST_ROWS) * dim <= available // 2


def one_size(rows: int, dim: int, cap: float, seed: int = 0, val_fraction: float = 0.1) -> dict:
    result = {"rows": rows, "dim": dim}
    result.update(ganbench_side(rows, dim, seed, val_fraction))
    if not _linearsvc_fits(rows, dim):
        result["linearsvc_s"] = "out of memory (24 bytes per value over half the free RAM)"
        return result
    command = [sys.executable, "-m", "benchmarks.probe_grid", "--reference",
               f"{rows},{dim},{seed},{val_fraction}"]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=cap, check=True)
        out = done.stdout
    except subprocess.TimeoutExpired as stopped:
        out = stopped.stdout.decode() if isinstance(stopped.stdout, bytes) else stopped.stdout
        out = (out or "") + json.dumps({"linearsvc_s": f">{cap:g}"})
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    result["linearsvc_per_c"] = {line["C"]: line["s"] for line in lines if "C" in line}
    result.update(lines[-1])
    if isinstance(result["linearsvc_s"], float):
        result["speedup"] = round(result["linearsvc_s"] / result["ganbench_s"], 2)
        result["points_apart"] = round(
            abs(result["ganbench_accuracy"] - result["linearsvc_accuracy"]) * 100, 2
        )
    else:
        result["speedup"] = f">{cap / result['ganbench_s']:.2f}"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1437,5000")
    parser.add_argument("--dims", default="7168")
    parser.add_argument("--cap", type=float, default=1800.0, help="seconds for LinearSVC")
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference:
        rows, dim, seed, val = args.reference.split(",")
        reference_side(int(rows), int(dim), int(seed), float(val))
        return
    for dim in (int(d) for d in args.dims.split(",")):
        for rows in (int(r) for r in args.rows.split(",")):
            print(json.dumps(one_size(rows, dim, args.cap)), flush=True)


if __name__ == "__main__":
    main()

"""Time the probe's L2-SVM at the DCGAN paper's CIFAR-10 scale on synthetic features.

The paper's probe trains on 50,000 x 28,672 features (10 classes): 5.7 GB of float32, which
liblinear would copy into ~23 GB of float64 rows. This fits the torch solver on such a matrix
and prints the time, the passes over X and the peak memory; ``--rows``/``--dim`` scale it down
for a CPU box (X alone needs rows x dim x 4 bytes)::

    python benchmarks/probe_scale.py --device cuda                  # the paper's size
    python benchmarks/probe_scale.py --device cpu --rows 10000      # 1.1 GB on a laptop
    python benchmarks/probe_scale.py --grid                          # the C search as well
"""

from __future__ import annotations

import argparse
import resource
import threading
import time

import torch

from ganbench.probe.svm import DEFAULT_C_GRID, choose_c, fit_l2svm


def synthetic_features(
    rows: int, dim: int, classes: int, device: torch.device, seed: int, block: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-negative, correlated-ish features with a weak class signal, made block by block
    (no float64 or second copy of X, as with real pooled LeakyReLU activations)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    # Class signal scaled by 1/sqrt(dim) so that accuracy stays moderate at any width.
    centres = 3.0 / dim**0.5 * torch.randn(classes, dim, generator=gen, device=device)
    shared = torch.randn(dim, generator=gen, device=device)
    y = torch.randint(0, classes, (rows,), generator=gen, device=device)
    X = torch.empty(rows, dim, dtype=torch.float32, device=device)
    for start in range(0, rows, block):
        part = slice(start, min(rows, start + block))
        n = part.stop - part.start
        x = torch.randn(n, dim, generator=gen, device=device)
        x += centres[y[part]] + 0.3 * torch.randn(n, 1, generator=gen, device=device) * shared
        X[part] = torch.nn.functional.leaky_relu(x, 0.2)
    return X, y


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


class PeakWatch:
    """Samples resident memory every few ms while the block runs (ru_maxrss cannot be reset,
    and making the features already set it)."""

    def __enter__(self) -> PeakWatch:
        self.start = self.peak = rss_gb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_gb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_gb())


def rss_gb() -> float:
    """Resident memory now (Linux; NaN elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**30
    except OSError:
        return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=28_672)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--test-rows", type=int, default=10_000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--C", type=float, default=0.01)
    parser.add_argument("--grid", action="store_true", help="time choose_c over the C grid")
    parser.add_argument("--block-rows", type=int, default=None)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)

    started = time.perf_counter()
    X, y = synthetic_features(args.rows + args.test_rows, args.dim, args.classes, device, args.seed)
    X_train, y_train = X[: args.rows], y[: args.rows]  # views: no copy
    X_test, y_test = X[args.rows :], y[args.rows :]
    gb = X.numel() * 4 / 2**30
    print(
        f"features: {args.rows:,} train + {args.test_rows:,} test x {args.dim:,} float32"
        f" = {gb:.2f} GB on {device} (made in {time.perf_counter() - started:.1f}s);"
        f" peak RSS so far {peak_rss_gb():.2f} GB; torch threads {torch.get_num_threads()}"
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()

    if args.grid:
        n_val = args.rows // 10
        started = time.perf_counter()
        best, scores = choose_c(
            X_train[n_val:],
            y_train[n_val:],
            X_train[:n_val],
            y_train[:n_val],
            DEFAULT_C_GRID,
            max_iter=args.max_iter,
            tol=args.tol,
            block_rows=args.block_rows,
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        print(f"choose_c over {len(scores)} C values: {seconds:.1f}s, best C {best:g}")
        for C, accuracy in scores.items():
            print(f"  C={C:g}: validation accuracy {accuracy:.4f}")
        args.C = best

    started = time.perf_counter()
    with PeakWatch() as watch:
        model = fit_l2svm(
            X_train,
            y_train,
            args.C,
            max_iter=args.max_iter,
            tol=args.tol,
            block_rows=args.block_rows,
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    print(
        f"fit C={args.C:g}: {seconds:.1f}s, {model.n_iter} Newton iterations,"
        f" {model.passes} passes over X ({seconds / max(1, model.passes) * 1000:.0f} ms each),"
        f" converged={model.converged}"
    )
    print(
        f"train accuracy {model.accuracy(X_train, y_train):.4f},"
        f" test accuracy {model.accuracy(X_test, y_test):.4f}"
    )
    print(
        f"peak RSS {peak_rss_gb():.2f} GB (X is {gb:.2f} GB); the fit raised resident memory"
        f" from {watch.start:.2f} GB by at most {(watch.peak - watch.start) * 1024:.0f} MB"
    )
    if device.type == "cuda":
        extra = (torch.cuda.max_memory_allocated() - base) / 2**30
        print(f"peak GPU memory beyond X: {extra:.2f} GB")


if __name__ == "__main__":
    main()

"""Memorisation: are generated samples closer to the training images than new real ones are?

A generator that copies its training set puts samples nearer to training images than a
fresh real image (of a split it never saw) lies to them. So we find, for generated samples
and for held-out real images, the nearest training images, in pixel space and in the run's
feature extractor's space, and compare the two distributions of nearest-neighbour
distances: ``ratio = median(generated) / median(held-out)`` well below 1 flags copying.

The training set may be a memory map of millions of images, so the search never holds it:
it reads ``chunk`` training images at a time, measures them against all queries on the
device and keeps a running top-k. Memory is bounded by the queries and one chunk.

scikit-learn's and SciPy's neighbour searches want the whole reference set in memory (and
on the CPU); FAISS would be another dependency. The chunked loop below is a dozen lines of
torch (``cdist`` + ``topk``), runs on the run's device, and is tested against SciPy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from ganbench.analysis import AnalysisContext
from ganbench.errors import UsageError
from ganbench.images import grid
from ganbench.plugins.interfaces import Analysis, AnalysisOption, AnalysisResult

#: uint8 N x C x H x W images on the device -> N x D float features.
FeatureFn = Callable[[torch.Tensor], torch.Tensor]
#: ``n`` -> n generated images in [-1, 1] (tensor or array, N x C x H x W).
Sampler = Callable[[int], "torch.Tensor | np.ndarray"]
#: Images per call of a feature function: one training chunk of Inception inputs at
#: 299 px would take gigabytes, so chunks are fed in batches of the size metrics use.
FEATURE_BATCH = 200


class Bar(Protocol):
    def advance(self, n: int = 1) -> None: ...


#: ``bar(total, description)``: a progress bar context manager (``AnalysisContext.bar``).
BarFactory = Callable[[int, str], "contextlib.AbstractContextManager[Bar]"]


class _NoBar:
    def advance(self, n: int = 1) -> None:
        return None


@contextlib.contextmanager
def _no_bar(total: int, description: str) -> Iterator[Bar]:
    yield _NoBar()


def _embed(images: torch.Tensor, features: FeatureFn | None, device: torch.device) -> torch.Tensor:
    """uint8 N x C x H x W images as N x D float32 points on ``device``: pixels in [0, 1],
    flattened, or the feature function's output (fed in batches)."""
    images = images.to(device)
    if features is None:
        return images.flatten(1).float().div_(255)
    parts = [
        features(images[i : i + FEATURE_BATCH]).float().flatten(1)
        for i in range(0, len(images), FEATURE_BATCH)
    ]
    return torch.cat(parts)


@torch.no_grad()
def nearest_neighbours(
    queries: torch.Tensor | np.ndarray,
    train: np.ndarray,
    *,
    k: int,
    chunk: int = 4096,
    device: torch.device | str = "cpu",
    features: FeatureFn | None = None,
    exclude: np.ndarray | None = None,
    bar: Bar | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest training images of each query: (distances, indices), Q x k on the
    CPU, nearest first; Euclidean, in pixel space ([0, 1], flattened) or in ``features``.

    ``queries`` and ``train`` are uint8 N x C x H x W; ``train`` may be a read-only memory
    map (anything with ``len`` and row slicing). ``exclude``: a boolean mask over ``train``
    of images left out of the search (held-out images carved from the training split).
    """
    device = torch.device(device)
    if chunk < 1 or k < 1:
        raise UsageError(f"chunk and k must be at least 1 (got chunk={chunk}, k={k})")
    q = _embed(torch.as_tensor(queries), features, device)
    # cdist takes the matmul route (|q|^2 + |x|^2 - 2 q.x): fast, but it loses precision
    # to cancellation where distances are small next to the norms (a copy reads ~1e-2,
    # not 0). Centring both sides on the queries' mean shrinks the norms (about halves that
    # error on digits) and leaves every distance unchanged.
    center = q.mean(dim=0, keepdim=True)
    q = q - center
    available = len(train) - (int(np.count_nonzero(exclude)) if exclude is not None else 0)
    k = min(k, available)
    if k < 1:
        raise UsageError("no training images to search: the training split is empty")
    best_d = torch.empty(len(q), 0, device=device)
    best_i = torch.empty(len(q), 0, dtype=torch.long, device=device)
    for start in range(0, len(train), chunk):
        # Memory stays bounded by the chunk, not the training set (O(chunk x D + Q x chunk)):
        # only these rows are read from the (possibly memory-mapped) array, copied (a
        # read-only map cannot back a tensor) and embedded; the chunk's Q x chunk distances
        # then merge into the running Q x k best and are dropped.
        block = np.array(train[start : start + chunk], dtype=np.uint8, copy=True)
        d = torch.cdist(q, _embed(torch.from_numpy(block), features, device) - center)
        if exclude is not None:
            drop = torch.from_numpy(np.asarray(exclude[start : start + len(block)], dtype=bool))
            d[:, drop.to(device)] = float("inf")
        index = torch.arange(start, start + len(block), device=device).expand(len(q), -1)
        merged_d = torch.cat([best_d, d], dim=1)
        best_d, pos = torch.topk(merged_d, min(k, merged_d.shape[1]), dim=1, largest=False)
        best_i = torch.gather(torch.cat([best_i, index], dim=1), 1, pos)
        if bar is not None:
            bar.advance(len(block))
    return best_d.cpu(), best_i.cpu()


def _space_metrics(generated: np.ndarray, held_out: np.ndarray) -> dict[str, float]:
    """Medians, their ratio, and the share of samples nearer than the 1st percentile of
    held-out real images (copies sit far below any real image's nearest distance)."""
    gen_median, held_median = float(np.median(generated)), float(np.median(held_out))
    return {
        "nn_median_generated": gen_median,
        "nn_median_held_out": held_median,
        "ratio": gen_median / held_median if held_median > 0 else float("nan"),
        "copy_share": float(np.mean(generated < np.percentile(held_out, 1))),
    }


def _histogram(distances: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Image.Image:
    """One panel per space: NN distances of generated samples and of held-out real images.

    A Figure with its own Agg canvas (not pyplot): no global backend or figure state.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5 * len(distances), 3.6), dpi=100, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    for ax, (space, (gen, held)) in zip(
        fig.subplots(1, len(distances), squeeze=False)[0], distances.items(), strict=True
    ):
        bins = np.histogram_bin_edges(np.concatenate([gen, held]), bins=40)
        ax.hist(held, bins=bins, alpha=0.55, density=True, label=f"held-out real ({len(held)})")
        ax.hist(gen, bins=bins, alpha=0.55, density=True, label=f"generated ({len(gen)})")
        ax.set_title(f"{space} space")
        ax.set_xlabel("distance to the nearest training image")
        ax.set_ylabel("density")
        ax.legend()
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())


def _readable(picture: Image.Image, resolution: int) -> Image.Image:
    """Small images (digits' 32 px) enlarged by a whole factor, without blur."""
    factor = max(1, 96 // resolution)
    return picture.resize((picture.width * factor, picture.height * factor), Image.NEAREST)


def _rows(
    generated: np.ndarray, train: np.ndarray, indices: torch.Tensor, show: int
) -> list[list[np.ndarray | None]]:
    """Per shown sample: the sample, a blank cell, then its neighbours, nearest first."""
    return [
        [generated[i], None, *(np.asarray(train[int(j)]) for j in indices[i])] for i in range(show)
    ]


def memorisation_report(
    sample: Sampler,
    train: np.ndarray,
    held_out: np.ndarray,
    *,
    samples: int = 1000,
    features: FeatureFn | None = None,
    neighbours: int = 5,
    show: int = 8,
    flag_below: float = 0.5,
    chunk: int = 4096,
    device: torch.device | str = "cpu",
    exclude: np.ndarray | None = None,
    bar: BarFactory = _no_bar,
) -> AnalysisResult:
    """The analysis on any sampler: ``samples`` images of ``sample`` and the uint8
    ``held_out`` real images against the uint8 ``train`` set, in pixel space and (with
    ``features``) in feature space. Pictures, metrics, tables and lines; no notes."""
    from ganbench.metrics.features import to_uint8

    # Quantised as a saved PNG would be, the same rounding FID's features see.
    generated = to_uint8(torch.as_tensor(sample(samples))).cpu().numpy()
    held_out = np.asarray(held_out)
    if len(generated) != samples or generated.shape[1:] != tuple(train.shape[1:]):
        raise UsageError(
            f"the sampler gave {tuple(generated.shape)} images for {samples} samples of"
            f" {tuple(train.shape[1:])}; it must match the training images"
        )
    queries = torch.from_numpy(np.concatenate([generated, held_out]))
    spaces: dict[str, FeatureFn | None] = {"pixel": None}
    if features is not None:
        spaces["features"] = features
    show = min(show, samples)
    result = AnalysisResult()
    distances: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    flagged = False
    for space, fn in spaces.items():
        with bar(len(train), f"nearest training images ({space})") as progress:
            dist, index = nearest_neighbours(
                queries,
                train,
                k=neighbours,
                chunk=chunk,
                device=device,
                features=fn,
                exclude=exclude,
                bar=progress,
            )
        gen, held = dist[:samples, 0].numpy(), dist[samples:, 0].numpy()
        distances[space] = (gen, held)
        found = _space_metrics(gen, held)
        result.metrics.update({f"{space}.{key}": value for key, value in found.items()})
        flagged |= bool(found["ratio"] < flag_below)
        result.lines.append(
            f"{space} space: nearest-training distance median {found['nn_median_generated']:.4g}"
            f" (generated) vs {found['nn_median_held_out']:.4g} (held-out real): ratio"
            f" {found['ratio']:.3f}; {found['copy_share']:.1%} of samples closer than 99% of"
            " held-out images"
        )
        if show:
            key = "neighbours" if space == "pixel" else f"neighbours_{space}"
            rows = _rows(generated, train, index[:samples], show)
            result.pictures[key] = _readable(grid(rows), train.shape[-1])
        result.tables.setdefault("nearest", {})[space] = [
            {"sample": i, "indices": index[i].tolist(), "distances": dist[i].tolist()}
            for i in range(show)
        ]
    result.metrics["flagged"] = float(flagged)
    result.pictures["distances"] = _histogram(distances)
    result.lines.append(
        "samples are closer to training images than held-out real images are: possible"
        f" memorisation (ratio below {flag_below})"
        if flagged
        else f"no sign of copying (every ratio at least {flag_below})"
    )
    return result


def _held_out(
    context: AnalysisContext, train_size: int, count: int
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(held-out uint8 images, exclusion mask over the training split or None, a note).

    Held-out images come from a split the run did not train on; a dataset without one
    (or a run trained on digits' ``all``, which contains the others) gives up a seeded
    share of the training split instead, which the search then skips.
    """
    rng = np.random.default_rng(context.seed)
    split = context.held_out_split()
    trained_on = context.plan.train.split if context.plan is not None else None
    if split is not None and trained_on != "all":
        real = context.images(split).images
        pick = np.sort(rng.choice(len(real), min(count, len(real)), replace=False))
        note = f"{len(pick)} images of the {split} split (seed {context.seed})"
        return real[pick], None, note
    if train_size < 2:
        raise UsageError("memorisation needs at least 2 training images to hold some out")
    n = max(1, min(count, train_size // 5))
    pick = np.sort(rng.choice(train_size, n, replace=False))
    exclude = np.zeros(train_size, dtype=bool)
    exclude[pick] = True
    note = (
        f"the dataset has no split besides {trained_on}: {n} training images (seed"
        f" {context.seed}, at most a fifth) were held out and left out of the search"
    )
    return context.images().images[pick], exclude, note


class Memorisation(Analysis):
    name = "memorisation"
    summary = (
        "Nearest training images of generated samples (pixel and feature space) against"
        " those of held-out real images: a ratio well below 1 flags copying"
    )
    needs = frozenset({"generator", "data"})
    options = (
        AnalysisOption("samples", "Generated samples to search for.", int, 1000),
        AnalysisOption("held-out", "Held-out real images (the baseline).", int, 1000),
        AnalysisOption("show", "Samples shown with their neighbours.", int, 8),
        AnalysisOption("neighbours", "Nearest training images found per sample.", int, 5),
        AnalysisOption(
            "flag-below", "Flag copying when a median-distance ratio is below this.", float, 0.5
        ),
        AnalysisOption("chunk", "Training images per distance block (memory bound).", int, 4096),
    )

    def run(self, context: AnalysisContext, options: Mapping[str, Any]) -> AnalysisResult:
        for key in ("samples", "held_out", "neighbours", "chunk"):
            if options[key] < 1:
                flag = key.replace("_", "-")
                raise UsageError(f"memorisation: --{flag} must be at least 1 (got {options[key]})")
        if options["show"] < 0 or options["flag_below"] <= 0:
            raise UsageError("memorisation: --show cannot be negative, --flag-below must be > 0")
        train = context.images().images
        held_out, exclude, held_note = _held_out(context, len(train), options["held_out"])
        extractor_name, extractor = context.extractor()
        module = extractor.module

        def features(images: torch.Tensor) -> torch.Tensor:
            return module(images)["pool"]

        result = memorisation_report(
            lambda n: context.generate(context.latents(n)),
            train,
            held_out,
            samples=options["samples"],
            features=features,
            neighbours=options["neighbours"],
            show=options["show"],
            flag_below=options["flag_below"],
            chunk=options["chunk"],
            device=context.device,
            exclude=exclude,
            bar=context.bar,
        )
        split = context.plan.train.split if context.plan is not None else "train"
        result.notes = {
            "how": f"{options['samples']} samples of seed {context.seed} and the held-out real"
            f" images against the {len(train)} images of the {split} split, in pixel space"
            f" ([0, 1], Euclidean) and in {extractor_name}'s pool features; ratio = median"
            " nearest distance of samples / of held-out images (well below 1: copying);"
            " copy_share = samples nearer than the held-out 1st percentile; table indices"
            f" are positions in the {split} split",
            "held_out": held_note,
            "extractor": extractor_name,
        }
        return result


__all__ = ["Memorisation", "memorisation_report", "nearest_neighbours"]

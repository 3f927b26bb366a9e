"""Running a zoo generator with onnxruntime alone: latents, images, provider choice.

Nothing here imports torch: a user who only samples from the zoo needs onnxruntime, NumPy
and Pillow. Latents come from NumPy's PCG64 generator, so a seed means the same images on
every machine and every provider (within float tolerance), and ``z`` for ``n`` images
starts with the ``z`` for fewer: index ``i`` of ``sample -n 64 --seed S`` is the same
image as index ``i`` of ``sample -n 16 --seed S``. A class-conditional file also takes
``y`` (int64 labels): given ones (``zoo sample --class K``), or uniform ones from a stream
of their own keyed by the same seed (:func:`labels`), with the same prefix property.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ganbench.errors import UsageError, ZooError
from ganbench.zoo.metadata import GeneratorInfo

Provider = Literal["auto", "cuda", "cpu"]
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def prior_latents(z_dim: int, distribution: str, n: int, seed: int) -> np.ndarray:
    """``n`` latent vectors (float32, n x z_dim) of a prior ("uniform" on [-1, 1] or
    "normal"); ``ganbench analyze`` draws a run's latents here too, so a seed means the same
    samples for a run and for its exported zoo file."""
    rng = np.random.default_rng(seed)
    if distribution == "uniform":
        return rng.uniform(-1.0, 1.0, size=(n, z_dim)).astype(np.float32)
    return rng.standard_normal((n, z_dim), dtype=np.float32)


def latents(info: GeneratorInfo, n: int, seed: int) -> np.ndarray:
    """``n`` latent vectors from the generator's prior (float32, n x z_dim)."""
    return prior_latents(info.z_dim, info.z_distribution, n, seed)


def labels(info: GeneratorInfo, n: int, seed: int) -> np.ndarray | None:
    """``n`` class labels uniform over a conditional generator's classes (int64), from
    their own PCG64 stream keyed by ``seed`` (the latents keep theirs, so ``z`` is the same
    for a conditional and an unconditional file); None for an unconditional generator."""
    if not info.num_classes:
        return None
    return prior_labels(info.num_classes, n, seed)


def prior_labels(num_classes: int, n: int, seed: int) -> np.ndarray:
    """``n`` labels uniform over ``num_classes`` from the PCG64 stream keyed [seed, 1]:
    what ``zoo sample --seed S`` and ``analyze --seed S`` draw alike."""
    return np.random.default_rng([seed, 1]).integers(num_classes, size=n, dtype=np.int64)


def check_classes(info: GeneratorInfo, given: list[int] | list[str]) -> list[int]:
    """The class numbers of ``--class`` values (numbers, or names the file records);
    refused in one line where an unconditional file cannot take them or a conditional
    file does not have them."""
    if not given:
        return []
    if not info.num_classes:
        raise UsageError(f"{info.name} is unconditional (it takes no class labels); drop --class")
    try:
        classes = [info.class_number(text) for text in given]
    except ZooError as exc:
        raise UsageError(str(exc)) from None
    wrong = [k for k in classes if not 0 <= k < info.num_classes]
    if wrong:
        raise UsageError(
            f"class {wrong[0]} is not one of {info.name}'s classes: give --class from 0 to"
            f" {info.num_classes - 1} (it has {info.num_classes})"
        )
    return classes


@dataclass
class ZooGenerator:
    """An onnxruntime session over a zoo file, with the file's metadata."""

    path: Path
    info: GeneratorInfo
    session: object
    provider: str
    batch_size: int = 64

    def generate(self, z: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """Images (float32, N x C x H x W, in ``info.output_range``) for latents ``z`` and,
        for a conditional file, labels ``y`` (N ints in [0, num_classes))."""
        z = np.ascontiguousarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.info.z_dim:
            raise UsageError(f"latents must be N x {self.info.z_dim}, not {z.shape}")
        feed = {"z": z}
        if self.info.num_classes:
            if y is None:
                raise UsageError(f"{self.info.name} is class-conditional: give labels y")
            feed["y"] = np.ascontiguousarray(y, dtype=np.int64)
            if feed["y"].shape != (len(z),):
                raise UsageError(f"labels must be {len(z)} ints, not {feed['y'].shape}")
            if len(z):  # the smallest and largest label (an out-of-range one errs in ORT)
                check_classes(self.info, [int(feed["y"].min()), int(feed["y"].max())])
        elif y is not None:
            raise UsageError(f"{self.info.name} is unconditional: it takes no labels")
        parts = [
            self.session.run(["images"], {k: v[i : i + self.batch_size] for k, v in feed.items()})[
                0
            ]
            for i in range(0, len(z), self.batch_size)
        ]
        return np.concatenate(parts)


def _providers(provider: Provider, available: list[str]) -> list[str]:
    if provider == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if provider == "cuda":
        raise UsageError(
            "this onnxruntime has no CUDA provider (the CPU-only package is installed);"
            " install onnxruntime-gpu on a Linux x86_64 machine with CUDA, or use --provider cpu"
        )
    return [CPU]


def open_generator(
    path: Path, provider: Provider = "auto", say: Callable[[str], None] = print
) -> ZooGenerator:
    """Open ``path`` on CUDA when present (``auto``), else on the CPU, and say which ran.

    onnxruntime-gpu lists the CUDA provider even where no GPU or CUDA library exists and
    then quietly runs on the CPU; that fallback is checked and said once, here.
    """
    import onnxruntime as ort

    wanted = _providers(provider, ort.get_available_providers())
    if CUDA in wanted and hasattr(ort, "preload_dlls"):
        # Load CUDA and cuDNN from the nvidia-* wheels (onnxruntime-gpu[cuda,cudnn]); its
        # own messages about missing ones would be noise before our one line below.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
            ort.preload_dlls()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    ort.set_default_logger_severity(4)  # the failed-CUDA log lines; we say it in one line
    try:
        session = ort.InferenceSession(str(path), options, providers=wanted)
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        raise ZooError(
            f"{path} is not a readable ONNX file ({str(exc).splitlines()[0][:200]});"
            " pull or export it again"
        ) from None
    finally:
        ort.set_default_logger_severity(2)
    ran = session.get_providers()[0]
    if CUDA in wanted and ran != CUDA:
        if provider == "cuda":
            raise ZooError(
                "onnxruntime's CUDA provider could not start (no usable GPU, or the CUDA and"
                " cuDNN libraries it needs are missing); use --provider cpu"
            )
        say(
            "note: onnxruntime's CUDA provider could not start here (no usable GPU or CUDA"
            " libraries); running on the CPU"
        )
    meta = session.get_modelmeta().custom_metadata_map
    info = GeneratorInfo.from_props(meta, str(path))
    _check_signature(session, info, path)
    return ZooGenerator(Path(path), info, session, ran)


def _check_signature(session: object, info: GeneratorInfo, path: Path) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    names = ([i.name for i in inputs], [o.name for o in outputs])
    wanted = ["z", "y"] if info.num_classes else ["z"]
    types = [i.type for i in inputs]
    if (
        names != (wanted, ["images"])
        or inputs[0].shape[1] != info.z_dim
        or types != ["tensor(float)", "tensor(int64)"][: len(wanted)]
    ):
        takes = f"z ({info.z_dim} floats per image)"
        takes += f" and y (int64 labels of {info.num_classes} classes)" if info.num_classes else ""
        raise ZooError(
            f"{path} does not take {takes} and give images as its metadata says (inputs"
            f" {names[0]}, outputs {names[1]}); export it again"
        )


def walk(z_from: np.ndarray, z_to: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` latents on the straight line from one point to another (the paper's Fig. 4)."""
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return (1 - t) * z_from[None] + t * z_to[None]


_GROUP = r"\s*\d+(?:\s*,\s*\d+)*\s*"
_EXPRESSION = re.compile(rf"{_GROUP}(?:[+-]{_GROUP})+")


def parse_arithmetic(expression: str) -> list[tuple[int, list[int]]]:
    """``"1,5,9 - 2,4,6 + 7,8,11"`` -> [(+1, [1, 5, 9]), (-1, [2, 4, 6]), (+1, [7, 8, 11])]."""
    if not _EXPRESSION.fullmatch(expression):
        raise UsageError(
            f"cannot read {expression!r}: write groups of sample indices joined by + and -,"
            ' e.g. "1,5,9 - 2,4,6 + 7,8,11" (the paper averages three samples per concept)'
        )
    signs = [1] + [1 if op == "+" else -1 for op in re.findall(r"[+-]", expression)]
    groups = re.split(r"[+-]", expression)
    return [(sign, [int(i) for i in g.split(",")]) for sign, g in zip(signs, groups, strict=True)]


def arithmetic_latents(
    z: np.ndarray,
    terms: list[tuple[int, list[int]]],
    variations: int,
    noise: float,
    seed: int,
) -> list[np.ndarray]:
    """The rows of the paper's Fig. 7 as latents: per group its samples then their mean
    (a concept is the average z of its group); last row the signed sum of the means, then
    ``variations`` copies of it plus uniform noise of scale ``noise`` (the paper: 0.25)."""
    means = [z[ix].mean(axis=0) for _, ix in terms]
    result = sum(sign * m for (sign, _), m in zip(terms, means, strict=True))
    rng = np.random.default_rng([seed, 2])
    jitter = rng.uniform(-noise, noise, size=(variations, z.shape[1])).astype(np.float32)
    rows = [np.concatenate([z[ix], m[None]]) for (_, ix), m in zip(terms, means, strict=True)]
    rows.append(np.concatenate([result[None], result[None] + jitter]).astype(np.float32))
    return rows


def split_rows(images: np.ndarray, rows: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Images generated from the concatenated ``rows`` back into rows of the same lengths."""
    out, start = [], 0
    for row in rows:
        out.append(list(images[start : start + len(row)]))
        start += len(row)
    return out

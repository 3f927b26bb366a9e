"""Near-duplicate removal by semantic hashing (the DCGAN paper, Sec. 4.1).

The paper fit "a 3072-128-3072 de-noising dropout regularized RELU autoencoder on 32x32
downsampled center-crops of training examples"; the code layer's ReLU activations,
binarised by a threshold, are a semantic hash, and images whose hashes collide are near
duplicates (about 275,000 of LSUN's 3 million bedrooms). That is done here on a split's
prepared images (already square centre crops), downsampled to 32x32: 3072 inputs for RGB,
1024 for one channel.

No library offers this autoencoder or hash, so it is written here. Three choices the
paper leaves open, made by measurement on planted duplicates and on digits (README,
"Deduplication"):

* each code unit's threshold is its median activation over the split, so every bit splits
  the images in two and distinct images are about 40 of 128 bits apart (a fixed threshold
  left most units silent on digits, whose codes then all looked alike);
* exact collisions (the paper) found 30 of 90 planted copies; hashes within 20 bits
  found them all, so images within ``max_hamming`` bits group, found without comparing all
  pairs by multi-index hashing (split the bits into ``max_hamming + 1`` blocks: two hashes
  that close agree exactly on at least one block);
* ``max_hamming="auto"`` is 40% of the median nearest-neighbour distance in a sample of
  the split (capped at 16), because what counts as close depends on the data;
* groups form around leaders (an image joins the nearest earlier image that leads a
  group), never transitively, so a chain of small differences cannot join distinct images.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import ganbench
from ganbench.data.hash_groups import auto_hamming, group_hashes
from ganbench.errors import UsageError
from ganbench.files.sealed import write_atomic
from ganbench.progress import ItemProgress

FORMAT = "ganbench-duplicates/1"
SIDE = 32


@dataclass
class DedupConfig:
    """The autoencoder and the hash; defaults as in the paper where it says."""

    code: int = 128
    #: Denoising: Gaussian noise of this standard deviation on the inputs in [-1, 1].
    noise: float = 0.2
    #: Dropout on the code layer while training.
    dropout: float = 0.2
    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    #: A code unit's bit is 1 when its ReLU activation exceeds this; None: the unit's
    #: median activation over (a sample of) the split.
    threshold: float | None = None
    #: 0: exact hash collisions (the paper); k: hashes within k differing bits; None: 40%
    #: of the median nearest-neighbour distance of a sample, at most 16.
    max_hamming: int | None = None
    seed: int = 0


class HashAutoencoder(nn.Module):
    """Input -> Linear -> ReLU code (dropout while training) -> Linear -> reconstruction."""

    def __init__(self, inputs: int, code: int, dropout: float) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(inputs, code), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.Linear(code, inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.dropout(self.encoder(x)))


def downsampled(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 N x C x R x R (centre crops already) -> N x C*32*32 floats in [-1, 1], area
    downsampling (upsampling bilinearly if R < 32)."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).to(device).float().div_(127.5).sub_(1)
    if x.shape[-1] > SIDE:
        x = nn.functional.interpolate(x, size=(SIDE, SIDE), mode="area")
    elif x.shape[-1] < SIDE:
        x = nn.functional.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
    return x.flatten(1)


def train_autoencoder(
    images: np.ndarray,
    config: DedupConfig,
    device: torch.device,
    *,
    progress: bool = True,
) -> tuple[HashAutoencoder, float]:
    """The denoising autoencoder fit on random batches of ``images``; (model, last loss)."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    inputs = images.shape[1] * SIDE * SIDE
    model = HashAutoencoder(inputs, config.code, config.dropout).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss = torch.zeros(())
    n = len(images)
    with ItemProgress(config.steps, "training the hash autoencoder", "step", progress) as bar:
        for _ in range(config.steps):
            index = np.sort(rng.choice(n, size=min(config.batch_size, n), replace=False))
            x = downsampled(images[index], device)
            noisy = x + config.noise * torch.randn_like(x)
            loss = nn.functional.mse_loss(model(noisy), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.advance(1)
    model.eval()
    return model, float(loss.detach())


@torch.no_grad()
def unit_medians(
    model: HashAutoencoder, images: np.ndarray, device: torch.device, sample: int = 20_000
) -> np.ndarray:
    """Each code unit's median activation over a seeded sample of the split."""
    rng = np.random.default_rng(0)
    index = np.sort(rng.choice(len(images), min(sample, len(images)), replace=False))
    codes = [
        model.encoder(downsampled(images[index[i : i + 1024]], device)).cpu()
        for i in range(0, len(index), 1024)
    ]
    return torch.cat(codes).median(dim=0).values.numpy()


@torch.no_grad()
def hash_images(
    model: HashAutoencoder,
    images: np.ndarray,
    threshold: float | np.ndarray,
    device: torch.device,
    *,
    batch_size: int = 1024,
    progress: bool = True,
) -> np.ndarray:
    """Each image's code binarised and packed: uint8 N x code/8 (memory-mapped inputs are
    read a batch at a time)."""
    parts = []
    limit = torch.as_tensor(threshold, dtype=torch.float32, device=device)
    with ItemProgress(len(images), "hashing", enabled=progress) as bar:
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            code = model.encoder(downsampled(chunk, device)) > limit
            parts.append(np.packbits(code.cpu().numpy(), axis=1))
            bar.advance(len(chunk))
    return np.concatenate(parts) if parts else np.zeros((0, 16), np.uint8)


@dataclass
class Duplicates:
    """A split's near-duplicate groups, and which images a run skips (all but the first of
    each group), tied to the split's files by a fingerprint."""

    dataset: str
    split: str
    resolution: int
    category: str | None
    count: int
    fingerprint: str
    groups: list[list[int]]
    config: dict[str, Any] = field(default_factory=dict)
    reconstruction_mse: float = float("nan")
    created: str = ""

    @property
    def skipped(self) -> list[int]:
        return sorted(i for g in self.groups for i in g[1:])

    def keep(self) -> np.ndarray:
        """Indices of the images a deduplicated run trains on (sorted)."""
        mask = np.ones(self.count, bool)
        mask[self.skipped] = False
        return np.flatnonzero(mask)

    def to_json(self) -> str:
        body = {"format": FORMAT, **asdict(self), "skipped": self.skipped}
        body["ganbench"] = ganbench.__version__
        return json.dumps(body, indent=1)

    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.groups).encode()).hexdigest()


def duplicates_path(cache_folder: Path) -> Path:
    """Beside the split's prepared cache folder: ``<...>/train-64px.duplicates.json``."""
    return cache_folder.with_name(cache_folder.name + ".duplicates.json")


def save(duplicates: Duplicates, path: Path) -> Path:
    """Whole or not at all: a training run trusts the list it finds."""
    write_atomic(path, duplicates.to_json())
    return path


def load(path: Path, *, count: int, fingerprint: str, rebuild: str) -> Duplicates:
    """The list at ``path``, refused (naming ``rebuild``, the command that makes it) when it
    is missing, unreadable, or made for other files than the split's current ones."""
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"no duplicates list at {path}; make it first: {rebuild}") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path} ({exc}); make it again: {rebuild}") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise UsageError(f"{path} is not a ganbench duplicates list; make it again: {rebuild}")
    fields = {k: body[k] for k in Duplicates.__dataclass_fields__ if k in body}
    try:
        found = Duplicates(**fields)
    except TypeError as exc:
        raise UsageError(f"{path} is incomplete ({exc}); make it again: {rebuild}") from None
    if found.fingerprint != fingerprint or found.count != count:
        raise UsageError(
            f"{path} was made for other files ({found.count} images then, {count} now);"
            f" make it again: {rebuild}"
        )
    if any(not 0 <= i < count for g in found.groups for i in g):
        raise UsageError(f"{path} names images outside the split; make it again: {rebuild}")
    return found


def find_duplicates(
    images: np.ndarray,
    config: DedupConfig,
    device: torch.device,
    *,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> tuple[list[list[int]], float, np.ndarray]:
    """Train, hash, group: (groups, final reconstruction MSE, packed hashes)."""
    if len(images) < 2:
        raise UsageError("deduplication needs at least two images")
    started = time.monotonic()
    model, mse = train_autoencoder(images, config, device, progress=progress)
    with torch.no_grad():
        threshold = (
            unit_medians(model, images, device) if config.threshold is None else config.threshold
        )
    hashes = hash_images(model, images, threshold, device, progress=progress)
    radius, median = auto_hamming(hashes)
    if config.max_hamming is None:
        config.max_hamming = radius
    groups = group_hashes(hashes, config.max_hamming)
    say(
        f"autoencoder trained ({config.steps} steps, reconstruction MSE {mse:.4f}); hashed"
        f" {len(images)} images in {time.monotonic() - started:.1f}s; nearest neighbours"
        f" {median:g} bits apart (median of a sample); grouping within"
        f" {config.max_hamming} bits: {len(groups)} groups,"
        f" {sum(len(g) - 1 for g in groups)} duplicates"
    )
    return groups, mse, hashes


class KeptImages:
    """The images at sorted indices ``keep`` of a uint8 N x C x H x W array, read lazily:
    a deduplicated run over a memory-mapped split of millions of images must not copy it
    into memory. Supports what the training batches use: ``len``, fancy indexing with
    index arrays (mapped through ``keep``; sorted in, sorted out), ``np.array(...)``."""

    def __init__(self, base: np.ndarray, keep: np.ndarray) -> None:
        self.base = base
        self.keep = np.asarray(keep, dtype=np.int64)
        self.dtype = base.dtype
        self.ndim = base.ndim
        self.shape = (len(self.keep), *base.shape[1:])
        self.nbytes = int(np.prod(self.shape)) * base.itemsize
        self.flags = type("Flags", (), {"writeable": False})()

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.base[self.keep[index]]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.base[self.keep]
        return out.astype(dtype) if dtype is not None else out


def split_files(dataset: Any, request: Any, cache: Path) -> tuple[Path, str]:
    """Where a split's duplicates list lives and the fingerprint of the split's files
    (the prepared cache's own: names, sizes, modification times)."""
    from ganbench.data.paths import dataset_root
    from ganbench.data.prepare import cache_folder, fingerprint

    root = dataset_root(dataset.name, request.root, cache)
    stamp = fingerprint(dataset.open(request, root).files())
    return duplicates_path(cache_folder(cache, dataset, request)), stamp


def rebuild_command(dataset: Any, request: Any) -> str:
    """The command that makes the list for ``request`` (named in errors)."""
    parts = [f"ganbench data dedup {dataset.name}"]
    if request.split != "train":
        parts.append(f"--split {request.split}")
    parts.append(f"--resolution {request.resolution}")
    if request.options.get("category"):
        parts.append(f"--category {request.options['category']}")
    if request.root:
        parts.append(f"--data-root {request.root}")
    return " ".join(parts)


def groups_picture(images: np.ndarray, groups: list[list[int]], rows: int = 8, per_row: int = 8):
    """The first ``rows`` groups, one per row (their images, up to ``per_row``)."""
    from ganbench.images import grid

    shown = groups[:rows]
    if not shown:
        return None
    return grid([[np.asarray(images[i]) for i in g[:per_row]] for g in shown])


def deduplicated(data: Any, duplicates: Duplicates) -> Any:
    """``data`` (an ImageArray) without the skipped images, noted for the run's params."""
    from ganbench.plugins.interfaces import ImageArray

    keep = duplicates.keep()
    labels = data.labels[keep] if data.labels is not None else None
    skipped = len(data) - len(keep)
    return ImageArray(
        images=KeptImages(data.images, keep),
        labels=labels,
        source=f"{data.source} without {skipped} near duplicates",
        class_names=data.class_names,
        notes={
            **data.notes,
            "data.duplicates_skipped": str(skipped),
            "data.duplicates_sha256": duplicates.sha256(),
        },
    )

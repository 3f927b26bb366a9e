"""Train the digits-cnn feature extractor and write its weights (the file ganbench bundles).

    python -m ganbench_plugins.digits.train_classifier [--out PATH] [--seed 0] [--epochs N]

Trains on the digits *train* split only (the test split measures it), on the CPU, in well
under a minute. Small random affine warps and noise make it judge GAN samples (slightly
off-centre, blurry, noisy) by their shape rather than by exact pixel positions. The same
seed, torch version and thread count give the same weights.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from ganbench.data.loading import load_images
from ganbench.plugins.interfaces import DatasetRequest
from ganbench.rundir.checkpoint import save_atomic
from ganbench_plugins.digits import DigitsDataset
from ganbench_plugins.digits.classifier import (
    FEATURE_DIM,
    INPUT_SIZE,
    WEIGHTS_FORMAT,
    DigitsCnn,
    bundled_weights,
    preprocess,
)

DEFAULT_EPOCHS = 30
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 5e-4
# Augmentation ranges: rotation (degrees), scale, shift (pixels at 32px), pixel noise.
MAX_ROTATION = 10.0
SCALE_RANGE = (0.9, 1.1)
MAX_SHIFT_PX = 2.5
NOISE_STD = 0.05


def split_tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A digits split as the network sees it (preprocessed) and its labels."""
    data = load_images(
        DigitsDataset(), DatasetRequest(split, INPUT_SIZE), Path("/nonexistent"), progress=False
    )
    assert data.labels is not None  # digits is labelled
    return preprocess(torch.from_numpy(data.images)), torch.from_numpy(data.labels)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random small rotation, scale and shift (black fill), plus a little Gaussian noise."""
    n = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    angle = uniform(-MAX_ROTATION, MAX_ROTATION) * math.pi / 180
    scale = uniform(*SCALE_RANGE)
    shift = MAX_SHIFT_PX * 2 / INPUT_SIZE  # pixels -> grid units ([-1, 1] spans the image)
    tx, ty = uniform(-shift, shift), uniform(-shift, shift)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, tx], dim=1), torch.stack([sin, cos, ty], dim=1)], dim=1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Sample x + 1 so the zero padding outside the image is black (-1), not mid-grey.
    warped = F.grid_sample(x + 1, grid, mode="bilinear", align_corners=False) - 1
    noise = NOISE_STD * torch.randn(warped.shape, generator=gen)
    return (warped + noise).clamp(-1, 1)


@torch.no_grad()
def accuracy(net: DigitsCnn, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    predicted = torch.cat([net(chunk)[1].argmax(1) for chunk in x.split(512)])
    return float((predicted == y).float().mean())


def train(epochs: int, seed: int) -> tuple[DigitsCnn, float]:
    """The trained network and its test-split accuracy."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x_train, y_train = split_tensors("train")
    x_test, y_test = split_tensors("test")
    net = DigitsCnn(feature_dim=FEATURE_DIM)
    optimizer = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = math.ceil(len(x_train) / BATCH_SIZE)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=LEARNING_RATE, total_steps=epochs * steps_per_epoch
    )
    for _ in range(epochs):
        net.train()
        for index in torch.randperm(len(x_train), generator=gen).split(BATCH_SIZE):
            _, logits = net(augment(x_train[index], gen))
            loss = F.cross_entropy(logits, y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    net.eval()
    return net, accuracy(net, x_test, y_test)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ganbench_plugins.digits.train_classifier",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("--out", type=Path, default=bundled_weights(), help="weights file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    torch.use_deterministic_algorithms(True)
    start = time.perf_counter()
    net, test_accuracy = train(args.epochs, args.seed)
    seconds = time.perf_counter() - start
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    save_atomic(
        {
            "format": WEIGHTS_FORMAT,
            "state_dict": state,
            "test_accuracy": test_accuracy,
            "seed": args.seed,
            "torch_version": str(torch.__version__),  # TorchVersion is not weights_only-safe
            "feature_dim": FEATURE_DIM,
        },
        args.out,
    )
    data = args.out.read_bytes()
    print(
        f"trained digits-cnn for {args.epochs} epochs in {seconds:.1f} s"
        f" ({torch.get_num_threads()} threads): test accuracy {test_accuracy:.4f}"
    )
    print(f"wrote {args.out} ({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A small CNN trained on the digits train split: the feature extractor for FID/IS on digits.

Inception-v3 was trained on ImageNet photos and needs downloaded weights; on 8x8
handwritten digits its features say little. This net is tiny (about 25k parameters,
about 110 KB of weights shipped beside this file), so scores on digits work offline.

Images reach the net the same way whatever their size: uint8 -> grey (the mean of R, G
and B, so an R=G=B image gives exactly the grey one's features) -> [-1, 1] -> bilinear
(antialiased) to 32x32. ``pool`` is the 64 globally averaged activations before the last
linear layer, few enough that FID's covariance is well estimated from ~1000 images.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.errors import CheckpointError
from ganbench.plugins.interfaces import LoadedExtractor
from ganbench_plugins.digits.env import WEIGHTS_ENV

WEIGHTS_FORMAT = "ganbench-digits-cnn/1"
INPUT_SIZE = 32
FEATURE_DIM = 64
NUM_CLASSES = 10
REBUILD = "python -m ganbench_plugins.digits.train_classifier"


def bundled_weights() -> Path:
    """The weights file shipped inside the package (package data ``*.pt``)."""
    return Path(__file__).with_name("digits_cnn.pt")


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 N x C x H x W (C = 1 or 3, any size) -> float N x 1 x 32 x 32 in [-1, 1].

    Grey is the plain mean of R, G and B: digits are grey, and the mean keeps an R=G=B
    image bit-identical to its grey version, so 1- and 3-channel samples score alike.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            "digits-cnn takes uint8 N x C x H x W images with C = 1 or 3, got"
            f" {images.dtype} with shape {tuple(images.shape)}"
        )
    x = images.float()
    if x.shape[1] == 3:
        x = x.mean(dim=1, keepdim=True)
    x = x / 127.5 - 1.0
    if tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(
            x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True
        )
    return x


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class DigitsCnn(nn.Module):
    """Four 3x3 conv/BN/ReLU blocks (32 -> 16 -> 8 -> 4 px), global average pool, linear.

    The last block sees the whole 32x32 image, so the pooled features still describe the
    digit's shape although the average discards where each activation was.
    """

    def __init__(self, feature_dim: int = FEATURE_DIM, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv(1, 8),
            nn.MaxPool2d(2),
            _conv(8, 16),
            nn.MaxPool2d(2),
            _conv(16, 32),
            nn.MaxPool2d(2),
            _conv(32, feature_dim),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pool, logits) for float N x 1 x 32 x 32 images in [-1, 1]."""
        pool = self.features(x)
        return pool, self.classifier(pool)


class DigitsCnnFeatures(nn.Module):
    """What metrics call: uint8 images in, ``{"pool", "logits"}`` float32 out."""

    def __init__(self, net: DigitsCnn) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        pool, logits = self.net(preprocess(images))
        return {"pool": pool, "logits": logits}


def resolve_weights(weights: str | None) -> tuple[Path, str]:
    """The file to load and the fix to name if it is bad: argument, env var, bundled file."""
    if weights:
        path = Path(weights).expanduser()
        return path, f"pass a file written by `{REBUILD} --out {path}`"
    from_env = os.environ.get(WEIGHTS_ENV)
    if from_env:
        path = Path(from_env).expanduser()
        return path, (
            f"point {WEIGHTS_ENV} at a good file (rebuild one with `{REBUILD} --out {path}`)"
            " or unset it to use the bundled weights"
        )
    return bundled_weights(), f"run `{REBUILD}` to rebuild it (or reinstall ganbench)"


def _reason(exc: BaseException) -> str:
    """Why a load failed, as " (cause)" on one short line, or "" if torch says nothing useful.

    torch's messages span many lines, and a truncated zip read from memory gives bare
    ones ("negative seek value"), so only a weights_only refusal's cause and a state_dict
    mismatch are repeated to the user.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    cause = next((line for line in lines if "WeightsUnpickler error:" in line), "")
    if cause:
        cause = cause.split("WeightsUnpickler error:", 1)[1].split(". Please", 1)[0].strip()
    elif "state_dict" in str(exc):
        cause = " ".join(lines)
    if not cause:
        return ""
    return f" ({cause[:157]}...)" if len(cause) > 160 else f" ({cause})"


def load_extractor(weights: str | None, device: torch.device) -> LoadedExtractor:
    """The frozen network on ``device``; a missing, truncated or foreign file names the fix."""
    path, fix = resolve_weights(weights)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"digits-cnn weights {path} do not exist; {fix}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read digits-cnn weights {path} ({exc}); {fix}") from None
    # Hash the very bytes that are loaded, so the recorded sha256 cannot name another file.
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        obj: Any = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable content: truncated zip, foreign pickle, ...
        raise CheckpointError(
            f"digits-cnn weights {path} are truncated or not a torch file{_reason(exc)}; {fix}"
        ) from None
    if not isinstance(obj, Mapping) or obj.get("format") != WEIGHTS_FORMAT:
        found = obj.get("format") if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"{path} is not a {WEIGHTS_FORMAT} file (it holds {found!r}); {fix}")
    try:
        net = DigitsCnn(feature_dim=int(obj["feature_dim"]))
        net.load_state_dict(obj["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        why = f" (no {exc.args[0]!r} entry)" if isinstance(exc, KeyError) else _reason(exc)
        raise CheckpointError(f"{path} does not fit the digits-cnn network{why}; {fix}") from None
    module = DigitsCnnFeatures(net).to(device).eval().requires_grad_(False)
    return LoadedExtractor(module=module, weights_sha256=sha256, weights_source=str(path))

"""Discriminator features for the probe: every conv layer, max-pooled to 4x4, concatenated.

Sec. 5.1 of the DCGAN paper: "we use the discriminator's convolutional features from all
layers, maxpooling each layers representation to produce a 4 x 4 spatial grid. These
features are then flattened and concatenated". For the DCGAN discriminator at 32x32 with
``ndf`` = 64 the maps are 64x16x16, 128x8x8 and 256x4x4, so D = (64 + 128 + 256) * 16 = 7168;
the dimension is always taken from the maps themselves, never assumed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganbench.progress import ItemProgress

#: Side of the spatial grid every map is max-pooled to.
GRID = 4


def pooled_features(feature_maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Each N x C x H x W map max-pooled to 4x4, flattened, concatenated: N x D float32.

    A map smaller than 4x4 on a side is left at its size on that side (adaptive pooling
    would only repeat its values), so such a layer adds C * H * W features.
    """
    if not feature_maps:
        raise ValueError("no feature maps to pool")
    pooled = []
    for x in feature_maps:
        if x.ndim != 4:
            raise ValueError(f"feature maps must be N x C x H x W, got shape {tuple(x.shape)}")
        grid = (min(GRID, x.shape[2]), min(GRID, x.shape[3]))
        pooled.append(F.adaptive_max_pool2d(x, grid).flatten(1).float())
    return torch.cat(pooled, 1)


class LayerFeatures:
    """The maps of ``layers`` (a GanModel's ``discriminator_layers()``) when ``network``
    sees a batch, caught by forward hooks: the probe needs nothing of a plugin's
    discriminator beyond its forward and the layers the model names (the interface), not a
    ``features`` method of its own. The hooks live only for one call."""

    def __init__(self, network: nn.Module, layers: Sequence[nn.Module]) -> None:
        if not layers:
            raise ValueError("the model names no discriminator layers to probe")
        self.network = network
        self.layers = list(layers)

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps: dict[int, torch.Tensor] = {}
        hooks = [
            layer.register_forward_hook(
                lambda _m, _i, out, i=i: maps.__setitem__(i, out)  # type: ignore[misc]
            )
            for i, layer in enumerate(self.layers)
        ]
        try:
            self.network(x)
        finally:
            for hook in hooks:
                hook.remove()
        missing = [i for i in range(len(self.layers)) if i not in maps]
        if missing:
            raise ValueError(
                f"discriminator layers {missing} did not run in the network's forward;"
                " discriminator_layers() must name modules of the discriminator"
            )
        return [maps[i] for i in range(len(self.layers))]


def _module_of(features_fn: Callable[[torch.Tensor], object]) -> nn.Module | None:
    """The network behind ``features_fn`` (a module, a bound method of one, or
    :class:`LayerFeatures`), if any."""
    if isinstance(features_fn, nn.Module):
        return features_fn
    if isinstance(features_fn, LayerFeatures):
        return features_fn.network
    owner = getattr(features_fn, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


def extract(
    features_fn: Callable[[torch.Tensor], Sequence[torch.Tensor]],
    images: np.ndarray,
    device: torch.device | str,
    *,
    batch_size: int = 256,
    progress: bool = False,
    on_device: bool = False,
) -> torch.Tensor:
    """Pooled features of uint8 N x C x H x W ``images``: float32 N x D, on the CPU.

    ``features_fn`` (e.g. ``discriminator.features``) must already live on ``device``; when
    it is a module or a bound method of one, the module is put in eval mode (batchnorm from
    its running statistics, so a feature does not depend on the rest of its batch) and its
    mode restored afterwards. Images travel as uint8 and are scaled to [-1, 1] on the
    device, as in training. ``on_device=True`` keeps the result on ``device`` (a GPU probe
    then never copies the features back). The output is allocated once and filled batch by
    batch, so peak memory is the features plus one batch.
    """
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be a uint8 N x C x H x W array, got {images.dtype}"
            f" with shape {tuple(images.shape)}"
        )
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, not {batch_size}")
    device = torch.device(device)
    n = len(images)
    module = _module_of(features_fn)
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    out: torch.Tensor | None = None
    try:
        with (
            torch.no_grad(),
            ItemProgress(n, "probe features", enabled=progress) as bar,
        ):
            for start in range(0, n, batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
                x = batch.to(device).float().div_(127.5).sub_(1.0)
                feats = pooled_features(list(features_fn(x)))
                if out is None:
                    out = torch.empty(
                        n,
                        feats.shape[1],
                        dtype=torch.float32,
                        device=device if on_device else "cpu",
                    )
                out[start : start + len(feats)] = feats
                bar.advance(len(feats))
    finally:
        if module is not None:
            module.train(was_training)
    if out is None:
        raise ValueError("no images to extract features from")
    return out

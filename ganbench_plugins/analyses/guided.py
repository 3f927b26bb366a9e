"""What the discriminator sees (DCGAN paper Fig. 5): guided backpropagation of the strongest
features of D's last convolutional layer back to real training images, for the trained D and
for a randomly initialised D of the same architecture (the paper's control).

The attributions are captum's :class:`captum.attr.GuidedBackprop`, taught to hook D's
LeakyReLUs as well as ReLUs (:class:`LeakyGuidedBackprop`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from captum.attr import GuidedBackprop as CaptumGuidedBackprop
from torch import nn

from ganbench.analysis import AnalysisContext
from ganbench.errors import GanbenchError, UsageError
from ganbench.images import grid
from ganbench.plugins.interfaces import Analysis, AnalysisOption, AnalysisResult

#: Side (pixels) an image cell is upscaled to at least, by an integer nearest factor.
CELL = 96


def _captum_hook_helpers() -> Any:
    """captum's private ``_register_backward_hook``, or a clear error if it moved."""
    import captum

    try:
        from captum._utils.common import _register_backward_hook
    except ImportError:
        _register_backward_hook = None
    if _register_backward_hook is None or not all(
        callable(getattr(CaptumGuidedBackprop, m, None))
        for m in ("_register_hooks", "_backward_hook", "_remove_hooks")
    ):
        raise GanbenchError(
            f"captum {captum.__version__} changed the private hooks ganbench's guided"
            " backpropagation extends (ModifiedReluGradientAttribution._register_hooks,"
            " captum._utils.common._register_backward_hook); install captum 0.8 or 0.9"
            " (pip install 'captum>=0.8,<0.10')"
        )
    return _register_backward_hook


class LeakyGuidedBackprop(CaptumGuidedBackprop):
    """captum's guided backpropagation that also hooks ``nn.LeakyReLU`` modules.

    Guided backpropagation (Springenberg et al., 2015) passes back through a ReLU only
    gradient that is positive *and* flows where the unit was active: the ReLU's own rule
    (zero at negative inputs) combined with deconvnet's (zero for negative gradients).
    captum implements this as ``relu(grad_input)`` at every ``nn.ReLU``: grad_input already
    carries the local derivative, and clipping it keeps positive gradients only. captum
    hooks ``nn.ReLU`` alone, so on a LeakyReLU network (DCGAN's D) its GuidedBackprop is
    silently the plain gradient. The same rule at a LeakyReLU gives
    ``relu(grad_output * f'(x))`` = ``f'(x) * relu(grad_output)`` (f' is 1 or the slope,
    both positive): positive gradients only, scaled by the unit's local derivative. That is
    the generalisation that keeps both halves of the rule (the unit's own backward pass, and
    only positive evidence) and reduces to captum's exactly at slope 0.

    This overrides captum's *private* ``_register_hooks`` (and reuses its private
    ``_register_backward_hook``), written against captum 0.9; a captum without them
    raises a clear error when this class is built, instead of giving wrong maps.
    """

    def __init__(self, model: nn.Module) -> None:
        self._hook = _captum_hook_helpers()
        super().__init__(model)

    def _register_hooks(self, module: nn.Module) -> None:
        if isinstance(module, nn.LeakyReLU):
            self.backward_hooks.extend(self._hook(module, self._backward_hook, self))
        else:
            super()._register_hooks(module)


class ChannelMaxima(nn.Module):
    """``net``'s forward, returning ``layer``'s output per channel at its strongest point
    (N x C; N x C maps are reduced over space, N x C vectors kept): the attribution target
    of one feature is its spatial maximum, as in Zeiler-Fergus/Springenberg pictures."""

    def __init__(self, net: nn.Module, layer: nn.Module) -> None:
        super().__init__()
        self.net = net
        self._layer = (layer,)  # a tuple: not registered twice as a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        handle = self._layer[0].register_forward_hook(lambda m, i, o: captured.append(o))
        try:
            self.net(x)
        finally:
            handle.remove()
        out = captured[-1]
        return out.flatten(2).amax(2) if out.dim() > 2 else out


@contextlib.contextmanager
def _not_inplace(net: nn.Module) -> Iterator[None]:
    """Activations computed out of place while attributing, restored afterwards. Backward
    hooks on in-place modules (D's LeakyReLU(inplace=True)) break when the hooked tensor is
    overwritten (torch's full backward hooks refuse them); captum 0.9 happens to dodge this
    by cloning each hooked module's input, a private detail we do not rely on. The extra
    memory of a few feature maps does not matter."""
    changed = [m for m in net.modules() if getattr(m, "inplace", False) is True]
    for m in changed:
        m.inplace = False  # type: ignore[assignment]
    try:
        yield
    finally:
        for m in changed:
            m.inplace = True  # type: ignore[assignment]


def guided_backprop(
    net: nn.Module, layer: nn.Module, inputs: torch.Tensor, channels: torch.Tensor
) -> torch.Tensor:
    """Guided backpropagation of ``layer``'s channel maxima to ``inputs``.

    ``channels`` (N x K, long) names the K channels per input; the result is N x K x
    (input dims): map k of input i is the guided gradient of channel ``channels[i, k]``'s
    strongest activation. ``net`` should be in eval mode (batchnorm then is per image).
    """
    wrapper = ChannelMaxima(net, layer)
    attribution = LeakyGuidedBackprop(wrapper)
    maps = []
    inputs = inputs.detach().clone().requires_grad_(True)
    with _not_inplace(net), warnings.catch_warnings():
        # captum warns at every call that it sets (and removes) backward hooks.
        warnings.filterwarnings("ignore", message="Setting backward hooks", category=UserWarning)
        for k in range(channels.shape[1]):
            target = channels[:, k].to(inputs.device)
            maps.append(attribution.attribute(inputs, target=target).detach())
    return torch.stack(maps, dim=1)


def strongest_channels(
    net: nn.Module, layer: nn.Module, inputs: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` channels with the largest maxima per input: (values, indices), N x k."""
    with torch.no_grad():
        maxima = ChannelMaxima(net, layer)(inputs)
    if k > maxima.shape[1]:
        raise UsageError(
            f"guided-backprop: --features {k} is more than the {maxima.shape[1]} channels of"
            f" D's last layer; give at most {maxima.shape[1]}"
        )
    return maxima.topk(k, dim=1)


def foreground_share(images: np.ndarray, maps: np.ndarray) -> float:
    """Mean share of |attribution| on the foreground: pixels brighter than their image's
    mean (N x C x H x W images, N x K x C x H x W maps). A map spread evenly scores the
    foreground's share of the area; one that follows the object scores higher."""
    gray = images.astype(np.float64).mean(axis=1)  # N x H x W
    foreground = gray > gray.mean(axis=(1, 2), keepdims=True)
    weight = np.abs(maps.astype(np.float64)).sum(axis=2)  # N x K x H x W
    on = (weight * foreground[:, None]).sum(axis=(2, 3))
    total = np.maximum(weight.sum(axis=(2, 3)), 1e-30)
    return float((on / total).mean())


def map_cell(attribution: np.ndarray) -> np.ndarray:
    """A C x H x W map as uint8 for display: gray 128 is zero, the largest |value| is 0
    or 255 (channels share one scale, so colour maps keep their hue)."""
    scale = max(float(np.abs(attribution).max()), 1e-30)
    return np.clip(np.rint(128 + 127 * attribution / scale), 0, 255).astype(np.uint8)


def _upscale(cell: np.ndarray, factor: int) -> np.ndarray:
    return cell.repeat(factor, axis=1).repeat(factor, axis=2)


def _layer_name(net: nn.Module, layer: nn.Module) -> str:
    return next((name for name, m in net.named_modules() if m is layer), type(layer).__name__)


class GuidedBackprop(Analysis):
    name = "guided-backprop"
    summary = (
        "What the discriminator sees (paper Fig. 5): guided backpropagation of the strongest"
        " features of D's last conv layer on real images, trained D vs. random-init D"
    )
    needs = frozenset({"discriminator", "data"})
    options = (
        AnalysisOption("images", "Real training images (a seeded random choice).", int, 8),
        AnalysisOption("features", "Strongest channels of D's last layer per image.", int, 4),
    )

    def run(self, context: AnalysisContext, options: Mapping[str, Any]) -> AnalysisResult:
        n, k = options["images"], options["features"]
        for flag, value in (("images", n), ("features", k)):
            if value < 1:
                raise UsageError(f"guided-backprop: --{flag} must be at least 1, not {value}")
        data = context.images()
        if n > len(data):
            raise UsageError(
                f"guided-backprop: --images {n} is more than the {len(data)} training images;"
                f" give at most {len(data)}"
            )
        chosen = np.random.default_rng(context.seed).choice(len(data), n, replace=False)
        real = np.asarray(data.images[np.sort(chosen)])
        x = torch.from_numpy(real).float().div(127.5).sub(1).to(context.device)

        random = context.random_model(context.seed)
        nets = {
            "trained": (context.discriminator, context.model.discriminator_layers()[-1]),
            "random_init": (random.discriminator, random.discriminator_layers()[-1]),
        }
        results: dict[str, dict[str, Any]] = {}
        with context.bar(2 * n * k, "guided backprop", unit="map") as bar:
            for key, (net, layer) in nets.items():
                values, channels = strongest_channels(net, layer, x, k)
                maps = guided_backprop(net, layer, x, channels).float().cpu().numpy()
                bar.advance(n * k)
                results[key] = {
                    "maps": maps,
                    "channels": channels.cpu().tolist(),
                    "activations": values.float().cpu().tolist(),
                    "strongest_activation": float(values.float().mean()),
                    "foreground_share": foreground_share(real, maps),
                }

        factor = max(1, CELL // context.shape.resolution)
        rows = []
        for i in range(n):
            row: list[np.ndarray | None] = [_upscale(real[i], factor)]
            row += [_upscale(map_cell(m), factor) for m in results["trained"]["maps"][i]]
            row.append(None)
            row += [_upscale(map_cell(m), factor) for m in results["random_init"]["maps"][i]]
            rows.append(row)

        gray = real.astype(np.float64).mean(axis=1)
        area = float((gray > gray.mean(axis=(1, 2), keepdims=True)).mean())
        metrics = {"foreground_area": area}
        for key in ("trained", "random_init"):
            for stat in ("foreground_share", "strongest_activation"):
                metrics[f"{key}.{stat}"] = results[key][stat]
        layer_name = _layer_name(*nets["trained"])
        slopes = [
            m.negative_slope for m in nets["trained"][0].modules() if isinstance(m, nn.LeakyReLU)
        ]
        slope = slopes[0] if slopes else None
        table = {
            "images": sorted(int(i) for i in chosen),
            **{
                key: {"channels": results[key]["channels"], "maxima": results[key]["activations"]}
                for key in results
            },
        }
        return AnalysisResult(
            pictures={"guided_backprop": grid(rows)},
            metrics=metrics,
            notes={
                "how": f"{n} training images (seed {context.seed}); for each, the {k} channels"
                f" of D's last conv layer ({layer_name}) with the largest maxima, each"
                " attributed from its spatial maximum to the image by captum's GuidedBackprop,"
                f" extended to LeakyReLU (slope {slope}): grad_in = f'(x) * relu(grad_out);"
                f" the control is a random-init D of the same architecture (seed {context.seed})",
                "picture": f"rows: the image, {k} maps of the trained D, a gap, {k} maps of the"
                " random-init D; gray = 0, brighter = positive, each map scaled to its max |value|",
                "numbers": "foreground_share: mean share of |attribution| on pixels brighter"
                " than the image mean (foreground_area: that share for an even spread);"
                " strongest_activation: mean maximum of the chosen channels (scales differ"
                " between the two Ds)",
            },
            tables={"features": table},
            lines=[
                f"guided backprop of {k} features x {n} images through {layer_name}",
                f"foreground share of |attribution|: trained"
                f" {metrics['trained.foreground_share']:.3f}, random-init"
                f" {metrics['random_init.foreground_share']:.3f} (even spread: {area:.3f})",
            ],
        )


__all__ = [
    "ChannelMaxima",
    "GuidedBackprop",
    "LeakyGuidedBackprop",
    "foreground_share",
    "guided_backprop",
    "map_cell",
]

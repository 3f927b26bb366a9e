"""``analyze RUN guided-backprop``: guided backpropagation through LeakyReLUs against hand-
computed references, and the analysis end to end on a tiny digits run."""

from __future__ import annotations

import copy
import json
import warnings

import numpy as np
import pytest
import torch
from captum.attr import GuidedBackprop as CaptumGuidedBackprop
from click.testing import CliRunner
from mlflow import MlflowClient
from PIL import Image
from torch import nn

from ganbench.cli import cli
from ganbench_plugins.analyses.guided import foreground_share, guided_backprop, map_cell
from ganbench_plugins.dcgan.config import DCGANConfig
from ganbench_plugins.dcgan.networks import Discriminator

SLOPE = 0.2


def _leaky_mlp() -> nn.Sequential:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Linear(5, 4),
        nn.LeakyReLU(SLOPE, inplace=True),
        nn.Linear(4, 3),
        nn.LeakyReLU(SLOPE, inplace=True),
        nn.Linear(3, 1),
    ).double()


def _numpy_guided(net: nn.Sequential, x: np.ndarray) -> np.ndarray:
    """Guided backprop of the single output to each input, by hand in float64: forward
    keeping pre-activations, backward with grad_in = max(grad_out * f'(pre), 0) at each
    LeakyReLU (f' = 1 above zero, the slope below)."""
    linears = [m for m in net if isinstance(m, nn.Linear)]
    weights = [m.weight.detach().numpy() for m in linears]
    biases = [m.bias.detach().numpy() for m in linears]
    out = []
    for xi in x:
        a, pre = xi, []
        for w, b in zip(weights[:-1], biases[:-1], strict=True):
            z = w @ a + b
            pre.append(z)
            a = np.where(z > 0, z, SLOPE * z)
        grad = weights[-1][0].copy()
        for layer in reversed(range(len(pre))):
            grad = np.maximum(grad * np.where(pre[layer] > 0, 1.0, SLOPE), 0.0)
            grad = weights[layer].T @ grad
        out.append(grad)
    return np.array(out)


def test_leaky_relu_rule_matches_a_hand_computed_reference():
    net = _leaky_mlp()
    x = torch.randn(16, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ours = guided_backprop(net, net[4], x, torch.zeros(16, 1, dtype=torch.long))[:, 0].numpy()
    reference = _numpy_guided(net, x.numpy())
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-9)

    # The hooks really fire: on these inputs negative gradients reach the LeakyReLUs, so the
    # plain gradient and captum's own GuidedBackprop (which hooks nn.ReLU only and so is the
    # plain gradient here) both differ from guided backprop.
    plain = x.clone().requires_grad_(True)
    net(plain).sum().backward()
    scale = np.abs(reference).max()
    assert np.abs(plain.grad.numpy() - reference).max() > 0.1 * scale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        unmodified = CaptumGuidedBackprop(net).attribute(x.clone(), target=0).numpy()
    np.testing.assert_allclose(unmodified, plain.grad.numpy(), rtol=1e-9)
    assert np.abs(unmodified - reference).max() > 0.1 * scale
    # In-place activations are restored after attributing.
    assert net[1].inplace and net[3].inplace


class _GuidedLeaky(torch.autograd.Function):
    """An independent implementation of the rule as an autograd function (no hooks)."""

    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        return torch.where(x > 0, x, slope * x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return (grad * torch.where(x > 0, 1.0, ctx.slope)).clamp(min=0), None


class _GuidedLeakyModule(nn.Module):
    def __init__(self, slope: float) -> None:
        super().__init__()
        self.slope = slope

    def forward(self, x):
        return _GuidedLeaky.apply(x, self.slope)


def test_channel_maxima_of_a_dcgan_discriminator_match_an_independent_reference():
    torch.manual_seed(1)
    d = Discriminator(DCGANConfig(ndf=4), channels=1, resolution=32).double()
    for m in d.modules():  # batchnorm with non-trivial running statistics, as after training
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    d.eval()
    x = torch.rand(3, 1, 32, 32, dtype=torch.float64) * 2 - 1
    channels = torch.tensor([[0, 5], [15, 2], [7, 7]])
    ours = guided_backprop(d, d.blocks[-1], x, channels)

    reference_net = copy.deepcopy(d)
    for block in reference_net.blocks:
        for i, m in enumerate(block):
            if isinstance(m, nn.LeakyReLU):
                block[i] = _GuidedLeakyModule(m.negative_slope)
    for k in range(channels.shape[1]):
        xi = x.clone().requires_grad_(True)
        maps = reference_net.features(xi)[-1]
        maxima = maps.flatten(2).amax(2)
        maxima.gather(1, channels[:, k : k + 1]).sum().backward()
        # atol relative to the map's scale: a gradient within rounding of zero may be kept
        # by one implementation and clipped by the other (a term of that tiny size).
        scale = xi.grad.abs().max().item()
        np.testing.assert_allclose(
            ours[:, k].numpy(), xi.grad.numpy(), rtol=1e-6, atol=1e-6 * scale
        )
        plain = x.clone().requires_grad_(True)
        d.features(plain)[-1].flatten(2).amax(2).gather(1, channels[:, k : k + 1]).sum().backward()
        assert not np.allclose(plain.grad.numpy(), xi.grad.numpy(), atol=1e-6)
    assert all(m.inplace for m in d.modules() if isinstance(m, nn.LeakyReLU))


def test_map_cell_and_foreground_share():
    cell = map_cell(np.array([[[0.0, 2.0], [-1.0, -2.0]]]))
    np.testing.assert_array_equal(cell, [[[128, 255], [64, 1]]])
    images = np.zeros((1, 1, 4, 4), np.uint8)
    images[0, 0, :2, :2] = 200  # foreground: a quarter of the image
    on_object = np.zeros((1, 2, 1, 4, 4))
    on_object[0, :, 0, :2, :2] = -1.0
    assert foreground_share(images, on_object) == pytest.approx(1.0)
    even = np.ones((1, 2, 1, 4, 4))
    assert foreground_share(images, even) == pytest.approx(0.25)


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_guided_backprop_on_a_tiny_digits_run(zoo_run, tmp_path):
    _, uri, run_id = zoo_run
    out = tmp_path / "out"
    args = ["analyze", run_id, "guided-backprop", "--images", "4", "--features", "2"]
    args += ["--no-progress", "--tracking-uri", uri, "--out", str(out), "--device", "cpu"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output

    # 4 rows of: image, 2 trained maps, a gap, 2 random-init maps; 32 px cells shown x3.
    picture = Image.open(out / "guided_backprop.png")
    cell, pad = 96, 2
    assert picture.size == (pad + 6 * (cell + pad), pad + 4 * (cell + pad))
    pixels = np.asarray(picture)
    for row in range(4):
        y = pad + row * (cell + pad)
        cells = [pixels[y : y + cell, pad + c * (cell + pad) :][:, :cell] for c in range(6)]
        assert (cells[3] == 0).all()  # the gap
        for c in (1, 2, 4, 5):  # maps: 128 +- 127 * value / max |value| (1 or 255 reached)
            assert cells[c].min() == 1 or cells[c].max() == 255
        assert (cells[0][::3, ::3].repeat(3, 0).repeat(3, 1) == cells[0]).all()  # nearest x3

    summary = json.loads((out / "result.json").read_text())
    table = json.loads((out / "features.json").read_text())
    assert len(set(table["images"])) == 4
    for key in ("trained", "random_init"):
        maxima = np.array(table[key]["maxima"])
        assert maxima.shape == (4, 2) and (np.diff(maxima, axis=1) <= 0).all()
        assert 0 < summary["metrics"][f"{key}.foreground_share"] < 1
        assert summary["metrics"][f"{key}.strongest_activation"] == pytest.approx(maxima.mean())

    client = MlflowClient(tracking_uri=uri)
    metrics = client.get_run(run_id).data.metrics
    for key in ("trained.foreground_share", "random_init.foreground_share", "foreground_area"):
        assert metrics[f"analysis.guided-backprop.{key}"] == pytest.approx(summary["metrics"][key])
    logged = {a.path for a in client.list_artifacts(run_id, "analysis/guided-backprop")}
    assert "analysis/guided-backprop/guided_backprop.png" in logged


def test_bad_input_is_refused_in_one_line(zoo_run, tmp_path):
    folder, uri, run_id = zoo_run
    generator = folder / "c" / "runs" / run_id / "generator.pt"
    assert generator.exists()
    result = CliRunner().invoke(
        cli, ["analyze", str(generator), "guided-backprop", "--out", str(tmp_path / "g")]
    )
    assert result.exit_code != 0
    assert "discriminator" in _error_line(result)

    base = ["analyze", run_id, "guided-backprop", "--no-progress", "--tracking-uri", uri]
    base += ["--out", str(tmp_path / "bad"), "--device", "cpu"]
    for bad, word in (("--features", "0"), ("--images", "0"), ("--features", "999")):
        result = CliRunner().invoke(cli, [*base, bad, word])
        assert result.exit_code == 2, result.output
        assert bad in _error_line(result)

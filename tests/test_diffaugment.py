"""DiffAugment: each operation against hand computations with the same random draws,
gradients, policy parsing, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganbench.errors import ConfigError
from ganbench.training.augment import (
    DiffAugment,
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
    cut_out,
    cutout_side,
    diff_augment,
    parse_policy,
    translate,
    translation_limits,
)


def batch(n: int = 4, c: int = 3, h: int = 8, w: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w, generator=g, dtype=torch.float64) * 2 - 1


def shifted_by_hand(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """out[:, i, j] = image[:, i + rows, j + cols], zero outside (slicing, no indices)."""
    _, h, w = image.shape
    out = np.zeros_like(image)
    if abs(rows) >= h or abs(cols) >= w:
        return out
    dst_r, src_r = slice(max(0, -rows), min(h, h - rows)), slice(max(0, rows), min(h, h + rows))
    dst_c, src_c = slice(max(0, -cols), min(w, w - cols)), slice(max(0, cols), min(w, w + cols))
    out[:, dst_r, dst_c] = image[:, src_r, src_c]
    return out


def cut_by_hand(
    image: np.ndarray, centre_row: int, centre_col: int, side: tuple[int, int]
) -> np.ndarray:
    out = image.copy()
    top, left = centre_row - side[0] // 2, centre_col - side[1] // 2
    out[:, max(0, top) : max(0, top + side[0]), max(0, left) : max(0, left + side[1])] = 0
    return out


def test_parse_policy() -> None:
    assert parse_policy("color,translation,cutout") == ("color", "translation", "cutout")
    assert parse_policy(" cutout , color ") == ("cutout", "color")
    assert parse_policy("") == () == parse_policy("none")
    for bad in ["colour", "color,,cutout", "color,flip"]:
        with pytest.raises(ConfigError) as caught:
            parse_policy(bad, setting="augment")
        message = str(caught.value)
        assert "\n" not in message and message.startswith("augment:")
        assert all(name in message for name in ("color", "translation", "cutout"))
    with pytest.raises(ConfigError, match="twice"):
        parse_policy("color,color")
    with pytest.raises(ConfigError):
        DiffAugment("translaton")


def test_empty_policy_is_identity() -> None:
    x = batch()
    assert torch.equal(DiffAugment("")(x), x)
    assert diff_augment("") is None and diff_augment([]) is None
    assert isinstance(diff_augment("color"), DiffAugment)


def test_sizes_follow_the_reference_ratios() -> None:
    assert translation_limits(32, 32) == (4, 4)  # int(32/8 + .5)
    assert translation_limits(28, 64) == (4, 8)  # int(3.5 + .5), int(8.5)
    assert cutout_side(32, 32) == (16, 16)
    assert cutout_side(7, 28) == (4, 14)  # int(3.5 + .5)


@pytest.mark.parametrize(("rows", "cols"), [(0, 0), (1, -2), (-3, 3), (2, 0), (8, 0), (-9, 1)])
def test_translate_equals_hand_shift_with_zero_fill(rows: int, cols: int) -> None:
    x = batch(n=2, h=8, w=7)
    out = translate(x, torch.tensor([rows, 0]), torch.tensor([cols, 0]))
    np.testing.assert_array_equal(out[0].numpy(), shifted_by_hand(x[0].numpy(), rows, cols))
    assert torch.equal(out[1], x[1])  # each image its own offset


def test_random_translation_uses_reference_draws() -> None:
    x = batch(n=6, h=16, w=16)
    torch.manual_seed(3)
    out = DiffAugment("translation")(x)
    torch.manual_seed(3)
    rows = torch.randint(-2, 3, (6,))  # int(16/8 + .5) = 2, rows drawn first
    cols = torch.randint(-2, 3, (6,))
    for k in range(6):
        want = shifted_by_hand(x[k].numpy(), int(rows[k]), int(cols[k]))
        np.testing.assert_array_equal(out[k].numpy(), want)


@pytest.mark.parametrize(("row", "col"), [(4, 4), (3, 5), (0, 0), (9, 1), (10, 9)])
def test_cut_out_explicit_centres(row: int, col: int) -> None:
    x = batch(n=1, h=10, w=9)
    side = (4, 3)
    out = cut_out(x, torch.tensor([row]), torch.tensor([col]), side)
    np.testing.assert_array_equal(out[0].numpy(), cut_by_hand(x[0].numpy(), row, col, side))
    if 2 <= row <= 8 and 1 <= col <= 7:  # square inside the image: exactly side pixels zeroed
        assert int((out[0, 0] == 0).sum()) == 12


def test_random_cutout_zeroes_one_square_per_image() -> None:
    n, h = 64, 8
    ones = torch.ones(n, 2, h, h)
    torch.manual_seed(11)
    out = DiffAugment("cutout")(ones)
    torch.manual_seed(11)
    side = 4  # int(8 * .5 + .5); even side: centres in [0, h]
    centre_rows = torch.randint(0, h + 1, (n,))
    centre_cols = torch.randint(0, h + 1, (n,))
    full_squares = 0
    for k in range(n):
        want = cut_by_hand(
            np.ones((2, h, h)), int(centre_rows[k]), int(centre_cols[k]), (side, side)
        )
        np.testing.assert_array_equal(out[k].numpy(), want)
        zero_rows, zero_cols = np.nonzero(out[k, 0].numpy() == 0)
        # one axis-aligned rectangle, at most side x side, the same in every channel
        height, width = np.ptp(zero_rows) + 1, np.ptp(zero_cols) + 1
        assert zero_rows.size == height * width and height <= side and width <= side
        assert torch.equal(out[k, 0], out[k, 1])
        inside = 2 <= int(centre_rows[k]) <= h - 2 and 2 <= int(centre_cols[k]) <= h - 2
        assert (zero_rows.size == side * side) == inside  # a whole square unless clipped
        full_squares += inside
    assert 0 < full_squares < n  # both cases occurred


def test_colour_ops_match_hand_formulas() -> None:
    x = batch(n=3)
    xn = x.numpy()
    shift = np.array([0.3, -0.4, 0.0])
    out = adjust_brightness(x, torch.tensor(shift)).numpy()
    np.testing.assert_allclose(
        out - xn, np.broadcast_to(shift[:, None, None, None], xn.shape), atol=1e-12
    )
    factor = np.array([0.0, 1.0, 1.7])
    sat = adjust_saturation(x, torch.tensor(factor)).numpy()
    for k in range(3):
        grey = (xn[k, 0] + xn[k, 1] + xn[k, 2]) / 3
        np.testing.assert_allclose(sat[k], grey + factor[k] * (xn[k] - grey), atol=1e-12)
    con = adjust_contrast(x, torch.tensor(factor)).numpy()
    for k in range(3):
        mean = xn[k].sum() / xn[k].size
        np.testing.assert_allclose(con[k], mean + factor[k] * (xn[k] - mean), atol=1e-12)


def test_random_colour_uses_reference_draws_and_ranges() -> None:
    x = batch(n=5)
    torch.manual_seed(7)
    out = DiffAugment("color")(x).numpy()
    torch.manual_seed(7)
    draws = [torch.rand(5, dtype=torch.float64).numpy() for _ in range(3)]
    brightness, saturation, contrast = draws[0] - 0.5, draws[1] * 2, draws[2] + 0.5
    assert np.all(np.abs(brightness) <= 0.5) and np.all((saturation >= 0) & (saturation < 2))
    for k in range(5):
        y = x[k].numpy() + brightness[k]
        grey = y.mean(axis=0, keepdims=True)
        y = grey + saturation[k] * (y - grey)
        y = y.mean() + contrast[k] * (y - y.mean())
        np.testing.assert_allclose(out[k], y, atol=1e-12)


def test_grayscale_saturation_is_identity() -> None:
    x = batch(c=1)
    assert torch.equal(adjust_saturation(x, torch.tensor([0.0, 0.5, 1.5, 2.0], dtype=x.dtype)), x)
    torch.manual_seed(0)
    assert DiffAugment("color,translation,cutout")(x).shape == x.shape


def test_same_seed_same_augmentation() -> None:
    x = batch(n=8, h=12, w=12).float()
    augment = DiffAugment("color,translation,cutout")
    torch.manual_seed(5)
    first = augment(x)
    torch.manual_seed(5)
    assert torch.equal(augment(x), first)
    assert not torch.equal(augment(x), first)  # the stream moved on


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_gradients_reach_input_and_generator(policy: str) -> None:
    augment = DiffAugment(policy)
    torch.manual_seed(2)
    x = batch(n=4).float().requires_grad_(True)
    weights = torch.randn(4, 3, 8, 8)
    (augment(x) * weights).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    generator = torch.nn.Sequential(
        torch.nn.Linear(5, 3 * 8 * 8), torch.nn.Tanh(), torch.nn.Unflatten(1, (3, 8, 8))
    )
    augment(generator(torch.randn(4, 5))).pow(2).sum().backward()
    for name, parameter in generator.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_ops_gradcheck_with_fixed_draws() -> None:
    x = batch(n=2, c=2, h=5, w=6).requires_grad_(True)
    per_image = torch.tensor([0.3, 1.6], dtype=torch.float64)
    checks = {
        "brightness": lambda t: adjust_brightness(t, per_image),
        "saturation": lambda t: adjust_saturation(t, per_image),
        "contrast": lambda t: adjust_contrast(t, per_image),
        "translate": lambda t: translate(t, torch.tensor([1, -2]), torch.tensor([-1, 3])),
        "cut_out": lambda t: cut_out(t, torch.tensor([0, 3]), torch.tensor([2, 5]), (3, 3)),
    }
    for name, op in checks.items():
        assert torch.autograd.gradcheck(op, (x,)), name


def test_traces_without_graph_breaks() -> None:
    augment = torch.compile(
        DiffAugment("color,translation,cutout"), backend="eager", fullgraph=True
    )
    x = batch(n=3).float()
    torch.manual_seed(4)
    compiled = augment(x)
    torch.manual_seed(4)
    assert torch.allclose(compiled, DiffAugment("color,translation,cutout")(x), atol=1e-6)

"""The forgetting analysis (DCGAN paper Sec. 6.3.1): on a generator whose object maps are
known it must find exactly those maps and erase the object alone; on a real run it must
record its numbers; bad boxes files must be one-line errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

from ganbench.cli import cli
from ganbench.errors import UsageError
from ganbench_plugins.analyses.boxes import inside, parse_boxes
from ganbench_plugins.analyses.forgetting import forget, pairs_picture

BLOB_MAPS = [2, 5, 7]
CHANNELS = 12
DEAD_MAP = 0
BIAS = -0.5


class BlobGenerator(nn.Module):
    """z (8) -> 12 maps of 8x8 -> 1x1 conv -> nearest x4 -> tanh, a 32x32 image.

    Maps 2, 5, 7 are 2.0 on a 3x3-cell square and 0 elsewhere: the "object". The square is
    at the top left (pixels 0-12) when z[0] > 0, else at the bottom right (pixels 20-32),
    and absent when z[1] <= -0.5. The other maps are smooth z-dependent waves in [0.1, 0.9]
    that the object occludes (0 on the square), like a wall behind a window; map 0 is dead
    (always 0). The output conv weighs object maps 1.0 and the others 0.1, bias -0.5: the
    object is tanh(5.5) ~ 1, bare "nothing" tanh(-0.5), the background between tanh(-0.42)
    and tanh(0.22).
    """

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.ReLU(inplace=True)  # the hooked feature layer, as in DCGAN
        self.to_image = nn.Conv2d(CHANNELS, 1, 1)
        with torch.no_grad():
            weights = torch.full((CHANNELS,), 0.1)
            weights[BLOB_MAPS] = 1.0
            self.to_image.weight.copy_(weights.view(1, CHANNELS, 1, 1))
            self.to_image.bias.fill_(BIAS)
        self.top = nn.Identity()  # a "highest layer" so that layer 2 is self.hidden

    @staticmethod
    def region(z: torch.Tensor) -> torch.Tensor:
        ii, jj = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
        top_left = (ii < 3) & (jj < 3)
        bottom_right = (ii >= 5) & (jj >= 5)
        where = torch.where(z[:, 0, None, None] > 0, top_left, bottom_right)
        return where & (z[:, 1, None, None] > -0.5)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        region = self.region(z).float()
        ii, jj = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
        maps = []
        for k in range(CHANNELS):
            if k in BLOB_MAPS:
                maps.append(2.0 * region)
            elif k == DEAD_MAP:  # always 0, like a dead ReLU unit: no weight, never dropped
                maps.append(torch.zeros_like(region))
            else:
                phase = 3.0 * z[:, k % 8, None, None]
                wave = 0.5 + 0.4 * torch.sin(0.3 * (k + 1) * ii + 0.2 * (12 - k) * jj + phase)
                maps.append(wave * (1 - region))
        features = self.hidden(torch.stack(maps, dim=1))
        image = nn.functional.interpolate(self.to_image(features), scale_factor=4)
        return torch.tanh(self.top(image))


def blob_boxes(z: torch.Tensor) -> dict[int, list[tuple[float, float, float, float]]]:
    """What a careful labeller draws: the square's pixels, [] where there is none."""
    boxes = {}
    for i, v in enumerate(z):
        if v[1] <= -0.5:
            boxes[i] = []
        elif v[0] > 0:
            boxes[i] = [(0.0, 0.0, 12.0, 12.0)]
        else:
            boxes[i] = [(20.0, 20.0, 32.0, 32.0)]
    return boxes


@pytest.fixture(scope="module")
def blob_case():
    gen = torch.Generator().manual_seed(0)
    z = torch.rand(40, 8, generator=gen) * 2 - 1
    model = BlobGenerator().eval()
    boxes = blob_boxes(z)
    return model, z, boxes


def test_inside_uses_cell_centres():
    # 8x8 cells of 4 pixels on a 32x32 image: centres at 2, 6, 10, ... (half-open boxes).
    mask = inside([(0, 0, 12, 12)], 8, 8, 32)
    assert mask.sum() == 9 and mask[:3, :3].all()
    assert inside([(0, 0, 2, 2)], 8, 8, 32).sum() == 0  # centre 2 is not < 2
    assert inside([(0, 0, 2.5, 2.5)], 8, 8, 32).sum() == 1
    # x is the column, y the row: a wide flat box covers a row.
    assert np.array_equal(np.flatnonzero(inside([(0, 4, 32, 8)], 8, 8, 32).any(axis=1)), [1])
    assert inside([(0, 0, 16, 32), (16, 0, 32, 32)], 4, 4, 32).all()


def test_forget_finds_the_object_maps_and_erases_the_object_only(blob_case):
    model, z, boxes = blob_case
    before = model(z)
    found = forget(model, [model.hidden, model.top], z, boxes)  # layer 2 = model.hidden
    assert found.maps == BLOB_MAPS
    assert found.channels == CHANNELS and found.map_size == (8, 8)
    assert all(w > 0 for w in found.weights)
    with_blob = sum(1 for b in boxes.values() if b)
    assert (found.positives, found.negatives) == (9 * with_blob, 64 * 40 - 9 * with_blob)
    # The object maps separate the classes perfectly, on seen and unseen samples.
    assert found.accuracy == found.balanced_accuracy == 1.0
    assert found.heldout_accuracy == found.heldout_balanced_accuracy == 1.0
    assert found.heldout_folds == 5
    # Inside the boxes the object (tanh(5.5)) becomes bare nothing (tanh(-0.5)): a change of
    # (tanh(5.5) - tanh(-0.5)) / 2 = 0.73104 in 0-1 pixel units; outside nothing changes.
    expected = (math.tanh(5.5) - math.tanh(BIAS)) / 2
    assert found.change_inside == pytest.approx(expected, rel=1e-5)
    assert found.change_inside == pytest.approx(0.73104, abs=1e-5)
    assert found.change_outside < 1e-6 < 0.1 * found.change_inside
    top_left = [k for k, i in enumerate(found.indices) if boxes[i] == [(0, 0, 12, 12)]]
    assert top_left
    region = found.without_maps[top_left, 0, :12, :12]
    assert torch.allclose(region, torch.full_like(region, math.tanh(BIAS)), atol=1e-6)
    assert torch.allclose(found.with_maps, before)  # the "with" images are the generator's
    # The hooks are gone: the generator draws as before.
    assert torch.equal(model(z), before)


def test_forget_drops_the_object_maps_with_unlisted_samples_and_a_loose_box(blob_case):
    model, z, boxes = blob_case
    # Only some samples listed, and one box drawn a pixel too large on each side: the
    # regression still names the object maps, and the change outside stays small.
    subset = {i: b for i, b in boxes.items() if i % 2 == 0}
    first = next(i for i, b in subset.items() if b)
    x0, y0, x1, y1 = subset[first][0]
    subset[first] = [(max(x0 - 1, 0), max(y0 - 1, 0), min(x1 + 1, 32), min(y1 + 1, 32))]
    found = forget(model, [model.hidden, model.top], z, subset)
    assert found.indices == sorted(subset)
    assert found.maps == BLOB_MAPS
    assert found.change_outside < 1e-6
    assert found.change_inside > 0.6
    # One sample: nothing to hold out, and it says so rather than inventing a number.
    alone = forget(model, [model.hidden, model.top], z, {first: boxes[first]})
    assert alone.maps == BLOB_MAPS
    assert alone.heldout_accuracy is None and alone.heldout_folds == 0


def test_forget_rejects_bad_layers_and_unlabelled_data(blob_case):
    model, z, boxes = blob_case
    layers = [model.hidden, model.top]
    with pytest.raises(UsageError, match="--layer 3: the generator has 2 feature layers"):
        forget(model, layers, z, boxes, layer=3)
    with pytest.raises(UsageError, match="no box covers the centre of a cell"):
        forget(model, layers, z, {0: [(0, 0, 1, 1)], 1: []})
    with pytest.raises(UsageError, match="the boxes cover every location"):
        forget(model, layers, z, {0: [(0, 0, 32, 32)]})


def test_pairs_picture_layout(blob_case):
    model, z, boxes = blob_case
    found = forget(model, [model.hidden, model.top], z, boxes)
    picture = pairs_picture(found, boxes, show=6)
    # 6 pairs, 4 a row: 2 rows; 32 px upscaled x2 to 64; cells: pair, blank, pair, ...
    assert picture.size == (2 + 11 * 66, 2 + 2 * 66)
    pixels = np.asarray(picture)
    k = next(k for k in range(6) if boxes[found.indices[k]])
    x0, y0 = (int(v) * 2 for v in boxes[found.indices[k]][0][:2])
    cell_x, cell_y = 2 + 3 * 66 * (k % 4), 2 + 66 * (k // 4)
    assert tuple(pixels[cell_y + y0, cell_x + x0]) == (255, 0, 0)  # the box's corner


def _write(path, data):
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "holds a list, not an object"),
        ({"a": []}, "'a' is not a sample index"),
        ({"-1": []}, "'-1' is not a sample index"),
        ({"3": [[1, 2, 3]]}, "box [1, 2, 3] of sample 3 is not 4 numbers"),
        ({"3": [[1, 2, 3, True]]}, "is not 4 numbers"),
        ({"3": {"x": 1}}, "sample 3 holds no list of boxes"),
        ({"7": [[5, 5, 4, 9]]}, "box [5, 5, 4, 9] of sample 7 is empty or reversed"),
        ({"7": [[0, 0, 33, 10]]}, "box [0, 0, 33, 10] of sample 7 is outside the 32x32 image"),
        ({"7": [[-1, 0, 3, 10]]}, "outside the 32x32 image"),
        ({}, "lists no samples"),
    ],
)
def test_parse_boxes_errors(tmp_path, content, message):
    path = _write(tmp_path / "boxes.json", content)
    with pytest.raises(UsageError) as info:
        parse_boxes(path, 32)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_parse_boxes_reads_indices_and_floats(tmp_path):
    path = _write(tmp_path / "b.json", {"10": [[0, 0, 32, 16], [1.5, 2, 3, 4]], "2": []})
    assert parse_boxes(path, 32) == {10: [(0, 0, 32, 16), (1.5, 2, 3, 4)], 2: []}


# -- on a real run, through the command line ----------------------------------------------------
def _analyze(zoo_run, tmp_path, *args):
    _, uri, run_id = zoo_run
    out = tmp_path / "out"
    argv = ["analyze", run_id, "forgetting", *args, "--seed", "0", "--no-progress"]
    result = CliRunner().invoke(cli, [*argv, "--tracking-uri", uri, "--out", str(out)])
    return result, out


def test_forgetting_on_a_run(zoo_run, tmp_path):
    from mlflow import MlflowClient

    _, uri, run_id = zoo_run
    # The upper half of samples 0-9 "is the object"; samples 10 and 11 have none.
    boxes = {str(i): [[0, 0, 32, 16]] for i in range(10)} | {"10": [], "11": []}
    path = _write(tmp_path / "boxes.json", boxes)
    result, out = _analyze(zoo_run, tmp_path, "--boxes", str(path))
    assert result.exit_code == 0, result.output
    # 12 pairs of 32 px images upscaled x2, 4 pairs a row.
    assert Image.open(out / "forgetting.png").size == (2 + 11 * 66, 2 + 3 * 66)
    table = json.loads((out / "dropped_maps.json").read_text())
    summary = json.loads((out / "result.json").read_text())
    metrics = summary["metrics"]
    # ngf=8 at 32 px: 32 maps of 4x4, 16 of 8x8, 8 of 16x16; layer 2 from the top is 8x8.
    assert metrics["maps_total"] == 16 and table["layer"] == 2 and table["layer_index"] == 1
    assert metrics["maps_dropped"] == len(table["maps"]) == len(table["weights"])
    assert all(0 <= k < 16 for k in table["maps"]) and all(w > 0 for w in table["weights"])
    # 12 samples x 64 locations, a third on the object (rows 0-3 of 10 samples).
    assert metrics["majority_accuracy"] == pytest.approx(1 - 320 / 768)
    for key in ("accuracy", "balanced_accuracy", "heldout_accuracy", "heldout_balanced_accuracy"):
        assert 0 <= metrics[key] <= 1
    assert metrics["change_inside_boxes"] >= 0 and metrics["change_outside_boxes"] >= 0
    client = MlflowClient(tracking_uri=uri)
    logged = client.get_run(run_id).data.metrics
    for key in ("accuracy", "heldout_accuracy", "maps_dropped", "maps_total"):
        assert logged[f"analysis.forgetting.{key}"] == pytest.approx(metrics[key])
    names = {a.path for a in client.list_artifacts(run_id, "analysis/forgetting")}
    assert "analysis/forgetting/dropped_maps.json" in names
    assert "analysis/forgetting/forgetting.png" in names


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"0": [[0, 0, 40, 16]]}, "box [0, 0, 40, 16] of sample 0 is outside the 32x32 image"),
        ('{"0": [[0, 0, 4, 4]', "is not JSON"),
        (None, "does not exist"),
    ],
)
def test_forgetting_bad_boxes_on_the_command_line(zoo_run, tmp_path, content, message):
    path = tmp_path / "boxes.json"
    if content is not None:
        _write(path, content)
    result, out = _analyze(zoo_run, tmp_path, "--boxes", str(path))
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert not (out / "forgetting.png").exists()

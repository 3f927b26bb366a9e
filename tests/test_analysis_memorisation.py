"""The memorisation analysis: the chunked nearest-neighbour search against SciPy, a copying
"generator" flagged and the shipped trained digits generator not, and the command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from mlflow import MlflowClient
from scipy.spatial.distance import cdist

import ganbench_zoo
from ganbench.cli import cli
from ganbench.data.loading import load_images
from ganbench.plugins import load_registries
from ganbench.plugins.interfaces import DatasetRequest
from ganbench.zoo.runtime import latents, open_generator
from ganbench_plugins.analyses.memorisation import memorisation_report, nearest_neighbours

# -- the search ---------------------------------------------------------------------------


def _brute_force(
    queries: np.ndarray, train: np.ndarray, k: int, project=None, exclude=None
) -> tuple[np.ndarray, np.ndarray]:
    """float64 SciPy distances over the whole training set at once: the reference."""
    q = queries.reshape(len(queries), -1).astype(np.float64) / 255
    t = np.asarray(train).reshape(len(train), -1).astype(np.float64) / 255
    if project is not None:
        q, t = q @ project, t @ project
    d = cdist(q, t)
    if exclude is not None:
        d[:, exclude] = np.inf
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1), order


@pytest.fixture(scope="module")
def random_set(tmp_path_factory):
    """50 random 3 x 5 x 5 training images, as an array and as a read-only memory map, and
    9 queries of which query 0 is training image 17 (an exact copy)."""
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, (50, 3, 5, 5), dtype=np.uint8)
    path = tmp_path_factory.mktemp("mm") / "train.u8"
    writer = np.memmap(path, dtype=np.uint8, mode="w+", shape=train.shape)
    writer[:] = train
    writer.flush()
    del writer
    mapped = np.memmap(path, dtype=np.uint8, mode="r", shape=train.shape)
    queries = rng.integers(0, 256, (9, 3, 5, 5), dtype=np.uint8)
    queries[0] = train[17]
    return train, mapped, queries


@pytest.mark.filterwarnings("error::UserWarning")  # e.g. torch's "array is not writable"
@pytest.mark.parametrize("chunk", [7, 50, 1000])
@pytest.mark.parametrize("kind", ["array", "memmap"])
def test_search_equals_brute_force(random_set, chunk, kind):
    train, mapped, queries = random_set
    source = mapped if kind == "memmap" else train
    assert kind == "array" or not source.flags.writeable
    dist, index = nearest_neighbours(torch.from_numpy(queries), source, k=5, chunk=chunk)
    ref_d, ref_i = _brute_force(queries, train, 5)
    np.testing.assert_array_equal(index.numpy(), ref_i)
    np.testing.assert_allclose(dist.numpy(), ref_d, rtol=1e-4, atol=2e-3)
    assert index[0, 0] == 17 and dist[0, 0] < 2e-3


def test_search_in_feature_space_with_exclusions_equals_brute_force(random_set):
    train, mapped, queries = random_set
    project = np.random.default_rng(2).standard_normal((75, 6))
    weight = torch.from_numpy(project).float()

    def features(images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1).float().div(255) @ weight

    exclude = np.zeros(len(train), dtype=bool)
    exclude[[3, 17, 18, 40]] = True
    dist, index = nearest_neighbours(
        queries, mapped, k=4, chunk=7, features=features, exclude=exclude
    )
    ref_d, ref_i = _brute_force(queries, train, 4, project, exclude)
    np.testing.assert_array_equal(index.numpy(), ref_i)
    np.testing.assert_allclose(dist.numpy(), ref_d, rtol=1e-4, atol=2e-3)
    assert not np.isin(index.numpy(), [3, 17, 18, 40]).any()


class _Recording:
    """A training 'array' that records every read and refuses to be read whole."""

    def __init__(self, images: np.ndarray) -> None:
        self.images, self.shape, self.largest = images, images.shape, 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key):
        rows = len(range(*key.indices(len(self)))) if isinstance(key, slice) else 1
        self.largest = max(self.largest, rows)
        return self.images[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole training set was read at once")


def test_search_reads_the_training_set_one_chunk_at_a_time(random_set):
    train, _, queries = random_set
    recording = _Recording(train)
    _, index = nearest_neighbours(queries, recording, k=3, chunk=7)
    assert recording.largest == 7
    np.testing.assert_array_equal(index.numpy(), _brute_force(queries, train, 3)[1])


def test_without_a_held_out_split_a_seeded_share_of_training_is_held_out_and_skipped():
    from types import SimpleNamespace

    from ganbench.plugins.interfaces import ImageArray
    from ganbench_plugins.analyses.memorisation import _held_out

    train = np.random.default_rng(3).integers(0, 256, (40, 1, 4, 4), dtype=np.uint8)
    context = SimpleNamespace(
        seed=5,
        plan=SimpleNamespace(train=SimpleNamespace(split="train")),
        held_out_split=lambda: None,
        images=lambda split=None: ImageArray(train),
    )
    held, exclude, note = _held_out(context, len(train), 1000)
    assert len(held) == 8 == exclude.sum()  # at most a fifth of the training split
    np.testing.assert_array_equal(held, train[exclude])
    assert "no split besides train" in note and "left out of the search" in note
    _, same, _ = _held_out(context, len(train), 1000)
    np.testing.assert_array_equal(exclude, same)  # seeded
    _, index = nearest_neighbours(held, train, k=1, exclude=exclude)
    assert not exclude[index.numpy()].any()


# -- copying and trained generators on digits ------------------------------------------------


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """(train, test) uint8 digits at 32 px, and digits-cnn's pool features."""
    registries = load_registries()
    dataset = registries.datasets.get("digits")
    cache = tmp_path_factory.mktemp("digits")

    def split(name: str) -> np.ndarray:
        request = DatasetRequest(name, 32)
        return load_images(dataset, request, cache, progress=False, say=lambda _: None).images

    ext = registries.extractors.get("digits-cnn").load(None, torch.device("cpu"))
    return split("train"), split("test"), lambda x: ext.module(x)["pool"]


def test_a_generator_that_returns_training_images_is_flagged(digits):
    train, test, features = digits
    rng = np.random.default_rng(0)

    def copier(n: int) -> torch.Tensor:
        return torch.from_numpy(train[rng.choice(len(train), n)]).float() / 127.5 - 1

    result = memorisation_report(copier, train, test, samples=500, features=features, chunk=300)
    m = result.metrics
    assert m["flagged"] == 1.0, result.lines
    for space in ("pixel", "features"):
        assert m[f"{space}.ratio"] < 0.01 and m[f"{space}.copy_share"] > 0.95, m
        assert m[f"{space}.nn_median_held_out"] > 0.5
    assert "possible memorisation" in result.lines[-1]
    # The picture's rows: each shown sample's nearest training image is itself (at 0 up
    # to cdist's float32 matmul rounding, far below any real image's nearest distance).
    held_median = m["pixel.nn_median_held_out"]
    for row in result.tables["nearest"]["pixel"]:
        assert row["distances"][0] < 0.01 * held_median
    assert set(result.pictures) == {"neighbours", "neighbours_features", "distances"}


def test_the_shipped_trained_digits_generator_is_not_flagged(digits):
    train, test, features = digits
    generator = open_generator(Path(ganbench_zoo.__file__).parent / "dcgan-digits-32.onnx", "cpu")
    assert (generator.info.dataset, generator.info.resolution) == ("digits", 32)

    def sample(n: int) -> np.ndarray:
        return generator.generate(latents(generator.info, n, 0))

    result = memorisation_report(sample, train, test, samples=1000, features=features)
    m = result.metrics
    print(result.lines)  # measured: pixel ratio 1.47, features ratio 1.83
    assert m["flagged"] == 0.0 and m["pixel.ratio"] > 0.5 and m["features.ratio"] > 0.5, m
    assert m["pixel.copy_share"] < 0.05 and m["features.copy_share"] < 0.05, m
    assert result.lines[-1].startswith("no sign of copying")


# -- the command --------------------------------------------------------------------------


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and result.exit_code != 0, result.output
    return lines[0]


def test_analyze_memorisation_on_a_tiny_run(zoo_run, tmp_path):
    from ganbench.analysis import as_uint8, prior_latents
    from ganbench.analysis.subject import load_generator_file

    folder, uri, run_id = zoo_run
    out = tmp_path / "out"
    args = ["analyze", run_id, "memorisation", "--samples", "200", "--held-out", "200"]
    args += ["--no-progress", "--tracking-uri", uri, "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "pixel space:" in result.output and "features space:" in result.output
    for name in ("neighbours", "neighbours_features", "distances"):
        assert (out / f"{name}.png").stat().st_size > 0
    summary = json.loads((out / "result.json").read_text())
    assert summary["notes"]["extractor"] == "digits-cnn"
    assert summary["notes"]["held_out"].startswith("200 images of the test split")

    metrics = MlflowClient(tracking_uri=uri).get_run(run_id).data.metrics
    for space in ("pixel", "features"):
        for key in ("nn_median_generated", "nn_median_held_out", "ratio", "copy_share"):
            assert f"analysis.memorisation.{space}.{key}" in metrics
        ratio = metrics[f"analysis.memorisation.{space}.ratio"]
        assert ratio == pytest.approx(
            metrics[f"analysis.memorisation.{space}.nn_median_generated"]
            / metrics[f"analysis.memorisation.{space}.nn_median_held_out"]
        )
    assert metrics["analysis.memorisation.flagged"] in (0.0, 1.0)
    stored = {
        Path(a.path).name for a in MlflowClient(uri).list_artifacts(run_id, "analysis/memorisation")
    }
    assert {"neighbours.png", "distances.png", "nearest.json", "result.json"} <= stored

    # The table's neighbours, recomputed by brute force from the run's own generator.
    subject = load_generator_file(
        folder / "c" / "runs" / run_id / "generator.pt", load_registries()
    )
    generator = subject.model.generator.eval()
    z = prior_latents(subject.model.z_dim, subject.model.latent_distribution, 8, 0)
    with torch.no_grad():
        shown = as_uint8(generator(z))
    train = load_images(
        load_registries().datasets.get("digits"),
        DatasetRequest("train", 32),
        tmp_path,
        progress=False,
        say=lambda _: None,
    ).images
    ref_d, ref_i = _brute_force(shown, train, 5)
    table = json.loads((out / "nearest.json").read_text())["pixel"]
    assert [row["sample"] for row in table] == list(range(8))
    np.testing.assert_array_equal([row["indices"] for row in table], ref_i)
    np.testing.assert_allclose([row["distances"] for row in table], ref_d, rtol=1e-4, atol=2e-3)


def test_bad_input_is_refused_in_one_line(zoo_run, tmp_path):
    folder, uri, run_id = zoo_run
    common = ["--no-progress", "--tracking-uri", uri, "--out", str(tmp_path)]
    zero = CliRunner().invoke(cli, ["analyze", run_id, "memorisation", "--samples", "0", *common])
    assert "--samples must be at least 1" in _error_line(zero)
    generator_file = str(folder / "c" / "runs" / run_id / "generator.pt")
    alone = CliRunner().invoke(cli, ["analyze", generator_file, "memorisation", *common])
    line = _error_line(alone)
    assert "generator file with no dataset" in line and "needs the run's data" in line

"""Zoo files in the ecosystem's own tools: torch-fidelity scores the torch-fidelity flavour
(``zoo export --for torch-fidelity``, ``zoo convert``) through its own API and command line,
refuses the plain file as before, and gets ganbench's numbers; MLflow's pyfunc runs a
published zoo model with what a user passes.

torch-fidelity's Inception runs with random weights (the real ones cannot be downloaded
here), so its scores only show that the pipelines agree; the within-noise comparison uses
the trained digits classifier, where a wrong latent map shows.
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import mlflow
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch_fidelity
from click.testing import CliRunner
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.noise import random_normal, random_uniform_0_1
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from benchmarks.scoring_speed import random_inception_weights
from ganbench.cli import cli
from ganbench.metrics.features import to_uint8
from ganbench.metrics.scoring import evaluate
from ganbench.plugins import load_registries
from ganbench.zoo.index import bundled_index, load_index
from ganbench.zoo.metadata import GeneratorInfo
from ganbench.zoo.runtime import latents, open_generator
from ganbench_plugins.fidelity import InceptionScore, InceptionV3

NAME = "dcgan-digits-32"
CPU = torch.device("cpu")
#: torch-fidelity's default seed: of its noise (np.random.RandomState) and of the ISC splits.
TF_SEED = 2020
#: ISC of the shipped digits generator through the digits classifier at 1000 samples,
#: measured over 30 latent seeds (ganbench's own latents): mean 5.678, standard deviation
#: 0.093. The same file fed U[0, 1) noise without the map to [-1, 1] scores 1.89-1.93.
DIGITS_ISC_1K_STD = 0.093


@pytest.fixture(scope="module")
def shipped():
    """(plain file, torch-fidelity file, index entry) of the shipped digits generator."""
    index = load_index(bundled_index(), Path("unused"))
    entry = index.get(NAME)
    return Path(index.resolve(entry.url)), Path(index.resolve(entry.torch_fidelity.url)), entry


@pytest.fixture(scope="module")
def inception(tmp_path_factory) -> Path:
    return random_inception_weights(tmp_path_factory.mktemp("inception"))


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _inception_isc(weights: Path, n: int, **more) -> dict:
    """torch-fidelity's arguments for ISC of a generator file with z of 100 from U[0, 1)."""
    return dict(
        input1_model_z_type="uniform_0_1", input1_model_z_size=100, input1_model_num_samples=n,
        isc=True, feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=str(weights), cuda=False, cache=False, verbose=False,
        **more,
    )  # fmt: skip


def _queue(images: torch.Tensor):
    """A ganbench sampler handing out ``images`` (floats in [-1, 1]) in order."""
    parts = list(images.split(len(images)))

    def sample(n: int) -> torch.Tensor:
        batch = parts.pop(0)
        assert len(batch) == n
        return batch

    return sample


def test_shipped_flavour_is_listed_with_its_sha256_and_says_how_to_use_it(shipped):
    plain, flavour, entry = shipped
    body = flavour.read_bytes()
    tf = entry.torch_fidelity
    assert (hashlib.sha256(body).hexdigest(), len(body)) == (tf.sha256, tf.size)
    assert tf.size < 5_000_000 and (tf.z_type, tf.z_size) == ("uniform_0_1", 100)
    props = {p.key: p.value for p in onnx.load(str(flavour)).metadata_props}
    assert props["torch_fidelity.z_type"] == "uniform_0_1"
    assert props["torch_fidelity.z_size"] == "100"
    assert props["source_sha256"] == entry.sha256 == hashlib.sha256(plain.read_bytes()).hexdigest()
    assert (
        "--input1-model-z-type uniform_0_1 --input1-model-z-size 100"
        in (props["torch_fidelity.command"])
    )


def test_flavour_images_are_ganbench_quantisation_of_the_plain_file(shipped):
    """torch-fidelity's own noise through the flavour gives, byte for byte, ganbench's
    rounding (the scorer's torch ``to_uint8``) of the plain file's images for 2u - 1."""
    plain, flavour, _ = shipped
    plain_s, flavour_s = _session(plain), _session(flavour)
    rng = np.random.RandomState(TF_SEED)
    batches = [random_uniform_0_1(rng, (n, 100)) for n in (1, 5, 64)]
    batches.append(torch.stack([torch.zeros(100), torch.ones(100)]))  # the ends of [0, 1]
    rounded_up = 0
    for u in batches:
        floats = torch.from_numpy(plain_s.run(["images"], {"z": (u * 2 - 1).numpy()})[0])
        expected = to_uint8(floats).expand(-1, 3, -1, -1).numpy()
        got = flavour_s.run(None, {"z": u.numpy()})[0]
        assert got.dtype == np.uint8 and got.shape == (len(u), 3, 32, 32)
        np.testing.assert_array_equal(got, expected)
        truncated = ((floats + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
        rounded_up += int((got[:, :1] != truncated).sum())
    # Not vacuous: rounding half up (not truncation) decides many of the pixels.
    assert rounded_up > 1000, rounded_up


def test_torch_fidelity_scores_the_flavour_as_ganbench_and_refuses_the_plain_file(
    shipped, inception
):
    """Its own calculate_metrics on the flavour file runs, and its ISC is ganbench's ISC of
    the plain file's images for the same noise; the plain file fails as users saw."""
    plain, flavour, _ = shipped
    n = 20
    theirs = torch_fidelity.calculate_metrics(input1=str(flavour), **_inception_isc(inception, n))
    with pytest.raises(ValueError, match=r"dtype=torch\.uint8"):
        torch_fidelity.calculate_metrics(input1=str(plain), **_inception_isc(inception, n))
    # The noise torch-fidelity drew (one batch: n <= its batch size of 64), mapped to 2u - 1
    # here, through the plain file, scored by ganbench's own scoring path.
    u = random_uniform_0_1(np.random.RandomState(TF_SEED), (n, 100))
    images = torch.from_numpy(_session(plain).run(["images"], {"z": (u * 2 - 1).numpy()})[0])
    loaded = InceptionV3().load(str(inception), CPU)
    ours = evaluate(
        [InceptionScore()], InceptionV3(), loaded, _queue(images), n, None, None,
        seed=TF_SEED, generator_source="the plain file", batch_size=n, progress=False,
    )  # fmt: skip
    assert ours.scores["is_20"] > 1.00001  # the images' features differ: not a trivial 1
    assert ours.scores["is_20"] == pytest.approx(theirs["inception_score_mean"], rel=1e-6)


class DigitsCnnForTorchFidelity(FeatureExtractorBase):
    """ganbench's digits classifier as a torch-fidelity feature extractor (uint8 in)."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        self.net = load_registries().extractors.get("digits-cnn").load(None, CPU).module

    @staticmethod
    def get_provided_features_list():
        return ("pool", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "logits" if metric == "isc" else "pool"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        raise NotImplementedError

    def forward(self, x):
        out = self.net(x)
        return tuple(out[k] for k in self.features_list)


def test_torch_fidelity_isc_agrees_with_ganbench_within_sampling_noise(shipped):
    """torch-fidelity's latents (its RandomState) against ganbench's (NumPy's PCG64): two
    independent 1000-sample ISCs of the same generator through the same classifier differ
    by sampling noise only; without the flavour's map to [-1, 1] they would not."""
    plain, flavour, _ = shipped
    if "ganbench-digits-cnn" not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor("ganbench-digits-cnn", DigitsCnnForTorchFidelity)
    n = 1000
    theirs = torch_fidelity.calculate_metrics(
        input1=str(flavour), input1_model_z_type="uniform_0_1", input1_model_z_size=100,
        input1_model_num_samples=n, isc=True, feature_extractor="ganbench-digits-cnn",
        cuda=False, cache=False, verbose=False,
    )["inception_score_mean"]  # fmt: skip
    extractor = load_registries().extractors.get("digits-cnn")
    loaded = extractor.load(None, CPU)
    generator = open_generator(plain, "cpu")

    def ganbench_isc(z: np.ndarray) -> float:
        images = torch.from_numpy(generator.generate(z))
        result = evaluate(
            [InceptionScore()], extractor, loaded, _queue(images), n, None, None, seed=0,
            generator_source="the plain file", batch_size=n, progress=False,
        )  # fmt: skip
        return result.scores["digits-cnn/is_1k"]

    ours = ganbench_isc(latents(generator.info, n, seed=0))
    bound = 4 * math.sqrt(2) * DIGITS_ISC_1K_STD  # two independent draws, 4 sigma
    assert abs(theirs - ours) < bound, (theirs, ours)
    unmapped = ganbench_isc(np.random.default_rng(0).uniform(0, 1, (n, 100)).astype(np.float32))
    assert abs(theirs - unmapped) > 2 * bound, (theirs, unmapped)


def _checkpoint(zoo_run) -> Path:
    folder, _, run_id = zoo_run
    [path] = folder.glob(f"**/{run_id}/artifacts/checkpoints/last.pt")
    return path


def test_export_for_torch_fidelity_is_scored_by_it_and_the_plain_export_refused(
    zoo_run, tmp_path, inception
):
    args = ["zoo", "export", str(_checkpoint(zoo_run)), "--name", "tiny", "--out", str(tmp_path)]
    result = CliRunner().invoke(cli, [*args, "--for", "torch-fidelity"])
    assert result.exit_code == 0, result.output
    plain, flavour = tmp_path / "tiny.onnx", tmp_path / "tiny.torch-fidelity.onnx"
    [entry] = tomllib.loads((tmp_path / "index.toml").read_text())["generators"]
    body = flavour.read_bytes()
    assert entry["torch_fidelity"] == {
        "url": "tiny.torch-fidelity.onnx", "sha256": hashlib.sha256(body).hexdigest(),
        "size": len(body), "z_type": "uniform_0_1", "z_size": 100,
    }  # fmt: skip
    command = f"fidelity --isc --input1 {flavour} --input1-model-z-type uniform_0_1"
    assert command in result.output
    assert "fidelity --isc --input1 tiny.torch-fidelity.onnx" in (tmp_path / "tiny.md").read_text()
    settings = _inception_isc(inception, 10, isc_splits=2)
    scores = torch_fidelity.calculate_metrics(input1=str(flavour), **settings)
    assert scores["inception_score_mean"] >= 1.0
    with pytest.raises(ValueError, match=r"dtype=torch\.uint8"):
        torch_fidelity.calculate_metrics(input1=str(plain), **settings)


def test_info_prints_the_fidelity_command_and_fidelity_runs_it(shipped, inception, monkeypatch):
    """The exact command `zoo info` prints, run by torch-fidelity's console script (with
    the offline Inception weights and fewer samples appended: its last value wins)."""
    _, flavour, _ = shipped
    monkeypatch.delenv("GANBENCH_ZOO_INDEX", raising=False)
    result = CliRunner().invoke(cli, ["zoo", "info", NAME])
    assert result.exit_code == 0, result.output
    [line] = [x for x in result.output.splitlines() if "score it with: " in x]
    command = shlex.split(line.split("score it with: ")[1])
    assert command == [
        "fidelity", "--isc", "--input1", str(flavour), "--input1-model-z-type", "uniform_0_1",
        "--input1-model-z-size", "100", "--input1-model-num-samples", "10000",
    ]  # fmt: skip
    offline = ["--cpu", "--feature-extractor-weights-path", str(inception)]
    offline += ["--input1-model-num-samples", "10", "--isc-splits", "2", "--json", "--silent"]
    done = subprocess.run(
        [str(Path(sys.executable).with_name("fidelity")), *command[1:], *offline],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    scores = json.loads(done.stdout[done.stdout.index("{") :])
    assert scores["inception_score_mean"] >= 1.0


def test_convert_reproduces_the_shipped_file_and_its_index_entry(shipped, tmp_path):
    """The shipped flavour is what `zoo convert --add-to-index` makes from the plain file."""
    plain, _, entry = shipped
    shutil.copy(plain, tmp_path / plain.name)
    index = tmp_path / "index.toml"
    text = Path(bundled_index()).read_text()
    without = text.split("\n[generators.torch_fidelity]")[0] + "\n"
    index.write_text(without)
    args = ["zoo", "convert", str(tmp_path / plain.name), "--for", "torch-fidelity"]
    result = CliRunner().invoke(cli, [*args, "--add-to-index", str(index)])
    assert result.exit_code == 0, result.output
    made = tmp_path / f"{NAME}.torch-fidelity.onnx"
    assert hashlib.sha256(made.read_bytes()).hexdigest() == entry.torch_fidelity.sha256
    ours = tomllib.loads(index.read_text())["generators"]
    assert ours == tomllib.loads(text)["generators"]


def test_normal_prior_passes_through_and_a_changed_file_is_not_listed(shipped, tmp_path):
    """A normal prior takes torch-fidelity's `normal` noise unchanged; a file whose sha256
    is not the index entry's is not added to it."""
    plain, _, _ = shipped
    model = onnx.load(str(plain))
    for prop in model.metadata_props:
        if prop.key == "z_distribution":
            prop.value = "normal"
    normal = tmp_path / "normal.onnx"
    onnx.save(model, str(normal))
    shutil.copy(bundled_index(), tmp_path / "index.toml")
    args = [
        "zoo",
        "convert",
        str(normal),
        "--for",
        "torch-fidelity",
        "-o",
        str(tmp_path / "n.onnx"),
    ]
    result = CliRunner().invoke(cli, [*args, "--add-to-index", str(tmp_path / "index.toml")])
    assert result.exit_code == 1 and "lists another file for dcgan-digits-32" in result.output
    made = tmp_path / "n.onnx"  # written and checked before the index refused it
    props = {p.key: p.value for p in onnx.load(str(made)).metadata_props}
    assert props["torch_fidelity.z_type"] == "normal"
    noise = random_normal(np.random.RandomState(0), (9, 100)).numpy()
    floats = torch.from_numpy(_session(normal).run(["images"], {"z": noise})[0])
    expected = to_uint8(floats).expand(-1, 3, -1, -1).numpy()
    np.testing.assert_array_equal(_session(made).run(None, {"z": noise})[0], expected)


def test_pull_for_torch_fidelity_and_ganbench_refuses_the_flavour(shipped, tmp_path):
    _, flavour, entry = shipped
    cache = ["--cache-dir", str(tmp_path / "cache")]
    pulled = CliRunner().invoke(
        cli, ["zoo", "pull", NAME, "--index", bundled_index(), *cache, "--for", "torch-fidelity"]
    )
    assert pulled.exit_code == 0, pulled.output
    path = Path(pulled.output.strip().splitlines()[-1])
    assert path.is_file() and path.parent.parent == tmp_path / "cache" / "zoo"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry.torch_fidelity.sha256
    sampled = CliRunner().invoke(
        cli, ["zoo", "sample", str(flavour), "-o", str(tmp_path / "g.png")]
    )
    assert sampled.exit_code == 1 and "torch-fidelity flavour of dcgan-digits-32" in sampled.output
    # An index without the file says how to make one.
    shutil.copy(Path(bundled_index()).with_name(f"{NAME}.onnx"), tmp_path)
    text = Path(bundled_index()).read_text().split("\n[generators.torch_fidelity]")[0] + "\n"
    (tmp_path / "index.toml").write_text(text)
    where = ["--index", str(tmp_path / "index.toml"), *cache]
    info = CliRunner().invoke(cli, ["zoo", "info", NAME, *where])
    assert "zoo convert dcgan-digits-32 --for torch-fidelity" in info.output
    missing = CliRunner().invoke(cli, ["zoo", "pull", NAME, *where, "--for", "torch-fidelity"])
    assert missing.exit_code == 1 and "has no torch-fidelity file" in missing.output


def test_mlflow_pyfunc_predicts_with_what_a_user_passes(shipped, tmp_path, monkeypatch):
    """A published zoo model through `mlflow.pyfunc.load_model(...).predict`: a float32
    N x z_dim array of the prior (as the model card draws it) gives {"images": ...}, the
    onnxruntime images; NumPy's default float64 is refused by MLflow's schema check (the
    README says to cast)."""
    from mlflow.exceptions import MlflowException

    from ganbench.zoo.registry import publish

    plain, _, _ = shipped
    monkeypatch.chdir(tmp_path)  # MLflow's artifacts (./mlruns) land here
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    info = GeneratorInfo.from_props(_session(plain).get_modelmeta().custom_metadata_map, "x")
    publish(plain, info, "# card", aliases=["champion"], registry=uri, tracking=uri, run_id=None)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    z = np.random.default_rng(0).uniform(-1, 1, (16, 100))
    out = model.predict(z.astype(np.float32))
    assert set(out) == {"images"} and out["images"].shape == (16, 1, 32, 32)
    expected = _session(plain).run(["images"], {"z": z.astype(np.float32)})[0]
    np.testing.assert_array_equal(out["images"], expected)
    with pytest.raises(MlflowException, match="Failed to enforce schema"):
        model.predict(z)

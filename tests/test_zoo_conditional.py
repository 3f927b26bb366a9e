"""Class-conditional generators in the zoo: a tiny projection-conditional ResNet run with
an EMA of G exported to ONNX (z, y), its file run by onnxruntime and ``zoo sample
--class``, and its torch-fidelity flavour scored by torch-fidelity's own command line as a
conditional model (``--input1-model-num-classes``).

Every image is checked against an independent computation: the PyTorch sampler rebuilt
from the checkpoint, onnxruntime fed by hand, or torch-fidelity's own ONNX wrapper.
"""

from __future__ import annotations

import inspect
import json
import os
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch_fidelity.utils
from click.testing import CliRunner
from PIL import Image
from torch_fidelity.generative_model_onnx import GenerativeModelONNX

from benchmarks.scoring_speed import random_inception_weights
from ganbench.cli import cli
from ganbench.images import to_uint8
from ganbench.plugins import load_registries
from ganbench.runs.reopen import load_checkpoint
from ganbench.zoo.export import PARITY_ATOL
from ganbench.zoo.index import schema
from ganbench.zoo.metadata import GeneratorInfo
from ganbench.zoo.runtime import labels, latents, open_generator

CLASSES, Z_DIM, NAME = 10, 128, "cond-digits"
#: A projection-conditional ResNet on digits (10 classes), narrow enough for seconds on a
#: CPU, keeping an EMA of G so that the exported network (the EMA) differs from G.
RUN = [
    "run", "resnet", "--dataset", "digits", "--steps", "4", "--batch-size", "16",
    "--set", "conditional=projection", "--set", "ema=0.9", "--set", "g_width=0.125",
    "--set", "d_width=0.25", "--no-progress",
]  # fmt: skip
UNCONDITIONAL = Path(__file__).parents[1] / "ganbench_zoo" / "dcgan-digits-32.onnx"


@pytest.fixture(scope="module")
def conditional(tmp_path_factory):
    """(checkpoint, cache folder, zoo folder, export output) of a tiny conditional run
    exported with its torch-fidelity flavour."""
    folder = tmp_path_factory.mktemp("cond")
    cache = str(folder / "c")
    args = [*RUN, "--cache-dir", cache, "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        trained = CliRunner().invoke(cli, args)
    assert trained.exit_code == 0, trained.output
    [checkpoint] = folder.glob("**/artifacts/checkpoints/last.pt")
    out = folder / "zoo"
    args = ["zoo", "export", str(checkpoint), "--name", NAME, "--out", str(out)]
    exported = CliRunner().invoke(cli, [*args, "--for", "torch-fidelity", "--cache-dir", cache])
    assert exported.exit_code == 0, exported.output
    return checkpoint, cache, out, exported.output


@pytest.fixture(scope="module")
def loaded(conditional):
    model = load_checkpoint(conditional[0], load_registries()).model
    model.sampler.eval()
    return model


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_the_file_takes_z_and_int64_y_on_one_dynamic_batch_axis(conditional):
    _, _, out, output = conditional
    model = onnx.load(str(out / f"{NAME}.onnx"))
    z, y = model.graph.input
    assert (z.name, y.name) == ("z", "y")
    assert z.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert y.type.tensor_type.elem_type == onnx.TensorProto.INT64
    z_dims, y_dims = z.type.tensor_type.shape.dim, y.type.tensor_type.shape.dim
    assert z_dims[0].dim_param and z_dims[0].dim_param == y_dims[0].dim_param  # one batch
    assert z_dims[1].dim_value == Z_DIM and len(y_dims) == 1
    props = {p.key: p.value for p in model.metadata_props}
    info = GeneratorInfo.from_props(props, "test")
    assert (info.num_classes, info.generator) == (CLASSES, "ema")
    # what each label means, from the data the run trained on (digits names its classes)
    assert info.class_names == tuple(map(str, range(10)))
    assert torch.load(conditional[0], weights_only=False)["class_names"] == list(info.class_names)
    assert "labels y: all 10 classes" in info.parity
    assert "the moving average of G (ema), class-conditional on 10 classes" in output
    data = tomllib.loads((out / "index.toml").read_text())
    jsonschema.validate(data, schema())
    [entry] = data["generators"]
    assert (entry["num_classes"], entry["generator"]) == (CLASSES, "ema")
    assert entry["class_names"] == list(map(str, range(10)))
    assert entry["torch_fidelity"]["num_classes"] == CLASSES
    card = (out / f"{NAME}.md").read_text()
    assert "| input `y` | N, int64 class labels in [0, 10) |" in card
    assert "| generator | the exponential moving average" in card


def test_onnxruntime_equals_the_ema_sampler_for_fixed_z_and_several_y(conditional, loaded):
    """The file is the EMA (``model.sampler``), not G: fixed z, several classes, batches."""
    session = _session(conditional[2] / f"{NAME}.onnx")
    rng = torch.Generator().manual_seed(3)
    z = loaded.sample_latent(13, generator=rng)
    for y in ([0] * 13, [9] * 13, [c % CLASSES for c in range(13)], [3, 7, 7, 1] * 3 + [5]):
        y_t = torch.tensor(y, dtype=torch.int64)
        with torch.no_grad():
            expected = loaded.sampler(z, y_t).numpy()
            live = loaded.generator.eval()(z, y_t).numpy()
        got = session.run(["images"], {"z": z.numpy(), "y": y_t.numpy()})[0]
        np.testing.assert_allclose(got, expected, rtol=0, atol=PARITY_ATOL)
        assert np.abs(got - live).max() > 100 * PARITY_ATOL  # G itself was not exported
    one = session.run(["images"], {"z": z[:1].numpy(), "y": np.array([4])})[0]
    with torch.no_grad():
        np.testing.assert_allclose(one, loaded.sampler(z[:1], torch.tensor([4])), atol=PARITY_ATOL)


def test_the_class_changes_the_image_of_the_same_z(conditional):
    session = _session(conditional[2] / f"{NAME}.onnx")
    z = np.repeat(np.random.default_rng(0).standard_normal((1, Z_DIM), np.float32), CLASSES, 0)
    images = session.run(["images"], {"z": z, "y": np.arange(CLASSES)})[0]
    flat = images.reshape(CLASSES, -1)
    gaps = np.abs(flat[:, None] - flat[None]).max(axis=2)[np.triu_indices(CLASSES, 1)]
    assert gaps.min() > 1e-3, gaps.min()


def test_runtime_draws_seeded_uniform_labels_that_extend_with_n(conditional):
    generator = open_generator(conditional[2] / f"{NAME}.onnx", "cpu", say=lambda _: None)
    info = generator.info
    many = labels(info, 5000, seed=7)
    assert many.dtype == np.int64 and set(many.tolist()) == set(range(CLASSES))
    counts = np.bincount(many, minlength=CLASSES)
    assert np.abs(counts - 500).max() < 4 * np.sqrt(5000 * 0.1 * 0.9)  # 4 sigma
    np.testing.assert_array_equal(labels(info, 16, seed=7), many[:16])
    assert not np.array_equal(labels(info, 16, seed=8), many[:16])
    assert labels(GeneratorInfo.from_props(_props(UNCONDITIONAL), "u"), 4, seed=7) is None
    z, y = latents(info, 6, seed=1), labels(info, 6, seed=1)
    expected = _session(generator.path).run(["images"], {"z": z, "y": y})[0]
    np.testing.assert_array_equal(generator.generate(z, y), expected)
    with pytest.raises(Exception, match="class-conditional: give labels y"):
        generator.generate(z)


def _props(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _tile(picture: Path, row: int, column: int) -> np.ndarray:
    """Image (row, column) of a ganbench grid: 2-pixel borders around 32 x 32 tiles."""
    with Image.open(picture) as grid:
        pixels = np.asarray(grid)
    top, left = 2 + row * 34, 2 + column * 34
    return pixels[top : top + 32, left : left + 32]


def test_zoo_sample_class_draws_that_class(conditional, tmp_path):
    plain = conditional[2] / f"{NAME}.onnx"
    out = tmp_path / "three.png"
    args = ["zoo", "sample", str(plain), "-n", "8", "--class", "3", "-o", str(out)]
    result = CliRunner().invoke(cli, [*args, "--seed", "5", "--provider", "cpu"])
    assert result.exit_code == 0, result.output
    z = np.random.default_rng(5).standard_normal((8, Z_DIM), dtype=np.float32)  # the prior
    session = _session(plain)
    three = to_uint8(session.run(["images"], {"z": z, "y": np.full(8, 3)})[0], (-1, 1))
    four = to_uint8(session.run(["images"], {"z": z, "y": np.full(8, 4)})[0], (-1, 1))
    for column in range(8):
        np.testing.assert_array_equal(_tile(out, 0, column), three[column, 0])
    assert not np.array_equal(_tile(out, 0, 0), four[0, 0])
    # several classes: the same z for each, each class on rows of its own
    several = tmp_path / "several.png"
    args = ["zoo", "sample", str(plain), "-n", "4", "--class", "3,5", "--class", "7"]
    result = CliRunner().invoke(cli, [*args, "--nrow", "4", "-o", str(several), "--seed", "5"])
    assert result.exit_code == 0, result.output
    with Image.open(several) as grid:
        assert grid.size == (2 + 4 * 34, 2 + 3 * 34)
    np.testing.assert_array_equal(_tile(several, 0, 2), three[2, 0])
    seven = to_uint8(session.run(["images"], {"z": z[:4], "y": np.full(4, 7)})[0], (-1, 1))
    np.testing.assert_array_equal(_tile(several, 2, 1), seven[1, 0])


@pytest.mark.parametrize(
    ("command", "file", "classes", "message"),
    [
        ("sample", "unconditional", "1", "dcgan-digits-32 is unconditional (it takes no class"),
        ("sample", "conditional", "10", "give --class from 0 to 9 (it has 10)"),
        ("sample", "conditional", "2,-1", "class -1 is not one of"),
        ("sample", "conditional", "x", "--class 'x' is not a class of cond-digits (numbers 0-9;"),
        ("sample", "conditional", "1,,2", "has an empty class"),
        ("interpolate", "unconditional", "0", "dcgan-digits-32 is unconditional"),
        ("arithmetic", "conditional", None, "arithmetic on z keeps one class; give one --class"),
    ],
)
def test_class_errors_are_one_line(conditional, tmp_path, command, file, classes, message):
    path = UNCONDITIONAL if file == "unconditional" else conditional[2] / f"{NAME}.onnx"
    args = ["zoo", command, str(path), "-o", str(tmp_path / "x.png"), "--provider", "cpu"]
    args += ["1,2 - 3,4"] if command == "arithmetic" else []
    args += ["--class", classes] if classes is not None else []
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    [line] = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert message in line
    assert not (tmp_path / "x.png").exists()


def test_torch_fidelity_wrapper_passes_z_and_y_to_the_flavour(conditional):
    """torch-fidelity's own ONNX wrapper, called as its sampling loop calls a conditional
    model (``gen_model(noise, labels)``), gives ganbench's rounding of the plain file."""
    out = conditional[2]
    model = GenerativeModelONNX(str(out / f"{NAME}.torch-fidelity.onnx"), Z_DIM, "normal", 10)
    noise = torch.from_numpy(np.random.RandomState(0).randn(6, Z_DIM)).float()
    y = torch.tensor([0, 9, 3, 3, 5, 1])
    got = model(noise, y).numpy()
    plain = _session(out / f"{NAME}.onnx").run(["images"], {"z": noise.numpy(), "y": y.numpy()})
    expected = np.repeat(to_uint8(plain[0], (-1, 1)), 3, axis=1)
    np.testing.assert_array_equal(got, expected)


def test_torch_fidelity_cli_scores_the_conditional_file(conditional, tmp_path):
    """The command the export prints, with --input1-model-num-classes, through
    torch-fidelity's console script (offline Inception weights and 10 samples appended).
    torch-fidelity 0.4.0 draws the labels with ``np.int``: under a NumPy without it the
    plain command stops there, and the printed fallback (the same ``main``, the alias
    restored) scores it."""
    _, _, out, output = conditional
    [line] = [x for x in output.splitlines() if x.startswith("score it with torch-fidelity: ")]
    command = shlex.split(line.split(": ", 1)[1])
    flavour = str(out / f"{NAME}.torch-fidelity.onnx")
    assert command == [
        "fidelity", "--isc", "--input1", flavour, "--input1-model-z-type", "normal",
        "--input1-model-z-size", "128", "--input1-model-num-classes", "10",
        "--input1-model-num-samples", "10000",
    ]  # fmt: skip
    weights = random_inception_weights(tmp_path)
    offline = ["--cpu", "--feature-extractor-weights-path", str(weights), "--json", "--silent"]
    offline += ["--input1-model-num-samples", "10", "--isc-splits", "2"]
    script = str(Path(sys.executable).with_name("fidelity"))
    done = _run([script, *command[1:], *offline])
    broken = "dtype=np.int)" in inspect.getsource(torch_fidelity.utils)
    if broken and not hasattr(np, "int"):
        assert done.returncode != 0 and "np.int" in done.stderr, done.stderr[-2000:]
        [fallback] = [x for x in output.splitlines() if "numpy.int = int" in x]
        shimmed = shlex.split(fallback.split("same command as: ", 1)[1].rstrip(")"))
        assert shimmed[0] == "python" and shimmed[3:] == command[1:]
        done = _run([sys.executable, *shimmed[1:], *offline])
    assert done.returncode == 0, done.stderr[-2000:]
    scores = json.loads(done.stdout[done.stdout.index("{") :])
    assert scores["inception_score_mean"] >= 1.0


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def test_fresh_scores_sample_labels_as_eval_does(conditional, tmp_path):
    """--eval-samples scores the exported file (onnxruntime) on the latents and labels
    ``ganbench eval`` draws for the PyTorch sampler: the same images, the same scores."""
    checkpoint, cache, _, _ = conditional
    args = ["zoo", "export", str(checkpoint), "--name", "fresh", "--out", str(tmp_path)]
    args += ["--cache-dir", cache, "--eval-samples", "200", "--metrics", "fid", "--no-progress"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    [entry] = tomllib.loads((tmp_path / "index.toml").read_text())["generators"]
    scores = {m["name"]: m["value"] for m in entry["metrics"]}
    evaluated = CliRunner().invoke(
        cli, ["eval", str(checkpoint), "--samples", "200", "--metrics", "fid", "--cache-dir",
              cache, "--no-progress"],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    line = next(x for x in evaluated.output.splitlines() if x.startswith("digits-cnn/fid_200"))
    assert scores["digits-cnn/fid_200"] == pytest.approx(float(line.split()[-1]), rel=1e-3)


def _named(names: tuple[str, ...]) -> GeneratorInfo:
    props = _props(UNCONDITIONAL)
    props |= {"num_classes": str(len(names)), "class_names": json.dumps(list(names))}
    return GeneratorInfo.from_props(props, "named")


def test_a_class_is_given_by_number_or_by_the_name_the_file_records():
    from ganbench.errors import UsageError
    from ganbench.zoo.runtime import check_classes

    info = _named(("bedroom", "church_outdoor", "tower"))
    assert check_classes(info, ["tower", "0", "church_outdoor"]) == [2, 0, 1]
    assert "1 church_outdoor" in info.labels_line()
    with pytest.raises(UsageError, match=r"'kitchen' is not a class .*names: bedroom, church"):
        check_classes(info, ["kitchen"])
    with pytest.raises(UsageError, match="give --class from 0 to 2"):
        check_classes(info, ["3"])


@pytest.mark.parametrize("names", [("a",), ("a", "b", "c", "d"), ("a", "")])
def test_class_names_that_do_not_name_every_class_once_are_refused(names):
    from ganbench.errors import ZooError

    props = _props(UNCONDITIONAL) | {"num_classes": "3", "class_names": json.dumps(list(names))}
    with pytest.raises(ZooError, match="do not name the 3 classes"):
        GeneratorInfo.from_props(props, "bad")


def test_publish_registers_the_conditional_file_with_y_in_its_signature(conditional, tmp_path):
    """``zoo publish`` of a conditional run: MLflow's registry holds a model whose
    signature takes (z float32, y int64); mlflow.pyfunc serves it with the labels and
    gives onnxruntime's images of the exported file, and ``zoo sample models:/NAME@ALIAS
    --class NAME`` pulls it back and draws that class."""
    import mlflow
    from mlflow import MlflowClient

    from ganbench.zoo.registry import mlflow_uris

    checkpoint, cache, out, _ = conditional
    env_before = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    run_id = checkpoint.parents[2].name
    tracking = f"sqlite:///{checkpoint.parents[5] / 'mlflow.db'}"
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    args = ["zoo", "publish", run_id, "--name", "cond-reg", "--tracking-uri", tracking]
    args += ["--registry", registry, "--alias", "champion", "--cache-dir", cache]
    result = CliRunner().invoke(cli, [*args, "--index", str(tmp_path / "index.toml")])
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_uri=registry, registry_uri=registry)
    version = client.get_model_version_by_alias("cond-reg", "champion")
    assert version.run_id == run_id
    with mlflow_uris(registry, registry):
        pyfunc = mlflow.pyfunc.load_model("models:/cond-reg@champion")
    inputs = {s.name: s for s in pyfunc.metadata.get_input_schema().inputs}
    assert list(inputs) == ["z", "y"] and inputs["y"].type == np.dtype(np.int64)
    z = np.random.default_rng(3).standard_normal((4, Z_DIM)).astype(np.float32)
    y = np.array([0, 3, 7, 9], dtype=np.int64)
    served = pyfunc.predict({"z": z, "y": y})["images"]
    local = _session(out / f"{NAME}.onnx").run(["images"], {"z": z, "y": y})[0]
    np.testing.assert_allclose(served, local, atol=1e-5)
    entry = tomllib.loads((tmp_path / "index.toml").read_text())["generators"][0]
    assert entry["num_classes"] == CLASSES and entry["class_names"][7] == "7"

    picture = tmp_path / "seven.png"
    drawn = CliRunner().invoke(
        cli,
        ["zoo", "sample", "models:/cond-reg@champion", "-n", "2", "--class", "7", "-o",
         str(picture), "--provider", "cpu", "--registry", registry, "--cache-dir", cache],
    )  # fmt: skip
    assert drawn.exit_code == 0, drawn.output
    assert picture.exists()
    # the commands left this process's MLflow settings as they were (a later command in
    # the same process, or a notebook, resolves its own store)
    assert {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")} == env_before

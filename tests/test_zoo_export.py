"""``ganbench zoo export``: a checked ONNX file whose images match PyTorch's, with its
metadata, model card, picture and a schema-valid index entry."""

from __future__ import annotations

import hashlib
import tomllib

import jsonschema
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganbench.cli import cli
from ganbench.errors import ZooError
from ganbench.plugins import load_registries
from ganbench.runs.reopen import load_checkpoint
from ganbench.training.plan import plan_run
from ganbench.zoo import export as export_module
from ganbench.zoo.index import schema
from ganbench.zoo.metadata import GeneratorInfo


def _checkpoint(zoo_run):
    folder, _, run_id = zoo_run
    [path] = folder.glob(f"**/{run_id}/artifacts/checkpoints/last.pt")
    return path


def test_export_writes_a_checked_onnx_file_with_a_dynamic_batch(zoo_export):
    out, output = zoo_export
    path = out / "tiny-digits.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain: o.version for o in model.opset_import}[""] == 20
    [z] = model.graph.input
    dims = z.type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].dim_value  # symbolic batch
    assert dims[1].dim_value == 100
    assert "max |diff|" in output and "wrote" in output


def test_onnxruntime_matches_pytorch_at_several_batch_sizes(zoo_run, zoo_export):
    out, _ = zoo_export
    loaded = load_checkpoint(_checkpoint(zoo_run), load_registries())
    generator = loaded.model.generator.eval()
    session = ort.InferenceSession(
        str(out / "tiny-digits.onnx"), providers=["CPUExecutionProvider"]
    )
    for n in (1, 2, 5, 33, 130):
        z = loaded.model.sample_latent(n, generator=torch.Generator().manual_seed(n))
        with torch.no_grad():
            expected = generator(z).numpy()
        got = session.run(["images"], {"z": z.numpy()})[0]
        assert got.shape == (n, 1, 32, 32)
        # float32 kernels in another summation order: 1e-5 is far below one grey level.
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_metadata_says_what_the_generator_is(zoo_run, zoo_export):
    _, _, run_id = zoo_run
    out, _ = zoo_export
    session = ort.InferenceSession(
        str(out / "tiny-digits.onnx"), providers=["CPUExecutionProvider"]
    )
    props = session.get_modelmeta().custom_metadata_map
    info = GeneratorInfo.from_props(props, "test")
    assert (info.architecture, info.dataset, info.resolution, info.channels) == (
        "dcgan",
        "digits",
        32,
        1,
    )
    assert (info.z_dim, info.z_distribution, info.output_range) == (100, "uniform", (-1.0, 1.0))
    assert run_id in info.training_run and "(step 6)" in info.checkpoint
    assert "CC BY 4.0" in info.data_license
    assert info.ganbench_version and info.opset == 20
    # The run's scores at the exported step (6), with how they were measured.
    names = {s.name: s for s in info.metrics}
    assert {"digits-cnn/fid_100", "digits-cnn/is_100"} <= set(names)
    fid = names["digits-cnn/fid_100"]
    assert fid.value > 0 and "100 generated images" in fid.how and "1437 real" in fid.how
    assert "training step 6" in fid.how


def test_index_entry_validates_and_matches_the_file(zoo_export):
    out, _ = zoo_export
    data = tomllib.loads((out / "index.toml").read_text())
    jsonschema.Draft202012Validator.check_schema(schema())
    jsonschema.validate(data, schema())
    [entry] = data["generators"]
    body = (out / "tiny-digits.onnx").read_bytes()
    assert entry["url"] == "tiny-digits.onnx"
    assert entry["sha256"] == hashlib.sha256(body).hexdigest()
    assert entry["size"] == len(body)
    assert entry["card"] == "tiny-digits.md" and entry["picture"] == "tiny-digits.png"


def test_model_card_and_sample_grid(zoo_run, zoo_export):
    out, _ = zoo_export
    card = (out / "tiny-digits.md").read_text()
    body = (out / "tiny-digits.onnx").read_bytes()
    assert hashlib.sha256(body).hexdigest() in card
    assert "![64 samples" in card and "(tiny-digits.png)" in card
    assert "digits-cnn/fid_100" in card and "CC BY 4.0" in card
    with Image.open(out / "tiny-digits.png") as grid:
        assert grid.size == (2 + 8 * 34, 2 + 8 * 34) and grid.mode == "L"
    # The card's config block trains the same plan again.
    config = tomllib.loads(card.split("```toml\n")[1].split("```")[0])
    plan = plan_run(load_registries(), "dcgan", "digits", [("the card", config)])
    assert plan.params() == load_checkpoint(_checkpoint(zoo_run), load_registries()).plan.params()


def test_fresh_scores_are_measured_on_the_onnx_file_and_agree_with_eval(zoo_run, tmp_path):
    """--eval-samples scores the exported file through onnxruntime; ``ganbench eval`` on
    the same checkpoint scores PyTorch's images: same latents, so (up to the rare pixel
    that rounds the other way) the same FID."""
    folder, _, _ = zoo_run
    ckpt = str(_checkpoint(zoo_run))
    cache = str(folder / "c")
    args = ["zoo", "export", ckpt, "--name", "fresh", "--out", str(tmp_path), "--cache-dir", cache]
    result = CliRunner().invoke(cli, [*args, "--eval-samples", "300", "--no-progress"])
    assert result.exit_code == 0, result.output
    data = tomllib.loads((tmp_path / "index.toml").read_text())
    scores = {m["name"]: m for m in data["generators"][0]["metrics"]}
    assert "onnxruntime" in scores["digits-cnn/fid_300"]["how"]
    evaluated = CliRunner().invoke(
        cli, ["eval", ckpt, "--samples", "300", "--cache-dir", cache, "--no-progress"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    line = next(x for x in evaluated.output.splitlines() if x.startswith("digits-cnn/fid_300"))
    assert scores["digits-cnn/fid_300"]["value"] == pytest.approx(float(line.split()[-1]), rel=1e-3)


def test_export_from_a_checkpoint_file_without_scores_says_so(zoo_run, tmp_path):
    result = CliRunner().invoke(
        cli, ["zoo", "export", str(_checkpoint(zoo_run)), "--name", "plain", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "no scores at this checkpoint" in result.output
    [entry] = tomllib.loads((tmp_path / "index.toml").read_text())["generators"]
    assert entry["metrics"] == [] and entry["training_run"].endswith("last.pt")


def test_failed_parity_check_leaves_nothing_behind(zoo_run, tmp_path, monkeypatch):
    """A zero tolerance fails on float differences: the folder and index stay as they were."""
    (tmp_path / "index.toml").write_text('format = "ganbench-zoo-index/1"\ngenerators = []\n')
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(export_module, "PARITY_ATOL", 0.0)
    args = ["zoo", "export", str(_checkpoint(zoo_run)), "--name", "bad", "--out", str(tmp_path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "differs from PyTorch" in result.output and "nothing was written" in result.output
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "Bad Name"], "is not allowed"),
        (["--name", "ok", "--eval-samples", "3"], "at least 10"),
    ],
)
def test_export_rejects_bad_options(zoo_run, tmp_path, args, message):
    result = CliRunner().invoke(
        cli, ["zoo", "export", str(_checkpoint(zoo_run)), "--out", str(tmp_path), *args]
    )
    assert result.exit_code == 2 and message in result.output
    assert not list(tmp_path.glob("*.onnx"))


def test_export_of_a_missing_checkpoint_fails_clearly(tmp_path):
    result = CliRunner().invoke(
        cli, ["zoo", "export", str(tmp_path / "none.pt"), "--name", "x", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0 and "none.pt" in result.output


def test_parity_check_raises_on_a_different_network(zoo_run, zoo_export):
    out, _ = zoo_export
    other = load_checkpoint(_checkpoint(zoo_run), load_registries()).model.generator
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05)
    with pytest.raises(ZooError, match="differs from PyTorch"):
        export_module.check_parity(other, out / "tiny-digits.onnx", 100)


def test_scores_that_cannot_be_read_stop_the_export_before_it_writes(
    zoo_run, tmp_path, monkeypatch
):
    """A store that fails while the run's scores are read (here: the download of the
    scoring file fails, as a server that goes away does): one line, exit 1, and no zoo
    folder, where the export used to write an entry with no scores, and say nothing."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    _, uri, run_id = zoo_run
    real = MlflowClient.download_artifacts

    def failing(self, run, path, dst_path=None):
        if path.startswith("scoring/"):
            raise MlflowException("API request to http://store/ failed with exception boom")
        return real(self, run, path, dst_path)

    monkeypatch.setattr(MlflowClient, "download_artifacts", failing)
    out = tmp_path / "zoo"
    args = ["zoo", "export", run_id, "--name", "x", "--out", str(out), "--tracking-uri", uri]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    [error] = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert error == (
        f"Error: cannot read the scores of run {run_id} at step 6 from the MLflow store at"
        f" {uri} (API request to http://store/ failed with exception boom); nothing was"
        " written. Export again once it answers, or add --eval-samples N to measure the"
        " exported file itself"
    )
    assert not out.exists()

"""``ganbench analyze``: the plugin kind, the listing, what lands in the run, the latent
analyses against independent computations, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from mlflow import MlflowClient
from PIL import Image

from ganbench.analysis import prior_latents
from ganbench.cli import cli
from ganbench.images import grid, to_uint8
from ganbench.plugins import load_registries
from ganbench.runs.reopen import load_checkpoint
from ganbench.zoo.metadata import GeneratorInfo
from ganbench.zoo.runtime import latents as zoo_latents

BUILT_IN = ["arithmetic", "forgetting", "guided-backprop", "memorisation", "samples", "walk"]


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_built_in_analyses_are_plugins_listed_with_their_options():
    registries = load_registries()
    assert registries.analyses.names() == BUILT_IN
    assert {registries.analyses.plugin_of(n) for n in BUILT_IN} == {"analyses"}
    listed = _invoke("analyze", "--list")
    assert listed.exit_code == 0, listed.output
    for name in BUILT_IN:
        assert f"\n{name}: " in f"\n{listed.output}"
    assert "--boxes (required)" in listed.output and "needs: data, discriminator" in listed.output
    plugins = _invoke("plugins")
    assert "analyses: arithmetic, forgetting, guided-backprop, memorisation, samples, walk" in (
        plugins.output
    )


def test_run_latents_are_the_zoo_latents():
    for distribution in ("uniform", "normal"):
        info = GeneratorInfo.__new__(GeneratorInfo)
        object.__setattr__(info, "z_dim", 7)
        object.__setattr__(info, "z_distribution", distribution)
        np.testing.assert_array_equal(
            prior_latents(7, distribution, 5, 3).numpy(), zoo_latents(info, 5, 3)
        )
    # the first k of n latents do not depend on n
    np.testing.assert_array_equal(
        prior_latents(4, "uniform", 3, 1), prior_latents(4, "uniform", 9, 1)[:3]
    )


def _generate(generator: torch.nn.Module, z: np.ndarray) -> np.ndarray:
    generator.eval()
    with torch.no_grad():
        return to_uint8(generator(torch.from_numpy(z)).numpy())


def test_arithmetic_picture_equals_an_independent_computation(zoo_run, tmp_path):
    folder, uri, run_id = zoo_run
    out = tmp_path / "arith"
    result = _invoke(
        "analyze", run_id, "arithmetic", "--expression", "0,1 - 2 + 3,4,5", "--variations",
        "2", "--seed", "4", "--out", str(out), "--tracking-uri", uri, "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    got = np.asarray(Image.open(out / "arithmetic.png"))
    # by hand: the prior of seed 4 (NumPy PCG64, uniform on [-1, 1]), group means, the sum
    [*_, last] = sorted((folder / "c" / "runs" / run_id / "checkpoints").glob("step-*.pt"))
    loaded = load_checkpoint(last, load_registries())
    z = np.random.default_rng(4).uniform(-1, 1, (6, loaded.model.z_dim)).astype(np.float32)
    m0, m1, m2 = z[[0, 1]].mean(0), z[[2]].mean(0), z[[3, 4, 5]].mean(0)
    total = m0 - m1 + m2
    jitter = np.random.default_rng([4, 2]).uniform(-0.25, 0.25, (2, z.shape[1]))
    rows_z = [
        np.stack([z[0], z[1], m0]),
        np.stack([z[2], m1]),
        np.stack([z[3], z[4], z[5], m2]),
        np.stack([total, total + jitter[0], total + jitter[1]]).astype(np.float32),
    ]
    images = [_generate(loaded.model.generator, r) for r in rows_z]
    expected = np.asarray(grid([list(r) for r in images]))
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_analyses_land_in_the_run_and_locally(zoo_run, tmp_path):
    _, uri, run_id = zoo_run
    client = MlflowClient(uri)
    for name, extra in [("samples", ["-n", "12", "--nrow", "6"]), ("walk", ["--rows", "2"])]:
        out = tmp_path / name
        args = ["analyze", run_id, name, *extra, "--out", str(out), "--tracking-uri", uri]
        result = _invoke(*args, "--no-progress")
        assert result.exit_code == 0, result.output
        assert f"analysis/{name}/" in result.output
        summary = json.loads((out / "result.json").read_text())
        assert summary["source"] == f"runs:/{run_id}/checkpoints/last.pt"
        artifacts = {a.path for a in client.list_artifacts(run_id, f"analysis/{name}")}
        assert f"analysis/{name}/result.json" in artifacts
        assert any(p.endswith(".png") for p in artifacts)
        assert client.get_run(run_id).data.tags[f"analysis.{name}.how"]
    sheet = Image.open(tmp_path / "samples" / "sheet.png")
    assert sheet.size == (6 * 100 + 4, 2 * (96 + 14 + 4) + 4)
    walk = client.get_run(run_id).data.metrics["analysis.walk.largest_step_share"]
    assert 1 / 9 <= walk <= 1


def test_generator_file_runs_generator_analyses_only(zoo_run, tmp_path):
    folder, _, run_id = zoo_run
    generator = folder / "c" / "runs" / run_id / "generator.pt"
    ok = _invoke("analyze", str(generator), "walk", "--rows", "1", "--out", str(tmp_path / "w"))
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "w" / "walks.png").is_file()
    refused = _invoke("analyze", str(generator), "memorisation", "--out", str(tmp_path / "m"))
    assert refused.exit_code != 0
    assert "generator file with no dataset" in refused.output
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["RUN", "nope"], "unknown analysis 'nope'"),
        (["RUN", "walk", "--bogus", "3"], "No such option '--bogus'"),
        (["RUN", "arithmetic"], "Missing option --expression"),
        (["RUN", "walk", "--steps", "1"], "--steps at least 2"),
        ([], "give a run ID (or checkpoint file) and an analysis name"),
        (["missing.pt", "walk"], "missing.pt does not exist"),
        (["RUN", "arithmetic", "--expression", "1 +"], "cannot read '1 +'"),
    ],
)
def test_bad_input_is_one_line(zoo_run, args, message):
    _, uri, run_id = zoo_run
    args = [run_id if a == "RUN" else a for a in args]
    result = _invoke("analyze", *args, "--tracking-uri", uri, "--no-progress")
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and message in lines[0], result.output


def test_unknown_run_and_unreachable_server(zoo_run):
    _, uri, _ = zoo_run
    unknown = _invoke("analyze", "0" * 32, "walk", "--tracking-uri", uri)
    assert unknown.exit_code != 0 and "no run '000" in unknown.output
    down = _invoke("analyze", "0" * 32, "walk", "--tracking-uri", "http://127.0.0.1:9")
    assert down.exit_code != 0 and "127.0.0.1:9" in down.output

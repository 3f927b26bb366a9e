"""A real training run into a real MLflow SQLite store, read back with MlflowClient."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from conftest import TINY_RUN
from mlflow import MlflowClient

import ganbench
from ganbench.plugins.interfaces import ImageShape
from ganbench.rundir import checkpoint
from ganbench_plugins.dcgan.config import DCGANConfig
from ganbench_plugins.dcgan.networks import Generator


def _artifact_files(client: MlflowClient, run_id: str, path: str = "") -> list[str]:
    out = []
    for item in client.list_artifacts(run_id, path):
        out += _artifact_files(client, run_id, item.path) if item.is_dir else [item.path]
    return out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny run through the CLI, shared by the tests that read it back."""
    from click.testing import CliRunner

    from ganbench.cli import cli

    folder = tmp_path_factory.mktemp("run")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        result = CliRunner().invoke(
            cli,
            [
                "run",
                "dcgan",
                "--dataset",
                "digits",
                "--tracking-uri",
                uri,
                "--experiment",
                "tests",
                "--run-name",
                "tiny",
                "--seed",
                "3",
                *TINY_RUN,
            ],
        )
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    return client, run, result, folder


def test_run_finishes_with_every_hyperparameter_as_a_param(finished_run):
    _, run, result, _ = finished_run
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "tiny"
    p = run.data.params
    assert p["architecture"] == "dcgan" and p["dataset"] == "digits"
    assert (p["lr"], p["beta1"], p["beta2"]) == ("0.0002", "0.5", "0.999")
    assert (p["batch_size"], p["z_dim"], p["resolution"], p["seed"]) == ("16", "100", "32", "3")
    assert (p["ngf"], p["steps"], p["z_distribution"], p["device"]) == ("8", "6", "uniform", "cpu")
    assert p["num_images"] == "1437"
    assert run.info.run_id in result.output


def test_step_metrics_are_logged_at_each_log_interval(finished_run):
    client, run, _, _ = finished_run
    for key in ("loss_d", "loss_g", "d_real", "d_fake", "images_per_sec"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [2, 4, 6], key
        assert all(m.value == m.value for m in history)  # finite, not NaN
    assert all(0 < m.value < 1 for m in client.get_metric_history(run.info.run_id, "d_real"))
    assert all(m.value > 0 for m in client.get_metric_history(run.info.run_id, "images_per_sec"))


def test_tags_record_versions_and_commit(finished_run):
    _, run, _, _ = finished_run
    tags = run.data.tags
    assert tags["ganbench.architecture"] == "dcgan" and tags["ganbench.dataset"] == "digits"
    assert tags["torch.version"] == torch.__version__
    assert tags["ganbench.version"]
    # The tests run from a git checkout: the commit of the one ganbench was imported from,
    # as git itself reports it.
    source = Path(ganbench.__file__).resolve().parent
    git = ["git", "-C", str(source)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    assert tags["git.commit"] == head.stdout.strip()
    assert len(tags["git.commit"]) == 40
    assert tags["mlflow.source.git.commit"] == tags["git.commit"]
    changed = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert tags["git.dirty"] == str(bool(changed.stdout.strip())).lower()


def test_artifacts_sample_grids_checkpoint_and_generator(finished_run):
    client, run, _, folder = finished_run
    files = _artifact_files(client, run.info.run_id)
    grids = [f for f in files if f.startswith("images/samples+step+") and f.endswith(".png")]
    assert sorted(int(f.split("+")[2]) for f in grids) == [3, 6]
    assert {"samples_final.png", "loss_curves.png", "generator.pt", "checkpoints/last.pt"} <= set(
        files
    )
    local = Path(client.download_artifacts(run.info.run_id, "", str(folder / "dl")))
    from PIL import Image

    grid = Image.open(local / "samples_final.png")
    assert grid.size == (8 * 34 + 2, 8 * 34 + 2)  # 64 images of 32px, 2px padding, 8 per row
    assert Image.open(local / "loss_curves.png").size[0] > 500

    ckpt = checkpoint.load_file(local / "checkpoints/last.pt", checkpoint.CHECKPOINT_FORMAT)
    assert ckpt["step"] == 6 and set(ckpt["state"]) == {
        "generator",
        "discriminator",
        "opt_g",
        "opt_d",
        "scaler",
    }
    gen = checkpoint.load_file(local / "generator.pt", checkpoint.GENERATOR_FORMAT)
    assert gen["architecture"] == "dcgan" and gen["image_shape"] == [1, 32]
    G = Generator(DCGANConfig(**gen["config"]), *gen["image_shape"])
    G.load_state_dict(gen["state_dict"])
    G.eval()
    assert G(torch.zeros(2, 100)).shape == (2, 1, 32, 32)
    # the final generator is the checkpoint's generator
    for k, v in gen["state_dict"].items():
        assert torch.equal(v, ckpt["state"]["generator"][k])
    assert ImageShape(*gen["image_shape"]) == ImageShape(1, 32)


def test_the_run_folder_holds_the_checkpoints_and_nothing_waits(finished_run):
    _, run, result, _ = finished_run
    folder = Path(run.data.tags["ganbench.run_dir"])
    assert f"run folder: {folder}" in result.output
    assert folder.parent.name == "runs" and folder.name == run.info.run_id
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == [
        "best.pt",  # the digits preset scores at the end
        "step-000000004.pt",
        "step-000000006.pt",
    ]
    assert (folder / "generator.pt").is_file() and (folder / "samples_final.png").is_file()
    assert not list((folder / "outbox" / "files").iterdir())  # grids deleted once delivered
    assert (folder / "outbox" / "delivered.json").is_file()
    from ganbench.tracking.outbox.journal import pending_in

    assert pending_in(folder / "outbox") == 0


def test_same_seed_same_run(ganbench_run_cli, ganbench_tracking_uri, finished_run):
    _, first, _, _ = finished_run
    result = ganbench_run_cli(
        "run",
        "dcgan",
        "--dataset",
        "digits",
        "--tracking-uri",
        ganbench_tracking_uri,
        "--seed",
        "3",
        *TINY_RUN,
    )
    assert result.exit_code == 0, result.output
    other = MlflowClient(tracking_uri=ganbench_tracking_uri)
    [again] = other.search_runs([other.get_experiment_by_name("ganbench").experiment_id])
    for key in ("loss_d", "loss_g", "d_real", "d_fake"):
        assert again.data.metrics[key] == first.data.metrics[key], key


def test_default_store_is_sqlite_in_the_working_directory(ganbench_run_cli, tmp_path):
    result = ganbench_run_cli("run", "dcgan", "--dataset", "digits", *TINY_RUN)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mlflow.db").is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("ganbench").experiment_id])
    assert run.info.status == "FINISHED"


def test_mlflow_tracking_uri_environment_variable(ganbench_run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'env.db'}")
    result = ganbench_run_cli("run", "dcgan", "--dataset", "digits", *TINY_RUN)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env.db").is_file() and not (tmp_path / "mlflow.db").exists()


def _checkpoint_uploads(folder: Path) -> list[int]:
    """Steps of the checkpoints a run wrote, from its journal's uploads of last.pt."""
    from ganbench.tracking.outbox.journal import read_ops

    ops = read_ops(folder / "outbox", b'"name":"last.pt"')
    names = [Path(op["path"]).name for op in ops]
    return [int(name.split("-")[1].split(".")[0]) for name in names]


@pytest.mark.parametrize(("minutes", "expected"), [("0", [6]), ("0.0001", [1, 2, 3, 4, 5, 6])])
def test_checkpoints_follow_the_clock_unless_steps_are_given(
    ganbench_run_cli, tmp_path, minutes, expected
):
    args = list(TINY_RUN)
    at = args.index("checkpoint_every=4")
    del args[at - 1 : at + 1]  # and its --set
    run_dir = tmp_path / "run"
    result = ganbench_run_cli(
        "run", "dcgan", "--dataset", "digits", *args, "--set", f"checkpoint_minutes={minutes}",
        "--run-dir", str(run_dir), "--set", "eval_every=0",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _checkpoint_uploads(run_dir) == expected  # 0.006 s: one at every step boundary
    assert len(list((run_dir / "checkpoints").glob("step-*.pt"))) == min(2, len(expected))


def test_runs_names_an_unknown_experiment(ganbench_run_cli, ganbench_tracking_uri):
    ganbench_run_cli(
        "run", "dcgan", "--dataset", "digits", *TINY_RUN, "--tracking-uri", ganbench_tracking_uri
    )
    result = ganbench_run_cli(
        "runs", "--experiment", "nope", "--tracking-uri", ganbench_tracking_uri
    )
    assert result.exit_code == 2
    assert "no experiment 'nope'" in result.output and "ganbench" in result.output

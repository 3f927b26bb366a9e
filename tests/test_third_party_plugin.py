"""A third-party plugin, for real: ``tests/third_party_plugin`` is a package of its own
(``ganbench-tinygan``, its own pyproject.toml) that registers the ``tinygan`` architecture
through the ``ganbench`` entry-point group. It is installed with pip into a folder of its
own (never into ganbench's environment) and found through PYTHONPATH, then listed, trained,
scored and exported to the zoo by the ``ganbench`` command as users start it, with no
change to ganbench."""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from mlflow import MlflowClient

from ganbench.zoo.metadata import GeneratorInfo

GANBENCH = str(Path(sys.executable).with_name("ganbench"))
PLUGIN_SOURCE = Path(__file__).with_name("third_party_plugin")
STEPS, EVAL_EVERY, EVAL_SAMPLES = 40, 20, 500
FID, IS = f"digits-cnn/fid_{EVAL_SAMPLES}", f"digits-cnn/is_{EVAL_SAMPLES}"
#: A freshly initialised TinyGAN scores FID ~90 and IS 1.0 on digits (500 samples through
#: digits-cnn; measured); after 20 and 40 steps of batch 32, FID 27.5 and 15.4, IS 2.3 and
#: 3.2 (measured, one thread).
TRAINED_FID, TRAINED_IS = 60.0, 1.5


def _env(home: Path, site: Path | None) -> dict[str, str]:
    """The environment of a ``ganbench`` process: caches in ``home``, nothing of the
    caller's MLflow or ganbench settings, and the plugin's folder on the path if given."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "GANBENCH_", "PIP_")) and k != "PYTHONPATH"
    }
    env["GANBENCH_CACHE_DIR"] = str(home / "cache")
    # One torch thread each, as the other tests' runs (threads=1): on a busy 2-core machine
    # two-thread kernels stall (0.03 s a training step with one thread, up to 1.4 s with
    # two, measured here with other tests running).
    env["OMP_NUM_THREADS"] = "1"
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return env


def _ganbench(*args: str, home: Path, site: Path | None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [GANBENCH, *args],
        cwd=home,
        env=_env(home, site),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The package installed by pip into a folder of its own: built from a copy, so that
    no build/ or *.egg-info is left in the source tree; no index, no dependencies."""
    work = tmp_path_factory.mktemp("tinygan-install")
    source, site = work / "source", work / "site"
    shutil.copytree(
        PLUGIN_SOURCE,
        source,
        ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"),
    )
    # Built with the setuptools of ganbench's environment (torch requires setuptools>=77),
    # not an isolated one fetched from an index: nothing is downloaded.
    pip = [sys.executable, "-I", "-m", "pip", "install", "--no-deps", "--no-build-isolation"]
    pip += ["--no-index", "--no-cache-dir", "--disable-pip-version-check", "--quiet"]
    done = subprocess.run(
        [*pip, "--target", str(site), str(source)],
        env=_env(work, None),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [dist_info] = site.glob("ganbench_tinygan-0.1.0.dist-info")
    entry_points = (dist_info / "entry_points.txt").read_text(encoding="utf-8")
    assert "[ganbench]\ntinygan = ganbench_tinygan" in entry_points
    return site


@pytest.fixture(scope="module")
def tinygan_run(plugin_site, tmp_path_factory) -> tuple[Path, str, str, str]:
    """``ganbench run tinygan --dataset digits``, scored twice, in a SQLite store of its
    own: (folder, tracking URI, run ID, output)."""
    home = tmp_path_factory.mktemp("tinygan-run")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    done = _ganbench(
        *("run", "tinygan", "--dataset", "digits", "--steps", str(STEPS), "--batch-size", "32"),
        *("--set", "log_every=5", "--set", f"sample_every={EVAL_EVERY}"),
        *("--eval-every", str(EVAL_EVERY)),
        *("--eval-samples", str(EVAL_SAMPLES), "--metrics", "fid,is"),
        *("--tracking-uri", uri, "--run-name", "third-party", "--no-progress"),
        home=home,
        site=plugin_site,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("ganbench").experiment_id])
    return home, uri, run.info.run_id, done.stdout + done.stderr


def test_without_the_package_on_the_path_tinygan_is_unknown(plugin_site, tmp_path):
    """The entry point is what makes it appear: pip left ganbench's environment alone."""
    assert importlib.util.find_spec("ganbench_tinygan") is None
    done = _ganbench(
        *("run", "tinygan", "--dataset", "digits", "--steps", "1", "--no-progress"),
        *("--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"),
        home=tmp_path,
        site=None,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("Error: unknown architecture 'tinygan'."), line
    available = line.partition("Available: ")[2]
    assert "dcgan" in available and "tinygan" not in available, line
    assert not (tmp_path / "mlflow.db").exists()


def test_plugins_lists_it_with_its_distribution(plugin_site, tmp_path):
    done = _ganbench("plugins", home=tmp_path, site=plugin_site)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    module = plugin_site / "ganbench_tinygan" / "__init__.py"
    where = lines.index(
        f"tinygan  (entry point ganbench_tinygan from ganbench-tinygan 0.1.0; {module})"
    )
    assert lines[where + 1] == "    architectures: tinygan"
    # next to the built-in plugins, which come through the same group
    builtin = "dcgan  (entry point ganbench_plugins.dcgan from ganbench "
    assert any(line.startswith(builtin) for line in lines)


def test_it_trains_in_a_tracked_mlflow_run(tinygan_run):
    _, uri, run_id, output = tinygan_run
    assert f"finished {STEPS} steps: run {run_id}" in output
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "third-party"
    params = run.data.params
    # the plugin's own hyperparameters (its dataclass's defaults), beside the runner's
    expected = {"architecture": "tinygan", "dataset": "digits", "resolution": "32"}
    expected |= {"z_dim": "32", "z_distribution": "normal", "width": "16", "lr": "0.001"}
    expected |= {"steps": str(STEPS), "batch_size": "32", "total_steps": str(STEPS)}
    assert {k: params.get(k) for k in expected} == expected
    assert run.data.tags["ganbench.architecture"] == "tinygan"
    for key in ("loss_d", "loss_g", "d_real", "d_fake", "images_per_sec"):
        history = client.get_metric_history(run_id, key)
        assert sorted(m.step for m in history) == list(range(5, STEPS + 1, 5)), key
        assert all(math.isfinite(m.value) for m in history), key
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"generator.pt", "samples_final.png", "loss_curves.png", "checkpoints"} <= artifacts
    checkpoints = {a.path for a in client.list_artifacts(run_id, "checkpoints")}
    assert {"checkpoints/last.pt", "checkpoints/best.pt"} <= checkpoints


def test_it_is_scored_and_has_learnt(tinygan_run):
    _, uri, run_id, _ = tinygan_run
    client = MlflowClient(tracking_uri=uri)
    scores = {key: client.get_metric_history(run_id, key) for key in (FID, IS)}
    for key, history in scores.items():
        assert sorted(m.step for m in history) == [EVAL_EVERY, STEPS], key
    final = {key: max(history, key=lambda m: m.step).value for key, history in scores.items()}
    assert final[FID] < TRAINED_FID, final
    assert final[IS] > TRAINED_IS, final
    tags = client.get_run(run_id).data.tags
    assert tags["checkpoint.last"] == f"checkpoints/last.pt: step {STEPS}"
    assert tags["checkpoint.best"].startswith("checkpoints/best.pt: step ")


def test_it_is_exported_to_the_zoo_and_runs_in_onnxruntime(plugin_site, tinygan_run):
    home, uri, run_id, _ = tinygan_run
    zoo = home / "zoo"
    done = _ganbench(
        *("zoo", "export", run_id, "--name", "tinygan-digits-32", "--out", str(zoo)),
        *("--tracking-uri", uri, "--no-progress"),
        home=home,
        site=plugin_site,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "onnxruntime (CPU) matches PyTorch" in done.stdout + done.stderr
    path = zoo / "tinygan-digits-32.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    [z_input] = session.get_inputs()
    assert (z_input.name, z_input.shape[1]) == ("z", 32)
    z = np.random.default_rng(0).standard_normal((5, 32), dtype=np.float32)
    [images] = session.run(["images"], {"z": z})
    assert images.shape == (5, 1, 32, 32)
    assert np.isfinite(images).all() and images.min() >= -1 and images.max() <= 1
    info = GeneratorInfo.from_props(session.get_modelmeta().custom_metadata_map, str(path))
    assert (info.architecture, info.dataset, info.resolution, info.channels) == (
        "tinygan",
        "digits",
        32,
        1,
    )
    assert (info.z_dim, info.z_distribution) == (32, "normal")
    assert run_id in info.training_run
    assert {s.name for s in info.metrics} >= {FID, IS}  # the run's scores at that step
    index = tomllib.loads((zoo / "index.toml").read_text(encoding="utf-8"))
    [entry] = index["generators"]
    assert (entry["name"], entry["url"]) == ("tinygan-digits-32", "tinygan-digits-32.onnx")
    assert (zoo / "tinygan-digits-32.md").is_file() and (zoo / "tinygan-digits-32.png").is_file()


@pytest.fixture
def on_path(plugin_site, monkeypatch):
    """The plugin's folder on this process's path for one test, its modules gone after."""
    monkeypatch.syspath_prepend(str(plugin_site))
    yield plugin_site
    for name in [m for m in sys.modules if m.partition(".")[0] == "ganbench_tinygan"]:
        del sys.modules[name]


def test_its_checkpointed_state_resumes_training_exactly(on_path, tmp_path, request):
    """What a checkpoint keeps of the model (``GanModel.state_dict``, through ganbench's
    own weights-only checkpoint files) continues training bit for bit: the plugin's share
    of an exact ``ganbench resume``. Found in-process through the entry point, as the
    command finds it."""
    import torch

    from ganbench.plugins import load_registries
    from ganbench.plugins.interfaces import ImageShape
    from ganbench.rundir import checkpoint
    from ganbench.training.plan import plan_run
    from ganbench.training.speed import resolve_speed

    registries = load_registries()
    assert registries.architectures.plugin_of("tinygan") == "tinygan"
    plan = plan_run(registries, "tinygan", "digits")
    threads = torch.get_num_threads()
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    speed = resolve_speed(torch.device("cpu"), threads=1)  # one thread, as the runs above

    def built():
        model = plan.architecture.build(plan.model, ImageShape(1, 32))
        model.to(torch.device("cpu"))
        model.accelerate(speed)  # fused Adam and channels_last, as a run's model
        return model

    torch.manual_seed(0)
    batches = torch.rand(4, 32, 1, 32, 32) * 2 - 1
    first = built()
    for real in batches[:2]:
        first.train_step(real)
    saved = {"format": checkpoint.CHECKPOINT_FORMAT, "state": first.state_dict()}
    path = checkpoint.save_atomic(saved, tmp_path / "checkpoint.pt")
    rng = torch.get_rng_state()
    went_on = [first.train_step(real) for real in batches[2:]]

    second = built()
    second.load_state_dict(checkpoint.load_file(path, checkpoint.CHECKPOINT_FORMAT)["state"])
    torch.set_rng_state(rng)
    resumed = [second.train_step(real) for real in batches[2:]]
    assert [{k: v.item() for k, v in s.items()} for s in resumed] == [
        {k: v.item() for k, v in s.items()} for s in went_on
    ]
    for net in ("generator", "discriminator"):
        a, b = getattr(first, net).state_dict(), getattr(second, net).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), net

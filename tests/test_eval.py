"""Scoring runs: ``--eval-every`` during training, ``ganbench eval`` afterwards, and the
real-statistics cache. Offline, with the digits classifier as the feature extractor."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_RUN
from makers_folders import make_image_folder, write_image
from mlflow import MlflowClient

from ganbench.metrics.frechet import frechet_distance, gaussian_stats
from ganbench.metrics.reference import reference_stats
from ganbench.plugins import load_registries
from ganbench.plugins.interfaces import DatasetRequest

CPU = torch.device("cpu")


def _runs(folder):
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    return client, client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory):
    """A tiny digits run scored every 3 steps on 200 samples."""
    from click.testing import CliRunner

    from ganbench.cli import cli

    folder = tmp_path_factory.mktemp("evalrun")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        args = ["run", "dcgan", "--dataset", "digits", *TINY_RUN, "--cache-dir", "cache"]
        args += ["--eval-every", "3", "--eval-samples", "200", "--metrics", "fid,is"]
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    client, [run] = _runs(folder)
    return folder, client, run, result


def _numpy_inception_score(logits: np.ndarray, seed: int, splits: int = 10) -> tuple[float, float]:
    """IS by its definition, exp(E_x KL(p(y|x) || p(y))), in float64 NumPy: on each of
    ``splits`` parts of the samples after torch-fidelity's shuffle (NumPy's RandomState
    permutation with the seed); the mean and population std over the parts."""
    x = np.asarray(logits, np.float64)[np.random.RandomState(seed).permutation(len(logits))]
    log_p = x - x.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    p, n, scores = np.exp(log_p), len(x), []
    for i in range(splits):
        part = slice(i * n // splits, (i + 1) * n // splits)
        p_y = p[part].mean(axis=0)
        scores.append(np.exp((p[part] * (log_p[part] - np.log(p_y))).sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def _digits_logits(images: torch.Tensor) -> np.ndarray:
    """The digits classifier's logits of uint8 images."""
    loaded = load_registries().extractors.get("digits-cnn").load(None, CPU)
    with torch.no_grad():
        return loaded.module(images)["logits"].double().numpy()


def _last_checkpoint_logits(folder: Path, run_id: str, n: int, seed: int) -> np.ndarray:
    """Logits of ``n`` samples of the run's last checkpoint, drawn here: uniform z from a
    torch generator seeded ``seed``, G in eval mode, rounded to bytes as a PNG would be."""
    from ganbench.runs.reopen import open_run

    loaded, _ = open_run(run_id, load_registries(), "last", f"sqlite:///{folder / 'mlflow.db'}")
    assert loaded.step == 6 and loaded.model.latent_distribution == "uniform"
    generator = loaded.model.generator.eval()
    z = torch.rand(n, loaded.model.z_dim, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    with torch.no_grad():
        images = ((generator(z) + 1) * 127.5 + 0.5).floor().clamp(0, 255).to(torch.uint8)
    return _digits_logits(images)


def test_eval_every_logs_scores_with_their_step_and_provenance(evaluated_run):
    _, client, run, _ = evaluated_run
    fid = client.get_metric_history(run.info.run_id, "digits-cnn/fid_200")
    assert [m.step for m in fid] == [3, 6] and all(m.value > 0 for m in fid)
    is_ = client.get_metric_history(run.info.run_id, "digits-cnn/is_200")
    assert [m.step for m in is_] == [3, 6]
    # One short tag per score; every detail in one JSON artifact per scoring.
    tags = run.data.tags
    assert sorted(k for k in tags if k.startswith("digits-cnn/")) == [
        "digits-cnn/fid_200.how",
        "digits-cnn/is_200.how",
        "digits-cnn/is_200_std.how",
    ]
    assert tags["digits-cnn/fid_200.how"].startswith("digits-cnn, 200 generated vs 1437 real")
    listed = [a.path for a in client.list_artifacts(run.info.run_id, "scoring")]
    assert listed == ["scoring/step-000000003.json", "scoring/step-000000006.json"]
    path = client.download_artifacts(run.info.run_id, listed[-1], str(evaluated_run[0]))
    record = json.loads(Path(path).read_text())
    assert record["step"] == 6 and record["scores"]["digits-cnn/fid_200"] == fid[-1].value
    how = record["how"]["digits-cnn/fid_200"]
    assert how["extractor"] == "digits-cnn" and how["real_samples"] == "1437"
    assert how["reference"] == "digits train at 32px"
    assert len(how["extractor_weights_sha256"]) == 64
    assert "reference" not in record["how"]["digits-cnn/is_200"]
    # The IS logged at step 6 is that of the last checkpoint's samples, drawn with the
    # recorded seed: NumPy's IS of their logits. The 6-step generator draws nearly one
    # image, so IS - 1 is compared (measured 5.11e-7 both; with another shuffle seed
    # 5.04e-7, with step 3's weights 6.5e-7).
    seed = int(record["how"]["digits-cnn/is_200"]["seed"])
    logits = _last_checkpoint_logits(evaluated_run[0], run.info.run_id, 200, seed)
    mean, std = _numpy_inception_score(logits, seed)
    assert is_[-1].value == record["scores"]["digits-cnn/is_200"]
    assert is_[-1].value - 1 == pytest.approx(mean - 1, rel=1e-4)
    assert record["scores"]["digits-cnn/is_200_std"] == pytest.approx(std, rel=1e-4, abs=1e-12)
    assert run.data.params["eval_every"] == "3" and run.data.params["eval_samples"] == "200"


def test_best_fid_checkpoint_is_kept_and_named(evaluated_run):
    _, client, run, _ = evaluated_run
    fid = {
        m.step: m.value for m in client.get_metric_history(run.info.run_id, "digits-cnn/fid_200")
    }
    best_step = min(fid, key=fid.get)
    tags = run.data.tags
    assert tags["checkpoint.best_step"] == str(best_step)
    assert tags["checkpoint.best"].startswith(f"checkpoints/best.pt: step {best_step}")
    assert tags["checkpoint.last"] == "checkpoints/last.pt: step 6"
    names = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
    assert names == {"checkpoints/best.pt", "checkpoints/last.pt"}


def _artifact(client, run_id: str, path: str, dest: Path) -> bytes:
    return Path(client.download_artifacts(run_id, path, str(dest))).read_bytes()


def test_eval_command_logs_into_the_same_run(evaluated_run, monkeypatch, tmp_path):
    """``ganbench eval`` logs under eval/ at the checkpoint's step, with a provenance file
    of its own: the training's values at that step and its scoring/step-N.json stay as
    the training logged them (they used to be overwritten, and FID got two values)."""
    from click.testing import CliRunner

    from ganbench.cli import cli

    folder, client, run, _ = evaluated_run
    rid = run.info.run_id
    monkeypatch.chdir(folder)
    training_file = _artifact(client, rid, "scoring/step-000000006.json", tmp_path / "before")
    training_fid = client.get_metric_history(rid, "digits-cnn/fid_200")
    training_tag = client.get_run(rid).data.tags["digits-cnn/fid_200.how"]
    args = ["eval", rid, "--metrics", "fid,is,kid,prc", "--samples", "300"]
    result = CliRunner().invoke(cli, [*args, "--cache-dir", "cache", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "using cached digits-cnn statistics of digits train at 32px" in result.output
    assert f"logged into MLflow run {rid}" in result.output
    after = client.get_run(rid)
    assert after.info.status == "FINISHED"
    m = after.data.metrics
    for name in ("fid_300", "is_300", "is_300_std", "kid_300", "precision_300", "recall_300"):
        assert f"eval/digits-cnn/{name}" in m and f"digits-cnn/{name}" not in m, name
    assert 0 <= m["eval/digits-cnn/precision_300"] <= 1
    history = client.get_metric_history(rid, "eval/digits-cnn/fid_300")
    assert [h.step for h in history] == [6]
    assert after.data.tags["eval/digits-cnn/fid_300.how"].startswith("digits-cnn, 300 generated")

    # The training's own record of step 6 is untouched, in MLflow and in its folder.
    assert _artifact(client, rid, "scoring/step-000000006.json", tmp_path / "after") == (
        training_file
    )
    assert (folder / "cache" / "runs" / rid / "scoring" / "step-000000006.json").read_bytes() == (
        training_file
    )
    assert after.data.tags["digits-cnn/fid_200.how"] == training_tag
    [mine] = [
        a.path
        for a in client.list_artifacts(rid, "scoring")
        if a.path.startswith("scoring/eval-") and a.path.endswith("-step-000000006.json")
    ]
    record = json.loads(_artifact(client, rid, mine, tmp_path / "mine"))
    assert record["scores"]["eval/digits-cnn/fid_300"] == history[0].value
    # ... and saved here, in the command's outbox (kept: it is the local copy)
    [saved] = (folder / "cache" / "outbox").glob(f"{rid}-eval-*/{mine}")
    assert json.loads(saved.read_text()) == record
    assert f"saved the scores and how they were measured in {saved}" in result.output

    # --checkpoint best scores the best-FID checkpoint: logged at its step, and with the
    # training scorer's seed it gives the very FID training logged there (measured: step
    # 3, FID 80.5463; step 6's weights give 80.5494), as eval/digits-cnn/fid_200 beside
    # the training's digits-cnn/fid_200, which keeps its one value per step.
    best_step, best_fid = min(((m.step, m.value) for m in training_fid), key=lambda sv: sv[1])
    assert after.data.tags["checkpoint.best_step"] == str(best_step)
    scoring = f"scoring/step-{best_step:09d}.json"
    seed = json.loads(_artifact(client, rid, scoring, tmp_path / "seed"))["how"][
        "digits-cnn/fid_200"
    ]["seed"]
    best_args = ["--checkpoint", "best", "--samples", "200", "--seed", seed, "--metrics", "fid"]
    best = CliRunner().invoke(cli, [*args[:2], *best_args, "--cache-dir", "cache", "--no-progress"])
    assert best.exit_code == 0, best.output
    assert f"at step {best_step} as eval/NAME\n" in best.output
    again = client.get_metric_history(rid, "digits-cnn/fid_200")
    assert sorted((h.step, h.value, h.timestamp) for h in again) == sorted(
        (h.step, h.value, h.timestamp) for h in training_fid
    )
    [evaluated] = client.get_metric_history(rid, "eval/digits-cnn/fid_200")
    assert evaluated.step == best_step and evaluated.value == pytest.approx(best_fid, rel=1e-9)
    [best_file] = [
        a.path
        for a in client.list_artifacts(rid, "scoring")
        if a.path.startswith("scoring/eval-") and a.path.endswith(f"-step-{best_step:09d}.json")
    ]
    how = json.loads(_artifact(client, rid, best_file, tmp_path / "best"))["how"]
    assert how["eval/digits-cnn/fid_200"]["generator"] == (
        f"runs:/{rid}/checkpoints/best.pt (step {best_step})"
    )


def test_inception_score_is_the_numpy_computation():
    """ganbench's scoring path (batches of 200, bytes, the digits classifier, the IS
    metric with its seed) on images whose classes vary: the 360 real test digits served as
    a sampler's draws. The same as NumPy's IS of their logits to 1e-9 (measured: 8.63115
    both; another shuffle seed gives 8.686, probabilities taken for logits 1.07)."""
    from ganbench.data.loading import load_images
    from ganbench.metrics.scoring import evaluate
    from ganbench.plugins.interfaces import DatasetRequest
    from ganbench_plugins.digits import DigitsDataset

    digits = load_images(DigitsDataset(), DatasetRequest("test", 32), Path("/nonexistent"))
    images = torch.from_numpy(np.ascontiguousarray(digits.images))
    served: list[int] = []

    def sample(n: int) -> torch.Tensor:  # in [-1, 1], as a generator's images
        start = sum(served)
        served.append(n)
        return images[start : start + n].float() / 127.5 - 1

    registries = load_registries()
    extractor = registries.extractors.get("digits-cnn")
    metric = registries.metrics.get("is")
    result = evaluate(
        [metric], extractor, extractor.load(None, CPU), sample, len(images), None, None,
        seed=7, generator_source="digits test split", progress=False,
    )  # fmt: skip
    assert served == [200, 160]
    mean, std = _numpy_inception_score(_digits_logits(images), seed=7)
    assert mean > 8  # ten classes, about equally many of each
    assert result.scores["digits-cnn/is_360"] == pytest.approx(mean, rel=1e-9)
    assert result.scores["digits-cnn/is_360_std"] == pytest.approx(std, rel=1e-9)


def test_eval_errors(evaluated_run, monkeypatch):
    from click.testing import CliRunner

    from ganbench.cli import cli

    folder, _, run, _ = evaluated_run
    monkeypatch.chdir(folder)
    cases = [
        (
            ["eval", run.info.run_id, "--metrics", "fdi"],
            2,
            "unknown metric 'fdi'. Did you mean fid?",
        ),
        (["eval", run.info.run_id, "--samples", "0"], 2, "at least 10, not 0"),
        (["eval", "0123abcd"], 2, "no run '0123abcd' in the MLflow store"),
        (["eval", str(folder / "missing.pt")], 1, "missing.pt does not exist"),
    ]
    for args, code, message in cases:
        result = CliRunner().invoke(cli, [*args, "--no-progress"])
        assert result.exit_code == code, result.output
        assert message in result.output.strip().splitlines()[-1]


def test_real_statistics_cache_hits_and_invalidates(tmp_path):
    registries = load_registries()
    folder_ds = registries.datasets.get("imagefolder")
    digits_cnn = registries.extractors.get("digits-cnn")
    loaded = digits_cnn.load(None, CPU)
    faces = tmp_path / "faces"
    make_image_folder(faces, classes=None, per_class=30, corrupt=False, junk=False, size=(24, 24))
    request = DatasetRequest("train", 32, str(faces))
    said: list[str] = []
    opened: list[str] = []
    original_open = type(folder_ds).open

    class CountingOpens(type(folder_ds)):
        def open(self, request, root):
            opened.append(str(root))
            return original_open(self, request, root)

    ds = CountingOpens()
    args = (ds, request, tmp_path / "cache", digits_cnn, loaded, None, CPU)
    first, ref = reference_stats(*args, progress=False, say=said.append)
    assert len(opened) == 1 and first.count == 30
    # the statistics are those of the features: an independent float64 computation
    mu, sigma = gaussian_stats(np.asarray(first.features, dtype=np.float64))
    np.testing.assert_allclose(first.mu, mu, rtol=1e-10)
    np.testing.assert_allclose(first.sigma, sigma, rtol=1e-8, atol=1e-12)

    second, _ = reference_stats(*args, progress=False, say=said.append)
    assert len(opened) == 1, "the second call must not read the images again"
    assert said[-1].startswith("using cached digits-cnn statistics")
    np.testing.assert_array_equal(second.features, first.features)
    assert frechet_distance(first.mu, first.sigma, second.mu, second.sigma) == pytest.approx(
        0, abs=1e-6
    )

    # a changed image changes the fingerprint: recomputed, different statistics
    some = faces / "0.png"
    write_image(some, np.zeros((24, 24, 3), np.uint8), "png")
    os.utime(some, ns=(0, 10**18))
    third, ref3 = reference_stats(*args, progress=False, say=said.append)
    assert len(opened) == 2 and ref3.data_fingerprint != ref.data_fingerprint
    assert not np.array_equal(third.mu, first.mu)

    # another extractor's weights: another reference, never the digits-cnn one's
    other = tmp_path / "other.pt"
    from ganbench_plugins.digits import classifier

    torch.manual_seed(1)
    state = {"format": classifier.WEIGHTS_FORMAT, "state_dict": classifier.DigitsCnn().state_dict()}
    torch.save({**state, "test_accuracy": 0.0, "seed": 1, "feature_dim": 64}, other)
    loaded_other = digits_cnn.load(str(other), CPU)
    _, ref4 = reference_stats(
        ds, request, tmp_path / "cache", digits_cnn, loaded_other, None, CPU, progress=False,
        say=said.append,
    )  # fmt: skip
    assert len(opened) == 3 and ref4.weights_sha256 != ref3.weights_sha256
    manifests = sorted((tmp_path / "cache" / "stats" / "imagefolder").glob("*/manifest.json"))
    refs = [json.loads(p.read_text())["reference"]["weights_sha256"] for p in manifests]
    assert sorted(refs) == sorted([ref3.weights_sha256, ref4.weights_sha256])


def test_probe_command_logs_trained_and_random_init_results(evaluated_run, monkeypatch):
    from click.testing import CliRunner

    from ganbench.cli import cli

    folder, client, run, _ = evaluated_run
    monkeypatch.chdir(folder)
    args = ["probe", run.info.run_id, "--dataset", "digits", "--labels-per-class", "5"]
    result = CliRunner().invoke(cli, [*args, "--draws", "3", "--no-progress"])
    assert result.exit_code == 0, result.output
    m = client.get_run(run.info.run_id).data.metrics
    for who in ("probe.digits.5_per_class", "probe.digits.5_per_class.random_init"):
        assert 0.3 < m[f"{who}.accuracy"] <= 1  # ten classes: chance is 0.1
        assert m[f"{who}.labels_used"] == 50 and m[f"{who}.accuracy_spread"] > 0
        assert m[f"{who}.accuracy_mean_low"] < m[f"{who}.accuracy"] < m[f"{who}.accuracy_mean_high"]
        assert m[f"{who}.error_rate"] == pytest.approx(1 - m[f"{who}.accuracy"])
        assert m[f"{who}.select_draws"] == 10 and m[f"{who}.draws"] == 3
        assert m[f"{who}.bn_layers_recalibrated"] == 2  # D's second and third layers
        assert f"{who}.accuracy_ci95" not in m
    # the same draws for both: the paired difference is the difference of the means
    paired = m["probe.digits.5_per_class.paired.difference"]
    assert paired == pytest.approx(
        m["probe.digits.5_per_class.accuracy"] - m["probe.digits.5_per_class.random_init.accuracy"]
    )
    assert (
        m["probe.digits.5_per_class.paired.wins"]
        + m["probe.digits.5_per_class.paired.losses"]
        + m["probe.digits.5_per_class.paired.ties"]
        == 3
    )
    saved = json.loads(next(Path(folder).rglob("probe.digits.5_per_class.json")).read_text())[
        "results"
    ]
    assert len(saved["trained"]["accuracies"]) == 3 and "paired" in saved
    # ndf=8: layers of 8, 16 and 32 channels, each pooled to 4x4
    assert m["probe.digits.5_per_class.feature_dim"] == (8 + 16 + 32) * 16
    bad = CliRunner().invoke(cli, ["probe", run.info.run_id, "--dataset", "cifar10"])
    assert bad.exit_code == 2
    assert "takes 1-channel images but cifar10 has 3" in bad.output.strip().splitlines()[-1]


# FID's covariance needs more samples than feature dimensions, checked before any weights
# are loaded; and FID against the test split (compare_gan, StudioGAN).


def _refusing_load(self, weights, device):
    raise AssertionError(f"{self.name}'s weights were loaded (or downloaded)")


def _last_line(result) -> str:
    return result.output.strip().splitlines()[-1]


def test_inception_fid_from_2000_samples_is_refused_before_anything(tmp_path, monkeypatch):
    """A run, and ``ganbench eval``, with Inception-v3 FID at 2,000 samples: refused in
    one line naming the fix, before Inception's weights are looked for (none here, and no
    network), and before any MLflow run, run folder or cache exists."""
    from click.testing import CliRunner

    from ganbench.cli import cli
    from ganbench_plugins.fidelity import InceptionV3

    monkeypatch.setattr(InceptionV3, "load", _refusing_load)
    monkeypatch.delenv("GANBENCH_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    args = ["run", "dcgan", "--dataset", "digits", *TINY_RUN, "--cache-dir", "cache"]
    args += ["--extractor", "inception-v3", "--eval-every", "3", "--eval-samples", "2000"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "Error: FID from 2,000 samples of inception-v3's 2,048-d pool features has a singular"
        " covariance; score at least 2,049 samples, 10,000 or more as compare_gan and"
        " StudioGAN do (--eval-samples 10000, or --set eval_samples=10000)"
    ]
    assert list(tmp_path.iterdir()) == []  # no mlflow.db, no cache/runs folder
    # KID, IS and precision/recall fit no covariance: not refused here (the weights are
    # then looked for, which this test forbids)
    kid = CliRunner().invoke(cli, [*args, "--metrics", "kid"])
    assert "weights were loaded" in str(kid.exception)

    # a study's trials are planned the same way: refused before any trial starts
    from ganbench.errors import UsageError
    from ganbench.training.plan import plan_run

    settings = {"eval_every": 100, "eval_samples": 2000, "eval_extractor": "inception-v3"}
    with pytest.raises(UsageError, match=r"^FID from 2,000 samples of inception-v3's"):
        plan_run(load_registries(), "dcgan", "digits", [("study s", settings)])


def test_eval_refuses_too_few_samples_for_the_extractor(evaluated_run, monkeypatch):
    """``ganbench eval``: Inception-v3 at 2,000 generated (or real) samples, digits-cnn's
    64-d features at 64: refused in one line, before any weights load, logging nothing."""
    from click.testing import CliRunner

    from ganbench.cli import cli
    from ganbench_plugins.digits import DigitsCnnExtractor
    from ganbench_plugins.fidelity import InceptionV3

    folder, client, run, _ = evaluated_run
    before = client.get_run(run.info.run_id).data.metrics
    monkeypatch.chdir(folder)
    monkeypatch.setattr(InceptionV3, "load", _refusing_load)
    monkeypatch.setattr(DigitsCnnExtractor, "load", _refusing_load)
    monkeypatch.delenv("GANBENCH_INCEPTION_WEIGHTS", raising=False)
    base = ["eval", run.info.run_id, "--metrics", "fid,is", "--no-progress"]
    inception = [*base, "--extractor", "inception-v3"]
    cases = [
        (
            [*inception, "--samples", "2000"],
            "Error: FID from 2,000 samples of inception-v3's 2,048-d pool features has a"
            " singular covariance; score at least 2,049 samples, 10,000 or more as"
            " compare_gan and StudioGAN do (--samples 10000)",
        ),
        (
            [*inception, "--samples", "10000", "--real-samples", "2048"],
            "Error: FID from 2,048 real samples of inception-v3's 2,048-d pool features has"
            " a singular covariance; use at least 2,049 real samples, 10,000 or more as"
            " compare_gan and StudioGAN do (--real-samples 10000, or leave --real-samples"
            " out to use the whole split)",
        ),
        (
            [*base, "--samples", "64"],
            "Error: FID from 64 samples of digits-cnn's 64-d pool features has a singular"
            " covariance; score at least 65 samples (--samples 65)",
        ),
    ]
    for args, message in cases:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert _last_line(result) == message
    assert client.get_run(run.info.run_id).data.metrics == before


class _PoolingNet(torch.nn.Module):
    """uint8 images -> their grey level averaged over a side x side grid: side^2-d pool."""

    def __init__(self, side: int) -> None:
        super().__init__()
        self.side = side

    def forward(self, images):
        x = images.float().mean(dim=1, keepdim=True) / 255
        pool = torch.nn.functional.adaptive_avg_pool2d(x, self.side).flatten(1)
        return {"pool": pool, "logits": pool[:, :10]}


def _extractor(name: str, dims: dict[str, int], side: int):
    from ganbench.plugins.interfaces import FeatureExtractor, LoadedExtractor

    class Tiny(FeatureExtractor):
        summary = "a test's grid of grey levels"
        resizer = "none"

        def load(self, weights, device):
            loads.append(self.name)
            return LoadedExtractor(_PoolingNet(side).to(device), "0" * 64, "the test")

    Tiny.name, Tiny.feature_dims = name, dims
    loads: list[str] = []
    return Tiny(), loads


def test_the_rule_holds_for_any_extractor(tmp_path):
    """A 64-d extractor of a plugin's: 64 samples refused before it loads, 65 scored; one
    that declares no dimensions is checked on the real features, once loaded, and so is a
    whole split of fewer real images than dimensions."""
    from ganbench.errors import UsageError
    from ganbench.metrics.session import make_scorer
    from ganbench.training.plan import plan_run

    registries = load_registries()
    declared, declared_loads = _extractor("tiny-64", {"pool": 64, "logits": 10}, 8)
    undeclared, undeclared_loads = _extractor("tiny-undeclared", {}, 8)
    wide, _ = _extractor("tiny-400", {}, 20)
    for extractor in (declared, undeclared, wide):
        registries.extractors.add(extractor, plugin="the test")
    plan = plan_run(registries, "dcgan", "digits")

    def scorer(extractor: str, samples: int, split: str | None = None):
        return make_scorer(
            registries, plan, data_root=None, cache_dir=str(tmp_path), metrics="fid,is",
            extractor=extractor, inception_weights=None, samples=samples, real_samples=None,
            device=CPU, seed=0, progress=False, say=lambda _: None, split=split,
        )  # fmt: skip

    refused = r"FID from 64 samples of tiny-64's 64-d pool .*\(--samples 65\)$"
    with pytest.raises(UsageError, match=refused):
        scorer("tiny-64", 64)
    assert declared_loads == []
    made = scorer("tiny-64", 65)
    assert declared_loads == ["tiny-64"] and made.real.features.shape == (1437, 64)
    # no dimensions declared: the real features' say it, after loading
    with pytest.raises(UsageError, match=r"FID from 64 samples of tiny-undeclared's 64-d pool"):
        scorer("tiny-undeclared", 64)
    assert undeclared_loads == ["tiny-undeclared"]
    assert scorer("tiny-undeclared", 65).samples == 65
    # 400-d features, and the 360 real images of the test split
    with pytest.raises(
        UsageError,
        match=r"^FID from 360 real samples of tiny-400's 400-d pool features has a singular"
        r" covariance; use at least 401 real samples \(the whole test split has 360: use a"
        r" bigger split\)$",
    ):
        scorer("tiny-400", 500, split="test")
    # the same rule where a run is planned: before training
    settings = {"eval_every": 100, "eval_samples": 64, "eval_extractor": "tiny-64"}
    with pytest.raises(UsageError, match=r"--eval-samples 65, or --set eval_samples=65\)$"):
        plan_run(registries, "dcgan", "digits", [("study s", settings)])
    settings["eval_metrics"] = "is,kid,prc"  # no covariance fitted: allowed
    assert plan_run(registries, "dcgan", "digits", [("study s", settings)]).train.eval_samples == 64
    # digits' own extractor is 64-d: the studies' 2,000 samples are fine
    assert registries.extractors.get("digits-cnn").feature_dims["pool"] < 2000


def test_declared_feature_dims_are_the_networks(tmp_path):
    """The dimensions the extractors declare (checked before loading) are their outputs'."""
    from benchmarks.scoring_speed import random_inception_weights

    registries = load_registries()
    images = torch.randint(0, 256, (2, 3, 40, 40), generator=torch.Generator().manual_seed(0))
    weights = {"inception-v3": str(random_inception_weights(tmp_path)), "digits-cnn": None}
    for name, path in weights.items():
        extractor = registries.extractors.get(name)
        with torch.no_grad():
            out = extractor.load(path, CPU).module(images.to(torch.uint8))
        assert {k: v.shape[1] for k, v in out.items()} == dict(extractor.feature_dims)
    assert registries.extractors.get("inception-v3").feature_dims == {"pool": 2048, "logits": 1008}
    assert registries.extractors.get("digits-cnn").feature_dims == {"pool": 64, "logits": 10}


def test_inception_fid_from_fewer_than_10k_samples_is_said(tmp_path, monkeypatch):
    from ganbench.metrics.session import make_scorer
    from ganbench.training.plan import plan_run
    from ganbench_plugins.fidelity import InceptionV3

    monkeypatch.setattr(InceptionV3, "load", _refusing_load)
    registries = load_registries()
    plan = plan_run(registries, "dcgan", "digits")
    cases = [(5000, "fid", True), (10_000, "fid", False), (5000, "is", False)]
    for samples, metrics, warned in cases:
        said: list[str] = []
        with pytest.raises(AssertionError, match="weights were loaded"):
            make_scorer(
                registries, plan, data_root=None, cache_dir=str(tmp_path), metrics=metrics,
                extractor="inception-v3", inception_weights=None, samples=samples,
                real_samples=None, device=CPU, seed=0, progress=False, say=said.append,
            )  # fmt: skip
        expected = [
            "warning: FID from 5,000 generated samples is biased upward (the fewer, the more)"
            " and not comparable with published FIDs, scored from 10,000 (compare_gan,"
            " StudioGAN) or 50,000"
        ]
        assert said == (expected if warned else [])


def test_eval_split_test_scores_against_the_test_split(tmp_path, monkeypatch):
    """``eval_split=test``: training-time FID against the test split's statistics (cached
    apart from the train split's, which differ), and ``ganbench eval`` follows it unless
    --split says otherwise. 65 samples of digits-cnn's 64-d features are allowed."""
    from click.testing import CliRunner

    from ganbench.cli import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    args = ["run", "dcgan", "--dataset", "digits", *TINY_RUN, "--cache-dir", "cache"]
    args += ["--eval-every", "3", "--eval-samples", "65", "--metrics", "fid"]
    result = CliRunner().invoke(cli, [*args, "--set", "eval_split=test"])
    assert result.exit_code == 0, result.output
    assert "computed digits-cnn statistics of 360 images of digits test at 32px" in result.output
    client, [run] = _runs(tmp_path)
    assert run.data.params["eval_split"] == "test" and run.data.params["split"] == "train"
    tag = run.data.tags["digits-cnn/fid_65.how"]
    assert tag.startswith("digits-cnn, 65 generated vs 360 real (digits test at 32px)")
    path = client.download_artifacts(run.info.run_id, "scoring/step-000000006.json", str(tmp_path))
    how = json.loads(Path(path).read_text())["how"]["digits-cnn/fid_65"]
    assert how["reference"] == "digits test at 32px" and how["real_samples"] == "360"

    rid = run.info.run_id
    eval_args = ["eval", rid, "--metrics", "fid", "--samples", "65", "--cache-dir", "cache"]
    on_train = CliRunner().invoke(cli, [*eval_args, "--split", "train", "--no-progress"])
    assert on_train.exit_code == 0, on_train.output
    assert "computed digits-cnn statistics of 1437 images of digits train at 32px" in (
        on_train.output
    )
    again = CliRunner().invoke(cli, [*eval_args, "--no-progress"])  # the run's eval_split
    assert again.exit_code == 0, again.output
    assert "using cached digits-cnn statistics of digits test at 32px" in again.output
    # one cache folder per split, with different statistics
    stats = {}
    for manifest in (tmp_path / "cache" / "stats" / "digits").glob("*/manifest.json"):
        with np.load(manifest.parent / "stats.npz") as npz:
            stats[json.loads(manifest.read_text())["reference"]["split"]] = npz["mu"]
    assert sorted(stats) == ["test", "train"]
    assert np.abs(stats["test"] - stats["train"]).max() > 1e-3
    # the same samples (seed 0) against either split: two FIDs
    fids = [
        next(line for line in out.output.splitlines() if line.startswith("digits-cnn/fid_65 = "))
        for out in (on_train, again)
    ]
    assert fids[0] != fids[1]

    # an unknown split: one line, nothing started
    bad = CliRunner().invoke(cli, [*args, "--set", "eval_split=valid"])
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines() == [
        "Error: eval_split 'valid': dataset digits has no such split; use one of train,"
        " test, all, or leave it empty for the split it trains on"
    ]
    assert len(_runs(tmp_path)[1]) == 1
    bad_eval = CliRunner().invoke(cli, [*eval_args, "--split", "valid"])
    assert bad_eval.exit_code == 2
    assert _last_line(bad_eval) == "Error: digits has no split 'valid'; use one of train, test, all"

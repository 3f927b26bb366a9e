"""FID, IS, KID and precision/recall: against independent references and torch-fidelity.

The Inception path runs on a randomly initialised Inception-v3 of torch-fidelity's own
architecture saved to a file (the real weights cannot be downloaded here): the numbers
mean nothing as image quality, but every step of the pipeline runs for real and must give
exactly what ``torch_fidelity.calculate_metrics`` gives on the same inputs.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import scipy.linalg
import torch
import torch_fidelity
from torch_fidelity.metric_fid import fid_statistics_to_metric

from benchmarks.scoring_speed import TensorImages
from benchmarks.scoring_speed import random_inception_weights as make_random_inception_weights
from ganbench.errors import GanbenchError
from ganbench.metrics.frechet import frechet_distance, gaussian_stats, psd_sqrt
from ganbench.metrics.reference import stats_from_features
from ganbench.metrics.scoring import count_label, evaluate, metric_name
from ganbench_plugins.fidelity import Fid, InceptionScore, InceptionV3, Kid, PrecisionRecall

CPU = torch.device("cpu")


def _scipy_fid(mu1, s1, mu2, s2) -> float:
    """The pytorch-fid formula, in float64 with SciPy's general matrix square root."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.fixture(scope="module")
def feature_pair():
    rng = np.random.default_rng(7)
    d = 64
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    real = rng.normal(size=(2000, d)) @ mix
    fake = (rng.normal(size=(1500, d)) * 1.3 + 0.2) @ mix + rng.normal(size=(1500, d)) * 0.1
    return real.astype(np.float32), fake.astype(np.float32)


def test_frechet_distance_matches_float64_scipy(feature_pair):
    real, fake = feature_pair
    mu1, s1 = gaussian_stats(real)
    mu2, s2 = gaussian_stats(fake)
    np.testing.assert_allclose(mu1, real.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(s1, np.cov(real.astype(np.float64), rowvar=False), rtol=1e-10)
    ours = frechet_distance(mu1, s1, mu2, s2)
    reference = _scipy_fid(mu1, s1, mu2, s2)
    assert ours > 1  # the two distributions differ
    assert abs(ours - reference) / reference < 1e-6
    cached_root = frechet_distance(mu1, s1, mu2, s2, sigma1_sqrt=psd_sqrt(s1))
    assert abs(cached_root - reference) / reference < 1e-6
    tf = fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, False)
    assert abs(ours - tf["frechet_inception_distance"]) / reference < 1e-6


def test_frechet_distance_of_a_distribution_with_itself_is_zero(feature_pair):
    real, _ = feature_pair
    mu, sigma = gaussian_stats(real)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8 * np.trace(sigma)
    # singular covariance (fewer samples than dimensions): still finite, still ~0 with itself
    # (the square roots of round-off-sized eigenvalues leave ~1e-8 relative)
    mu, sigma = gaussian_stats(real[:20])
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6 * np.trace(sigma)


def test_frechet_distance_rejects_mismatched_statistics():
    with pytest.raises(ValueError, match="statistics do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


@pytest.mark.parametrize(
    ("n", "label"), [(50000, "50k"), (10000, "10k"), (2500, "2.5k"), (360, "360")]
)
def test_metric_names_say_the_sample_count(n, label):
    assert count_label(n) == label
    assert metric_name("fid", n, "inception-v3") == f"fid_{label}"
    assert metric_name("fid", n, "digits-cnn") == f"digits-cnn/fid_{label}"
    assert metric_name("is_std", n, "inception-v3") == f"is_{label}_std"


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory):
    return make_random_inception_weights(tmp_path_factory.mktemp("inception"))


def _images(seed: int, n: int, channels: int = 3, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, channels, 4, 4, generator=g) * 255
    smooth = torch.nn.functional.interpolate(base, size=size, mode="bilinear")
    noise = torch.rand(n, channels, size, size, generator=g) * 40
    return (smooth + noise).clamp(0, 255).to(torch.uint8)


def test_inception_extractor_loads_weights_from_a_file(random_inception_weights):
    loaded = InceptionV3().load(str(random_inception_weights), CPU)
    digest = hashlib.sha256(random_inception_weights.read_bytes()).hexdigest()
    assert loaded.weights_sha256 == digest
    assert loaded.weights_source == str(random_inception_weights)
    with torch.no_grad():
        grey = loaded.module(_images(0, 2, channels=1))
        rgb = loaded.module(_images(0, 2, channels=1).expand(-1, 3, -1, -1))
    assert grey["pool"].shape == (2, 2048) and grey["logits"].shape == (2, 1008)
    assert (grey["pool"][0] - grey["pool"][1]).abs().max() > 1e-3  # features tell images apart
    torch.testing.assert_close(grey["pool"], rgb["pool"])


def test_inception_weights_env_variable_and_bad_files(
    random_inception_weights, tmp_path, monkeypatch
):
    monkeypatch.setenv("GANBENCH_INCEPTION_WEIGHTS", str(random_inception_weights))
    assert InceptionV3().load(None, CPU).weights_source == str(random_inception_weights)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(random_inception_weights.read_bytes()[:100_000])
    with pytest.raises(GanbenchError, match=r"truncated\.pth is not usable Inception-v3 weights"):
        InceptionV3().load(str(truncated), CPU)
    with pytest.raises(GanbenchError, match=r"does not exist; pass --inception-weights"):
        InceptionV3().load(str(tmp_path / "missing.pth"), CPU)


def test_scores_equal_torch_fidelitys_own_on_the_same_inputs(random_inception_weights):
    """The whole path (extractor, statistics, FID/IS/KID/PRC) against one call of
    torch_fidelity.calculate_metrics with the same weights and images."""
    real_images, fake_images = _images(1, 12), _images(2, 10)
    seed = 11
    loaded = InceptionV3().load(str(random_inception_weights), CPU)
    with torch.no_grad():
        real_features = loaded.module(real_images)["pool"].numpy()
    real = stats_from_features(real_features)
    queue = list(fake_images.float().div(127.5).sub(1).split(5))

    def sample(n: int) -> torch.Tensor:
        batch = queue.pop(0)
        assert len(batch) == n
        return batch

    from ganbench.metrics.reference import Reference

    reference = Reference("test", "train", None, 32, "inception-v3", "x", 12, "f")
    got = evaluate(
        [Fid(), InceptionScore(), Kid(), PrecisionRecall()],
        InceptionV3(),
        loaded,
        sample,
        10,
        real,
        reference,
        seed=seed,
        generator_source="test images",
        batch_size=5,
        progress=False,
    )
    expected = torch_fidelity.calculate_metrics(
        input1=TensorImages(fake_images),
        input2=TensorImages(real_images),
        cuda=False,
        batch_size=10,
        fid=True,
        isc=True,
        kid=True,
        prc=True,
        kid_subset_size=10,
        feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=str(random_inception_weights),
        feature_layer_prc="2048",
        cache=False,
        verbose=False,
        rng_seed=seed,
        samples_shuffle=False,
    )
    scores = got.scores
    assert set(scores) == {
        "fid_10", "is_10", "is_10_std", "kid_10", "kid_10_std",
        "precision_10", "recall_10", "f_score_10",
    }  # fmt: skip
    tf = expected
    assert scores["fid_10"] > 0.1  # features that differ between images: not a trivial 0
    assert scores["fid_10"] == pytest.approx(tf["frechet_inception_distance"], rel=1e-5)
    assert scores["is_10"] == pytest.approx(tf["inception_score_mean"], rel=1e-5)
    assert scores["kid_10"] == pytest.approx(tf["kernel_inception_distance_mean"], rel=1e-4)
    assert scores["precision_10"] == pytest.approx(tf["precision"], abs=1e-6)
    assert scores["recall_10"] == pytest.approx(tf["recall"], abs=1e-6)
    how = got.provenance
    assert how["fid_10"]["extractor"] == "inception-v3"
    assert how["fid_10"]["real_samples"] == "12" and how["fid_10"]["fake_samples"] == "10"
    assert how["fid_10"]["extractor_weights_sha256"] == loaded.weights_sha256
    assert "299" in how["fid_10"]["resizer"] and "reference" not in how["is_10"]
    assert set(got.tags) == {f"{name}.how" for name in scores}
    assert got.tags["fid_10.how"].startswith("inception-v3, 10 generated vs 12 real")

"""Scores of class-conditional generators: intra-FID against a float64 SciPy computation,
class accuracy through the bundled digits classifier, the labels the sampler draws, the
labelled reference cache, the refusals; and an unconditional model scored as before."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from ganbench.data.loading import load_images
from ganbench.errors import UsageError
from ganbench.metrics.features import generator_sampler
from ganbench.metrics.reference import Reference, stats_from_features
from ganbench.metrics.scoring import evaluate
from ganbench.plugins import load_registries
from ganbench.plugins.interfaces import DatasetRequest, FeatureExtractor, GanModel, LoadedExtractor
from ganbench_plugins.digits import DigitsDataset
from ganbench_plugins.fidelity import Fid
from ganbench_plugins.fidelity.conditional import ClassAccuracy, IntraFid

CPU = torch.device("cpu")


class TinyGan(GanModel):
    """The least a scorer needs of a model: a generator taking (z, y) when conditional."""

    latent_distribution = "uniform"

    def __init__(self, generator: nn.Module, z_dim: int, num_classes: int = 0) -> None:
        self.generator, self.discriminator = generator, nn.Identity()
        self.z_dim, self.num_classes = z_dim, num_classes

    def to(self, device: torch.device) -> TinyGan:
        return self

    def sample_latent(self, n: int, *, generator: Any = None, device: Any = None) -> torch.Tensor:
        return torch.rand(n, self.z_dim, generator=generator, device=device) * 2 - 1

    def train_step(self, real: torch.Tensor, labels: Any = None) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Any) -> None:
        pass


class LinearG(nn.Module):
    """z (and, when conditional, a class embedding) -> 1 x 32 x 32 images in [-1, 1]."""

    def __init__(self, z_dim: int, num_classes: int = 0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(z_dim, 32 * 32), nn.BatchNorm1d(32 * 32), nn.Tanh())
        self.embed = nn.Embedding(num_classes, z_dim) if num_classes else None

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = z + self.embed(y)
        return self.body(z).view(-1, 1, 32, 32)


class DigitsBank(nn.Module):
    """A "generator" returning real digits of the class asked for (plus ``shift``, mod
    10), the image picked by the latent: a conditional model with known answers."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, shift: int = 0) -> None:
        super().__init__()
        x = torch.from_numpy(images).float() / 127.5 - 1
        self.by_class = [x[torch.from_numpy(labels == c)] for c in range(10)]
        self.shift = shift

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pick = ((z[:, 0] + 1) * 1e6).long()
        classes = ((y + self.shift) % 10).tolist()
        chosen = zip(classes, pick.tolist(), strict=True)
        return torch.stack([self.by_class[c][i % len(self.by_class[c])] for c, i in chosen])


def _digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    data = load_images(DigitsDataset(), DatasetRequest(split, 32), Path("/none"), progress=False)
    assert data.labels is not None
    return data.images, np.asarray(data.labels)


def _scorer(tmp_path: Path, metrics: str, samples: int, **options: Any):
    from ganbench.metrics.session import make_scorer
    from ganbench.training.plan import plan_run

    registries = load_registries()
    plan = plan_run(registries, "dcgan", "digits")
    settings = dict(extractor="digits-cnn", split="train", real_samples=None) | options
    settings.setdefault("say", lambda _: None)
    return make_scorer(
        registries, plan, data_root=None, cache_dir=str(tmp_path), metrics=metrics,
        inception_weights=None, samples=samples, device=CPU, seed=0, progress=False,
        **settings,
    )  # fmt: skip


# --- intra-FID against SciPy ---------------------------------------------------------


class PixelExtractor(FeatureExtractor):
    """Features that are the pixels themselves (1 x 2 x 4 images: 8-d), so the reference
    computation can start from the images."""

    name, summary, resizer = "pixels", "the test's pixels", "none"

    def load(self, weights: Any, device: torch.device) -> LoadedExtractor:
        class Flat(nn.Module):
            def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
                return {"pool": images.float().flatten(1)}

        return LoadedExtractor(Flat(), "0" * 64, "the test")


def _scipy_intra_fid(fake, fake_labels, real, real_labels) -> float:
    """Per class: np.cov moments and the pytorch-fid / sngan_projection formula (SciPy's
    general sqrtm of S1 S2, float64); the plain mean over the classes."""
    fids = []
    for c in np.unique(real_labels):
        a, b = real[real_labels == c].astype(np.float64), fake[fake_labels == c].astype(np.float64)
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        diff = a.mean(0) - b.mean(0)
        covmean = scipy.linalg.sqrtm(s1 @ s2).real
        fids.append(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    return float(np.mean(fids))


def _class_images(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """uint8 1 x 2 x 4 images whose pixel statistics depend on the class."""
    centre = 60 + 50 * labels[:, None] + rng.normal(0, 12 + 4 * labels[:, None], (len(labels), 8))
    return np.clip(np.round(centre), 0, 255).astype(np.uint8).reshape(-1, 1, 2, 4)


def test_intra_fid_equals_the_mean_of_per_class_scipy_fids():
    rng = np.random.default_rng(3)
    real_labels = np.repeat(np.arange(3), [40, 55, 70])
    real_images = _class_images(rng, real_labels)
    fake_labels = rng.integers(0, 3, 300)
    fake_images = _class_images(rng, (fake_labels + (fake_labels == 2)) % 3)  # class 2 wrong
    real = stats_from_features(real_images.reshape(-1, 8).astype(np.float32), real_labels)
    drawn = [
        (torch.from_numpy(fake_images[i : i + 70]).float() / 127.5 - 1,
         torch.from_numpy(fake_labels[i : i + 70]))
        for i in range(0, 300, 70)
    ]  # fmt: skip

    def sample(n: int):
        images, labels = drawn.pop(0)
        assert len(images) == n
        return images, labels

    extractor = PixelExtractor()
    reference = Reference("test", "train", None, 2, "pixels", "0" * 64, 165, "f")
    got = evaluate(
        [IntraFid(), Fid()], extractor, extractor.load(None, CPU), sample, 300, real, reference,
        seed=0, generator_source="test", batch_size=70, progress=False,
    )  # fmt: skip
    expected = _scipy_intra_fid(
        fake_images.reshape(-1, 8), fake_labels, real_images.reshape(-1, 8), real_labels
    )
    assert expected > 100  # class 2's images are class 0's: far from class 2's real ones
    assert got.scores["pixels/intra_fid_300"] == pytest.approx(expected, rel=1e-6)
    # not the FID of the classes pooled, and the labels must be the images' own
    assert abs(got.scores["pixels/fid_300"] - expected) > 10
    shuffled = _scipy_intra_fid(
        fake_images.reshape(-1, 8), rng.permutation(fake_labels), real_images.reshape(-1, 8),
        real_labels,
    )  # fmt: skip
    assert abs(shuffled - expected) > 10
    assert got.provenance["pixels/intra_fid_300"]["classes"] == "3"


# --- the sampler ---------------------------------------------------------------------


def test_the_sampler_draws_labels_after_the_latents_from_one_generator():
    model = TinyGan(LinearG(6, num_classes=4), 6, num_classes=4)
    sample = generator_sampler(model, CPU, seed=5)
    images, labels = sample(7)
    rng = torch.Generator().manual_seed(5)
    z = torch.rand(7, 6, generator=rng) * 2 - 1
    y = torch.randint(4, (7,), generator=rng)
    assert torch.equal(labels, y)
    model.generator.eval()
    assert torch.equal(images, model.generator(z, y))
    # a rank that skips a batch draws what it would have: the next batch is the same
    one, other = generator_sampler(model, CPU, seed=5), generator_sampler(model, CPU, seed=5)
    one(9)
    other.skip(9)  # type: ignore[attr-defined]
    a, b = one(9), other(9)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_an_unconditional_model_is_sampled_and_scored_as_before(tmp_path):
    """The same images as the former ``generator(latent(n, generator=rng))``, no labels,
    and the same scores as a plain-images sampler of that former formula gives."""
    model = TinyGan(LinearG(6), 6)
    sample = generator_sampler(model, CPU, seed=0)
    rng = torch.Generator().manual_seed(0)
    model.generator.eval()
    for n in (30, 35):
        images, labels = sample(n)
        assert labels is None
        assert torch.equal(images, model.generator(torch.rand(n, 6, generator=rng) * 2 - 1))
    model.generator.train()
    scorer = _scorer(tmp_path, "fid,is", 65)
    got = scorer.score(model, "test")
    rng = torch.Generator().manual_seed(0)

    def former(n: int) -> torch.Tensor:
        model.generator.eval()
        return model.generator(torch.rand(n, 6, generator=rng) * 2 - 1)

    before = scorer.score_sampler(former, "test")
    assert set(got.scores) == {"digits-cnn/fid_65", "digits-cnn/is_65", "digits-cnn/is_65_std"}
    assert got.scores == before.scores and got.scores["digits-cnn/fid_65"] > 1
    assert "classes" not in got.provenance["digits-cnn/fid_65"]


# --- class accuracy and intra-FID through the digits classifier -------------------------


def test_class_accuracy_and_intra_fid_of_real_digits(tmp_path):
    """A "generator" of real test-split digits of the class asked for: the bundled
    classifier labels all 360 test images right (measured: 1.0, as test_digits_extractor
    says), so >= 0.97 here; of the next class: <= 0.03 (measured 0.0). Intra-FID (against
    the train split, about 143 images a class) is small for the right classes and large
    for the shifted ones, while FID barely sees the difference."""
    images, labels = _digits("test")
    scorer = _scorer(tmp_path, "class_accuracy,intra_fid,fid", 1200, num_classes=10)
    scores = {}
    for shift in (0, 1):
        model = TinyGan(DigitsBank(images, labels, shift), 4, num_classes=10)
        scores[shift] = scorer.score(model, f"shift {shift}").scores
    right, wrong = scores[0], scores[1]
    assert set(right) == {
        "digits-cnn/class_accuracy_1.2k", "digits-cnn/intra_fid_1.2k", "digits-cnn/fid_1.2k"
    }  # fmt: skip
    assert right["digits-cnn/class_accuracy_1.2k"] >= 0.97
    assert wrong["digits-cnn/class_accuracy_1.2k"] <= 0.03
    # measured: intra-FID 1.11 right, 94.3 shifted; FID 0.33 and 0.27
    assert wrong["digits-cnn/intra_fid_1.2k"] > 20 * right["digits-cnn/intra_fid_1.2k"]
    assert wrong["digits-cnn/fid_1.2k"] < 2 * right["digits-cnn/fid_1.2k"]
    # the reference cache holds the train split's labels, in a /2 folder
    [manifest] = (tmp_path / "stats" / "digits").glob("*/manifest.json")
    saved = json.loads(manifest.read_text())
    assert saved["format"] == "ganbench-stats/2" and saved["labelled"] is True
    assert np.array_equal(np.load(manifest.parent / "labels.npy"), _digits("train")[1])


def test_a_cache_without_labels_is_not_read(tmp_path):
    """A /1 folder (no labels) under its old name stays unread: the new key differs."""
    scorer = _scorer(tmp_path, "fid", 65)
    assert scorer.real is not None and scorer.real.labels is not None
    key = dataclasses.asdict(scorer.reference)
    del key["data_fingerprint"]
    old = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:12]  # the /1 rule
    folders = [p.name for p in (tmp_path / "stats" / "digits").iterdir()]
    assert len(folders) == 1 and not folders[0].endswith(old)
    said: list[str] = []
    again = _scorer(tmp_path, "fid", 65, say=said.append).real  # read back from the cache
    assert said[0].startswith("using cached digits-cnn statistics of digits train at 32px")
    assert again is not None and again.labels is not None
    assert np.array_equal(again.labels, scorer.real.labels)
    assert np.array_equal(again.labels, _digits("train")[1])


# --- refusals ------------------------------------------------------------------------


def test_refusals_name_the_fix(tmp_path):
    with pytest.raises(
        UsageError,
        match=r"^intra_fid needs a class-conditional generator;"
        r" this model is unconditional: leave intra_fid out of the metrics$",
    ):
        _scorer(tmp_path, "fid,intra_fid", 1200, num_classes=0)
    unconditional = _scorer(tmp_path, "fid,class_accuracy", 1200)  # model not known yet
    with pytest.raises(UsageError, match=r"^class_accuracy needs a class-conditional"):
        unconditional.score(TinyGan(LinearG(6), 6), "test")
    with pytest.raises(UsageError, match=r"it generates 5 classes and digits has 10: score"):
        _scorer(tmp_path, "intra_fid", 1200, num_classes=5)
    with pytest.raises(
        UsageError,
        match=r"^class_accuracy needs a classifier of digits's classes; inception-v3's logits"
        r" are no dataset's classes: use --extractor digits-cnn$",
    ):
        _scorer(tmp_path, "class_accuracy", 1200, extractor="inception-v3")  # before loading
    with pytest.raises(
        UsageError,
        match=r"^INTRA_FID from 1,000 samples over 10 classes of digits-cnn's 64-d pool"
        r" features: each class's covariance is singular unless it has more than 64 images;"
        r" score at least 1,162 samples \(--samples 1162\)$",
    ):
        _scorer(tmp_path, "intra_fid", 1000)
    with pytest.raises(
        UsageError,
        match=r"^INTRA_FID needs more than 64 real images of each class for digits-cnn's 64-d"
        r" pool features; class \d of digits test at 32px has 3\d \(the whole test split is"
        r" too small: use a bigger split\)$",
    ):
        _scorer(tmp_path, "intra_fid", 1200, split="test")


def test_an_unlabelled_dataset_and_unlabelled_samples_are_refused():
    from ganbench.metrics.conditional import check_conditional_plan, conditional_scores

    registries = load_registries()
    lsun, ext = registries.datasets.get("lsun"), registries.extractors.get("digits-cnn")
    with pytest.raises(
        UsageError,
        match=r"^intra_fid, class_accuracy need a labelled dataset;"
        r" lsun has no labels: leave intra_fid, class_accuracy out",
    ):
        check_conditional_plan([IntraFid(), ClassAccuracy()], ext, lsun, 5000)
    # an exported file's sampler that returns images alone
    with pytest.raises(UsageError, match=r"^class_accuracy needs the classes the images were"):
        conditional_scores(ClassAccuracy(), {"logits": np.zeros((4, 10))}, None, 0)

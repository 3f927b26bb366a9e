"""The generator shipped in zoo/: intact, pullable offline, and it really draws digits."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ganbench.cli import cli
from ganbench.images import to_uint8
from ganbench.plugins import load_registries
from ganbench.plugins.interfaces import ImageShape
from ganbench.zoo.index import bundled_index, load_index
from ganbench.zoo.runtime import latents, open_generator

NAME = "dcgan-digits-32"


@pytest.fixture(scope="module")
def shipped():
    index = load_index(bundled_index(), Path("unused"))
    return index, index.get(NAME)


@pytest.fixture(scope="module")
def classifier():
    ext = load_registries().extractors.get("digits-cnn").load(None, torch.device("cpu"))

    def classify(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = ext.module(torch.from_numpy(images))["logits"]
        return torch.softmax(logits, 1).numpy()

    return classify


def test_shipped_file_matches_its_entry_and_is_small(shipped):
    index, entry = shipped
    path = Path(index.resolve(entry.url))
    body = path.read_bytes()
    assert hashlib.sha256(body).hexdigest() == entry.sha256 and len(body) == entry.size
    assert entry.size < 5_000_000
    assert (
        Path(index.resolve(entry.card)).is_file() and Path(index.resolve(entry.picture)).is_file()
    )
    names = {s.name for s in entry.info.metrics}
    assert {"digits-cnn/fid_10k", "digits-cnn/is_10k"} <= names


def test_pull_and_sample_work_from_the_shipped_index_without_a_network(tmp_path, monkeypatch):
    monkeypatch.delenv("GANBENCH_ZOO_INDEX", raising=False)
    monkeypatch.setenv("GANBENCH_CACHE_DIR", str(tmp_path / "cache"))
    pulled = CliRunner().invoke(cli, ["zoo", "pull", NAME])
    assert pulled.exit_code == 0, pulled.output
    assert (tmp_path / "cache" / "zoo" / NAME / f"{NAME}.onnx").is_file()
    out = tmp_path / "grid.png"
    sampled = CliRunner().invoke(cli, ["zoo", "sample", NAME, "-n", "16", "-o", str(out)])
    assert sampled.exit_code == 0 and out.is_file()


def _digit_stats(probs: np.ndarray) -> tuple[float, float, float]:
    """(mean confidence, share classified with > 0.9, share of the rarest digit)."""
    confidence = probs.max(1)
    shares = np.bincount(probs.argmax(1), minlength=10) / len(probs)
    return float(confidence.mean()), float((confidence > 0.9).mean()), float(shares.min())


def _draws_digits(probs: np.ndarray) -> bool:
    # Measured on the shipped model, 1000 samples, seeds 0-2: mean confidence 0.83, 51-54%
    # above 0.9, rarest digit 4.1-5.5% of samples. Thresholds sit well below; every digit
    # must appear, which a collapsed generator (one class, confidently) cannot pass.
    mean, confident, rarest = _digit_stats(probs)
    return mean >= 0.7 and confident >= 0.35 and rarest >= 0.025


def test_shipped_generator_draws_all_ten_digits_recognisably(shipped, classifier):
    index, entry = shipped
    generator = open_generator(Path(index.resolve(entry.url)), "cpu")
    images = to_uint8(generator.generate(latents(generator.info, 1000, seed=0)))
    assert _draws_digits(classifier(images)), _digit_stats(classifier(images))


def test_the_digit_check_rejects_noise_and_an_untrained_generator(classifier):
    """The check above must be able to fail: pixel noise (the classifier is 82% 'sure' of
    it) and a randomly initialised DCGAN (99% sure, of one class) both fail it."""
    noise = np.random.default_rng(0).integers(0, 256, (1000, 1, 32, 32), dtype=np.uint8)
    assert not _draws_digits(classifier(noise))
    arch = load_registries().architectures.get("dcgan")
    torch.manual_seed(0)
    untrained = arch.build(arch.config_class(), ImageShape(1, 32)).generator.eval()
    with torch.no_grad():
        fake = untrained(torch.rand(1000, 100) * 2 - 1).numpy()
    assert not _draws_digits(classifier(to_uint8(fake)))

"""The bundled digits-cnn feature extractor: accuracy, shapes, weights provenance, errors."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganbench.data.loading import load_images
from ganbench.errors import GanbenchError
from ganbench.plugins import load_registries
from ganbench.plugins.interfaces import DatasetRequest, LoadedExtractor
from ganbench_plugins.digits import DigitsCnnExtractor, DigitsDataset
from ganbench_plugins.digits.classifier import FEATURE_DIM, WEIGHTS_FORMAT, bundled_weights
from ganbench_plugins.digits.env import WEIGHTS_ENV

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _no_weights_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own GANBENCH_DIGITS_CNN_WEIGHTS must not change what these tests load.
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)


@pytest.fixture(scope="module")
def loaded() -> LoadedExtractor:
    return DigitsCnnExtractor().load(None, CPU)


def _test_split(resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    data = load_images(
        DigitsDataset(), DatasetRequest("test", resolution), Path("/nonexistent"), progress=False
    )
    assert data.labels is not None
    return torch.from_numpy(data.images), torch.from_numpy(data.labels)


@pytest.mark.parametrize("resolution", [32, 16, 64])
def test_bundled_weights_classify_the_test_split(loaded: LoadedExtractor, resolution: int) -> None:
    # Measured: 360/360 (1.0) at 8, 16, 32 and 64 px; the margin allows retrained weights.
    images, labels = _test_split(resolution)
    with torch.no_grad():
        predicted = loaded.module(images)["logits"].argmax(1)
    assert (predicted == labels).float().mean().item() >= 0.97


def test_module_is_frozen_and_in_eval_mode(loaded: LoadedExtractor) -> None:
    assert not loaded.module.training
    assert all(not m.training for m in loaded.module.modules())
    assert not any(p.requires_grad for p in loaded.module.parameters())


@pytest.mark.parametrize("size", [16, 32, 64])
def test_output_shapes_and_rgb_equals_grey(loaded: LoadedExtractor, size: int) -> None:
    gen = torch.Generator().manual_seed(size)
    grey = torch.randint(0, 256, (5, 1, size, size), generator=gen, dtype=torch.uint8)
    with torch.no_grad():
        out_grey = loaded.module(grey)
        out_rgb = loaded.module(grey.expand(-1, 3, -1, -1).contiguous())
    for out in (out_grey, out_rgb):
        assert set(out) == {"pool", "logits"}
        assert out["pool"].shape == (5, FEATURE_DIM) and out["pool"].dtype == torch.float32
        assert out["logits"].shape == (5, 10) and out["logits"].dtype == torch.float32
    # The mean of three equal integers is exact, so R=G=B gives the grey features exactly.
    assert torch.equal(out_grey["pool"], out_rgb["pool"])
    assert torch.equal(out_grey["logits"], out_rgb["logits"])


def test_rejects_non_uint8_input(loaded: LoadedExtractor) -> None:
    with pytest.raises(ValueError, match="uint8"):
        loaded.module(torch.zeros(2, 1, 32, 32))


def test_records_the_bundled_files_sha256(loaded: LoadedExtractor) -> None:
    path = bundled_weights()
    assert path.stat().st_size < 200_000
    assert loaded.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.weights_source == str(path)


def test_truncated_weights_name_the_file_and_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "truncated.pt"
    data = bundled_weights().read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(GanbenchError, match="truncated") as info:
        DigitsCnnExtractor().load(str(bad), CPU)
    message = str(info.value)
    assert str(bad) in message and "train_classifier" in message and "\n" not in message


def test_foreign_weights_name_the_file(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "ganbench-generator/1", "state_dict": {}}, foreign)
    with pytest.raises(GanbenchError, match=WEIGHTS_FORMAT) as info:
        DigitsCnnExtractor().load(str(foreign), CPU)
    assert str(foreign) in str(info.value) and "ganbench-generator/1" in str(info.value)


def test_wrong_state_dict_and_missing_file(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pt"
    torch.save({"format": WEIGHTS_FORMAT, "state_dict": {}, "feature_dim": FEATURE_DIM}, wrong)
    with pytest.raises(GanbenchError, match="does not fit") as info:
        DigitsCnnExtractor().load(str(wrong), CPU)
    assert str(wrong) in str(info.value)
    missing = tmp_path / "missing.pt"
    with pytest.raises(GanbenchError, match="do not exist") as info:
        DigitsCnnExtractor().load(str(missing), CPU)
    assert str(missing) in str(info.value)


def test_env_var_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "copy.pt"
    copy.write_bytes(bundled_weights().read_bytes())
    monkeypatch.setenv(WEIGHTS_ENV, str(copy))
    loaded = DigitsCnnExtractor().load(None, CPU)
    assert loaded.weights_source == str(copy)
    # A bad file named by the variable names the variable in its fix.
    copy.write_bytes(b"not a torch file")
    with pytest.raises(GanbenchError, match=WEIGHTS_ENV) as info:
        DigitsCnnExtractor().load(None, CPU)
    assert str(copy) in str(info.value)


def test_registered_as_an_extractor() -> None:
    extractor = load_registries().extractors.get("digits-cnn")
    assert isinstance(extractor, DigitsCnnExtractor)
    assert extractor.weights_env == WEIGHTS_ENV and extractor.resizer


def test_training_script_writes_a_loadable_file(tmp_path: Path) -> None:
    out = tmp_path / "x.pt"
    script = [sys.executable, "-m", "ganbench_plugins.digits.train_classifier"]
    result = subprocess.run(
        [*script, "--epochs", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and str(out) in result.stdout
    saved = torch.load(out, weights_only=True)
    assert saved["format"] == WEIGHTS_FORMAT and saved["seed"] == 0
    assert saved["feature_dim"] == FEATURE_DIM and 0.0 <= saved["test_accuracy"] <= 1.0
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    loaded = DigitsCnnExtractor().load(str(out), CPU)
    assert loaded.weights_sha256 == hashlib.sha256(out.read_bytes()).hexdigest()

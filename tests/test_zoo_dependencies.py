"""onnxruntime-gpu where CUDA can exist, onnxruntime elsewhere: never both."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"
PLATFORMS = {
    "linux-x86_64": {"platform_system": "Linux", "platform_machine": "x86_64"},
    "linux-aarch64": {"platform_system": "Linux", "platform_machine": "aarch64"},
    "macos-arm64": {"platform_system": "Darwin", "platform_machine": "arm64"},
    "windows-amd64": {"platform_system": "Windows", "platform_machine": "AMD64"},
}


def _runtimes(environment: dict[str, str]) -> list[str]:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    chosen = []
    for text in deps:
        req = Requirement(text)
        if req.name.startswith("onnxruntime") and (
            req.marker is None or req.marker.evaluate(environment)
        ):
            chosen.append(req.name)
    return chosen


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("linux-x86_64", ["onnxruntime-gpu"]),
        ("linux-aarch64", ["onnxruntime"]),
        ("macos-arm64", ["onnxruntime"]),
        ("windows-amd64", ["onnxruntime"]),
    ],
)
def test_exactly_one_onnxruntime_per_platform(platform, expected):
    assert _runtimes(PLATFORMS[platform]) == expected


def test_this_environment_has_one_onnxruntime_distribution():
    installed = set()
    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            metadata.version(name)
            installed.add(name)
        except metadata.PackageNotFoundError:
            pass
    assert len(installed) == 1, f"both or neither installed: {installed}"

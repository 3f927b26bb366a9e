"""Packaging without noise: setuptools finds every package itself (no hand-kept list), the
data files ship, and a fresh ``pip install -e .`` prints no warning of setuptools'.

Both run pip as users do, in a throwaway virtual environment, with ``--no-deps`` (the
dependencies are not what is checked, and torch alone is ~2.5 GB)."""

from __future__ import annotations

import re
import subprocess
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: pip's own notes about this machine's index configuration, not the build's.
PIP_INDEX_NOTE = re.compile(r"^WARNING: Location '.*' is ignored")


@pytest.fixture(scope="module")
def pip(tmp_path_factory) -> list[str]:
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=True)
    pip = [str(env / "bin" / "python"), "-m", "pip"]
    # The newest pip, as `make install` uses: older ones hide the build backend's warnings.
    subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip"], check=True, timeout=600)
    return pip


def test_a_fresh_editable_install_prints_no_setuptools_warning(pip):
    done = subprocess.run(
        [*pip, "install", "--no-deps", "-e", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = (done.stdout + done.stderr).splitlines()
    warnings = [line for line in lines if "warn" in line.lower() and not PIP_INDEX_NOTE.match(line)]
    assert warnings == [], "\n".join(lines)


def test_the_wheel_carries_every_package_and_its_data_files(tmp_path, pip):
    done = subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [wheel] = tmp_path.glob("ganbench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in [p for p in ROOT.glob("ganbench*/**/__init__.py") if "tests" not in p.parts]:
        assert str(package.relative_to(ROOT)) in names, package
    shipped = [
        "ganbench_plugins/dcgan/presets/digits.toml",
        "ganbench_plugins/digits/digits_cnn.pt",
        "ganbench/zoo/index.schema.json",
        "ganbench/study/builtin/paper-ablations.toml",
        "ganbench/claims/builtin/table2-svhn.toml",
        "ganbench_zoo/index.toml",
    ]
    assert [name for name in shipped if name not in names] == []
    assert not any(name.startswith(("tests/", "benchmarks/", "docs/")) for name in names)

"""Tags that say exactly what code produced a run: versions and git commit."""

from __future__ import annotations

import contextlib
import getpass
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch
import torchvision

import ganbench


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_state(folder: Path) -> tuple[str, bool] | None:
    """(commit, dirty) of the git checkout holding ``folder``, or None outside one."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit, bool(status)


def run_tags() -> dict[str, str]:
    """Version tags, plus MLflow's own source tags so its UI shows the commit."""
    tags = {
        "ganbench.version": ganbench.__version__,
        # The build's own string (e.g. 2.15.0+cu132): the package metadata omits the build.
        "torch.version": torch.__version__,
        "torch.cuda": str(torch.version.cuda),
        "torchvision.version": torchvision.__version__,
        "mlflow.version": _version("mlflow"),
        "python.version": platform.python_version(),
        "mlflow.source.name": "ganbench run",
        "mlflow.source.type": "LOCAL",
    }
    with contextlib.suppress(KeyError, OSError):  # no user name in some containers
        tags["mlflow.user"] = getpass.getuser()
    state = git_state(Path(ganbench.__file__).resolve().parent)
    if state:
        tags["git.commit"] = tags["mlflow.source.git.commit"] = state[0]
        tags["git.dirty"] = str(state[1]).lower()
    return tags

"""Checkpoints and generator files: written atomically, loaded with clear errors.

A crash or Ctrl-C while saving must never leave a half-written file where a good one was,
so every file is written next to its target, flushed to disk, moved into place with
``os.replace``, and the folder itself is flushed so that the rename survives a power cut.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ganbench.errors import CheckpointError
from ganbench.sealed import atomic_path

CHECKPOINT_FORMAT = "ganbench-checkpoint/1"
GENERATOR_FORMAT = "ganbench-generator/1"


def save_atomic(obj: Any, path: Path) -> Path:
    """``torch.save`` onto ``path`` whole or not at all (:func:`ganbench.sealed.atomic_path`)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def load_file(path: Path, expected_format: str) -> dict[str, Any]:
    """Load a file this module wrote; truncated, foreign or missing files raise clearly."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; check the path or the run's artifacts")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(
            f"{path} is truncated or not a ganbench file ({str(exc).splitlines()[0]});"
            " use an intact copy or the previous checkpoint"
        ) from None
    if not isinstance(obj, Mapping) or obj.get("format") != expected_format:
        found = obj.get("format") if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"{path} is not a {expected_format} file (it holds {found!r})")
    return dict(obj)

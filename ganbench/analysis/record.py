"""Writing an analysis's result: files in a local folder, and into the MLflow run.

Every file is written to a temporary name and renamed into place, so an interrupted
analysis leaves the previous result or the new one, never half a picture. In the run,
pictures and tables go under the artifact folder ``analysis/NAME/``, pictures also as
MLflow images (the UI's image view), numbers as metrics ``analysis.NAME.KEY`` at the
checkpoint's step, notes as tags; all through the command's outbox
(:mod:`ganbench.tracking.outbox.command`), so a store that is away loses none of it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ganbench
from ganbench.files.sealed import write_atomic
from ganbench.plugins.interfaces import AnalysisResult

if TYPE_CHECKING:
    from ganbench.tracking.tracker import Tracker


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # NumPy arrays and scalars, torch tensors
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def write_local(
    result: AnalysisResult,
    folder: Path,
    name: str,
    source: str,
    step: int,
    options: Mapping[str, Any],
) -> list[Path]:
    """The result's pictures, tables and ``result.json`` in ``folder``; the files written."""
    import io

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for key, picture in result.pictures.items():
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        path = folder / f"{key}.png"
        write_atomic(path, buffer.getvalue())
        written.append(path)
    for key, table in result.tables.items():
        path = folder / f"{key}.json"
        write_atomic(path, json.dumps(table, indent=1, default=_json_default))
        written.append(path)
    summary = {
        "analysis": name,
        "source": source,
        "step": step,
        "options": dict(options),
        "metrics": result.metrics,
        "notes": result.notes,
        "pictures": [f"{k}.png" for k in result.pictures],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "ganbench": ganbench.__version__,
    }
    path = folder / "result.json"
    write_atomic(path, json.dumps(summary, indent=1, default=_json_default))
    written.append(path)
    return written


def log_to_run(
    tracker: Tracker,
    result: AnalysisResult,
    files: list[Path],
    name: str,
    step: int,
    options: Mapping[str, Any],
) -> str:
    """Log the result into the tracker's run (``files``: copies that stay until they are
    delivered); returns what went where, for the user."""
    artifact_dir = f"analysis/{name}"
    for path in files:
        tracker.log_artifact(path, artifact_dir)
    for key, picture in result.pictures.items():
        tracker.log_image(picture, f"analysis/{name}/{key}", step)
    if result.metrics:
        tracker.log_metrics({f"analysis.{name}.{k}": v for k, v in result.metrics.items()}, step)
    tags = {f"analysis.{name}.{k}": v[:5000] for k, v in result.notes.items()}
    tags[f"analysis.{name}.options"] = json.dumps(dict(options), default=_json_default)[:5000]
    tracker.set_tags(tags)
    return f"artifacts {artifact_dir}/, metrics analysis.{name}.*"

"""A generator's scores for its index entry and card, each with how it was measured.

Scores come from the training run (the values logged at the exported checkpoint's step,
with the provenance JSON logged beside them, ``scoring/step-N.json``) or are measured
afresh on the exported file.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ganbench.metrics.scoring import PROVENANCE_DIR, provenance_name
from ganbench.zoo.metadata import Score


def describe(how: Mapping[str, str]) -> str:
    """One sentence from a score's provenance (extractor, weights, samples, reference)."""
    sha = how.get("extractor_weights_sha256") or ""
    parts = [
        f"{how.get('extractor')} features (weights sha256 {sha[:12]}...)",
        f"{how.get('fake_samples')} generated images, latent seed {how.get('seed')}",
    ]
    if how.get("reference"):
        parts.append(f"against {how.get('reference')} ({how.get('real_samples')} real images)")
    if how.get("generator"):
        parts.append(f"generator: {how.get('generator')}")
    return "; ".join(parts)


def from_values(
    values: Mapping[str, float], provenance: Mapping[str, Mapping[str, str]]
) -> tuple[Score, ...]:
    return tuple(Score(n, float(v), describe(provenance.get(n, {}))) for n, v in values.items())


def _logged_provenance(client: Any, run_id: str, step: int) -> dict[str, Any]:
    """The scoring artifact of ``step``; runs from before it existed kept the same facts in
    tags (``NAME.extractor`` ...), which are read instead."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            name = f"{PROVENANCE_DIR}/{provenance_name(step)}"
            path = client.download_artifacts(run_id, name, tmp)
            return dict(json.loads(Path(path).read_text())["how"])
        except Exception:
            pass
    tags = client.get_run(run_id).data.tags
    names = {k.removesuffix(".extractor") for k in tags if k.endswith(".extractor")}
    return {
        n: {k.split(".")[-1]: v for k, v in tags.items() if k.startswith(n + ".")} for n in names
    }


def from_run(client: Any, run_id: str, step: int) -> tuple[Score, ...]:
    """The scores logged in ``run_id`` at ``step`` (those with a recorded provenance)."""
    provenance = _logged_provenance(client, run_id, step)
    values: dict[str, float] = {}
    for name in sorted(provenance):
        history = client.get_metric_history(run_id, name)
        at_step = [m.value for m in history if m.step == step]
        if at_step:
            values[name] = at_step[-1]
    # The provenance names the evaluation; name the step these values come from.
    sourced = {
        n: {**provenance[n], "generator": f"training step {step} of run {run_id}"} for n in values
    }
    return from_values(values, sourced)

"""A generator's scores for its index entry and card, each with how it was measured.

Scores come from the training run (the values logged at the exported checkpoint's step,
with the provenance tags logged beside them) or are measured afresh on the exported file.
"""

from __future__ import annotations

from collections.abc import Mapping

from ganbench.zoo.metadata import Score


def describe(name: str, tags: Mapping[str, str]) -> str:
    """One sentence from a score's provenance tags (``NAME.extractor`` ...)."""

    def tag(key: str) -> str | None:
        return tags.get(f"{name}.{key}")

    sha = tag("extractor_weights_sha256") or ""
    parts = [
        f"{tag('extractor')} features (weights sha256 {sha[:12]}...)",
        f"{tag('fake_samples')} generated images, latent seed {tag('seed')}",
    ]
    if tag("reference"):
        parts.append(f"against {tag('reference')} ({tag('real_samples')} real images)")
    if tag("generator"):
        parts.append(f"generator: {tag('generator')}")
    return "; ".join(parts)


def from_values(values: Mapping[str, float], tags: Mapping[str, str]) -> tuple[Score, ...]:
    return tuple(Score(n, float(v), describe(n, tags)) for n, v in values.items())


def from_run(client: object, run_id: str, step: int) -> tuple[Score, ...]:
    """The scores logged in ``run_id`` at ``step`` (those with provenance tags)."""
    tags = client.get_run(run_id).data.tags
    names = sorted(k.removesuffix(".extractor") for k in tags if k.endswith(".extractor"))
    values: dict[str, float] = {}
    for name in names:
        at_step = [m.value for m in client.get_metric_history(run_id, name) if m.step == step]
        if at_step:
            values[name] = at_step[-1]
    # The tags describe the latest evaluation; name the step these values come from.
    sourced = {
        **tags,
        **{f"{n}.generator": f"training step {step} of run {run_id}" for n in values},
    }
    return from_values(values, sourced)

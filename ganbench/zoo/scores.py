"""A generator's scores for its index entry and card, each with how it was measured.

Scores come from the training run, or are measured afresh on the exported file. A run's
scores at a step are its provenance files of that step: the training's own
``scoring/step-N.json`` and those of ``ganbench eval`` (``scoring/eval-TIME-PID-step-N.json``,
scores named ``eval/NAME``, listed here as ``NAME``); each holds the values and how they
were measured. They are read from the run's folder on this machine and from MLflow; when
MLflow does not answer, the folder's alone are used only if the training's file is there,
and otherwise the export stops with one line before it writes anything: a zoo entry never
claims fewer scores than the run has, silently. (Runs from before the files existed kept
the same facts in tags, ``NAME.extractor`` ..., with the values in the metric history.)
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench.errors import TrackingError
from ganbench.files.redact import safe_uri
from ganbench.metrics.scoring import EVAL_PREFIX, PROVENANCE_DIR, parse_provenance_name
from ganbench.zoo.metadata import Score

if TYPE_CHECKING:
    from ganbench.runs.target import Target

#: A provenance file's record (``step``, ``scores``, ``how``), by file name.
Records = dict[str, dict[str, Any]]


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


def from_records(records: Records, run_id: str, step: int) -> tuple[Score, ...]:
    """The scores of ``step``'s provenance files: the training's first, then the
    evaluations', newest first; a name already given is not given again."""
    who = {name: (parse_provenance_name(name) or (step, None))[1] for name in records}
    training = [n for n in records if who[n] is None]
    evaluations = sorted((n for n in records if who[n] is not None), key=who.get, reverse=True)  # type: ignore[arg-type]
    values: dict[str, float] = {}
    how: dict[str, dict[str, str]] = {}
    for name in training + evaluations:
        record = records[name]
        for key, value in record.get("scores", {}).items():
            shown = key.removeprefix(EVAL_PREFIX)
            if shown in values or key not in record.get("how", {}):
                continue
            values[shown] = float(value)
            how[shown] = dict(record["how"][key])
            if who[name] is None:  # the provenance names the scoring; name the run too
                how[shown]["generator"] = f"training step {step} of run {run_id}"
    return from_values(values, how)


def _of_step(names: Iterable[str], step: int) -> list[str]:
    return [n for n in names if (parse_provenance_name(n) or (None,))[0] == step]


def local_records(target: Target, step: int, cache: Path) -> tuple[Records, bool]:
    """``step``'s provenance files on this machine: the training's in its folder, and
    those of ``ganbench eval`` in this cache's command outboxes (delivered or not). Also
    whether the training's own file is among them."""
    from ganbench.tracking.outbox.command import outbox_root

    found: Records = {}
    places = []
    if target.folder is not None:
        places.append(target.folder.path / PROVENANCE_DIR)
    places += sorted(outbox_root(cache).glob(f"{target.run_id}-eval-*/{PROVENANCE_DIR}"))
    for place in places:
        for name in _of_step((p.name for p in place.glob("*.json")), step):
            try:
                found[name] = json.loads((place / name).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # a damaged copy: MLflow's is read when it answers
    training = any(parse_provenance_name(n)[1] is None for n in found)  # type: ignore[index]
    return found, training


def _fail(target: Target, step: int, exc: BaseException | str) -> TrackingError:
    text = str(exc).strip().splitlines()
    reason = (text[0] if text else type(exc).__name__)[:200]
    return TrackingError(
        f"cannot read the scores of run {target.run_id} at step {step} from the MLflow store"
        f" at {safe_uri(target.tracking_uri)} ({reason}); nothing was written. Export again once it"
        " answers, or add --eval-samples N to measure the exported file itself"
    )


def remote_records(client: Any, target: Target, step: int) -> Records | None:
    """``step``'s provenance files in MLflow; None when the run has no scoring files at
    all (a run from before them). Any failure to read is a :class:`TrackingError`."""
    try:
        listed = [Path(a.path).name for a in client.list_artifacts(target.run_id, PROVENANCE_DIR)]
        if not listed:
            return None
        found: Records = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name in _of_step(listed, step):
                path = client.download_artifacts(target.run_id, f"{PROVENANCE_DIR}/{name}", tmp)
                found[name] = json.loads(Path(path).read_text(encoding="utf-8"))
        return found
    except Exception as exc:
        raise _fail(target, step, exc) from None


def _from_tags(client: Any, target: Target, step: int) -> tuple[Score, ...]:
    """Runs from before the scoring files: provenance tags and the metric history."""
    try:
        tags = client.get_run(target.run_id).data.tags
        names = {k.removesuffix(".extractor") for k in tags if k.endswith(".extractor")}
        provenance = {
            n: {k.split(".")[-1]: v for k, v in tags.items() if k.startswith(n + ".")}
            for n in names
        }
        values: dict[str, float] = {}
        for name in sorted(provenance):
            at_step = [
                m.value for m in client.get_metric_history(target.run_id, name) if m.step == step
            ]
            if at_step:
                values[name] = at_step[-1]
    except Exception as exc:
        raise _fail(target, step, exc) from None
    sourced = {
        n: {**provenance[n], "generator": f"training step {step} of run {target.run_id}"}
        for n in values
    }
    return from_values(values, sourced)


def of_run(target: Target, step: int, cache: Path, say: Callable[[str], None]) -> tuple[Score, ...]:
    """The run's scores at ``step``, from this machine and from MLflow (see the module);
    raises :class:`TrackingError` rather than give fewer than the run has."""
    from ganbench.tracking.tracker import MlflowTracker, check_reachable

    local, has_training = local_records(target, step, cache)
    try:
        check_reachable(target.tracking_uri, timeout=5)
    except TrackingError as exc:
        if has_training:
            say(
                f"the MLflow store at {safe_uri(target.tracking_uri)} does not answer: the scores"
                " come"
                f" from the run's folder {target.folder.path if target.folder else ''} (an"
                " evaluation logged only in MLflow, from another machine, is not among them)"
            )
            return from_records(local, target.run_id, step)
        raise _fail(target, step, "it does not answer") from exc
    try:
        client = MlflowTracker.detached(target.tracking_uri, target.run_id).client
    except Exception as exc:
        raise _fail(target, step, exc) from None
    remote = remote_records(client, target, step)
    if remote is None and not local:
        return _from_tags(client, target, step)
    return from_records({**(remote or {}), **local}, target.run_id, step)

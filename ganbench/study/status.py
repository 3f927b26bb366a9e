"""``ganbench study status`` and ``study list``: read from the Optuna storage alone."""

from __future__ import annotations

import math
from pathlib import Path

from ganbench.errors import UsageError
from ganbench.study import storage as st
from ganbench.study.definition import parse
from ganbench.study.planning import DEFINITION_ATTR, PARENT_ATTR, grid


def stored_studies(url: str | None, cache: Path) -> list[str]:
    import optuna

    resolved = st.resolve_storage(url, cache)
    if resolved.startswith("sqlite:///") and not Path(resolved[10:]).exists():
        return []
    storage = st.open_storage(resolved)
    lines = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        lines.append(f"{summary.study_name:<24} {summary.n_trials} trials")
    return lines


def status_lines(name: str, url: str | None, cache: Path) -> list[str]:
    import optuna

    resolved = st.resolve_storage(url, cache)
    storage = st.open_storage(resolved)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage, False)]
        raise UsageError(
            f"no study {name!r} in {st.safe_url(resolved)}; studies there:"
            f" {', '.join(names) or 'none'} (or give --storage)"
        ) from None
    attrs = study.user_attrs
    definition = attrs.get(DEFINITION_ATTR, {})
    spec = parse(definition["text"], name) if "text" in definition else None
    points = None
    if spec is not None and "definition" in definition and definition.get("mode") == "grid":
        stored = definition["definition"]
        spec.datasets, spec.seeds = stored["datasets"], stored["seeds"]
        spec.variants, spec.settings = stored["variants"], stored["settings"]
        points = grid(spec)
    # The study's objective (studies run before it existed ranked by the best FID).
    objective = definition.get("definition", {}).get("objective", "best")
    states = st.point_states(study.get_trials(deepcopy=False), points)
    c = st.counts(states)
    total = len(states)
    lines = [
        f"study {name}: {c['done'] + c['diverged']} of {total} finished ({c['done']} done,"
        f" {c['diverged']} diverged), {c['running']} running, {c['failed']} failed,"
        f" {c['pending'] + c['waiting']} to run; parent run {attrs.get(PARENT_ATTR, '?')}",
        f"{'TRIAL':<6} {'VARIANT':<22} {'DATASET':<10} {'SEED':<5} {'STATUS':<10}"
        f" {objective.upper() + ' FID':<10} RUN",
    ]
    for state in states.values():
        p = state.params
        result = state.result or state.last_run
        number = str(result.number) if result else "-"
        fid = result.user_attrs.get(f"{objective}_fid") if result else None
        fid_text = f"{fid:.4g}" if isinstance(fid, float) and math.isfinite(fid) else "-"
        status = state.status
        if status == "diverged" and result:
            status = f"diverged@{result.user_attrs.get('diverged_step')}"
        run = result.user_attrs.get("run_id", "-") if result else "-"
        variant = str(p.get("variant", "?"))
        lines.append(
            f"{number:<6} {variant:<22} {p.get('dataset', '?')!s:<10} {p.get('seed', '?')!s:<5}"
            f" {status:<10} {fid_text:<10} {run}"
        )
    return lines

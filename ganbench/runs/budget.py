"""The length of training: the one setting a resume may change, and only when asked.

``ganbench resume RUN --steps N`` (or ``--epochs``, ``--d-steps``) trains a run longer
(or shorter) on purpose. MLflow params cannot change, so the budget in force is recorded
as the tag ``ganbench.budget`` (and in run.json), which later resumes compare with
instead of the logged length params; ``ganbench.budget_extended`` says what changed, for
people.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ganbench import hparams as cfg
from ganbench.errors import UsageError
from ganbench.training.config import LENGTH_KEYS

if TYPE_CHECKING:
    from mlflow.entities import Run

    from ganbench.training.plan import RunPlan

#: The length of training in force (JSON of the length params and the step counts they
#: make), set when a resume changed it; and what changed, for people.
BUDGET_TAG = "ganbench.budget"
BUDGET_NOTE_TAG = "ganbench.budget_extended"
#: The logged params a changed budget changes besides LENGTH_KEYS.
BUDGET_SIZES = ("total_steps", "real_batches")


def recorded_budget(run: Run) -> dict[str, str]:
    """The length params in force since a resume changed them (``{}``: as logged)."""
    try:
        data = json.loads(run.data.tags.get(BUDGET_TAG, "{}"))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def effective_params(run: Run) -> dict[str, str]:
    """The run's logged params, with the budget in force in place of the logged one."""
    return {**run.data.params, **recorded_budget(run)}


def with_length(plan: RunPlan, values: Mapping[str, Any], source: str) -> RunPlan:
    """``plan`` with its length given by ``values`` (one of LENGTH_KEYS; checked and
    converted like any setting), the other two ways of giving it cleared."""
    given = [k for k in LENGTH_KEYS if values.get(k) not in (None, "None")]
    if len(given) != 1:
        raise UsageError(f"give one of --steps, --epochs or --d-steps, not {len(given)}")
    key = given[0]
    train = cfg.apply(plan.train, {key: values[key]}, source=source)
    train = dataclasses.replace(train, **{k: None for k in LENGTH_KEYS if k != key})
    return dataclasses.replace(plan, train=train)


def length_text(params: Mapping[str, Any]) -> str:
    """``steps 300``, ``epochs 2.0`` or ``d_steps 600``: how the length is given."""
    for key in LENGTH_KEYS:
        if str(params.get(key, "None")) != "None":
            return f"{key} {params[key]}"
    return "?"


def budget_record(before: Mapping[str, str], plan: RunPlan, sizes: Mapping[str, str]) -> dict:
    """What a resume that changes the budget records: ``{}`` when it is unchanged, else
    the budget in force now and a line for people (``steps 300 -> 600 at TIME``)."""
    now = {k: str(getattr(plan.train, k)) for k in LENGTH_KEYS}
    now |= {k: str(sizes[k]) for k in BUDGET_SIZES}
    if all(before.get(k) == v for k, v in now.items()):
        return {}
    old, new = length_text(before), length_text(now)
    same_kind = old.split()[0] == new.split()[0]
    # "steps 300 -> 600"; "epochs 2.0 -> steps 600"
    text = f"{old} -> {new.split()[1] if same_kind else new}"
    if not new.startswith("steps "):
        text += f" ({before.get('total_steps', '?')} -> {now['total_steps']} steps)"
    when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return {"budget": now, "note": f"{text} at {when}"}

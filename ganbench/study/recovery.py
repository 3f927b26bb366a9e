"""Trials left RUNNING by a worker of this machine that died: seen dead at once (by its
pid), not after Optuna's heartbeat grace period, and failed (to be resumed from their
checkpoints) or adopted when their run finished meanwhile. A trial whose worker runs on
another machine is left to Optuna's heartbeat.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench.rundir.folder import RunFolder, host
from ganbench.study.planning import TrialPlanner
from ganbench.study.trial import folder_run_id

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

#: Reads a trial's result from its MLflow run: (done | diverged, attributes) or None.
ResultOf = Callable[[str], "tuple[str, dict[str, Any]] | None"]


def reconcile(planner: TrialPlanner, result_of: ResultOf, say: Callable[[str], None]) -> None:
    """Trials left RUNNING by a dead worker of this machine: adopt the result of a run
    that finished meanwhile, wait for a run whose process still lives, else fail the
    trial so that it is resumed."""
    from optuna.trial import TrialState

    storage = planner.storage
    for trial in planner.optuna.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("host") != host() or _alive(attrs.get("pid")):
            continue  # another machine's (Optuna's heartbeat covers it) or a live one
        run_dir = Path(attrs["run_dir"]) if attrs.get("run_dir") else None
        if run_dir and RunFolder.is_run_folder(run_dir):
            folder = RunFolder.open(run_dir)
            if folder.held_elsewhere():
                say(f"trial {trial.number} ({_label(trial)}) outlived its study; waiting")
                while folder.held_elsewhere():
                    time.sleep(2.0)
        trial_id = planner.trial_id(trial.number)
        run_id = attrs.get("run_id") or (folder_run_id(run_dir) if run_dir else None)
        result = result_of(run_id) if run_id else None
        with contextlib.suppress(Exception):  # another worker may reconcile it first
            if result is not None and result[0] in ("done", "diverged"):
                for key, value in result[1].items():
                    storage.set_trial_user_attr(trial_id, key, value)
                value = result[1].get("objective", math.inf)
                storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [value])
                say(f"trial {trial.number} ({_label(trial)}): adopted its finished run")
            else:
                if run_id:
                    storage.set_trial_user_attr(trial_id, "run_id", run_id)
                storage.set_trial_state_values(trial_id, TrialState.FAIL)


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _label(trial: FrozenTrial) -> str:
    p = trial.params or trial.system_attrs.get("fixed_params") or {}
    return " / ".join(str(v) for v in p.values())

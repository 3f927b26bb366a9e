"""Where and how a worker's trials run: each one a ``ganbench run`` (or ``ganbench
resume``) process (``ganbench.study.trial``) on a device of the worker's pool, with its
run folder and log under ``CACHE/studies/NAME``, and the signal handlers that stop every
running trial at its next step (it checkpoints) and the study with them.
"""

from __future__ import annotations

import contextlib
import os
import queue
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench.rundir.folder import RunFolder
from ganbench.study.options import StudyOptions
from ganbench.study.spec import Point
from ganbench.study.trial import Launcher, Outcome, resume_command, run_command

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial, Trial


class TrialLauncher:
    """Runs one worker's trials as processes, ``jobs`` at a time on its devices."""

    def __init__(self, folder: Path, options: StudyOptions, say: Callable[[str], None]) -> None:
        self.folder = folder
        self.options = options
        self.say = say
        self.launcher = Launcher()
        self.devices: queue.Queue[str] = queue.Queue()
        pool = device_groups(options.devices, options.nproc)
        for i in range(options.jobs):
            self.devices.put(pool[i % len(pool)])

    @property
    def stop_signal(self) -> int | None:
        """The signal that stopped the study, or None while it runs."""
        return self.launcher.stop_signal

    @contextlib.contextmanager
    def device(self) -> Iterator[str]:
        """A free device of the pool, for one trial."""
        device = self.devices.get()
        try:
            yield device
        finally:
            self.devices.put(device)

    def claim_folder(self, trial: Trial, point: Point) -> None:
        """Record where the trial's run folder is (before it exists: a study killed now
        finds it there)."""
        trial.set_user_attr("run_dir", str(self._run_dir(trial, point)))

    def resume(self, trial: Trial, point: Point, previous: FrozenTrial, device: str) -> Outcome:
        """``ganbench resume`` of the run an earlier trial of the point left."""
        ref = previous.user_attrs.get("run_dir") or ""
        if not (ref and RunFolder.is_run_folder(Path(ref))):
            ref = previous.user_attrs["run_id"]
        trial.set_user_attr("resumed_from", previous.number)
        set_run_id = _run_id_setter(trial)
        set_run_id(previous.user_attrs["run_id"])
        self.say(
            f"trial {trial.number}: {point.label()} resumes run {previous.user_attrs['run_id']}"
        )
        cmd = resume_command(
            ref,
            device=self._trial_device(device),
            tracking_uri=self.options.tracking_uri,
            data_args=self.options.data_args,
            nproc=self.options.nproc,
            force=worker_died(previous),
        )
        log = self._log(trial, point)
        return self.launcher.run(
            cmd, log, run_dir=None, on_run_id=set_run_id, env=self._env(device)
        )

    def start(
        self,
        trial: Trial,
        point: Point,
        settings: dict[str, Any],
        device: str,
        *,
        architecture: str,
        run_name: str,
        tags: Mapping[str, str],
    ) -> Outcome:
        """A fresh ``ganbench run`` of the trial's point and settings."""
        run_dir = self._run_dir(trial, point)
        cmd = run_command(
            architecture,
            point.dataset,
            point.seed,
            settings,
            run_dir=run_dir,
            device=self._trial_device(device),
            tracking_uri=self.options.tracking_uri,
            experiment=self.options.experiment,
            run_name=run_name,
            tags=tags,
            data_args=self.options.data_args,
            nproc=self.options.nproc,
        )
        self.say(f"trial {trial.number}: {point.label()} on {device}")
        log = self._log(trial, point)
        return self.launcher.run(
            cmd, log, run_dir=run_dir, on_run_id=_run_id_setter(trial), env=self._env(device)
        )

    def _run_dir(self, trial: Trial, point: Point) -> Path:
        return self.folder / "trials" / f"{trial.number:04d}-{_slug(point)}"

    def _log(self, trial: Trial, point: Point) -> Path:
        return self.folder / "logs" / f"{trial.number:04d}-{_slug(point)}.log"

    def _trial_device(self, device: str) -> str:
        """What a trial's command is given: a data-parallel trial's ranks each take the
        GPU of their LOCAL_RANK among the group's (made visible by :meth:`_env`)."""
        return "cuda" if self.options.nproc and device.startswith("cuda") else device

    def _env(self, device: str) -> dict[str, str]:
        if self.options.nproc and device.startswith("cuda"):
            # A data-parallel trial sees only its group's GPUs, as cuda:0..N-1.
            return {"CUDA_VISIBLE_DEVICES": ",".join(d.split(":")[1] for d in device.split(","))}
        if device != "cpu":
            return {}
        # Parallel CPU trials (and their processes) share the cores instead of each taking
        # all of them.
        cores = len(os.sched_getaffinity(0))
        per_trial = self.options.jobs * (self.options.nproc or 1)
        return {"OMP_NUM_THREADS": str(max(1, cores // per_trial))}

    def signals(self) -> contextlib.AbstractContextManager[None]:
        """SIGTERM, SIGINT and SIGUSR1 stop the running trials (in the main thread only)."""
        return self.launcher.stopping_on_signals(self.say, "the running trials at their next step")


def worker_died(trial: FrozenTrial) -> bool:
    """Whether ``trial`` failed because its worker died (no outcome recorded: Optuna failed
    it after its heartbeat grace period, or a worker of this machine saw its pid gone).

    Its run then still says RUNNING with a heartbeat tag that may look fresh for minutes
    (``ganbench resume`` refuses such a run from another machine without ``--force``); the
    study's own heartbeat already decided that the process is gone, so its resume forces."""
    from optuna.trial import TrialState

    return trial.state == TrialState.FAIL and "outcome" not in trial.user_attrs


def device_groups(devices: list[str], nproc: int | None) -> list[str]:
    """The pool's entries: a device each, or with ``--nproc N`` on GPUs, N GPUs each (as
    a comma list; a trial's processes see only them). CPU trials share the CPU."""
    if not nproc or all(d == "cpu" for d in devices):
        return list(devices)
    from ganbench.errors import UsageError

    if any(":" not in d for d in devices):
        raise UsageError(
            f"--nproc on GPUs takes numbered devices (--device cuda:0,cuda:1,...), not"
            f" {','.join(devices)}"
        )
    if len(devices) < nproc:
        raise UsageError(
            f"--nproc {nproc} needs {nproc} GPUs a trial; --device gives {len(devices)}"
            f" ({','.join(devices)})"
        )
    return [",".join(devices[i : i + nproc]) for i in range(0, len(devices) - nproc + 1, nproc)]


def default_devices() -> list[str]:
    """One job per GPU, else one on the CPU."""
    import torch

    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu"]


def _run_id_setter(trial: Trial) -> Callable[[str], None]:
    def set_run_id(run_id: str) -> None:
        trial.set_user_attr("run_id", run_id)

    return set_run_id


def _slug(point: Point) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in point.variant)
    return f"{keep}-{point.dataset}-s{point.seed}"

"""deploy/slurm/study-worker.sbatch run the way SLURM runs it, without SLURM: two array
tasks as two ``bash`` processes with the environment SLURM gives an array task, sharing one
Optuna storage and one MLflow store. SIGUSR1 to one task's worker (SLURM's warning before
the time limit) stops its trial at a checkpoint, the script asks SLURM to requeue that
task, and the task run again (as the requeue runs it) finishes the study with the other.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from processes import GANBENCH, finish, logged_steps, wait_for

SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "slurm" / "study-worker.sbatch"
ARRAY_JOB = "4242"
STEPS = 500

#: 2 variants x 2 seeds of the tiny digits setting: a few seconds of training per trial on
#: one core, long enough to be stopped in the middle; scored once at the end.
STUDY = f"""\
name = "slurm"
architecture = "dcgan"
datasets = ["digits"]
seeds = 2
baseline = "base"

[settings]
steps = {STEPS}
batch_size = 16
resolution = 16
ngf = 8
ndf = 8
log_every = 2
sample_every = 250
eval_every = {STEPS}
eval_samples = 100
eval_metrics = "fid"

[variants]
base = {{}}
low-lr = {{ lr = 0.00005 }}
"""


def _children_of(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # field 4: the parent's pid
                kids.append(int(entry.name))
    return kids


class ArrayTasks:
    """Array tasks of one job started as SLURM starts them, on this machine."""

    def __init__(self, folder: Path, study: Path) -> None:
        self.folder = folder
        self.study = study
        self.root = folder / "workers"  # GANBENCH_WORKER_ROOT
        self.requeues = folder / "scontrol.calls"
        bin_dir = folder / "bin"
        bin_dir.mkdir()
        # SLURM is not installed here: this stand-in for scontrol only records what the
        # script asks of it (the requeue of a stopped task), one call a line.
        scontrol = bin_dir / "scontrol"
        scontrol.write_text(f'#!/bin/sh\necho "$@" >> "{self.requeues}"\n')
        scontrol.chmod(0o755)
        # ganbench's own environment, no srun: the script then runs the worker as it is.
        system = [d for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if d]
        self.path = os.pathsep.join([str(bin_dir), str(Path(GANBENCH).parent), *system])
        assert shutil.which("srun", path=self.path) is None
        self.cpus = sorted(os.sched_getaffinity(0))
        self.started: list[subprocess.Popen] = []

    def env(self, task: int, restart: int) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MLFLOW_", "SLURM_"))
            and k not in ("GANBENCH_STUDY_STORAGE", "TEAM_ENV", "SCRATCH")
        }
        return env | {
            "PATH": self.path,
            "GANBENCH_WORKER_ROOT": str(self.root),
            "SLURM_JOB_ID": str(int(ARRAY_JOB) + 1 + task),
            "SLURM_JOB_NAME": "ganbench-study",
            "SLURM_ARRAY_JOB_ID": ARRAY_JOB,
            "SLURM_ARRAY_TASK_ID": str(task),
            "SLURM_ARRAY_TASK_COUNT": "2",
            "SLURM_ARRAY_TASK_MIN": "0",
            "SLURM_ARRAY_TASK_MAX": "1",
            "SLURM_RESTART_COUNT": str(restart),
        }

    def start(self, task: int, restart: int = 0) -> subprocess.Popen:
        name = f"task{task}-{restart}"
        # Each task on a core of its own, as on a machine of its own: a worker gives its
        # trial the cores it sees as threads, and two workers' threads on the same two
        # cores slow each other down several-fold.
        cpu = self.cpus[task % len(self.cpus)]
        proc = subprocess.Popen(
            [
                *("bash", str(SCRIPT), str(self.study)),
                *("--storage", f"sqlite:///{self.folder / 'optuna.db'}"),
                *("--tracking-uri", f"sqlite:///{self.folder / 'mlflow.db'}"),
            ],
            cwd=self.folder,
            env=self.env(task, restart),
            stdout=(self.folder / f"{name}.out").open("w"),
            stderr=(self.folder / f"{name}.err").open("w"),
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
        )
        self.started.append(proc)
        return proc

    def cache(self, task: int) -> Path:
        return self.root / f"{ARRAY_JOB}_{task}"

    def cache_of(self, run_dir: Path) -> Path:
        [cache] = [self.cache(t) for t in (0, 1) if run_dir.is_relative_to(self.cache(t))]
        return cache

    def stop(self) -> None:
        """What a failed test leaves running: the scripts and their workers, at once."""
        for proc in self.started:
            if proc.poll() is None:
                family, i = [proc.pid], 0
                while i < len(family):  # the worker, its trials, theirs
                    family += _children_of(family[i])
                    i += 1
                for pid in reversed(family):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                proc.wait()

    def output(self, name: str) -> str:
        return (self.folder / f"{name}.out").read_text() + (self.folder / f"{name}.err").read_text()


def _trials(folder: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="slurm", storage=f"sqlite:///{folder / 'optuna.db'}").trials


@pytest.mark.slow  # default suite time (README, Tests): `make slow` runs it
def test_sigusr1_requeues_an_array_task_that_resumes_its_trial(tmp_path, request):
    """Two array tasks work on one study; SIGUSR1 to task 0's worker mid-trial: the trial
    checkpoints (its MLflow run KILLED), the script exits 138 and requeues task 0; task 0
    run again (same cache folder) and task 1 finish every (variant, seed) exactly once, the
    interrupted trial resumed from its checkpoint in the same MLflow run."""
    study = tmp_path / "slurm.toml"
    study.write_text(STUDY)
    tasks = ArrayTasks(tmp_path, study)
    request.addfinalizer(tasks.stop)
    first = tasks.start(0)
    other = tasks.start(1)

    trials0 = tasks.cache(0) / "studies" / "slurm" / "trials"
    training: list[Path] = []

    def task0_trains() -> bool:
        training[:] = [d for d in trials0.glob("*") if logged_steps(d)]
        return bool(training)

    wait_for("task 0's trial to log a step", task0_trains, 300, proc=first)
    [run_dir] = training
    [worker] = _children_of(first.pid)  # no srun: the worker is the script's child
    assert "study" in Path(f"/proc/{worker}/cmdline").read_bytes().decode(errors="replace")
    os.kill(worker, signal.SIGUSR1)  # as SLURM signals the job step's task
    assert finish(first, 300) == 138, tasks.output("task0-0")
    err = (tmp_path / "task0-0.err").read_text()
    assert "SIGUSR1: stopping the running trials" in err
    assert "Error: study slurm stopped by SIGUSR1" in err
    assert tasks.requeues.read_text() == f"requeue {ARRAY_JOB}_0\n"
    # Its trial stopped at a step, wrote a checkpoint there, and its run is KILLED.
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    [stopped] = [t for t in _trials(tmp_path) if t.user_attrs.get("outcome") == "stopped"]
    assert stopped.state == TrialState.FAIL and stopped.user_attrs["run_dir"] == str(run_dir)
    killed_run = stopped.user_attrs["run_id"]
    assert client.get_run(killed_run).info.status == "KILLED"
    log = next((tasks.cache(0) / "studies" / "slurm" / "logs").glob(f"{stopped.number:04d}-*"))
    [line] = [ln for ln in log.read_text().splitlines() if "stopped by SIGTERM at step" in ln]
    step = int(line.split("at step ")[1].split()[0])
    assert 0 < step < STEPS and (run_dir / "checkpoints" / f"step-{step:09d}.pt").is_file()

    again = tasks.start(0, restart=1)  # what the requeue runs: the same task, restarted
    assert finish(again, 600) == 0, tasks.output("task0-1")
    assert finish(other, 600) == 0, tasks.output("task1-0")
    assert tasks.requeues.read_text() == f"requeue {ARRAY_JOB}_0\n"  # no other requeue
    for name, task, restart in (("task0-0", 0, 0), ("task0-1", 0, 1), ("task1-0", 1, 0)):
        assert (
            f"task {ARRAY_JOB}_{task} (restart {restart}), cache {tasks.cache(task)}\n"
            in (tmp_path / f"{name}.out").read_text()
        )

    # Every (variant, seed) finished exactly once, in Optuna and in MLflow.
    trials = _trials(tmp_path)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    points = sorted((t.params["variant"], t.params["seed"]) for t in complete)
    assert points == [("base", 0), ("base", 1), ("low-lr", 0), ("low-lr", 1)]
    exp = client.get_experiment_by_name("study-slurm")
    runs = client.search_runs([exp.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("ganbench.study.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED"
    assert sorted(
        (r.data.tags["ganbench.study.variant"], r.data.params["seed"]) for r in children
    ) == [("base", "0"), ("base", "1"), ("low-lr", "0"), ("low-lr", "1")]
    assert all(r.info.status == "FINISHED" for r in children)
    assert {t.user_attrs["run_id"] for t in complete} == {r.info.run_id for r in children}

    # The interrupted trial was resumed from its checkpoint, in the same MLflow run.
    [resumed] = [t for t in complete if t.user_attrs.get("resumed_from") == stopped.number]
    assert resumed.user_attrs["run_id"] == killed_run
    assert client.get_run(killed_run).data.tags["ganbench.resume.1"]
    logs = [p for t in (0, 1) for p in (tasks.cache(t) / "studies" / "slurm" / "logs").glob("*")]
    assert any(f"resumed from step {step} of {STEPS}" in p.read_text() for p in logs)

    # A cache folder per task, holding the run folders of the trials its worker started.
    assert sorted(p.name for p in tasks.root.iterdir()) == [f"{ARRAY_JOB}_0", f"{ARRAY_JOB}_1"]
    started = [
        t for t in trials if "run_dir" in t.user_attrs and "resumed_from" not in t.user_attrs
    ]
    used = {tasks.cache_of(Path(t.user_attrs["run_dir"])) for t in started}
    assert used == {tasks.cache(0), tasks.cache(1)}
    assert all(
        tasks.cache_of(Path(t.user_attrs["run_dir"])) == tasks.cache(0)
        for t in started
        if t.user_attrs["pid"] == worker
    )


# ---- the script's own decisions, with a stand-in ganbench ----------------------------


def _stand_ins(folder: Path, rc: int, srun: bool) -> dict[str, str]:
    """A folder of stand-ins that record their calls in folder/calls: ganbench (its
    arguments and the stores it was given; exits ``rc``), scontrol, and srun if asked."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    calls = folder / "calls"
    tools = {
        "ganbench": f'echo "ganbench $*" >> "{calls}"\n'
        f'echo "stores $GANBENCH_STUDY_STORAGE $MLFLOW_TRACKING_URI" >> "{calls}"\nexit {rc}\n',
        "scontrol": f'echo "scontrol $*" >> "{calls}"\n',
        **({"srun": f'echo "srun" >> "{calls}"\nexec "$@"\n'} if srun else {}),
    }
    for name, body in tools.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body)
        (bin_dir / name).chmod(0o755)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "SLURM_", "GANBENCH_")) and k not in ("TEAM_ENV", "SCRATCH")
    }
    system = [d for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if d]
    assert srun or shutil.which("srun", path=os.pathsep.join(system)) is None
    return env | {
        "PATH": os.pathsep.join([str(bin_dir), *system]),
        "SLURM_JOB_ID": "4246",
        "SLURM_ARRAY_JOB_ID": ARRAY_JOB,
        "SLURM_ARRAY_TASK_ID": "3",
        "SLURM_RESTART_COUNT": "0",
    }


@pytest.mark.parametrize("srun", [False, True], ids=["no-srun", "srun"])
@pytest.mark.parametrize("rc", [0, 1, 138, 143])
def test_the_script_runs_a_worker_in_the_task_cache_and_requeues_a_stopped_one(tmp_path, rc, srun):
    """The team env gives the stores; the worker runs in the task's own cache folder (with
    srun when there is one) with the extra arguments; 138 and 143 requeue the array task;
    the script exits with the worker's code."""
    env = _stand_ins(tmp_path, rc, srun)
    team = tmp_path / "team.env"
    team.write_text(
        "export MLFLOW_TRACKING_URI=http://mlflow:5000\n"
        "export GANBENCH_STUDY_STORAGE=postgresql://u@db/optuna\n"
    )
    env |= {"TEAM_ENV": str(team), "GANBENCH_WORKER_ROOT": str(tmp_path / "w")}
    done = subprocess.run(
        ["bash", str(SCRIPT), "my.toml", "--seeds", "2"], env=env, cwd=tmp_path, timeout=60
    )
    assert done.returncode == rc
    cache = tmp_path / "w" / f"{ARRAY_JOB}_3"
    assert cache.is_dir()
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == [
        *(["srun"] if srun else []),
        f"ganbench study run my.toml --cache-dir {cache} --no-progress --seeds 2",
        "stores postgresql://u@db/optuna http://mlflow:5000",
        *([f"scontrol requeue {ARRAY_JOB}_3"] if rc in (138, 143) else []),
    ]


def test_the_script_refuses_workers_without_a_shared_storage(tmp_path):
    """Each task's default storage would be in its own cache: N studies, each run in full."""
    env = _stand_ins(tmp_path, 0, srun=False) | {"GANBENCH_WORKER_ROOT": str(tmp_path / "w")}
    args = ["bash", str(SCRIPT), "my.toml", "--tracking-uri", "http://mlflow:5000"]
    done = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "one Optuna storage" in done.stderr
    assert not (tmp_path / "calls").exists()
    done = subprocess.run([*args, "--storage=sqlite:////shared/optuna.db"], env=env, cwd=tmp_path)
    assert done.returncode == 0


def test_sigusr1_stops_a_study_worker_as_sigterm_does(tmp_path):
    """SIGUSR1 to the worker passes one SIGTERM to each running trial and is the signal the
    worker's exit code tells (128 + 10); the handlers are the previous ones after."""
    from ganbench.study.engine import StudyStopped
    from ganbench.study.trial import Launcher

    launcher, said, outcomes = Launcher(), [], []
    before = signal.getsignal(signal.SIGUSR1)
    with launcher.stopping_on_signals(said.append, "the running trials"):
        trial = threading.Thread(
            target=lambda: outcomes.append(
                launcher.run(
                    ["sleep", "60"], tmp_path / "t.log", run_dir=None, on_run_id=print, env={}
                )
            )
        )
        trial.start()
        wait_for("the trial to start", lambda: bool(launcher._running), 30)
        os.kill(os.getpid(), signal.SIGUSR1)
        trial.join(30)
    assert signal.getsignal(signal.SIGUSR1) is before
    [outcome] = outcomes
    assert outcome.stopped and outcome.returncode == -signal.SIGTERM
    assert launcher.stop_signal == signal.SIGUSR1
    assert said == ["SIGUSR1: stopping the running trials (training checkpoints); a second"
                    " signal stops it at once"]  # fmt: skip
    assert StudyStopped(launcher.stop_signal, "stopped").exit_code == 138

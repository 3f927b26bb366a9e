"""``ganbench claim run``'s work: train (or continue training) through ``ganbench run`` /
``ganbench resume`` processes and probe through ``ganbench probe`` processes, remembering
each finished step in the claim folder (:mod:`ganbench.claims.state`).

Each step is the real command in its own process, started as a study starts its trials
(:class:`ganbench.study.trial.Launcher`, the same command lines): the training's
checkpoint on SIGTERM and its resume work exactly as for a user's own run. A Ctrl-C or
SIGTERM to the claim passes one SIGTERM on (a second stops the step at once); the claim
then exits with 128 + the signal, and running it again continues where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganbench.claims.check import check_probes, missing_data, needed_data, plan_training
from ganbench.claims.recipe import ProbeSpec, Recipe
from ganbench.claims.state import ClaimFolder
from ganbench.errors import DatasetNotFoundError, GanbenchError, Stopped, UsageError
from ganbench.files.redact import safe_uri
from ganbench.rundir.folder import RunFolder
from ganbench.study.trial import Launcher, Outcome, resume_command, run_command

#: The run's parameters a report needs: what one step costs in real images.
PARAMS = ("architecture", "dataset", "seed", "batch_size", "real_batches_per_step", "num_images")


@dataclass(frozen=True)
class ClaimOptions:
    ref: str
    out: Path
    cache: Path
    tracking_uri: str
    data_root: str | None
    bad_images: str
    device: str
    run_id: str | None
    progress: bool

    @property
    def data_args(self) -> list[str]:
        args = ["--cache-dir", str(self.cache), "--bad-images", self.bad_images]
        return args + (["--data-root", self.data_root] if self.data_root else [])


def tracking_uri_of(out: Path, given: str | None) -> str:
    """The store: the one given, else the one the claim folder used, else the default."""
    from ganbench.tracking.tracker import resolve_tracking_uri

    if given is None and (out / "state.json").is_file():
        stored = ClaimFolder(out).state.get("tracking_uri")
        if stored:
            return str(stored)
    return resolve_tracking_uri(given)


def run_claim(recipe: Recipe, options: ClaimOptions, say: Callable[[str], None]) -> ClaimFolder:
    """Everything the claim still lacks; returns its folder with every step's record."""
    from ganbench.plugins import load_registries

    registries = load_registries()
    plan = plan_training(recipe, registries)
    check_probes(recipe, plan, registries)
    folder = ClaimFolder(options.out)
    known = folder.state.get("training", {})
    if options.run_id and known.get("run_id") not in (None, options.run_id):
        raise UsageError(
            f"{folder.path} holds the claim for run {known['run_id']}, not {options.run_id};"
            " give another --out"
        )
    run_id = options.run_id or known.get("run_id")
    train = options.run_id is None and not known.get("finished")
    left = [p for p in recipe.probes if not (run_id and folder.probe_done(p.name, p.key, run_id))]
    needed = needed_data(recipe, plan, registries, options.data_root, train=train, probes=left)
    missing = missing_data(needed, options.data_root, options.cache)
    if missing:
        raise DatasetNotFoundError(missing[0])
    folder.hold()
    folder.adopt(recipe.name, recipe.train.key, options.tracking_uri)
    work = _Work(recipe, options, folder, say)
    with work.signals():
        if options.run_id:
            folder.set_run(options.run_id, None, given=True)
        else:
            work.train()
        work.read_params(plan)
        for probe in recipe.probes:
            work.probe(probe)
    return folder


class _Work:
    def __init__(
        self, recipe: Recipe, options: ClaimOptions, folder: ClaimFolder, say: Callable
    ) -> None:
        self.recipe, self.options, self.folder, self.say = recipe, options, folder, say
        self.launcher = Launcher()
        self.logs = folder.path / "logs"

    # ---- training -----------------------------------------------------------------------
    def train(self) -> None:
        from ganbench.runs.resume import journaled_status

        t = self.folder.training
        if t.get("finished"):
            self.say(f"training: run {t['run_id']} finished earlier; not redone")
            return
        log = self.logs / "train.log"
        while True:
            attempt = t.get("attempt", 1)
            run_dir = self.folder.path / ("run" if attempt == 1 else f"run.{attempt}")
            if RunFolder.is_run_folder(run_dir):
                run = RunFolder.open(run_dir)
                self.folder.set_run(run.run_id, run_dir)
                self._wait_for(run)
                if journaled_status(run) == "FINISHED":
                    self._deliver(run, log)
                    break
                self.say(f"training: continuing run {run.run_id}: ganbench resume {run_dir}")
                cmd = resume_command(
                    str(run_dir), device=self.options.device,
                    tracking_uri=self.options.tracking_uri, data_args=self.options.data_args,
                )  # fmt: skip
                outcome = self._launch(cmd, log, None, training=True)
                if outcome.cannot_resume and self.launcher.stop_signal is None:
                    self.say(f"training: run {run.run_id} stopped before its first checkpoint;"
                             " starting the training again")  # fmt: skip
                    self._next_attempt(attempt)
                    continue
            elif run_dir.exists() and any(run_dir.iterdir()):
                self._next_attempt(attempt)  # a folder `ganbench run` would refuse
                continue
            else:
                self.say(f"training: {self.recipe.train.command()}")
                outcome = self._launch(self._run_command(run_dir), log, run_dir, training=True)
            self._check(outcome, "training", log)
            break
        self.folder.finish_training()

    def _deliver(self, run: RunFolder, log: Path) -> None:
        """A run that finished training, stopped before all its records reached the store
        (a signal while it delivered them, a store away): ``ganbench sync`` them."""
        from ganbench.tracking.outbox.journal import pending_in

        if not pending_in(run.path / "outbox"):
            self.say(f"training: run {run.run_id} finished")
            return
        self.say(f"training: run {run.run_id} finished; its tracking records wait: ganbench"
                 f" sync {run.path}")  # fmt: skip
        cmd = [sys.executable, "-m", "ganbench", "sync", str(run.path), "--no-progress"]
        self._check(self._launch(cmd, log, None, training=False), "ganbench sync", log)

    def _next_attempt(self, attempt: int) -> None:
        t = self.folder.training
        t.clear()
        t["attempt"] = attempt + 1
        self.folder.save()

    def _run_command(self, run_dir: Path) -> list[str]:
        r, t = self.recipe, self.recipe.train
        return run_command(
            t.architecture, t.dataset, t.seed, t.settings, run_dir=run_dir,
            device=self.options.device, tracking_uri=self.options.tracking_uri,
            experiment=f"claim-{r.name}", run_name=f"claim {r.name}",
            tags={"ganbench.claim": r.name}, data_args=self.options.data_args,
        )  # fmt: skip

    def _wait_for(self, run: RunFolder) -> None:
        """A training process that outlived an earlier claim (``kill -9``): wait for it."""
        if not run.held_elsewhere():
            return
        beat = run.heartbeat()
        self.say(f"training: run {run.run_id} is still training (pid {beat.pid if beat else '?'},"
                 " left by an earlier claim); waiting for it to end")  # fmt: skip
        while run.held_elsewhere():
            if self.launcher.stop_signal is not None:
                raise Stopped(self.launcher.stop_signal, "stopped waiting for the training")
            time.sleep(2.0)

    # ---- probes -------------------------------------------------------------------------
    def probe(self, p: ProbeSpec) -> None:
        run_id = self.folder.training["run_id"]
        done = self.folder.probe_done(p.name, p.key, run_id)
        if done:
            self.say(f"probe {p.name}: done earlier ({done['seconds']:.0f} s); not redone")
            return
        self.say(f"probe {p.name}: {p.command().replace('RUN_ID', run_id)}")
        cmd = [sys.executable, "-m", "ganbench", "probe", run_id, *p.args()]
        cmd += ["--device", self.options.device, "--tracking-uri", self.options.tracking_uri]
        cmd += [*self.options.data_args, "--no-progress"]
        log = self.logs / f"probe-{p.name}.log"
        offset = log.stat().st_size if log.exists() else 0
        start = time.monotonic()
        outcome = self._launch(cmd, log, None, training=False)
        self._check(outcome, f"probe {p.name}", log)
        path = _saved_path(log, offset)
        record = json.loads(Path(path).read_text())
        self.folder.finish_probe(p.name, p.key, run_id, path, record, time.monotonic() - start)

    # ---- the training run's parameters --------------------------------------------------
    def read_params(self, plan: Any) -> None:
        """The run's batch size and data size (for the budget), and where a run given with
        --run differs from the recipe's training."""
        from ganbench.tracking.store import open_client, retrying

        t = self.folder.training
        if t.get("params"):
            return
        try:
            run = retrying(lambda: open_client(self.options.tracking_uri).get_run(t["run_id"]))
        except GanbenchError:
            raise
        except Exception as exc:  # MlflowException: no such run
            raise UsageError(
                f"cannot read run {t['run_id']} in {safe_uri(self.options.tracking_uri)}:"
                f" {str(exc).splitlines()[0]}"
            ) from None
        logged = run.data.params
        params = {k: logged[k] for k in PARAMS if k in logged}
        params["status"] = run.info.status
        wanted = plan.params()
        keys = {"architecture", "dataset", "seed", *self.recipe.train.settings}
        differs = {k: [logged.get(k), wanted[k]] for k in sorted(keys)
                   if k in wanted and logged.get(k) != wanted[k]}  # fmt: skip
        if differs:
            said = ", ".join(f"{k} {a} (recipe {b})" for k, (a, b) in differs.items())
            self.say(f"note: run {t['run_id']} differs from the recipe's training: {said}")
        t["differs"] = differs
        t["finished"] = True
        t["params"] = params
        self.folder.save()

    # ---- processes ----------------------------------------------------------------------
    def _launch(
        self, cmd: list[str], log: Path, run_dir: Path | None, *, training: bool
    ) -> Outcome:
        def on_run_id(run_id: str) -> None:
            self.folder.set_run(run_id, run_dir)

        offset = log.stat().st_size if log.exists() else 0
        start = time.monotonic()
        shown = self.options.progress
        with _follow(log, offset, self.say) if shown else contextlib.nullcontext():
            outcome = self.launcher.run(cmd, log, run_dir=run_dir, on_run_id=on_run_id, env={})
        if training:
            self.folder.add_training_time(time.monotonic() - start)
        return outcome

    def _check(self, outcome: Outcome, what: str, log: Path) -> None:
        if outcome.finished:
            return
        again = f"`ganbench claim run {self.options.ref}` continues it"
        if self.launcher.stop_signal is not None:
            name = signal.Signals(self.launcher.stop_signal).name
            kept = " (the training checkpointed)" if what == "training" else ""
            raise Stopped(self.launcher.stop_signal, f"{name}: stopped the {what}{kept}; {again}")
        last = outcome.last_line.removeprefix("Error: ")
        rc = outcome.returncode
        if outcome.diverged:
            raise GanbenchError(f"{what} diverged: {last} (log: {log})")
        if rc == 2:
            raise UsageError(f"{what}: {last} (log: {log})")
        if rc < 0 or rc > 128:
            signum = -rc if rc < 0 else rc - 128
            raise GanbenchError(
                f"{what} was stopped by signal {signum} from outside the claim: {last};"
                f" {again} (log: {log})"
            )
        raise GanbenchError(f"{what} failed (exit {rc}): {last} (log: {log})")

    def signals(self) -> contextlib.AbstractContextManager[None]:
        """SIGTERM, SIGINT and SIGUSR1 stop the running step (it checkpoints), then the claim."""
        return self.launcher.stopping_on_signals(self.say, "the running step")


SAVED = "saved the result in "


def _saved_path(log: Path, offset: int) -> str:
    """The record ``ganbench probe`` said it saved (in the log, after ``offset``)."""
    with log.open("rb") as fh:
        fh.seek(offset)
        lines = fh.read().decode(errors="replace").splitlines()
    found = [ln.strip().removeprefix(SAVED) for ln in lines if ln.strip().startswith(SAVED)]
    if not found:
        raise GanbenchError(f"the probe finished without saying where its result is (log: {log})")
    return found[-1]


@contextlib.contextmanager
def _follow(log: Path, offset: int, say: Callable[[str], None]) -> Iterator[None]:
    """Echo the step's log lines as they come (the process writes to the log only)."""
    stop = threading.Event()

    def tail() -> None:
        pos, partial = offset, b""
        while True:
            ended = stop.is_set()
            with contextlib.suppress(OSError), log.open("rb") as fh:
                fh.seek(pos)
                chunk = fh.read()
                pos += len(chunk)
                *lines, partial = (partial + chunk).split(b"\n")
                for line in [*lines, *([partial] if ended else [])]:
                    if line.strip() and not line.startswith(b"$ "):
                        say(f"  | {line.decode(errors='replace').rstrip()}")
            if ended:
                return
            stop.wait(0.5)

    thread = threading.Thread(target=tail, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)

"""What ``ganbench run`` and ``ganbench resume`` share: data and scorer before the run
goes live, then training under stop signals, then the tracking backlog at the end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganbench.errors import TrackingError
from ganbench.files.redact import safe_uri
from ganbench.metrics.session import Scorer
from ganbench.plugins.interfaces import ImageArray
from ganbench.rundir.folder import RunFolder
from ganbench.signals import Preempted, StopNow, StopSignals
from ganbench.tracking.outbox.tracker import OutboxTracker
from ganbench.training.checkpointing import Resume
from ganbench.training.plan import RunPlan
from ganbench.training.runner import RunResult, train

#: After a stop signal the machine may go away soon (SLURM kills 30 s after SIGTERM):
#: wait this long at most for the tracking store; a resume delivers the rest.
STOPPED_WAIT = 10.0


@dataclass
class DataOptions:
    """Where a run's data and caches are (recorded in run.json so a resume finds them)."""

    data_root: str | None
    cache_dir: str | None
    bad_images: str
    inception_weights: str | None

    def record(self) -> dict[str, Any]:
        def absolute(path: str | None) -> str | None:
            return str(Path(path).expanduser().resolve()) if path else None

        return {
            "data_root": absolute(self.data_root),
            "cache_dir": absolute(self.cache_dir),
            "bad_images": self.bad_images,
            "inception_weights": absolute(self.inception_weights),
        }


def prepare(
    registries: Any,
    plan: RunPlan,
    options: DataOptions,
    device: torch.device,
    *,
    progress: bool,
    say: Callable[[str], None],
) -> tuple[ImageArray, Scorer | None]:
    """The training images and the scorer (extractor and real statistics), before any
    MLflow run exists or changes: a missing dataset fails with nothing to clean up."""
    from ganbench.data.loading import load_images
    from ganbench.data.paths import cache_root
    from ganbench.training.data import check_batch_size

    data = load_images(
        plan.dataset,
        plan.request(options.data_root),
        cache_root(options.cache_dir),
        bad_images=options.bad_images,  # type: ignore[arg-type]
        progress=progress,
        say=say,
    )
    if plan.train.dedup:
        data = _without_duplicates(plan, data, options)
        say(f"--dedup: {data.source}")
    if plan.train.data_fraction < 1:
        from ganbench.training.subset import fraction_of

        data = fraction_of(data, plan.train.data_fraction, plan.train.batch_size)
        say(f"data_fraction: {data.source}")
    check_batch_size(plan.train.batch_size, len(data))
    scorer = None
    if plan.train.eval_every:
        from ganbench.metrics.counts import TRAINING_FIX
        from ganbench.metrics.session import make_scorer

        # The reference: the run's eval_split (compare_gan's test split), else its own.
        scorer = make_scorer(
            registries,
            plan,
            data_root=options.data_root,
            cache_dir=options.cache_dir,
            metrics=plan.train.eval_metrics,
            extractor=plan.train.eval_extractor or None,
            inception_weights=options.inception_weights,
            samples=plan.train.eval_samples,
            real_samples=None,
            device=device,
            seed=plan.train.seed + 3,
            bad_images=options.bad_images,  # type: ignore[arg-type]
            progress=progress,
            say=say,
            samples_fix=TRAINING_FIX,
        )
    return data, scorer


def _without_duplicates(plan: RunPlan, data: ImageArray, options: DataOptions) -> ImageArray:
    """The split minus the near duplicates of its list (refused when there is no list,
    or it was made for other files)."""
    from ganbench.data import dedup
    from ganbench.data.paths import cache_root

    request = plan.request(options.data_root)
    path, stamp = dedup.split_files(plan.dataset, request, cache_root(options.cache_dir))
    found = dedup.load(
        path,
        count=len(data),
        fingerprint=stamp,
        rebuild=dedup.rebuild_command(plan.dataset, request),
    )
    return dedup.deduplicated(data, found)


def execute(
    plan: RunPlan,
    data: ImageArray,
    scorer: Scorer | None,
    tracker: OutboxTracker,
    folder: RunFolder,
    device: torch.device,
    *,
    resume: Resume | None,
    progress: bool,
    tracking_wait: float,
    say: Callable[[str], None],
    replicas: Any = None,
) -> RunResult:
    """Train under stop signals; then give the tracking store ``tracking_wait`` seconds to
    take the backlog. A backlog left at a normal end is an error (exit 1) naming the
    folder it waits in; after a stop or an error it is said, and the stop's own error
    stands."""
    try:
        try:
            with StopSignals() as stop:
                result = train(
                    plan,
                    data,
                    tracker,
                    device,
                    progress,
                    scorer,
                    folder=folder,
                    resume=resume,
                    stop=stop,
                    say=say,
                    replicas=replicas,
                )
        except BaseException as exc:
            stopped = isinstance(exc, (Preempted, StopNow, KeyboardInterrupt))
            left = tracker.close(min(tracking_wait, STOPPED_WAIT) if stopped else tracking_wait)
            if left:
                say(
                    f"tracking: {left} records could not be delivered to"
                    f" {safe_uri(tracker.tracking_uri)}; they wait in {folder.path} (a resume or"
                    f" `ganbench sync {folder.path}` delivers them)"
                )
            raise
        left = tracker.close(tracking_wait)
        if left:
            raise TrackingError(
                f"training finished ({result.steps} steps; checkpoint and generator in"
                f" {folder.path}), but the MLflow store at {safe_uri(tracker.tracking_uri)} did not"
                f" answer within {tracking_wait:.0f} s: {left} records wait there. Deliver"
                f" them once it is back: ganbench sync {folder.path}"
            )
        return result
    finally:
        folder.unlock()  # only now: no other process may deliver this journal meanwhile

"""What a study leaves in MLflow: the parent run (its tags, params and study files), the
tags and names that nest each trial's run under it, each trial's result read back from
its run, the parent's ``trials_*`` progress metrics, and its last status with the report.

The trials write their own runs (they are ``ganbench run`` processes); this module only
reads them, so a study's results are whatever the store holds.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganbench.study import storage as st
from ganbench.study.options import StudyOptions
from ganbench.study.spec import Point, Study

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: The MLflow parent run's tag naming its study.
STUDY_TAG = "ganbench.study"


class StudyRecorder:
    """The study's MLflow parent run, and the trial results read from its nested runs."""

    def __init__(self, study: Study, text: str, options: StudyOptions) -> None:
        self.study = study
        self.text = text
        self.options = options
        self.client: MlflowClient | None = None
        self.parent_run_id = ""

    def connect(self) -> None:
        from ganbench.tracking.store import open_client

        self.client = open_client(self.options.tracking_uri)

    # ---- the parent run -------------------------------------------------------------------
    def create_parent(self) -> str:
        """A new parent run with the study's params and its study files; its id."""
        from ganbench.tracking.provenance import run_tags
        from ganbench.tracking.store import experiment_id, retrying

        assert self.client is not None
        client = self.client
        exp = experiment_id(client, self.options.experiment)
        tags = {
            **run_tags(),
            "mlflow.source.name": "ganbench study run",
            STUDY_TAG: self.study.name,
        }
        tags["ganbench.study.role"] = "parent"
        if self.study.summary:
            tags["mlflow.note.content"] = self.study.summary
        run = retrying(lambda: client.create_run(exp, run_name=self.study.name, tags=tags))
        run_id = run.info.run_id
        params = {
            "study": self.study.name,
            "architecture": self.study.architecture,
            **(
                {"variant_architectures": _variant_archs(self.study)}
                if self.study.architectures
                else {}
            ),
            "datasets": ",".join(self.study.datasets),
            "seeds": ",".join(map(str, self.study.seeds)),
            "variants": len(self.study.variants),
            "baseline": self.study.baseline or "",
            "objective": f"{self.study.objective} FID",
            "min_seeds": self.study.min_seeds,
            "correction": self.study.correction,
            "mode": "grid" if self.options.trials is None else f"{self.options.sampler} search",
            "storage": st.safe_url(self.options.storage_url),
            **{f"settings.{k}": v for k, v in self.study.settings.items()},
        }
        client.log_batch(run_id, params=_params(params))
        self.parent_run_id = run_id
        self._log_study_files()
        return run_id

    def _log_study_files(self) -> None:
        import tomli_w

        assert self.client is not None
        run_id = self.parent_run_id
        self.client.log_text(run_id, self.text, "study/study.toml")
        resolved = tomli_w.dumps(_toml_safe(self.study.as_dict()))
        self.client.log_text(run_id, resolved, "study/resolved.toml")

    def record_seeds(self) -> None:
        """Seeds added to the study: the parent's ``seeds`` param is the first run's (MLflow
        params never change), so tag ``ganbench.study.seeds`` holds the seeds it has now,
        and its resolved.toml, which the report reads, is written again."""
        assert self.client is not None
        seeds = ",".join(map(str, self.study.seeds))
        self.client.set_tag(self.parent_run_id, "ganbench.study.seeds", seeds)
        self._log_study_files()

    def reopen_parent(self, run_id: str) -> None:
        """The parent run of an earlier worker of the study: RUNNING again."""
        assert self.client is not None
        self.parent_run_id = run_id
        self.client.update_run(run_id, status="RUNNING")

    def log_progress(self, c: dict[str, int]) -> None:
        """The counts of :func:`storage.counts` as the parent's ``trials_*`` metrics."""
        from mlflow.entities import Metric

        assert self.client is not None
        step = c["done"] + c["diverged"] + c["failed"]
        now = int(time.time() * 1000)
        metrics = [
            Metric(f"trials_{k}", float(v), now, step)
            for k, v in c.items()
            if k in ("done", "diverged", "running", "failed")
        ]
        with contextlib.suppress(Exception):  # progress is news, never a reason to stop
            self.client.log_batch(self.parent_run_id, metrics=metrics)

    def end_parent(self, status: str) -> None:
        assert self.client is not None
        self.client.set_terminated(self.parent_run_id, status=status)

    def publish_report(self, folder: Path) -> None:
        """The report written in ``folder``, logged under the parent's report/; FINISHED."""
        from ganbench.study.render import write_report

        assert self.client is not None
        paths = write_report(self.client, self.parent_run_id, folder)
        for path in paths:
            self.client.log_artifact(self.parent_run_id, str(path), "report")
        self.end_parent("FINISHED")

    # ---- the trials' runs -----------------------------------------------------------------
    def trial_tags(self, point: Point, architecture: str, trial_number: int) -> dict[str, str]:
        """The tags that nest a trial's run under the parent and name its place in the study."""
        return {
            "mlflow.parentRunId": self.parent_run_id,
            STUDY_TAG: self.study.name,
            "ganbench.study.variant": point.variant,
            "ganbench.study.architecture": architecture,
            "ganbench.study.trial": str(trial_number),
        }

    def trial_run_name(self, point: Point, trial_number: int) -> str:
        searching = self.options.trials is not None and self.study.per_variant_search
        if searching:
            return f"{point.variant} trial {trial_number}"
        return f"{point.variant} seed {point.seed}"

    def supersede(self, run_id: str, trial_number: int) -> None:
        """A run that could not be resumed: KILLED, naming the trial that starts over."""
        assert self.client is not None
        with contextlib.suppress(Exception):
            self.client.set_tag(run_id, "ganbench.study.superseded_by", f"trial {trial_number}")
            self.client.set_terminated(run_id, status="KILLED")

    def result_of(self, run_id: str) -> tuple[str, dict[str, Any]] | None:
        """(done | diverged, attributes) from the MLflow run, or None if it did not end so."""
        from ganbench.study.results import run_summary

        assert self.client is not None
        try:
            summary = run_summary(self.client, run_id)
        except Exception:
            return None
        if summary.diverged_step is not None:
            return "diverged", {
                "outcome": "diverged",
                "run_id": run_id,
                "diverged_step": summary.diverged_step,
            }
        if summary.status != "FINISHED":
            return None
        attrs: dict[str, Any] = {"outcome": "finished", "run_id": run_id}
        if summary.fid_name:
            attrs |= {"fid_name": summary.fid_name}
            if summary.best_fid is not None:
                attrs |= {"best_fid": summary.best_fid, "final_fid": summary.final_fid}
                attrs["objective"] = attrs[f"{self.study.objective}_fid"]
        return "done", attrs


def _variant_archs(study: Study) -> str:
    return ",".join(f"{v}={study.architecture_of(v)}" for v in study.variants)


def _params(values: dict[str, Any]) -> list[Any]:
    from mlflow.entities import Param

    return [Param(k, str(v)[:6000]) for k, v in values.items()]


def _toml_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _toml_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_toml_safe(v) for v in value]
    return value

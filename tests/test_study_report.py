"""The study report's numbers and verdicts, on MLflow stores written run by run with the
real client (the layout ``ganbench study run`` leaves: a parent run with its resolved
study file, nested runs with params, tags and metric histories), checked against NumPy,
SciPy and statsmodels on the same values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tomli_w
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from scipy import stats
from statsmodels.stats.multitest import multipletests

from ganbench.study.render import write_report
from ganbench.study.report import collect
from ganbench.study.stats import compare, correct, holm, probability_better

FID = "digits-cnn/fid_2k"


class Store:
    """A study's parent run and its trials, written with MlflowClient."""

    def __init__(self, tmp_path, definition: dict) -> None:
        self.client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
        self.exp = self.client.create_experiment("study-s", artifact_location=str(tmp_path / "a"))
        tags = {"ganbench.study.role": "parent", "ganbench.study": "s"}
        self.parent = self.client.create_run(self.exp, run_name="s", tags=tags).info.run_id
        self.client.log_param(self.parent, "mode", "grid")
        self.client.log_text(self.parent, tomli_w.dumps(definition), "study/resolved.toml")
        self.client.set_terminated(self.parent, "FINISHED")

    def trial(
        self,
        variant: str,
        dataset: str,
        seed: int,
        fids: list[float],
        *,
        status: str = "FINISHED",
        diverged_at: int | None = None,
        per_step: int = 1,
        extra: dict[str, list[float]] | None = None,
    ) -> str:
        tags = {
            "mlflow.parentRunId": self.parent,
            "ganbench.study.variant": variant,
            "ganbench.study.architecture": "dcgan",
        }
        if diverged_at is not None:
            tags["ganbench.diverged"] = f"step {diverged_at}: loss_d is nan"
        run = self.client.create_run(self.exp, run_name=f"{variant} {seed}", tags=tags)
        rid, start = run.info.run_id, run.info.start_time
        params = {"dataset": dataset, "seed": seed, "batch_size": 64,
                  "total_steps": 100 * len(fids), "real_batches_per_step": per_step,
                  "eval_samples": 2000}  # fmt: skip
        metrics = [
            Metric(FID, v, start + 1000 * (i + 1), 100 * (i + 1)) for i, v in enumerate(fids)
        ]
        for key, values in (extra or {}).items():
            metrics += [
                Metric(key, v, start + 1000 * (i + 1), 100 * (i + 1)) for i, v in enumerate(values)
            ]
        self.client.log_batch(
            rid,
            metrics=metrics,
            params=[Param(k, str(v)) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        self.client.set_terminated(rid, status, end_time=start + 1000 * (len(fids) + 1))
        return rid


DEFINITION = {
    "name": "s",
    "architecture": "dcgan",
    "datasets": ["digits", "cifar10"],
    "seeds": [0, 1, 2, 3, 4],
    "baseline": "base",
    "variants": {"base": {}, "alt": {"lr": 0.001}},
    "objective": "final",
}


def test_rows_are_variant_and_dataset_cells_of_the_finished_runs(tmp_path):
    """Two datasets, a consistent +1 FID of alt on each, a FAILED run whose early FID was
    logged, and a diverged baseline run: per-cell numbers equal NumPy's on the FINISHED runs;
    the failed run is listed, not scored; the diverged one counts as the worst result."""
    rng = np.random.default_rng(0)
    store = Store(tmp_path, DEFINITION)
    finals: dict[tuple[str, str], list[float]] = {}
    for dataset, level in (("digits", 10.0), ("cifar10", 50.0)):
        for seed in range(5):
            noise = float(rng.normal(0, 0.1))
            for variant, shift in (("base", 0.0), ("alt", 1.0)):
                value = level + shift + noise + float(rng.normal(0, 0.05))
                store.trial(variant, dataset, seed, [value + 30, value + 5, value])
                finals.setdefault((variant, dataset), []).append(value)
    failed = store.trial("alt", "digits", 5, [3.0], status="FAILED")  # a low, early FID
    store.trial("base", "cifar10", 5, [60.0], status="FAILED", diverged_at=150)

    report = collect(store.client, store.parent)
    cells = {(r.variant, r.dataset): r for r in report.rows}
    assert list(cells) == [("base", "digits"), ("base", "cifar10"), ("alt", "digits"),
                           ("alt", "cifar10")]  # fmt: skip
    for key, values in finals.items():
        x = np.asarray(values, dtype=np.float64)
        spread = cells[key].spread("objective")
        assert spread.n == 5 and spread.mean == pytest.approx(x.mean(), rel=1e-12)
        assert spread.std == pytest.approx(x.std(ddof=1), rel=1e-12)
    assert [r.run_id for r in cells["alt", "digits"].crashed] == [failed]
    assert cells["base", "cifar10"].divergence_rate == pytest.approx(1 / 6)
    # digits: Welch on the finished runs, equal to scipy's; +1 everywhere is found.
    c = cells["alt", "digits"].comparison
    ref = stats.ttest_ind(finals["alt", "digits"], finals["base", "digits"], equal_var=False)
    assert c.test == "welch" and c.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert (c.difference.low, c.difference.high) == pytest.approx(tuple(ref.confidence_interval()))
    assert c.verdict("X").startswith("worse: observed at X with 5 and 5 seeds")
    # cifar10: the baseline's diverged run ranks last, so Mann-Whitney decides.
    c = cells["alt", "cifar10"].comparison
    base = finals["base", "cifar10"] + [math.inf]
    ref = stats.mannwhitneyu(finals["alt", "cifar10"], base, alternative="two-sided")
    assert c.test == "mann-whitney" and c.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert c.superiority == pytest.approx(1 / 6)  # alt beats only the diverged run
    # Both p-values form one Holm family.
    adjusted = multipletests(
        [ref.pvalue, cells["alt", "digits"].comparison.p_value], method="holm"
    )[1]
    assert sorted(r.comparison.p_adjusted for r in report.rows if r.comparison) == pytest.approx(
        sorted(adjusted)
    )
    # The pages: the budget is stated, the crashed run named, the verdict worded.
    paths = write_report(store.client, store.parent, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "300 G steps = 300 D steps (19,200 real images), batch 64, scored on 2,000 samples" in md
    assert f"run {failed} ended FAILED" in md and "reproduced" not in md
    assert {p.name for p in paths} >= {"fid_vs_images.png", "fid_vs_seconds.png", "report.html"}


def test_holm_equals_statsmodels_and_so_do_the_report_s_verdicts(tmp_path):
    rng = np.random.default_rng(1)
    for m in (1, 2, 5, 9, 20):
        p = rng.uniform(0, 0.1, m) ** rng.uniform(1, 3, m)
        assert holm(p) == pytest.approx(multipletests(p, method="holm")[1], rel=1e-12)
    # Nine variants against a baseline, 6 seeds each: the report's verdicts are
    # statsmodels' rejections at 5% on the same p-values.
    definition = {**DEFINITION, "datasets": ["digits"], "seeds": list(range(6)),
                  "variants": {"base": {}, **{f"v{i}": {} for i in range(9)}}}  # fmt: skip
    store = Store(tmp_path, definition)
    for seed in range(6):
        store.trial("base", "digits", seed, [10.0 + rng.normal(0, 1)])
        for i in range(9):
            store.trial(f"v{i}", "digits", seed, [10.0 + 0.5 * i + rng.normal(0, 1)])
    rows = [r for r in collect(store.client, store.parent).rows if r.comparison]
    raw = [r.comparison.p_value for r in rows]
    reject, adjusted, *_ = multipletests(raw, alpha=0.05, method="holm")
    assert [r.comparison.p_adjusted for r in rows] == pytest.approx(adjusted, rel=1e-12)
    assert [r.comparison.significant for r in rows] == list(reject)
    assert 0 < sum(reject) < sum(np.asarray(raw) < 0.05)  # the correction changed verdicts


def test_fewer_seeds_than_the_minimum_give_no_verdict():
    c = compare([20.0, 21.0, 22.0], [10.0, 10.5, 11.0], min_seeds=5)
    assert c.too_few and math.isnan(c.p_value)
    assert c.verdict("300 steps").startswith("too few seeds for a verdict (3 and 3 seeds")
    assert c.difference is not None and c.difference.estimate == pytest.approx(10.5)
    [corrected] = correct([c])
    assert math.isnan(corrected.p_adjusted) and not corrected.significant
    enough = compare([20.0, 21.0, 22.0, 21.5, 20.5], [10.0, 10.5, 11.0, 10.2, 10.7], min_seeds=5)
    assert not enough.too_few and enough.test == "welch" and enough.p_value < 1e-4


def test_a_diverged_run_is_the_worst_result_not_dropped():
    """Dropping the diverged runs would make this unstable variant look better than the
    baseline; ranked last, it is not."""
    unstable = [5.0, 5.5, 6.0, math.inf, math.inf, math.inf]
    stable = [8.0, 8.2, 8.4, 8.1, 8.3, 8.5]
    c = compare(unstable, stable, min_seeds=5)
    assert c.test == "mann-whitney" and c.difference.estimate < 0  # the finished ones
    assert c.superiority == pytest.approx(probability_better(np.array(unstable), np.array(stable)))
    assert c.superiority == pytest.approx(0.5) and not c.significant
    assert c.p_value == pytest.approx(
        stats.mannwhitneyu(unstable, stable, alternative="two-sided").pvalue
    )

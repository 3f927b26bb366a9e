"""Studies: the TOML definition, the Welch interval, and real ``ganbench study run`` processes
on a real Optuna storage and MLflow store (nested runs, divergence, re-runs, kills, two
workers), with the report checked against the runs' own metric histories and opened in
headless Chromium."""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import textwrap
import time
import tomllib
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from processes import finish, ganbench
from scipy import stats

from ganbench.errors import ConfigError, UsageError
from ganbench.study import definition
from ganbench.study.stats import welch_difference

#: Trials of a few steps at 16 px, scored once at the end on 100 samples.
TINY_SETTINGS = """
[settings]
steps = 8
batch_size = 16
resolution = 16
ngf = 8
ndf = 8
log_every = 2
sample_every = 4
eval_every = 8
eval_samples = 100
eval_metrics = "fid,is"
"""


def _study_file(folder: Path, name: str, variants: str, seeds: int = 2, steps: int = 8) -> Path:
    text = f'name = "{name}"\narchitecture = "dcgan"\ndatasets = ["digits"]\n'
    text += f'seeds = {seeds}\nbaseline = "base"\n'
    text += TINY_SETTINGS.replace("steps = 8", f"steps = {steps}").replace(
        "eval_every = 8", f"eval_every = {steps}"
    )
    text += "\n[variants]\n" + textwrap.dedent(variants)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def _study_args(path: Path, folder: Path, *extra: str) -> list[str]:
    return [
        *("study", "run", str(path), "--cache-dir", str(folder / "cache")),
        *("--storage", f"sqlite:///{folder / 'optuna.db'}"),
        *("--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}", "--no-progress", *extra),
    ]


def _trials(folder: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'optuna.db'}").trials


def _children(folder: Path, name: str) -> tuple[MlflowClient, object, list]:
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name(f"study-{name}")
    runs = client.search_runs([exp.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("ganbench.study.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return client, parent, children


# ---- the definition -------------------------------------------------------------------


def test_a_study_file_resolves_variants_axes_and_seeds(tmp_path):
    spec = definition.parse(
        textwrap.dedent("""
            name = "s"
            architecture = "dcgan"
            datasets = "digits"
            seeds = [3, 7]
            [settings]
            steps = 10
            [axes]
            lr = [0.0002, 0.001]
            beta1 = [0.5, 0.9]
        """),
        "s.toml",
    )
    assert spec.seeds == [3, 7] and spec.datasets == ["digits"]
    assert list(spec.variants) == [
        "lr=0.0002,beta1=0.5",
        "lr=0.0002,beta1=0.9",
        "lr=0.001,beta1=0.5",
        "lr=0.001,beta1=0.9",
    ]
    assert spec.trial_settings("lr=0.001,beta1=0.9") == {"steps": 10, "lr": 0.001, "beta1": 0.9}
    assert len(spec.points()) == 8 and spec.baseline == "lr=0.0002,beta1=0.5"
    before = spec.identity()
    definition.apply_overrides(spec, seeds=3, steps=20)
    assert spec.seeds == [0, 1, 2] and spec.settings["steps"] == 20
    assert spec.identity() != before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name="s"\narchitecture="dcgan"\ndatasets=["digits"]\nsedes=3', "unknown key(s) sedes"),
        ('name="s"\narchitecture="dcgan"\ndatasets=["digits"]\nbaseline="x"', "baseline 'x'"),
        ('name="s"\narchitecture="dcgan"\ndatasets=["digits"]\nseeds=0', "at least 1"),
        ('name="s"\narchitecture="dcgan"\n[variants]\na={}', "'datasets' must list"),
        (
            'name="s"\narchitecture="dcgan"\ndatasets=["digits"]\n[variants]\na={seed=1}',
            "seeds are the study's",
        ),
        ('name="s"\narchitecture="dcgan"\ndatasets=["digits"]\n[axes]\nlr=0.1', "must list"),
    ],
)
def test_a_bad_study_file_is_refused_in_one_line(text, message):
    with pytest.raises(ConfigError, match=None) as info:
        definition.parse(text, "s.toml")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_an_unknown_study_name_lists_the_built_in_ones():
    built_in = (
        "built-in: conditional-vs-unconditional, diffaugment-small-data, gans-created-equal,"
        " gans-created-equal-narrow, gans-created-equal-resnet, paper-ablations, seeds"
    )
    with pytest.raises(UsageError, match=built_in):
        definition.load("paper-ablation")


def test_every_built_in_study_resolves_against_the_plugins():
    from ganbench.study.validate import check_study

    for name in definition.builtin_names():
        spec, _ = definition.load(name)
        check_study(spec)  # every variant's settings exist and convert
    spec, _ = definition.load("paper-ablations")
    assert len(spec.variants) == 10 and spec.baseline == "paper"
    assert spec.variants["pooling"] == {"downsample": "maxpool", "upsample": "nearest"}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["seeds", "--dataset", "digitz"], 2, "Error: unknown dataset 'digitz'. Did you mean"),
        (["seeds", "--set", "lrr=0.1"], 2, "Error: study seeds, variant 'base': unknown hyper"),
        (["nosuch"], 2, "Error: no study file or built-in study named 'nosuch'; built-in:"),
        (["seeds", "--trials", "3"], 2, "Error: --trials needs a study file with search ranges"),
        (["gans-created-equal", "--search", "0"], 2, "Error: --trials N needs N of at least 1"),
        (["seeds", "--tracking-uri", "http://127.0.0.1:9"], 1, "Error: cannot reach the MLflow"),
    ],
)  # fmt: skip
def test_bad_study_runs_fail_in_one_line_before_anything_runs(
    ganbench_run_cli, tmp_path, args, code, message
):
    result = ganbench_run_cli("study", "run", *args, "--cache-dir", str(tmp_path / "c"))
    assert result.exit_code == code, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(message), result.output
    assert not (tmp_path / "c" / "studies").exists()  # nothing was created


# ---- the interval ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_welch_interval_matches_the_textbook_formula(seed):
    """The implementation asks scipy's ttest_ind; the reference is Welch's formula by hand
    (Welch-Satterthwaite degrees of freedom, the t quantile) in float64 NumPy."""
    rng = np.random.default_rng(seed)
    a = rng.normal(40, 3, size=3 + seed)
    b = rng.normal(42, 8, size=4)
    got = welch_difference(a.tolist(), b.tolist())
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    diff = a.mean() - b.mean()
    assert got.estimate == pytest.approx(diff, rel=1e-12) and got.df == pytest.approx(df)
    assert (got.low, got.high) == (
        pytest.approx(diff - half, rel=1e-9),
        pytest.approx(diff + half, rel=1e-9),
    )
    p = 2 * stats.t.sf(abs(diff) / math.sqrt(va + vb), df)
    assert got.p_value == pytest.approx(p, rel=1e-9)
    assert got.distinguishable == (p < 0.05)


def test_one_seed_gives_no_interval_and_no_verdict():
    from ganbench.study.stats import compare

    got = welch_difference([30.0], [31.0, 33.0])
    assert math.isinf(got.low) and math.isinf(got.high)
    assert compare([30.0], [31.0, 33.0], min_seeds=2).verdict("x").startswith("too few seeds")


# ---- a real study ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """3 variants x 2 seeds, 2 jobs: the baseline, a lower learning rate, and a learning
    rate that blows the weights up at step 2."""
    folder = tmp_path_factory.mktemp("study")
    path = _study_file(
        folder,
        "tiny",
        """
        base = {}
        low-lr = { lr = 0.00005 }
        hot = { lr = 1e30 }
        """,
    )
    proc = ganbench(*_study_args(path, folder, "--jobs", "2"), cwd=folder, name="first")
    assert finish(proc, 600) == 0, (folder / "first.err").read_text()
    return folder, path


def test_every_trial_is_a_nested_run_with_its_params(tiny_study):
    folder, _ = tiny_study
    client, parent, children = _children(folder, "tiny")
    assert parent.info.status == "FINISHED" and parent.data.params["seeds"] == "0,1"
    assert len(children) == 6
    seen = {(r.data.tags["ganbench.study.variant"], r.data.params["seed"]) for r in children}
    assert seen == {(v, s) for v in ("base", "low-lr", "hot") for s in ("0", "1")}
    for run in children:
        lr = {"base": "0.0002", "low-lr": "5e-05", "hot": "1e+30"}
        assert run.data.params["lr"] == lr[run.data.tags["ganbench.study.variant"]]
        assert run.data.params["steps"] == "8" and run.data.params["resolution"] == "16"
    # The study file and progress are on the parent.
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "study")] == [
        "study/resolved.toml",
        "study/study.toml",
    ]
    progress = client.get_metric_history(parent.info.run_id, "trials_done")
    assert progress[-1].value == 4
    assert client.get_metric_history(parent.info.run_id, "trials_diverged")[-1].value == 2


def test_a_diverged_trial_is_a_result_and_the_study_finishes(tiny_study):
    folder, _ = tiny_study
    _, _, children = _children(folder, "tiny")
    hot = [r for r in children if r.data.tags["ganbench.study.variant"] == "hot"]
    assert [r.data.tags["ganbench.diverged"][:6] for r in hot] == ["step 2"] * 2
    assert all(r.info.status == "FAILED" for r in hot)
    trials = _trials(folder, "tiny")
    assert sorted(t.state.name for t in trials) == ["COMPLETE"] * 6
    diverged = [t for t in trials if t.user_attrs["outcome"] == "diverged"]
    assert len(diverged) == 2 and {t.user_attrs["diverged_step"] for t in diverged} == {2}
    assert all(t.value == math.inf for t in diverged)
    out = subprocess.run(
        [*_status_cmd(folder), "tiny"], capture_output=True, text=True, check=True
    ).stdout
    assert out.count("diverged@2") == 2 and "6 of 6 finished (4 done, 2 diverged)" in out


def _status_cmd(folder: Path) -> list[str]:
    from processes import GANBENCH

    return [GANBENCH, "study", "status", "--storage", f"sqlite:///{folder / 'optuna.db'}"]


def test_running_a_finished_study_again_runs_nothing(tiny_study):
    folder, path = tiny_study
    before = {r.info.run_id for r in _children(folder, "tiny")[2]}
    proc = ganbench(*_study_args(path, folder), cwd=folder, name="again")
    assert finish(proc, 300) == 0
    assert "this worker ran 0" in (folder / "again.out").read_text()
    assert {r.info.run_id for r in _children(folder, "tiny")[2]} == before
    assert len(_trials(folder, "tiny")) == 6


def test_a_changed_study_under_the_same_name_is_refused(tiny_study):
    folder, path = tiny_study
    proc = ganbench(*_study_args(path, folder, "--steps", "9"), cwd=folder, name="changed")
    assert finish(proc, 300) == 2
    err = (folder / "changed.err").read_text().strip().splitlines()[-1]
    assert "was run with other settings" in err and "--name" in err


def test_the_report_equals_the_runs_metric_histories(tiny_study):
    from ganbench.study.report import collect

    folder, _ = tiny_study
    client, parent, children = _children(folder, "tiny")
    report = collect(client, parent.info.run_id)
    rows = {row.name: row for row in report.rows}
    assert list(rows) == ["base", "low-lr", "hot"] and report.fid_name == "digits-cnn/fid_100"

    def finals(variant: str) -> np.ndarray:
        ids = [r.info.run_id for r in children if r.data.tags["ganbench.study.variant"] == variant]
        return np.array(
            [client.get_metric_history(i, "digits-cnn/fid_100")[-1].value for i in ids],
            dtype=np.float64,
        )

    for variant in ("base", "low-lr"):
        x = finals(variant)
        spread = rows[variant].spread("final_fid")
        assert spread.mean == pytest.approx(x.mean(), rel=1e-12)
        assert spread.std == pytest.approx(x.std(ddof=1), rel=1e-12)
        assert spread.min == pytest.approx(x.min(), rel=1e-12)
    ref = stats.ttest_ind(finals("low-lr"), finals("base"), equal_var=False)
    d = rows["low-lr"].comparison.difference
    assert (d.low, d.high) == tuple(pytest.approx(v, rel=1e-9) for v in ref.confidence_interval())
    hot = rows["hot"]
    assert hot.spread("final_fid") is None and hot.divergence_rate == 1.0
    assert [(r.seed, r.diverged_step) for r in hot.diverged] == [(0, 2), (1, 2)]
    # Two seeds a side: below the minimum of 5, no verdict (but the runs are counted).
    assert hot.comparison.too_few and hot.comparison.n_variant == 2
    # The objective Optuna was told is the value the report ranks each run by.
    by_run = {r.run_id: r for row in report.rows for r in row.runs}
    for t in _trials(folder, "tiny"):
        run = by_run[t.user_attrs["run_id"]]
        assert t.value == (math.inf if run.diverged else pytest.approx(run.final_fid, rel=1e-12))
    # Logged into the parent, with the figures.
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/fid_vs_step.png"} <= logged
    md = (folder / "cache" / "studies" / "tiny" / "report" / "report.md").read_text()
    assert f"{rows['base'].spread('final_fid').mean:.3g}" in md and "seed 0 @ 2, seed 1 @ 2" in md
    assert "digits-cnn/fid_100: digits-cnn, 100 generated vs 1437 real" in md
    # One architecture: its variants share the four loss panels (11 x 7 in at 100 dpi).
    from PIL import Image

    report = folder / "cache" / "studies" / "tiny" / "report"
    assert Image.open(report / "curves.png").size == (1100, 700)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError(
        "headless Chromium is needed to check the report page: apt-get install chromium"
        " (`make test` and .ci/run install it)"
    )


def test_the_report_page_renders_offline_in_headless_chromium(tiny_study, tmp_path):
    folder, _ = tiny_study
    page = folder / "cache" / "studies" / "tiny" / "report" / "report.html"
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # nothing fetched: opens offline
    alone = tmp_path / "report.html"  # no PNG beside it: everything is inlined
    alone.write_text(text)
    dom = subprocess.run(
        [
            _chromium(),
            *("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"),
            *("--virtual-time-budget=5000", "--dump-dom", alone.as_uri()),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "HOME": str(tmp_path)},
    ).stdout
    images = dom.split('data-images="', 1)[1].split('"', 1)[0]
    ok, total = map(int, images.split("/"))
    assert total >= 5 and ok == total, images  # 3 figures, 2 sample grids, all decoded
    assert 'data-table-rows="' in dom
    rows = int(dom.split('data-table-rows="', 1)[1].split('"', 1)[0])
    assert rows >= 3  # the variants' table (and the claims' rows)
    # 2 seeds a side: the comparisons say so instead of giving a verdict
    assert dom.count("too few seeds for a verdict (2 and 2 seeds; the study asks 5)") == 2


# ---- kills and workers ----------------------------------------------------------------


def _pids_running(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmd:
                pids.append(int(entry.name))
    return pids


@pytest.mark.slow  # default suite time (README, Tests): `make slow` runs it
def test_two_workers_never_duplicate_and_a_killed_one_is_finished_by_a_rerun(tmp_path):
    """Two workers share one storage; one is killed (-9, with its trial) mid-way; the other
    goes on; a re-run finishes only what is missing, each (variant, seed) once."""
    path = _study_file(tmp_path, "pair", "base = {}\nlow-lr = { lr = 0.0001 }\n", steps=40)
    a = ganbench(*_study_args(path, tmp_path, "--jobs", "1"), cwd=tmp_path, name="a")
    b = ganbench(*_study_args(path, tmp_path, "--jobs", "1"), cwd=tmp_path, name="b")

    def a_is_training() -> bool:
        if not (tmp_path / "optuna.db").exists():
            return False
        try:
            trials = _trials(tmp_path, "pair")
        except KeyError:
            return False
        mine = [t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get("run_id")]
        return any(t.user_attrs.get("pid") == a.pid for t in mine)

    deadline = time.monotonic() + 300
    while not a_is_training():  # polled gently: each look opens the storage
        assert a.poll() is None and time.monotonic() < deadline, "worker a never trained"
        time.sleep(0.5)
    [trial] = [
        t
        for t in _trials(tmp_path, "pair")
        if t.state == TrialState.RUNNING and t.user_attrs.get("pid") == a.pid
    ]
    a.send_signal(signal.SIGKILL)
    for pid in _pids_running(trial.user_attrs["run_dir"]):
        os.kill(pid, signal.SIGKILL)  # the machine went down: its trial too
    a.wait()
    assert finish(b, 600) == 0, (tmp_path / "b.err").read_text()
    killed_run = trial.user_attrs["run_id"]
    done_before = {
        t.user_attrs["run_id"] for t in _trials(tmp_path, "pair") if t.state == TrialState.COMPLETE
    }
    again = ganbench(*_study_args(path, tmp_path), cwd=tmp_path, name="again")
    assert finish(again, 600) == 0, (tmp_path / "again.err").read_text()

    trials = _trials(tmp_path, "pair")
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    points = [(t.params["variant"], t.params["seed"]) for t in complete]
    assert sorted(points) == [("base", 0), ("base", 1), ("low-lr", 0), ("low-lr", 1)]
    # What was finished before the re-run was not run again.
    assert done_before <= {t.user_attrs["run_id"] for t in complete}
    assert "this worker ran" in (tmp_path / "again.out").read_text()
    # The killed trial's point was finished by the re-run, resuming or starting its run over.
    client, parent, children = _children(tmp_path, "pair")
    live = [r for r in children if "ganbench.study.superseded_by" not in r.data.tags]
    assert sorted((r.data.tags["ganbench.study.variant"], r.data.params["seed"]) for r in live) == [
        ("base", "0"),
        ("base", "1"),
        ("low-lr", "0"),
        ("low-lr", "1"),
    ]
    assert all(r.info.status == "FINISHED" for r in live)
    killed = client.get_run(killed_run)
    assert killed.info.status in ("FINISHED", "KILLED")
    assert parent.info.status == "FINISHED"


def test_report_command_writes_and_logs_the_report_and_refuses_other_runs(tiny_study, tmp_path):
    from processes import GANBENCH

    folder, _ = tiny_study
    _, parent, children = _children(folder, "tiny")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    done = subprocess.run(
        [GANBENCH, "report", "study-tiny", "--tracking-uri", uri, "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r" / "report.html").is_file() and (tmp_path / "r" / "report.md").is_file()
    assert f"logged into run {parent.info.run_id}" in done.stdout
    wrong = subprocess.run(
        [GANBENCH, "report", children[0].info.run_id, "--tracking-uri", uri],
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines()[-1] == (
        f"Error: run {children[0].info.run_id} is not a study's parent run"
    )


@pytest.mark.slow  # default suite time (README, Tests): `make slow` runs it
def test_a_search_samples_its_ranges_with_optuna(tiny_study):
    """``--trials N``: Optuna's random sampler draws lr from the file's range, N trials."""
    folder, _ = tiny_study
    path = _study_file(folder, "search", "base = {}\n", seeds=1)
    path.write_text(
        path.read_text().replace("\n[variants]\nbase = {}\n", "")
        + "\n[search]\nlr = { low = 1e-5, high = 1e-3, log = true }\n"
    )
    proc = ganbench(
        *_study_args(path, folder, "--trials", "2", "--sampler", "random"),
        cwd=folder,
        name="search",
    )
    assert finish(proc, 600) == 0, (folder / "search.err").read_text()
    trials = _trials(folder, "search")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    lrs = [t.params["lr"] for t in trials]
    assert all(1e-5 <= lr <= 1e-3 for lr in lrs) and lrs[0] != lrs[1]
    _, _, children = _children(folder, "search")
    logged = sorted(float(r.data.params["lr"]) for r in children)
    assert logged == pytest.approx(sorted(lrs), rel=1e-12)
    assert all(t.value == pytest.approx(t.user_attrs["final_fid"]) for t in trials)
    assert len({t.params["seed"] for t in trials}) == 2  # each setting its own seed


@pytest.mark.slow
def test_sigterm_stops_the_study_and_a_rerun_resumes_the_trial_from_its_checkpoint(tmp_path):
    """SIGTERM to the study: its trial checkpoints, the study exits 143; the same command
    continues the trial's MLflow run from that checkpoint."""
    path = _study_file(tmp_path, "sig", "base = {}\n", seeds=1, steps=3000)
    proc = ganbench(*_study_args(path, tmp_path), cwd=tmp_path, name="first")
    run_dir = tmp_path / "cache" / "studies" / "sig" / "trials" / "0000-base-digits-s0"
    deadline = time.monotonic() + 300
    while not list((run_dir / "outbox").glob("journal*")):  # training has begun
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.5)
    time.sleep(5)
    proc.send_signal(signal.SIGTERM)
    assert finish(proc, 300) == 143
    err = (tmp_path / "first.err").read_text().strip().splitlines()[-1]
    assert err.startswith("Error: study sig stopped by SIGTERM") and "run the same command" in err
    [checkpoint] = (run_dir / "checkpoints").glob("step-*.pt")
    step = int(checkpoint.stem.split("-")[1])
    again = ganbench(*_study_args(path, tmp_path), cwd=tmp_path, name="again")
    assert finish(again, 600) == 0, (tmp_path / "again.err").read_text()
    _, _, [child] = _children(tmp_path, "sig")
    assert child.info.status == "FINISHED" and child.data.tags["ganbench.resume.1"]
    assert (
        f"resumed from step {step} of 3000"
        in (tmp_path / "cache" / "studies" / "sig" / "logs" / "0001-base-digits-s0.log").read_text()
    )


def test_seeds_added_to_a_finished_study_run_only_the_new_seeds(tmp_path):
    """--seeds N over a study run with fewer: the finished trials are kept (same runs, no
    trial run twice or set aside), the new seeds' trials run under the same parent, and the
    parent says which seeds it has; fewer seeds than it had is another study, refused."""
    path = _study_file(tmp_path, "grow", "base = {}\nlow-lr = { lr = 0.00005 }\n", seeds=1)
    first = ganbench(*_study_args(path, tmp_path), cwd=tmp_path, name="first")
    assert finish(first, 600) == 0, (tmp_path / "first.err").read_text()
    _, parent, before = _children(tmp_path, "grow")
    assert len(before) == 2

    grown = ganbench(*_study_args(path, tmp_path, "--seeds", "2"), cwd=tmp_path, name="grown")
    assert finish(grown, 600) == 0, (tmp_path / "grown.err").read_text()
    assert "seeds [0] -> [0, 1]" in (tmp_path / "grown.err").read_text()
    client, parent_after, after = _children(tmp_path, "grow")
    assert parent_after.info.run_id == parent.info.run_id
    assert parent_after.info.status == "FINISHED"
    assert parent_after.data.tags["ganbench.study.seeds"] == "0,1"
    assert {r.info.run_id for r in before} < {r.info.run_id for r in after}
    seeds = sorted((r.data.tags["ganbench.study.variant"], r.data.params["seed"]) for r in after)
    assert seeds == [("base", "0"), ("base", "1"), ("low-lr", "0"), ("low-lr", "1")]
    trials = _trials(tmp_path, "grow")
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    resolved = client.download_artifacts(parent.info.run_id, "study/resolved.toml", tmp_path)
    assert tomllib.loads(Path(resolved).read_text())["seeds"] == [0, 1]
    status = subprocess.run(
        [*_status_cmd(tmp_path), "grow"], capture_output=True, text=True, check=True
    ).stdout
    assert "4 of 4 finished" in status

    fewer = ganbench(*_study_args(path, tmp_path, "--seeds", "1"), cwd=tmp_path, name="fewer")
    assert finish(fewer, 300) == 2
    assert "was run with other settings" in (tmp_path / "fewer.err").read_text()


def test_seeds_cannot_be_added_to_a_study_that_holds_them_as_choices(tmp_path):
    """Studies run before seeds could be added stored the seed as a categorical choice,
    which Optuna refuses to widen: adding seeds to one is refused in one line, before any
    run, instead of failing inside Optuna at the first new trial."""
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import create_trial

    from ganbench.study.planning import DEFINITION_ATTR, PARENT_ATTR

    path = _study_file(tmp_path, "old", "base = {}\n", seeds=1)
    text = path.read_text()
    spec = definition.parse(text, str(path))
    old = optuna.create_study(study_name="old", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    old.set_user_attr(
        DEFINITION_ATTR,
        {"identity": spec.identity(), "definition": spec.as_dict(), "text": text, "mode": "grid"},
    )
    old.set_user_attr(PARENT_ATTR, "0" * 32)
    old.add_trial(
        create_trial(
            params={"dataset": "digits", "variant": "base", "seed": 0},
            distributions={
                "dataset": CategoricalDistribution(["digits"]),
                "variant": CategoricalDistribution(["base"]),
                "seed": CategoricalDistribution([0]),
            },
            value=1.0,
        )
    )
    proc = ganbench(*_study_args(path, tmp_path, "--seeds", "2"), cwd=tmp_path, name="add")
    assert finish(proc, 120) == 2
    err = (tmp_path / "add.err").read_text().strip().splitlines()[-1]
    assert "run before seeds could be added" in err and "--name NEW" in err
    assert len(_trials(tmp_path, "old")) == 1


def test_a_study_with_nproc_runs_each_trial_data_parallel(tmp_path):
    """--nproc 2: every trial is `ganbench run --nproc 2` (two gloo ranks on the CPU): the
    study's batch is the global batch (8 a rank), rank 0 alone logs (one value a step),
    and a batch that does not split over the processes is refused before anything runs."""
    path = _study_file(tmp_path, "ddp", "base = {}\n", seeds=1, steps=4)
    proc = ganbench(*_study_args(path, tmp_path, "--nproc", "2"), cwd=tmp_path, name="ddp")
    assert finish(proc, 600) == 0, (tmp_path / "ddp.err").read_text()[-3000:]
    client, parent, [child] = _children(tmp_path, "ddp")
    assert parent.info.status == "FINISHED" and child.info.status == "FINISHED"
    p = child.data.params
    assert p["distributed.world_size"] == "2" and p["distributed.global_batch"] == "16"
    assert p["distributed.batch_per_rank"] == "8"
    steps = [m.step for m in client.get_metric_history(child.info.run_id, "loss_d")]
    assert steps == [2, 4]

    bad = ganbench(
        *_study_args(path, tmp_path, "--nproc", "3", "--name", "ddp3"), cwd=tmp_path, name="bad"
    )
    assert finish(bad, 300) == 2
    err = (tmp_path / "bad.err").read_text().strip().splitlines()
    assert len(err) == 1 and "must divide evenly over the 3 processes" in err[0], err
    assert _trials_or_none(tmp_path, "ddp3") is None


def _trials_or_none(folder: Path, name: str) -> list | None:
    try:
        return _trials(folder, name)
    except KeyError:
        return None

"""``ganbench claim``: the recipes (built-in ones against the real commands' parsers and
the paper's printed numbers, bad ones refused in one line), and ``claim run`` end to end
on a real SQLite MLflow store: the report's numbers are the probe's, a rerun redoes
nothing, ``--run`` skips training, a missing dataset starts nothing, and a claim stopped
by SIGTERM during training continues the same run."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from click.testing import CliRunner
from mlflow import MlflowClient
from processes import ganbench, logged_steps, wait_for

from ganbench.claims.check import check_probes, plan_training
from ganbench.claims.recipe import ProbeSpec, builtin_names, load, parse
from ganbench.claims.results import Row
from ganbench.cli import cli
from ganbench.cli.probe import probe as probe_command
from ganbench.cli.train import run as run_command
from ganbench.errors import ConfigError
from ganbench.plugins import load_registries

TINY = """\
name = "tiny"
title = "a tiny stand-in"
setting = "stand-in"
stands_in_for = "table1-cifar10"
claim = "the machinery runs"
status = "a test"
[paper]
citation = "nobody"
table = "Table 1"
[needs]
datasets = ["digits"]
hardware = "a CPU"
time = "seconds"
time_basis = "measured"
[train]
architecture = "dcgan"
dataset = "digits"
resolution = 16
steps = STEPS
batch_size = 16
[train.set]
ngf = 8
ndf = 8
eval_every = 0
log_every = 5
[[probe]]
name = "few"
dataset = "digits"
labels_per_class = 5
draws = 3
select_draws = 2
paper_metric = "accuracy"
paper_value = 0.738
"""
PREFIX = "probe.digits.5_per_class"
#: Steps of the claim stopped by SIGTERM: ~6 s of training on 2 CPU cores, stopped at its
#: first logged metrics.
STOPPED = 600


def tiny(folder: Path, steps: int = 30) -> Path:
    path = folder / "tiny.toml"
    path.write_text(TINY.replace("STEPS", str(steps)))
    return path


def claim_run(folder: Path, *args: str, name: str = "claim") -> tuple[int, str, str]:
    proc = ganbench("claim", "run", *args, "--no-progress", cwd=folder, name=name)
    code = proc.wait(300)
    return code, (folder / f"{name}.out").read_text(), (folder / f"{name}.err").read_text()


def runs_in(uri: str) -> list:
    client = MlflowClient(uri)
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def probe_outboxes(cache: Path) -> list[Path]:
    return sorted((cache / "outbox").glob("*-probe-*"))


# ---- the recipes ------------------------------------------------------------------------


def test_the_paper_recipes_carry_the_papers_numbers():
    """Table 1: 82.8% (all labels), 73.8% +- 0.4% (400 per class); Table 2: 22.48% +- 0.50%
    error with 1,000 labels, on the authors' SVHN split; the model sizes of their code."""
    t1 = load("table1-cifar10")
    assert [(p.labels_per_class, p.paper_metric, p.paper_value, p.paper_spread)
            for p in t1.probes] == [(None, "accuracy", 0.828, None),
                                    (400, "accuracy", 0.738, 0.004)]  # fmt: skip
    assert t1.train.settings == {
        "resolution": 32, "epochs": 30, "batch_size": 128, "network": "imagenet32",
        "z_dim": 256, "ngf": 128, "ndf": 128,
    }  # fmt: skip
    assert t1.train.dataset == "imagenet" and {p.dataset for p in t1.probes} == {"cifar10"}
    [t2] = load("table2-svhn").probes
    assert (t2.paper_metric, t2.paper_value, t2.paper_spread) == ("error_rate", 0.2248, 0.005)
    assert t2.options == {"train_split": "train-minus-valid", "val_split": "valid",
                          "labels_per_class": 100, "draws": 100, "select_draws": 10}  # fmt: skip
    for paper in ("table1-cifar10", "table2-svhn"):
        assert load(paper).needs["time_basis"] == "estimated"  # no GPU here: not measured


@pytest.mark.parametrize("name", builtin_names())
def test_each_builtin_recipe_is_accepted_by_the_real_commands(name):
    recipe = load(name)
    registries = load_registries()
    plan = plan_training(recipe, registries)  # as `ganbench run` plans it
    check_probes(recipe, plan, registries)
    # The exact argument lists the claim starts, parsed by the commands themselves.
    t = recipe.train
    argv = [t.architecture, "--dataset", t.dataset, "--seed", str(t.seed)]
    argv += [a for k, v in t.settings.items() for a in ("--set", f"{k}={v}")]
    assert run_command.make_context("run", argv).params["dataset"] == t.dataset
    for p in recipe.probes:
        params = probe_command.make_context("probe", ["RUN_ID", *p.args()]).params
        assert params["dataset"] == p.dataset
        assert params["labels_per_class"] == p.labels_per_class
    assert "MEASURED" not in recipe.status + recipe.needs["time"]
    if recipe.stand_in:  # the paper's numbers it shows are those of the recipe it stands for
        paper = load(recipe.stands_in_for)
        shown = {(p.paper_metric, p.paper_value, p.paper_spread) for p in recipe.probes}
        assert shown == {(p.paper_metric, p.paper_value, p.paper_spread) for p in paper.probes}
        assert "stand-in" in recipe.title.lower() and recipe.needs["time_basis"] == "measured"


GOOD = TINY.replace("STEPS", "30")


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ('title = "a tiny stand-in"', 'title = "x"\ncolour = "red"', "unknown key 'colour'"),
        ("draws = 3", 'draws = "three"', "'draws' must be a whole number"),
        ("steps = 30\n", "", "needs 'steps' or 'epochs'"),
        ("steps = 30\n", "steps = 30\nepochs = 2\n", "needs 'steps' or 'epochs'"),
        ("paper_value = 0.738", "paper_value = 73.8", "'paper_value' is a fraction"),
        (
            "select_draws = 2",
            'select_draws = 2\nval_size = 100\nval_split = "test"',
            "exclude each other",
        ),
        ('setting = "stand-in"', 'setting = "paper"', "'stands_in_for'"),
        ("labels_per_class = 5\n", "", "'draws' and 'select_draws' need 'labels_per_class'"),
        ('time_basis = "measured"', 'time_basis = "guessed"', "'time_basis' must be"),
        ("ndf = 8", "ndf = 8\nsteps = 4", "'steps' belongs in [train]"),
        ('hardware = "a CPU"\n', "", "'hardware' is missing"),
        ('paper_metric = "accuracy"\n', "", "give 'paper_metric' and 'paper_value' together"),
    ],
)
def test_a_bad_recipe_is_refused_in_one_line_naming_the_file_and_key(tmp_path, old, new, says):
    assert old in GOOD
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load(str(path))
    message = str(info.value)
    assert says in message and message.startswith(str(path)) and "\n" not in message
    result = CliRunner().invoke(cli, ["claim", "show", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"Error: {message}"]


def test_a_paper_probe_needs_the_papers_number(tmp_path):
    text = GOOD.replace(
        'setting = "stand-in"\nstands_in_for = "table1-cifar10"', 'setting = "paper"'
    )
    parse(text, "ok.toml")  # with its paper_value it is a paper recipe
    bare = text.replace('paper_metric = "accuracy"\npaper_value = 0.738\n', "")
    with pytest.raises(ConfigError, match="needs 'paper_metric' and 'paper_value'"):
        parse(bare, "bare.toml")


def test_claim_list_and_show():
    result = CliRunner().invoke(cli, ["claim", "list"])
    assert result.exit_code == 0, result.output
    rows = [line.split()[:2] for line in result.output.splitlines()]
    assert rows == [["table1-cifar10", "paper"], ["table1-digits", "stand-in"],
                    ["table2-digits", "stand-in"], ["table2-svhn", "paper"]]  # fmt: skip
    shown = CliRunner().invoke(cli, ["claim", "show", "table2-svhn"]).output
    assert "ganbench probe RUN_ID --dataset svhn --train-split train-minus-valid" in shown
    assert "(paper: error rate 22.48% +- 0.50)" in shown and "time (estimated)" in shown
    assert "ganbench run dcgan --dataset svhn --seed 0 --split train-minus-valid" in shown
    stand_in = CliRunner().invoke(cli, ["claim", "show", "table1-digits"]).output
    assert "stand-in for table1-cifar10" in stand_in and "never compared" in stand_in


def test_a_folder_named_like_a_claim_does_not_hide_it(tmp_path, monkeypatch):
    """`claim run NAME --out NAME` leaves a folder NAME where the command runs."""
    (tmp_path / "table1-digits").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load("table1-digits").source == "built-in claim table1-digits"


# ---- what a row says --------------------------------------------------------------------


def row(accuracies: list[float], metric: str, value: float, stand_in: bool = False) -> Row:
    a = np.asarray(accuracies)
    if len(a) > 1:
        low, high = scipy.stats.t.interval(0.95, len(a) - 1, a.mean(), scipy.stats.sem(a))
    else:
        low = high = math.nan
    trained = {"accuracy": a.mean(), "accuracies": list(a), "spread": 1.96 * a.std(),
               "mean_interval": [low, high], "labels_used": 100}  # fmt: skip
    probe = ProbeSpec("p", "digits", {"labels_per_class": 10}, metric, value, None, "")
    done = {"record": {"step": 700, "results": {"trained": trained}}, "record_path": "r",
            "seconds": 1.0}  # fmt: skip
    params = {"batch_size": "64", "real_batches_per_step": "1", "num_images": "1437"}
    return Row(probe, done, params, stand_in)


def test_a_row_says_whether_the_papers_number_is_inside_the_interval_of_the_mean():
    # mean 0.74 with scipy's t interval [0.715, 0.765] around it
    inside = row([0.73, 0.74, 0.75], "accuracy", 0.738)
    assert inside.verdict().startswith("paper's 73.80% inside")
    outside = row([0.80, 0.81, 0.82], "accuracy", 0.738)
    assert "outside" in outside.verdict() and "(+7.20 points)" in outside.verdict()
    # error rate: 1 - accuracy, the interval flipped
    err = row([0.77, 0.78, 0.775], "error_rate", 0.2248)
    low, high = err.interval("trained")
    a_low, a_high = err.results["trained"]["mean_interval"]
    assert (low, high) == pytest.approx((1 - a_high, 1 - a_low))
    assert err.verdict().startswith("paper's 22.48% inside")
    single = row([0.80], "accuracy", 0.828)
    assert single.verdict().startswith("one fit") and "-2.80 points" in single.verdict()
    assert row([0.5, 0.6], "accuracy", 0.5, stand_in=True).verdict() == (
        "stand-in (digits): not comparable"
    )
    assert (
        inside.budget()
        == "700 steps, 44,800 images seen (31.2 epochs of 1,437), 100 labels, 3 draw(s)"
    )


# ---- claim run, end to end --------------------------------------------------------------


@pytest.fixture(scope="module")
def claimed(tmp_path_factory):
    """One tiny claim run in a SQLite store: (folder, recipe, out, cache, uri, stdout, err)."""
    folder = tmp_path_factory.mktemp("claim")
    recipe, out, cache = tiny(folder), folder / "out", folder / "cache"
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    code, stdout, stderr = claim_run(
        folder, str(recipe), "--out", str(out), "--tracking-uri", uri, "--cache-dir", str(cache)
    )
    assert code == 0, stderr
    return folder, recipe, out, cache, uri, stdout, stderr


def test_claim_run_reports_the_probes_own_numbers(claimed):
    _, _, out, _, uri, stdout, _ = claimed
    for name in ("report.md", "report.json", "claim.png", "state.json"):
        assert (out / name).is_file(), name
    assert (out / "claim.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "report.json").read_text())
    [p] = report["probes"]
    record = json.loads(Path(p["record_path"]).read_text())
    assert p["trained"] == record["results"]["trained"]
    assert p["random_init"] == record["results"]["random_init"]
    assert p["paired"] == record["results"]["paired"]
    # ...and they are what they say: the mean of the draws, the paired mean difference
    trained, random = np.array(p["trained"]["accuracies"]), np.array(p["random_init"]["accuracies"])
    assert p["trained"]["accuracy"] == pytest.approx(trained.mean())
    assert p["paired"]["difference"] == pytest.approx((trained - random).mean())
    [run] = runs_in(uri)
    assert run.info.status == "FINISHED" and run.info.run_id == report["training"]["run_id"]
    assert run.data.tags["ganbench.claim"] == "tiny"
    assert run.data.metrics[f"{PREFIX}.accuracy"] == pytest.approx(trained.mean())
    # 30 steps of 16 images
    assert p["step"] == 30 and p["images_seen"] == 480 and p["draws"] == 3
    [line] = [ln for ln in stdout.splitlines() if ln.startswith("few ")]
    assert "stand-in (digits): not comparable; 30 steps, 480 images seen" in line
    assert f"{100 * trained.mean():.2f}%" in line
    md = (out / "report.md").read_text()
    assert "Stand-in for `table1-cifar10`, not a reproduction" in md and "claim.png" in md


def test_a_finished_claim_run_again_redoes_nothing(claimed):
    folder, recipe, out, cache, uri, _, _ = claimed
    state = json.loads((out / "state.json").read_text())
    outboxes = probe_outboxes(cache)
    code, stdout, stderr = claim_run(folder, str(recipe), "--out", str(out), "--cache-dir",
                                     str(cache), name="again")  # fmt: skip
    assert code == 0, stderr
    assert "finished earlier; not redone" in stderr and "probe few: done earlier" in stderr
    assert probe_outboxes(cache) == outboxes and len(runs_in(uri)) == 1
    assert json.loads((out / "state.json").read_text()) == state  # the store: from the folder
    assert any(ln.startswith("few ") for ln in stdout.splitlines())


def test_claim_run_with_run_probes_that_run_without_training(claimed):
    folder, recipe, out, cache, uri, _, _ = claimed
    run_id = json.loads((out / "report.json").read_text())["training"]["run_id"]
    other = folder / "given"
    before = probe_outboxes(cache)
    code, _, stderr = claim_run(
        folder, str(recipe), "--run", run_id, "--out", str(other), "--tracking-uri", uri,
        "--cache-dir", str(cache), name="given",
    )  # fmt: skip
    assert code == 0, stderr
    assert not (other / "run").exists() and not (other / "logs" / "train.log").exists()
    assert len(runs_in(uri)) == 1 and len(probe_outboxes(cache)) == len(before) + 1
    report = json.loads((other / "report.json").read_text())
    assert report["training"]["given_with_run"] and report["training"]["run_id"] == run_id


def test_a_missing_dataset_is_one_line_and_starts_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    db = tmp_path / "mlflow.db"
    code, stdout, stderr = claim_run(
        tmp_path, "table2-svhn", "--data-root", str(empty), "--tracking-uri", f"sqlite:///{db}",
        "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 1 and stdout == ""
    [line] = stderr.strip().splitlines()
    assert line.startswith("Error: svhn ") and "`ganbench data download svhn" in line
    assert not db.exists() and not (tmp_path / "out").exists()


def test_a_claim_stopped_during_training_continues_the_same_run(tmp_path):
    recipe, out, cache = tiny(tmp_path, steps=STOPPED), tmp_path / "out", tmp_path / "cache"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [str(recipe), "--out", str(out), "--tracking-uri", uri, "--cache-dir", str(cache)]
    proc = ganbench("claim", "run", *args, "--no-progress", cwd=tmp_path, name="first")

    # its first metrics journaled (every 5 steps): well before the end of training
    wait_for("the claim's training to log", lambda: logged_steps(out / "run"), 120, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 128 + signal.SIGTERM
    err = (tmp_path / "first.err").read_text()
    assert "SIGTERM: stopped the training (the training checkpointed)" in err
    assert "stopped by SIGTERM at step" in (out / "logs" / "train.log").read_text()
    run_id = json.loads((out / "state.json").read_text())["training"]["run_id"]
    [stopped] = runs_in(uri)
    assert stopped.info.run_id == run_id and stopped.info.status != "FINISHED"
    assert list((out / "run" / "checkpoints").glob("step-*.pt"))
    code, _, stderr = claim_run(tmp_path, *args, name="second")
    assert code == 0, stderr
    assert f"continuing run {run_id}" in stderr
    [finished] = runs_in(uri)
    assert finished.info.run_id == run_id and finished.info.status == "FINISHED"
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["run_id"] == run_id and report["probes"][0]["step"] == STOPPED


def test_the_rows_paired_tests_are_holm_adjusted_together():
    """table1-digits makes two trained-vs-random comparisons: their p-values are adjusted
    as one family (statsmodels' Holm is the reference); a row without a test stays out."""
    from types import SimpleNamespace

    from statsmodels.stats.multitest import multipletests

    from ganbench.claims.recipe import load
    from ganbench.claims.results import rows

    recipe = load("table1-digits")
    raw = [0.03, 0.04]
    probes = {
        p.name: {"record": {"results": {"paired": {"t_pvalue": value}}}}
        for p, value in zip(recipe.probes, raw, strict=True)
    }
    folder = SimpleNamespace(state={"training": {"params": {}}, "probes": probes})
    found = rows(recipe, folder)
    expected = multipletests(raw, method="holm")[1]
    assert [r.holm_p for r in found] == pytest.approx(list(expected))
    assert found[0].holm_p > raw[0]  # adjusted, not the raw p
    probes[recipe.probes[0].name]["record"]["results"]["paired"]["t_pvalue"] = float("nan")
    found = rows(recipe, folder)
    assert np.isnan(found[0].holm_p) and found[1].holm_p == pytest.approx(raw[1])

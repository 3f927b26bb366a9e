"""Studies whose variants train different architectures: a variant's ``architecture``, the
built-in ``gans-created-equal`` (Lucic et al. 2018), per-variant ``--trials`` searches and
the best-FID-for-a-budget curve, checked against brute force and real study runs."""

from __future__ import annotations

import itertools
import math
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from processes import finish, ganbench

from ganbench.errors import ConfigError, UnknownNameError
from ganbench.study import budget, definition

# ---- the budget curve -----------------------------------------------------------------


def _brute(values: list[float], k: int) -> np.ndarray:
    return np.array([min(s) for s in itertools.combinations(values, k)], dtype=np.float64)


@pytest.mark.parametrize("seed", range(4))
def test_expected_min_over_k_equals_every_k_subset_enumerated(seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(50, 15, size=7 + seed).round(1).tolist()  # rounded: ties happen
    values[seed] = values[-1]
    for k in range(1, len(values) + 1):
        mins = _brute(values, k)
        assert budget.expected_min(values, k) == pytest.approx(mins.mean(), rel=1e-12)
        for q in (0.05, 0.5, 0.95):
            want = float(np.quantile(mins, q, method="inverted_cdf"))
            assert budget.min_quantile(values, k, q) == want, (k, q)
    curve = budget.budget_curve(values)
    assert [p.k for p in curve] == list(range(1, len(values) + 1))
    assert curve[0].expected == pytest.approx(np.mean(values), rel=1e-12)
    assert curve[-1].expected == curve[-1].low == curve[-1].high == min(values)
    assert all(a.expected >= b.expected for a, b in itertools.pairwise(curve))


def test_a_diverged_setting_is_an_infinite_draw():
    values = [30.0, math.inf, 40.0, math.inf]
    for k in range(1, 5):
        mins = _brute(values, k)
        got = budget.expected_min(values, k)
        assert got == mins.mean()  # inf while some k-subset is all diverged, then finite
        assert budget.min_quantile(values, k, 0.95) == float(
            np.quantile(mins, 0.95, method="inverted_cdf")
        )
    assert math.isinf(budget.expected_min(values, 2)) and math.isfinite(
        budget.expected_min(values, 3)
    )


def test_workers_that_enqueue_at_once_cannot_train_more_than_n_settings_of_a_variant(tmp_path):
    """Two machines both saw 1 of N = 2 settings of 'a' and both enqueued one: by trial
    number, the first two new settings of 'a' count and the third is beyond the budget on
    every worker; retries (a whole setting enqueued again) and other variants do not count."""
    from ganbench.study.planning import settings_before

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="race", storage=storage)
    for i, variant in enumerate("abaa"):  # a new setting: its variant and its own seed
        study.enqueue_trial({"variant": variant, "seed": 100 + i})
    # a retry of a failed setting: its whole setting
    study.enqueue_trial({"variant": "a", "seed": 100, "lr": 0.001})
    asked = [study.ask() for _ in range(5)]
    seen = optuna.load_study(study_name="race", storage=storage)  # another worker's view
    trials = seen.get_trials(deepcopy=False)
    assert [settings_before(trials, t.number, "a") for t in asked] == [0, 1, 1, 2, 3]
    assert [settings_before(trials, t.number, "b") for t in asked] == [0, 0, 1, 1, 1]
    # Trial 3 (the third new 'a') is set aside: later trials do not count it.
    asked[3].set_user_attr("beyond_budget", True)
    study.tell(asked[3], state=TrialState.PRUNED)
    trials = seen.get_trials(deepcopy=False)
    assert settings_before(trials, asked[4].number, "a") == 2


# ---- a variant's architecture ---------------------------------------------------------

HEAD = 'name = "s"\narchitecture = "dcgan"\ndatasets = ["digits"]\n'


def test_a_variant_chooses_its_architecture_and_it_is_part_of_the_identity():
    text = HEAD + textwrap.dedent("""
        [variants]
        base = {}
        ls = { architecture = "lsgan", lr = 0.001 }
        [variants.wg]
        architecture = "wgan-gp"
        n_critic = 3
    """)
    spec = definition.parse(text, "s.toml")
    assert spec.architectures == {"ls": "lsgan", "wg": "wgan-gp"}
    assert [spec.architecture_of(v) for v in spec.variants] == ["dcgan", "lsgan", "wgan-gp"]
    assert spec.trial_settings("ls") == {"lr": 0.001}  # not a --set value
    assert spec.trial_settings("wg") == {"n_critic": 3}
    other = definition.parse(text.replace('"lsgan"', '"sngan"'), "s.toml")
    assert other.identity() != spec.identity()
    assert any("architectures" in d for d in other.differences(spec.as_dict()))
    # A study without variant architectures keeps the identity it had before they existed.
    plain = definition.parse(HEAD + "[variants]\nbase = {}\n", "s.toml")
    assert "architectures" not in plain.as_dict() and "variant_search" not in plain.as_dict()


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ('a = { architecture = 3 }', "variant 'a': 'architecture' must be a plugin name"),
        ('a = { architecture = "" }', "variant 'a': 'architecture' must be a plugin name"),
        ("a = { search = 3 }", "'variants.a.search' must be a table"),
        ('a = { search = { lr = { low = 1 } } }', "search 'a.lr' needs low < high"),
        ("a = { opts = { lr = 1 } }", "variant 'a': opts is a table"),
        (
            "a = { search = { b = { choices = [1] } } }\n"
            "c = { search = { b = { choices = [2] } } }",
            "variant 'c': search 'b' lists other choices",
        ),
    ],
)  # fmt: skip
def test_a_bad_variant_is_refused_in_one_line(variants, message):
    with pytest.raises(ConfigError) as info:
        definition.parse(HEAD + "[variants]\n" + variants, "s.toml")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_an_unknown_variant_architecture_is_refused_in_one_line_naming_the_variant():
    from ganbench.study.validate import check_study

    spec = definition.parse(HEAD + '[variants]\nbase = {}\nw = { architecture = "wgan_gp" }\n', "s")
    with pytest.raises(UnknownNameError) as info:
        check_study(spec)
    text = str(info.value)
    assert text.startswith("study s, variant 'w': unknown architecture 'wgan_gp'. Did you mean")
    assert "wgan-gp" in text and "\n" not in text


def test_each_variant_is_checked_against_its_own_architecture():
    from ganbench.errors import GanbenchError
    from ganbench.study.validate import check_study

    # gp_weight is WGAN-GP's: fine there, unknown to DCGAN.
    wgan = '[variants]\nw = { architecture = "wgan-gp", gp_weight = 1.0 }\n'
    check_study(definition.parse(HEAD + wgan, "s"))
    with pytest.raises(GanbenchError, match="variant 'd': unknown hyper"):
        check_study(definition.parse(HEAD + "[variants]\nd = { gp_weight = 1.0 }\n", "s"))
    bad = HEAD + "[variants]\n[variants.d.search]\ngp_weight = { low = 1, high = 5 }\n"
    with pytest.raises(GanbenchError, match="variant 'd', search range 'gp_weight'"):
        check_study(definition.parse(bad, "s"))


# ---- the built-in studies -------------------------------------------------------------


def test_gans_created_equal_is_four_gans_on_one_backbone_and_lucic_et_al_s_ranges():
    wide, _ = definition.load("gans-created-equal")
    narrow, _ = definition.load("gans-created-equal-narrow")
    assert list(wide.variants) == ["dcgan", "lsgan", "wgan-gp", "sngan"]
    assert wide.baseline == "dcgan" and wide.seeds == [0, 1, 2, 3, 4] and wide.sampler == "random"
    assert wide.objective == "final" and wide.min_seeds == 5
    assert [wide.architecture_of(v) for v in wide.variants] == list(wide.variants)
    # paper defaults, and one budget in D steps (real batches) for every GAN
    base = wide.base_settings("digits")
    assert all(wide.trial_settings(v, "digits") == base for v in wide.variants)
    assert base["d_steps"] == 600 and "steps" not in base and base["eval_samples"] == 2000
    cifar = wide.base_settings("cifar10")
    assert cifar["d_steps"] == 31250 and cifar["eval_samples"] == 10000
    assert cifar["eval_split"] == "test"
    assert {k: wide.settings[k] for k in ("ngf", "ndf", "z_dim")} == {
        "ngf": 64,
        "ndf": 64,
        "z_dim": 100,
    }
    assert wide.settings["eval_metrics"] == "fid" and wide.settings["eval_every"] > 0
    lr = {"low": 1e-5, "high": 1e-2, "log": True}
    assert all(wide.search_space(v)["lr"] == lr for v in wide.variants)
    assert all(wide.search_space(v)["beta1"] == {"low": 0.0, "high": 1.0} for v in wide.variants)
    # compare_gan's wide range: disc_iters 1..5 and D's batchnorm on/off for every GAN, and
    # TF's Adam beta2 of 0.999
    assert all(wide.search_space(v)["n_critic"] == {"low": 1, "high": 5} for v in wide.variants)
    assert all(wide.search_space(v)["beta2"] == {"choices": [0.999]} for v in wide.variants)
    for v in ("dcgan", "lsgan"):
        assert wide.search_space(v)["d_batchnorm"] == {"choices": [True, False]}
    assert wide.search_space("wgan-gp")["d_norm"] == {"choices": ["layer", "none"]}
    assert wide.search_space("wgan-gp")["gp_weight"] == {"low": 0.1, "high": 100.0, "log": True}
    assert narrow.search_space("wgan-gp") == {
        "lr": {"low": 1e-4, "high": 1e-3, "log": True},
        "beta1": {"choices": [0.5]},
        "beta2": {"choices": [0.999]},
        "n_critic": {"choices": [1]},
        "d_norm": {"choices": ["none"]},
        "gp_weight": {"low": 0.1, "high": 10.0, "log": True},
    }
    # The narrow study is the wide one but for its ranges (and its name).
    a, b = wide.as_dict(), narrow.as_dict()
    assert {k for k in a if a[k] != b[k]} == {"name", "summary", "variant_search"}
    assert "1711.10337" in wide.summary


# ---- real study runs ------------------------------------------------------------------

TINY = [
    *("--set", "resolution=16", "--set", "ngf=8", "--set", "ndf=8", "--set", "batch_size=16"),
    *("--set", "eval_every=2", "--set", "eval_samples=100", "--set", "threads=1"),
    *("--set", "log_every=1", "--set", "sample_every=2"),
]  # fmt: skip


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One data cache for both runs: digits and its statistics are prepared once."""
    return tmp_path_factory.mktemp("gans-cache")


def _args(ref: str, folder: Path, cache: Path, *extra: str) -> list[str]:
    return [
        *("study", "run", ref, "--cache-dir", str(cache)),
        *("--storage", f"sqlite:///{folder / 'optuna.db'}"),
        *("--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}", "--no-progress", *extra),
    ]


def _runs(folder: Path, experiment: str) -> tuple[MlflowClient, object, list]:
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("ganbench.study.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return client, parent, children


def test_gans_created_equal_runs_one_trial_per_gan_nested_under_one_parent(tmp_path, cache):
    """Lucic et al.'s budget: every GAN trains on the same number of real batches (D
    steps), so WGAN-GP's 5 critic steps per G update leave it a fifth of the G updates."""
    proc = ganbench(
        *_args("gans-created-equal", tmp_path, cache, "--dataset", "digits", "--seeds", "1"),
        *("--set", "d_steps=10", *TINY),
        cwd=tmp_path,
        name="grid",
    )
    assert finish(proc, 600) == 0, (tmp_path / "grid.err").read_text()
    client, parent, children = _runs(tmp_path, "study-gans-created-equal")
    assert parent.info.status == "FINISHED"
    assert parent.data.params["variant_architectures"] == (
        "dcgan=dcgan,lsgan=lsgan,wgan-gp=wgan-gp,sngan=sngan"
    )
    got = {
        (r.data.tags["ganbench.study.variant"], r.data.params["architecture"]): r for r in children
    }
    assert sorted(got) == sorted((a, a) for a in ("dcgan", "lsgan", "wgan-gp", "sngan"))
    for (_, arch), run in got.items():
        assert run.data.tags["ganbench.study.architecture"] == arch
        assert run.info.status == "FINISHED" and run.data.params["ngf"] == "8"
    # Each with its paper's defaults: WGAN-GP's Adam and critic, the others' own.
    assert got["wgan-gp", "wgan-gp"].data.params["lr"] == "0.0001"
    assert got["wgan-gp", "wgan-gp"].data.params["n_critic"] == "5"
    real = {arch: run.data.params["real_batches"] for (_, arch), run in got.items()}
    assert real == dict.fromkeys(("dcgan", "lsgan", "wgan-gp", "sngan"), "10")
    assert got["wgan-gp", "wgan-gp"].data.params["total_steps"] == "2"
    assert got["dcgan", "dcgan"].data.params["total_steps"] == "10"
    loaded = {arch: _d_updates(run) for (_, arch), run in got.items()}
    assert loaded == {"dcgan": (10, 10), "lsgan": (10, 10), "wgan-gp": (10, 2), "sngan": (10, 10)}
    assert got["sngan", "sngan"].data.params["loss"] == "hinge"
    assert got["lsgan", "lsgan"].data.params["loss"] == "least_squares"
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.md", "report/fid_vs_step.png"} <= logged
    assert "report/budget.png" not in logged  # a grid has no budget curve
    # Four architectures' losses are four kinds of number: a row of panels each (15 x 11 in).
    from PIL import Image

    curves = cache / "studies" / "gans-created-equal" / "report" / "curves.png"
    assert Image.open(curves).size == (1500, 1100)
    trials = optuna.load_study(
        study_name="gans-created-equal", storage=f"sqlite:///{tmp_path / 'optuna.db'}"
    ).trials
    assert sorted(t.params["variant"] for t in trials) == sorted(got_v for got_v, _ in got)


def _d_updates(run) -> tuple[int, int]:
    """(D updates, G updates) from the run's final checkpoint: its optimizers' step counts."""
    import torch

    from ganbench.rundir.folder import RunFolder

    folder = RunFolder.open(Path(run.data.tags["ganbench.run_dir"]))
    _, newest = folder.checkpoints()[0]
    state = torch.load(newest, map_location="cpu", weights_only=False)["state"]
    steps = {k: state[k]["state"][0]["step"] for k in ("opt_d", "opt_g")}
    return int(steps["opt_d"]), int(steps["opt_g"])


@pytest.mark.slow  # default suite time (README, Tests): `make slow` runs it
def test_a_per_variant_search_samples_each_gan_and_reports_the_budget_curve(tmp_path, cache):
    from ganbench.study.report import collect

    path = tmp_path / "gce.toml"
    path.write_text(
        HEAD.replace('"s"', '"gce"')
        + textwrap.dedent("""
            sampler = "random"
            [settings]
            steps = 2
            [variants.dcgan.search]
            lr = { low = 1e-5, high = 1e-2, log = true }
            beta1 = { low = 0.0, high = 1.0 }
            [variants.wgan-gp]
            architecture = "wgan-gp"
            [variants.wgan-gp.search]
            lr = { low = 1e-5, high = 1e-2, log = true }
            n_critic = { low = 1, high = 5 }
            gp_weight = { low = 0.1, high = 100.0, log = true }
        """)
    )
    args = _args(str(path), tmp_path, cache, "--trials", "2", *TINY)
    proc = ganbench(*args, cwd=tmp_path, name="s")
    assert finish(proc, 600) == 0, (tmp_path / "s.err").read_text()
    # Stored apart from the grid of the same file, as NAME-search.
    trials = optuna.load_study(
        study_name="gce-search", storage=f"sqlite:///{tmp_path / 'optuna.db'}"
    ).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    by_variant = {v: [t for t in trials if t.params["variant"] == v] for v in ("dcgan", "wgan-gp")}
    assert [len(ts) for ts in by_variant.values()] == [2, 2]
    # each setting its own seed, drawn for it (not seed 0 for every trial)
    assert len({t.params["seed"] for t in trials}) == 4
    for t in by_variant["dcgan"]:
        assert set(t.params) == {"variant", "dataset", "seed", "lr", "beta1"}
        assert 1e-5 <= t.params["lr"] <= 1e-2 and 0 <= t.params["beta1"] <= 1
    for t in by_variant["wgan-gp"]:
        assert set(t.params) == {"variant", "dataset", "seed", "lr", "n_critic", "gp_weight"}
        assert 1 <= t.params["n_critic"] <= 5 and 0.1 <= t.params["gp_weight"] <= 100
    client, parent, children = _runs(tmp_path, "study-gce-search")
    assert parent.data.params["mode"] == "random search"
    for run in children:
        [t] = [t for t in trials if t.user_attrs.get("run_id") == run.info.run_id]
        assert run.data.params["architecture"] == t.params["variant"]
        assert float(run.data.params["lr"]) == pytest.approx(t.params["lr"], rel=1e-12)
        if t.params["variant"] == "wgan-gp":
            assert run.data.params["n_critic"] == str(t.params["n_critic"])
    # The budget curve: from the runs' final FIDs, exact over the k-subsets.
    report = collect(client, parent.info.run_id)
    assert report.search
    for row in report.rows:
        finals = [r.final_fid for r in row.runs]
        assert [p.k for p in row.budget] == [1, 2]
        assert row.budget[0].expected == pytest.approx(np.mean(finals), rel=1e-12)
        assert row.budget[1].expected == pytest.approx(min(finals), rel=1e-12)
        # Sampled settings are not seeds: no Welch test against the baseline, and the
        # winning setting's searched values, as its run logged them.
        assert row.comparison is None
        best = min(row.runs, key=lambda r: r.final_fid)
        searched = {"dcgan": ["beta1", "lr"], "wgan-gp": ["gp_weight", "lr", "n_critic"]}
        assert row.best_setting == {k: best.params[k] for k in searched[row.name]}
        # ... and its samples are the ones shown, not the first run's.
        tmp = tmp_path / f"want-{row.name}"
        tmp.mkdir()
        want = client.download_artifacts(best.run_id, "samples_final.png", str(tmp))
        shown = cache / "studies" / "gce-search" / "report" / f"samples_{row.name}.png"
        assert shown.read_bytes() == Path(want).read_bytes()
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/budget.png", "report/report.md", "report/report.html"} <= logged
    md = (cache / "studies" / "gce-search" / "report" / "report.md").read_text()
    assert "## Best FID for a budget of k sampled settings" in md
    assert md.count("| wgan-gp | 2 | 0 |") == 2 and "![budget](budget.png)" in md
    assert "| setting with the best objective |" in md and "Welch t interval" not in md
    assert "differences.png" not in md and "95% Welch interval" not in md
    assert "## Final samples (the setting with the best objective)" in md
    # the objective Optuna was told is the one the report ranks by: the final FID
    for row in report.rows:
        for run in row.runs:
            [t] = [t for t in trials if t.user_attrs.get("run_id") == run.run_id]
            assert t.value == pytest.approx(run.final_fid, rel=1e-12)

"""Issue 29's studies (conditional-vs-unconditional, gans-created-equal-resnet,
diffaugment-small-data) and the ``data_fraction`` subset they rely on: the subset's size,
strata and identity checked against hand-computed counts and an independent digest, the
scorer's reference kept to the whole split, and a tiny real study run."""

from __future__ import annotations

import hashlib
import itertools
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from mlflow import MlflowClient
from processes import finish, ganbench

from ganbench.errors import ConfigError, GanbenchError, UsageError
from ganbench.study import definition
from ganbench.training.subset import (
    DIGEST_KEY,
    SIZE_KEY,
    class_quotas,
    indices_digest,
    subset_indices,
)

NEW_STUDIES = (
    "conditional-vs-unconditional",
    "gans-created-equal-resnet",
    "diffaugment-small-data",
)


# ---- the studies ------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW_STUDIES)
def test_each_new_study_loads_validates_and_plans_for_digits(name):
    from ganbench.study.validate import check_study

    spec, _ = definition.load(name)
    assert spec.architecture == "resnet" and spec.datasets == ["digits"]
    check_study(spec)  # every variant resolves against the resnet plugin on digits
    points = spec.points()
    assert len(points) == len(spec.variants) * 5 == 15
    assert {p.variant for p in points} == set(spec.variants)
    assert spec.baseline == next(iter(spec.variants)) and set(spec.claims) == set(spec.variants)


def test_conditional_study_differs_only_in_conditioning_and_its_scores():
    spec, _ = definition.load("conditional-vs-unconditional")
    settings = {v: spec.trial_settings(v, "digits") for v in spec.variants}
    assert {v: s.pop("conditional") for v, s in settings.items()} == {
        "unconditional": "none",
        "projection": "projection",
        "acgan": "acgan",
    }
    metrics = {v: s.pop("eval_metrics") for v, s in settings.items()}
    # class accuracy / intra-FID are refused for an unconditional model: only the others'
    assert metrics == {
        "unconditional": "fid",
        "projection": "fid,class_accuracy,intra_fid",
        "acgan": "fid,class_accuracy,intra_fid",
    }
    assert settings["unconditional"] == settings["projection"] == settings["acgan"]
    assert "1802.05637" in spec.summary and "1610.09585" in spec.summary


def test_diffaugment_study_trains_every_variant_on_the_same_tenth():
    spec, _ = definition.load("diffaugment-small-data")
    settings = {v: spec.trial_settings(v, "digits") for v in spec.variants}
    assert {v: s.pop("diffaugment") for v, s in settings.items()} == {
        "none": "",
        "translation-cutout": "translation,cutout",
        "color-translation-cutout": "color,translation,cutout",
    }
    assert all(s == settings["none"] for s in settings.values())
    assert settings["none"]["data_fraction"] == 0.1 and "eval_split" not in settings["none"]


def test_resnet_rows_share_gans_created_equal_budget_and_refuse_dcgan_keys():
    from ganbench.study.validate import check_study

    resnet, _ = definition.load("gans-created-equal-resnet")
    dcgan, _ = definition.load("gans-created-equal")
    assert list(resnet.variants) == ["resnet-hinge-sn", "resnet-ns", "resnet-wgan-gp"]
    for key in ("d_steps", "eval_every", "eval_samples", "eval_metrics", "batch_size"):
        assert resnet.base_settings("digits")[key] == dcgan.base_settings("digits")[key], key
    wgan = resnet.trial_settings("resnet-wgan-gp", "digits")
    assert {k: wgan[k] for k in ("loss", "gp_weight", "n_critic", "lr", "beta1", "beta2")} == {
        "loss": "wasserstein",
        "gp_weight": 10.0,
        "n_critic": 5,
        "lr": 1e-4,
        "beta1": 0.0,
        "beta2": 0.9,
    }
    assert wgan["spectral_norm"] is False
    # Why the rows are a study of their own: DCGAN's widths are no resnet setting.
    with_ngf = definition.parse(
        'name = "s"\narchitecture = "resnet"\ndatasets = ["digits"]\n[settings]\nngf = 64\n', "s"
    )
    with pytest.raises(GanbenchError, match="variant 'base': unknown hyper"):
        check_study(with_ngf)


# ---- the subset -------------------------------------------------------------------------


def test_class_quotas_match_a_hand_computation():
    # 10% of (178, 182, 177): exact shares 17.8, 18.2, 17.7 of 53.7 -> 54 images; floors
    # 17, 18, 17 (52), the two left go to the largest remainders 0.8 and 0.7.
    assert class_quotas(np.array([178, 182, 177]), 54).tolist() == [18, 18, 18]
    # shares 0.5, 1.5, 1.0 of 3: floors 0, 1, 1; the one left to the first 0.5 (ties: lower)
    assert class_quotas(np.array([1, 3, 2]), 3).tolist() == [1, 1, 1]


@pytest.fixture(scope="module")
def digits_labels(tmp_path_factory) -> np.ndarray:
    """The labels of the digits training split, as the plugin loads it."""
    from ganbench.data.loading import load_images
    from ganbench.data.paths import cache_root
    from ganbench.plugins import load_registries
    from ganbench.training.plan import plan_run

    plan = plan_run(load_registries(), "resnet", "digits")
    cache = cache_root(str(tmp_path_factory.mktemp("digits")))
    data = load_images(plan.dataset, plan.request(None), cache, progress=False, say=print)
    return np.asarray(data.labels)


def test_a_tenth_of_digits_is_stratified_seed_independent_and_digested(digits_labels):
    labels = digits_labels
    n = len(labels)
    for fraction in (0.1, 0.37):
        keep = subset_indices(n, fraction, labels)
        assert len(keep) == round(fraction * n) and len(set(keep.tolist())) == len(keep)
        assert np.all(np.diff(keep) > 0) and keep[-1] < n
        full = np.bincount(labels, minlength=10).astype(np.float64)
        part = np.bincount(labels[keep], minlength=10)
        assert np.all(np.abs(part - fraction * full) <= 1.0), (part, fraction * full)
    keep = subset_indices(n, 0.1, labels)
    np.random.seed(123)  # the run's seed does not move it
    assert np.array_equal(subset_indices(n, 0.1, labels), keep)
    packed = struct.pack(f"<{len(keep)}q", *keep.tolist())
    assert indices_digest(keep) == hashlib.sha256(packed).hexdigest()
    assert indices_digest(keep[1:]) != indices_digest(keep)


def test_an_unlabelled_split_gets_a_plain_seeded_subset():
    keep = subset_indices(1000, 0.25, None)
    assert len(keep) == 250 and len(np.unique(keep)) == 250
    assert np.array_equal(keep, subset_indices(1000, 0.25, None))
    assert len(subset_indices(5, 0.01, None)) == 1  # never empty


def test_data_fraction_is_ranged():
    from ganbench.training.config import TrainConfig

    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="data_fraction"):
            TrainConfig(data_fraction=bad)


def test_prepare_trains_on_the_tenth_and_scores_against_the_whole_split(tmp_path, digits_labels):
    import torch

    from ganbench.plugins import load_registries
    from ganbench.training.launch import DataOptions, prepare
    from ganbench.training.plan import plan_run

    registries = load_registries()
    values = {"data_fraction": "0.1", "eval_every": "1", "eval_samples": "100"}
    plan = plan_run(registries, "resnet", "digits", [("test", values)])
    options = DataOptions(None, str(tmp_path), "skip", None)
    cpu = torch.device("cpu")
    data, scorer = prepare(registries, plan, options, cpu, progress=False, say=print)
    labels = digits_labels
    assert len(data) == 144 == round(0.1 * len(labels))
    keep = subset_indices(len(labels), 0.1, labels)
    assert np.array_equal(data.labels, labels[keep])
    assert data.notes[SIZE_KEY] == "144" and data.notes[DIGEST_KEY] == indices_digest(keep)
    assert scorer.reference.split == "train" and scorer.reference.count == 0  # 0: all
    # the whole split's 1,437 images, not the 144 trained on
    assert np.array_equal(np.sort(scorer.real.labels), np.sort(labels))
    small = plan_run(registries, "resnet", "digits", [("t", {"data_fraction": "0.01"})])
    with pytest.raises(ConfigError, match=r"data_fraction=0\.01 leaves 14 of 1437 images"):
        prepare(registries, small, options, cpu, progress=False, say=print)


def test_a_resume_on_another_subset_is_refused():
    from ganbench.training.runner import _check_same_data

    logged = SimpleNamespace(logged={DIGEST_KEY: "a" * 64})
    _check_same_data(logged, {DIGEST_KEY: "a" * 64})
    with pytest.raises(UsageError, match="data_fraction subset"):
        _check_same_data(logged, {DIGEST_KEY: "b" * 64})
    with pytest.raises(UsageError, match="none \\(the whole split\\)"):
        _check_same_data(logged, {})


# ---- real runs --------------------------------------------------------------------------


def test_a_run_with_data_fraction_logs_its_size_and_digest(tmp_path, digits_labels):
    proc = ganbench(
        *("run", "resnet", "-d", "digits", "--steps", "2", "--cache-dir", str(tmp_path)),
        *("--set", "data_fraction=0.1", "--set", "threads=1", "--set", "log_every=1"),
        *("--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--no-progress"),
        cwd=tmp_path,
        name="run",
    )
    assert finish(proc, 300) == 0, (tmp_path / "run.err").read_text()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    labels = digits_labels
    keep = subset_indices(len(labels), 0.1, labels)
    assert run.data.params["num_images"] == "144" == run.data.params[SIZE_KEY]
    assert run.data.params[DIGEST_KEY] == indices_digest(keep)
    assert run.data.params["data_fraction"] == "0.1"


@pytest.mark.slow
def test_a_tiny_conditional_study_runs_and_reports_every_variant(tmp_path: Path):
    proc = ganbench(
        *("study", "run", "conditional-vs-unconditional", "--seeds", "1", "--steps", "2"),
        *("--set", "eval_every=2", "--set", "eval_samples=1200", "--set", "threads=1"),
        *("--cache-dir", str(tmp_path / "cache")),
        *("--storage", f"sqlite:///{tmp_path / 'optuna.db'}"),
        *("--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--no-progress"),
        cwd=tmp_path,
        name="study",
    )
    assert finish(proc, 900) == 0, (tmp_path / "study.err").read_text()
    report = tmp_path / "cache" / "studies" / "conditional-vs-unconditional" / "report"
    lines = (report / "report.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| variant"))
    header = lines[start]
    assert "class accuracy" in header and "intra-FID" in header
    table = itertools.takewhile(lambda line: line.startswith("|"), lines[start + 2 :])
    rows = {line.split("|")[1].strip(): line for line in table}
    assert {"unconditional", "projection", "acgan"} <= set(rows)
    columns = [c.strip() for c in header.split("|")]
    accuracy = columns.index("class accuracy")
    assert rows["unconditional"].split("|")[accuracy].strip() == "-"
    for variant in ("projection", "acgan"):
        value = float(rows[variant].split("|")[accuracy].split("±")[0])
        assert 0.0 <= value <= 1.0

"""Hyperparameters: typed overrides, strict unknown keys, layering and validation."""

from __future__ import annotations

import pytest

from ganbench import hparams as cfg
from ganbench.errors import ConfigError, UsageError
from ganbench.plugins import load_registries
from ganbench.training.plan import plan_run


@pytest.fixture(scope="module")
def registries():
    return load_registries()


def test_dcgan_defaults_are_the_papers(registries):
    plan = plan_run(registries, "dcgan", "digits")
    m = plan.model
    assert (m.lr, m.beta1, m.beta2, m.z_dim, m.init_std, m.leaky_slope) == (
        0.0002,
        0.5,
        0.999,
        100,
        0.02,
        0.2,
    )
    assert m.loss == "non_saturating"
    assert plan.train.batch_size == 128
    assert plan.train.resolution == 32  # the dataset's default


def test_set_overrides_convert_types(registries):
    layers = [
        (
            "--set",
            cfg.parse_assignments(
                ["lr=1e-3", "z_dim=64", "batchnorm=false", "z_distribution=normal", "seed=7"]
            ),
        )
    ]
    plan = plan_run(registries, "dcgan", "digits", layers)
    assert plan.model.lr == 0.001 and isinstance(plan.model.lr, float)
    assert plan.model.z_dim == 64 and isinstance(plan.model.z_dim, int)
    assert plan.model.batchnorm is False
    assert plan.model.z_distribution == "normal"
    assert plan.train.seed == 7
    assert plan.params()["lr"] == "0.001"


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("lrr=0.1", "unknown hyperparameter 'lrr' in --set. Did you mean lr"),
        ("z_dim=1.5", "z_dim must be a whole number"),
        ("z_dim=abc", "z_dim must be int"),
        ("batchnorm=maybe", "batchnorm must be true or false"),
        ("z_distribution=gaussian", "z_distribution must be one of uniform, normal"),
    ],
)
def test_bad_overrides_are_errors(registries, assignment, message):
    with pytest.raises(ConfigError, match=message):
        plan_run(registries, "dcgan", "digits", [("--set", cfg.parse_assignments([assignment]))])


def test_malformed_assignment():
    with pytest.raises(ConfigError, match="--set expects key=value"):
        cfg.parse_assignments(["lr"])


def test_later_layer_wins_and_steps_replace_epochs(registries):
    layers = [("a.toml", {"lr": 0.1, "epochs": 3}), ("--set", {"lr": "0.2", "steps": "5"})]
    plan = plan_run(registries, "dcgan", "digits", layers)
    assert plan.model.lr == 0.2
    assert (plan.train.steps, plan.train.epochs) == (5, None)
    plan = plan_run(registries, "dcgan", "digits", [("--set", {"epochs": "2"})])
    assert (plan.train.steps, plan.train.epochs) == (None, 2.0)


def test_d_steps_is_a_third_length_and_the_later_given_length_wins(registries):
    """steps, epochs and d_steps: one per layer, the later-given one decides (a preset's
    steps and the default epochs give way to a later d_steps, and back)."""
    plan = plan_run(registries, "dcgan", "digits", [("--set", {"d_steps": "20"})])
    # the digits preset gives steps; the later d_steps replaces it
    assert (plan.train.steps, plan.train.epochs, plan.train.d_steps) == (None, None, 20)
    assert plan.params()["d_steps"] == "20"
    layers = [("a.toml", {"d_steps": 20}), ("--set", {"epochs": "2"})]
    train = plan_run(registries, "dcgan", "digits", layers).train
    assert (train.steps, train.epochs, train.d_steps) == (None, 2.0, None)
    layers = [("a.toml", {"epochs": 2}), ("--set", {"d_steps": "30"}), ("flags", {"steps": 5})]
    train = plan_run(registries, "wgan-gp", "digits", layers).train
    assert (train.steps, train.epochs, train.d_steps) == (5, None, None)
    # unset lengths in a layer (None, as the command line's flags) give way
    layers = [("--set", {"d_steps": "7"}), ("flags", {"steps": None, "epochs": None})]
    assert plan_run(registries, "dcgan", "digits", layers).train.d_steps == 7


@pytest.mark.parametrize(
    ("values", "given"),
    [
        ({"steps": "5", "d_steps": "20"}, "steps and d_steps"),
        ({"epochs": "1", "d_steps": "20"}, "epochs and d_steps"),
        ({"steps": "5", "epochs": "1", "d_steps": "20"}, "steps and epochs and d_steps"),
    ],
)
def test_two_lengths_in_one_layer_are_refused_in_one_line(registries, values, given):
    with pytest.raises(UsageError, match=f"--set sets {given}: the length") as caught:
        plan_run(registries, "dcgan", "digits", [("--set", values)])
    assert "steps, epochs or d_steps" in str(caught.value) and "\n" not in str(caught.value)


def test_total_steps_counts_d_steps_in_real_batches_per_step(registries):
    from ganbench.training.runner import length_params, total_steps

    for name, set_, steps, n in [
        ("dcgan", {"d_steps": "20"}, 20, 1),
        ("wgan-gp", {"d_steps": "20"}, 4, 5),
        ("wgan-gp", {"d_steps": "22"}, 5, 5),  # ceil: a whole G step's worth
        ("dcgan", {"d_steps": "20", "n_critic": "3"}, 7, 3),
        ("wgan-gp", {"steps": "20"}, 20, 5),
    ]:
        plan = plan_run(registries, name, "digits", [("--set", set_)])
        assert total_steps(plan, batches_per_epoch=1000) == steps, (name, set_)
        assert length_params(plan, steps) == {
            "total_steps": steps,
            "real_batches_per_step": n,
            "real_batches": steps * n,
        }


def test_toml_file(tmp_path, registries):
    path = tmp_path / "variant.toml"
    path.write_text('beta1 = 0.9\nz_distribution = "normal"\nbatch_size = 32\n')
    plan = plan_run(registries, "dcgan", "digits", [(str(path), cfg.load_toml(path))])
    assert (plan.model.beta1, plan.model.z_distribution, plan.train.batch_size) == (
        0.9,
        "normal",
        32,
    )
    (tmp_path / "bad.toml").write_text("beta1 = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        cfg.load_toml(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="does not exist"):
        cfg.load_toml(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"resolution": 48}, "dcgan cannot be built at resolution 48; use one of 16, 32"),
        ({"resolution": 256}, "dataset digits is not offered at resolution 256"),
        ({"split": "val"}, "dataset digits has no split 'val'"),
        ({"steps": 0}, "steps must be at least 1"),
        ({"d_steps": 0}, "d_steps must be at least 1; got 0"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
    ],
)
def test_invalid_run_settings(registries, values, message):
    with pytest.raises(UsageError, match=message):
        plan_run(registries, "dcgan", "digits", [("the command line", values)])


# ---- numeric ranges: declared with the fields, refused before a run exists ---------------


def _numeric_fields(config_class) -> list:
    import dataclasses
    import typing

    hints = typing.get_type_hints(config_class)
    return [
        f
        for f in dataclasses.fields(config_class)
        if {int, float} & set(typing.get_args(hints[f.name]) or (hints[f.name],))
        and hints[f.name] is not bool
    ]


@pytest.mark.parametrize("name", ["dcgan", "lsgan", "wgan-gp", "sngan"])
def test_every_numeric_setting_declares_its_range(registries, name):
    """The runner's settings and the built-in GANs' (a subclass that redeclares a field
    must redeclare its range too); LSGAN's label coding a, b, c may be any finite number."""
    from ganbench.training.config import TrainConfig

    free = {"a", "b", "c"}
    classes = [TrainConfig, registries.architectures.get(name).config_class]
    for config_class in classes:
        fields = _numeric_fields(config_class)
        assert len(fields) >= 8, config_class
        undeclared = [f.name for f in fields if cfg.RANGE not in f.metadata]
        assert set(undeclared) <= free, (config_class.__name__, undeclared)


@pytest.mark.parametrize(
    ("architecture", "values", "message"),
    [
        ("dcgan", {"seed": "-1"}, "seed must be from 0 to 4294967295; got -1 (in --set)"),
        ("dcgan", {"seed": str(2**32)}, "seed must be from 0 to 4294967295; got 4294967296"),
        ("dcgan", {"lr": "-1"}, "lr must be more than 0; got -1.0 (in --set)"),
        ("dcgan", {"lr": "0"}, "lr must be more than 0; got 0.0"),
        ("dcgan", {"lr": "nan"}, "lr must be more than 0; got nan"),
        ("dcgan", {"beta1": "1"}, "beta1 must be at least 0 and below 1; got 1.0"),
        ("dcgan", {"beta2": "-0.1"}, "beta2 must be at least 0 and below 1; got -0.1"),
        ("dcgan", {"z_dim": "0"}, "z_dim must be at least 1; got 0"),
        ("dcgan", {"ngf": "-8"}, "ngf must be at least 1; got -8"),
        ("dcgan", {"init_std": "-0.02"}, "init_std must be at least 0; got -0.02"),
        ("dcgan", {"leaky_slope": "2"}, "leaky_slope must be from 0 to 1; got 2.0"),
        ("dcgan", {"batch_size": "0"}, "batch_size must be at least 1; got 0"),
        ("dcgan", {"steps": "-5"}, "steps must be at least 1; got -5"),
        ("dcgan", {"epochs": "0"}, "epochs must be more than 0; got 0.0"),
        ("dcgan", {"log_every": "0"}, "log_every must be at least 1; got 0"),
        ("dcgan", {"threads": "-1"}, "threads must be 0 (one per core) or more; got -1"),
        ("dcgan", {"checkpoint_minutes": "inf"}, "checkpoint_minutes must be 0 (only at"),
        ("dcgan", {"eval_every": "-1"}, "eval_every must be 0 (never) or more; got -1"),
        ("wgan-gp", {"lr": "-0.0001"}, "lr must be more than 0; got -0.0001"),
        ("wgan-gp", {"beta2": "1.5"}, "beta2 must be at least 0 and below 1; got 1.5"),
        ("sngan", {"beta1": "-1"}, "beta1 must be at least 0 and below 1; got -1.0"),
        ("lsgan", {"a": "inf"}, "a must be a finite number; got inf"),
        ("lsgan", {"n_critic": "0"}, "n_critic must be a whole number of at least 1; got 0"),
    ],
)
def test_a_setting_out_of_its_range_is_one_line_naming_the_range(
    registries, architecture, values, message
):
    with pytest.raises(ConfigError) as caught:
        plan_run(registries, architecture, "digits", [("--set", values)])
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_ranges_hold_for_configs_built_in_code_and_from_toml(tmp_path, registries):
    from ganbench.training.config import TrainConfig
    from ganbench_plugins.dcgan.config import DCGANConfig

    with pytest.raises(ConfigError, match="lr must be more than 0; got -1"):
        DCGANConfig(lr=-1)
    with pytest.raises(ConfigError, match="seed must be from 0 to 4294967295; got -3"):
        TrainConfig(seed=-3)
    path = tmp_path / "bad.toml"
    path.write_text("beta1 = 1.0\n")
    with pytest.raises(
        ConfigError, match=f"beta1 must be at least 0 and below 1; got 1.0 .in {path}"
    ):
        plan_run(registries, "dcgan", "digits", [(str(path), cfg.load_toml(path))])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--seed", "-1"), "Error: seed must be from 0 to 4294967295; got -1 (in the command"),
        (("--set", "lr=-1"), "Error: lr must be more than 0; got -1.0 (in --set)"),
        (("--set", "batch_size=0"), "Error: batch_size must be at least 1; got 0 (in --set)"),
        (("--steps", "-3"), "Error: steps must be at least 1; got -3 (in the command line)"),
        # the authors' ImageNet-32 networks on 1-channel digits (Architecture.check)
        (
            ("--set", "network=imagenet32"),
            "Error: network=imagenet32 is built for 32x32 colour images; got 1 channel(s)",
        ),
    ],
)
def test_bad_numbers_are_refused_before_any_run_or_folder_exists(
    ganbench_run_cli, tmp_path, flags, message
):
    """Against a store that holds a run already: afterwards it holds that one run, and no
    run folder was made."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("ganbench")
    client.set_terminated(client.create_run(experiment).info.run_id)
    cache = tmp_path / "cache"
    result = ganbench_run_cli(
        "run",
        "dcgan",
        "--dataset",
        "digits",
        *flags,
        "--tracking-uri",
        uri,
        "--cache-dir",
        str(cache),
        "--run-dir",
        str(tmp_path / "run"),
        "--no-progress",
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.output
    assert len(client.search_runs([experiment])) == 1
    assert not (tmp_path / "run").exists() and not (cache / "runs").exists()


@pytest.mark.parametrize("seeds", ["[-1, 3]", "[3, -2]"])
def test_a_study_with_a_negative_seed_is_refused_up_front(seeds):
    from ganbench.study import definition

    text = f'name = "s"\narchitecture = "dcgan"\ndatasets = ["digits"]\nseeds = {seeds}\n'
    with pytest.raises(ConfigError) as caught:
        definition.parse(text, "s.toml")
    assert str(caught.value).startswith("s.toml: seeds are whole numbers of 0 or more, got [")
    assert "\n" not in str(caught.value)

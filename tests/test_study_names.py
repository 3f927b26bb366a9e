"""A study's name is its folder (CACHE/studies/NAME): a name that is a path is refused, in
one line, before anything is created anywhere."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ganbench.cli import cli
from ganbench.errors import ConfigError
from ganbench.study import definition
from ganbench.study.definition import check_study_name

FILE = 'name = "{name}"\narchitecture = "dcgan"\ndatasets = ["digits"]\nseeds = 1\n'


def _everything(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("where", ["file", "--name"])
@pytest.mark.parametrize("kind", ["../x", "absolute", "a/b", "..", ".hidden", "new\nline"])
def test_a_study_name_that_is_a_path_is_refused_before_anything_is_made(
    kind, where, tmp_path, monkeypatch
):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    name = str(tmp_path / "abs") if kind == "absolute" else kind
    study = work / "s.toml"
    study.write_text(FILE.format(name=name.replace("\n", "\\n") if where == "file" else "ok"))
    args = ["study", "run", str(study), "--cache-dir", str(work / "cache"), "--no-progress"]
    args += ["--storage", f"sqlite:///{work / 'optuna.db'}"]
    args += ["--tracking-uri", f"sqlite:///{work / 'mlflow.db'}"]
    if where == "--name":
        args += ["--name", name]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()  # one line, the name shown escaped
    what = "--name" if where == "--name" else "the study file's name"
    assert line.startswith(f"Error: {what} {name!r} is not allowed: it names a folder"), line
    assert "letters, digits, '.', '_' and '-'" in line and "(e.g. my-ablation-2)" in line
    # Nothing made: no cache, no stores, no folder where the name points.
    assert _everything(tmp_path) == ["work", "work/s.toml"]


def test_good_names_pass_and_the_engine_checks_again(tmp_path):
    for name in definition.builtin_names():
        spec, _ = definition.load(name)
        assert check_study_name(spec.name) == spec.name
        assert check_study_name(f"{spec.name}-search") == f"{spec.name}-search"
    assert check_study_name("Ablation_2.v3") == "Ablation_2.v3"  # upper case is fine here
    with pytest.raises(ConfigError, match="at most 100 characters"):
        check_study_name("a" * 101)
    # The engine refuses too, whatever built the Study (a name set after apply_overrides).
    from ganbench.study.engine import StudyRun
    from ganbench.study.options import StudyOptions

    spec, text = definition.load("seeds")
    spec.name = "../../escape"
    options = StudyOptions(
        storage_url="sqlite://",
        tracking_uri="sqlite://",
        experiment="x",
        cache=tmp_path / "cache",
        devices=["cpu"],
        jobs=1,
        data_args=[],
        trials=None,
        sampler="tpe",
        progress=False,
    )
    with pytest.raises(ConfigError) as err:
        StudyRun(spec, text, options, print)
    assert str(err.value).startswith("study name '../../escape' is not allowed")
    assert list(tmp_path.iterdir()) == []

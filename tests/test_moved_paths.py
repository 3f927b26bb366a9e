"""The old import paths of the modules the house move relocated (issue 26) keep working
for one release: the same module object (so a class imported either way is one class),
with a DeprecationWarning naming the new path. Checked path by path, in-process."""

from __future__ import annotations

import importlib
import sys

import pytest

MOVED = {
    "ganbench.config": "ganbench.hparams",
    "ganbench.sealed": "ganbench.files.sealed",
    "ganbench.names": "ganbench.files.names",
    "ganbench.redirects": "ganbench.files.urls",
    "ganbench.training.signals": "ganbench.signals",
    "ganbench.hookspecs": "ganbench.plugins.hookspecs",
    "ganbench.registry": "ganbench.plugins.registry",
    "ganbench.interfaces": "ganbench.plugins.interfaces",
    "ganbench.runfolder": "ganbench.rundir.folder",
    "ganbench.checkpoint": "ganbench.rundir.checkpoint",
    "ganbench.training.heartbeat": "ganbench.rundir.heartbeat",
    "ganbench.mlflow_store": "ganbench.tracking.store",
    "ganbench.provenance": "ganbench.tracking.provenance",
    "ganbench.outbox.journal": "ganbench.tracking.outbox.journal",
    "ganbench.outbox.writer": "ganbench.tracking.outbox.writer",
    "ganbench.distributed": "ganbench.training.distributed",
    "ganbench.launcher": "ganbench.training.launcher",
    "ganbench.devices": "ganbench.training.devices",
    "ganbench.run_status": "ganbench.runs.status",
    "ganbench.runtarget": "ganbench.runs.target",
    "ganbench.training.resume": "ganbench.runs.resume",
    "ganbench.zoo.pictures": "ganbench.images",
    "ganbench_plugins.dcgan.losses": "ganbench.training.losses",
}

#: Modules that became packages: their old names are attributes of the package.
BECAME_PACKAGES = {
    ("ganbench.tracking", "MlflowTracker"): "ganbench.tracking.tracker",
    ("ganbench.tracking", "resolve_tracking_uri"): "ganbench.tracking.tracker",
    ("ganbench.runs", "load_run"): "ganbench.runs.reopen",
    ("ganbench.runs", "LoadedRun"): "ganbench.runs.reopen",
}


@pytest.mark.parametrize(("old", "new"), MOVED.items())
def test_an_old_module_path_is_the_new_module_with_a_warning(old, new):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=rf"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


@pytest.mark.parametrize(("where", "new"), BECAME_PACKAGES.items())
def test_an_old_name_of_a_module_turned_package_still_resolves(where, new):
    package, name = where
    with pytest.warns(DeprecationWarning, match=rf"{package}\.{name} moved to {new}\.{name}"):
        value = getattr(importlib.import_module(package), name)
    assert value is getattr(importlib.import_module(new), name)


def test_the_old_outbox_package_warns_and_its_modules_are_the_new_ones():
    for name in [
        m for m in sys.modules if m == "ganbench.outbox" or m.startswith("ganbench.outbox.")
    ]:
        sys.modules.pop(name)
    with pytest.warns(
        DeprecationWarning, match="ganbench.outbox moved to ganbench.tracking.outbox"
    ):
        from ganbench.outbox import sync
    assert sync is importlib.import_module("ganbench.tracking.outbox.sync")


def test_a_name_the_old_module_never_had_is_an_attribute_error():
    import ganbench.tracking

    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        ganbench.tracking.nothing_here  # noqa: B018


def test_the_core_imports_no_old_path():
    """The new code never goes through a shim (ganbench's own DeprecationWarnings are
    errors in the test run, and importing the CLI and the training loop must not warn)."""
    import subprocess

    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning);"
        "import ganbench.cli.app, ganbench.training.runner, ganbench.study.engine,"
        "ganbench.zoo.exporting, ganbench.analysis.context, ganbench.probe.probe,"
        "ganbench.runs.status, ganbench.testing, ganbench.tracking.outbox.sync"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

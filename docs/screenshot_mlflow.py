"""Screenshots of the MLflow UI for the docs: ``mlflow server`` on a store, as users start
it, and headless Chromium on its pages.

    python docs/screenshot_mlflow.py sqlite:///mlflow.db study-paper-ablations docs/
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from mlflow import MlflowClient


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shoot(url: str, out: Path, size: str = "1600,1000") -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs headless Chromium: apt-get install chromium")
    with tempfile.TemporaryDirectory() as home:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--window-size={size}", "--virtual-time-budget=20000",
             f"--screenshot={out}", url],
            check=True, capture_output=True, timeout=180, env={"HOME": home},
        )  # fmt: skip
    print(f"wrote {out}")


def main(store: str, experiment: str, out: Path) -> None:
    client = MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no experiment {experiment!r} in {store}")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parent = next(r for r in runs if r.data.tags.get("ganbench.study.role") == "parent")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    # One run per variant (its first seed) for the compare page.
    first = {}
    for run in sorted(children, key=lambda r: int(r.data.params.get("seed", 0))):
        first.setdefault(run.data.tags.get("ganbench.study.variant"), run.info.run_id)
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", store,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(base + "/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        out.mkdir(parents=True, exist_ok=True)
        # MLflow 3's UI opens in its GenAI view unless told (or once clicked) otherwise.
        ml = "workflowType=machine_learning"
        _shoot(f"{base}/#/experiments/{exp.experiment_id}/runs?{ml}", out / "mlflow_study_runs.png")
        runs_json = urllib.parse.quote(json.dumps(list(first.values())))
        exps_json = urllib.parse.quote(json.dumps([exp.experiment_id]))
        _shoot(
            f"{base}/#/compare-runs?runs={runs_json}&experiments={exps_json}&{ml}",
            out / "mlflow_study_compare.png",
            size="1600,1400",
        )
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))

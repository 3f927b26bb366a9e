"""The speed suite's own correctness: FLOP counts against PyTorch's counter, the textbook
baseline is the same architecture, every implementation runs, the report is written.
(Speeds themselves are benchmarks, never asserted here.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import ceiling, textbook, train_speed
from ganbench.errors import UsageError
from ganbench.plugins import load_registries
from ganbench.plugins.interfaces import ImageShape

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("resolution", [32, 64])
def test_flop_count_matches_pytorchs_flop_counter(resolution):
    for net, example in (
        (textbook.generator(3, resolution), torch.zeros(1, 100, 1, 1)),
        (textbook.discriminator(3, resolution), torch.zeros(1, 3, resolution, resolution)),
    ):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net.eval()(example)
        assert ceiling.forward_flops(net, example) == counter.get_total_flops()
    flops = ceiling.iteration_flops(3, 64)
    # The floor for 64x64: about 0.21 GFLOP per G and per D forward.
    assert flops["g_forward"] == pytest.approx(0.21e9, rel=0.02)
    assert flops["d_forward"] == pytest.approx(0.21e9, rel=0.02)


@pytest.mark.parametrize("resolution", [32, 64])
def test_textbook_networks_have_ganbench_dcgans_layers(resolution):
    arch = load_registries().architectures.get("dcgan")
    model = arch.build(arch.config_class(), ImageShape(3, resolution))
    for ours, theirs in (
        (model.generator, textbook.generator(3, resolution)),
        (model.discriminator, textbook.discriminator(3, resolution)),
    ):
        # The same convolutions and batch norms; only the output layers' biases differ (the
        # tutorial's last layers have none; ganbench's G output and D logit have one).
        def layers(net):
            return [
                (type(m).__name__, tuple(m.weight.shape))
                for m in net.modules()
                if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d | torch.nn.BatchNorm2d)
            ]

        assert layers(ours) == layers(theirs)


@pytest.mark.parametrize("impl", train_speed.IMPLS)
def test_every_training_implementation_runs(impl):
    if train_speed.GANBENCH.get(impl, {}).get("compile") == "on":  # refused on the CPU
        with pytest.raises(UsageError, match="compile=on does not pay on the CPU"):
            train_speed.measure(impl, torch.device("cpu"), 32, 8, 3, steps=1)
        return
    result = train_speed.measure(impl, torch.device("cpu"), 32, 8, 3, steps=1)
    assert result["images_per_sec"] > 0 and result["time_to_first_step_s"] > 0
    if impl == "ganbench":
        assert result["speed.channels_last"] == "True" and result["speed.adam"] == "fused"


def test_suite_writes_json_and_markdown(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--device",
            "cpu",
            "--only",
            "help,ceiling",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "cpu-quick.json").read_text())
    assert data["help"]["heavy_modules_imported"] == "[]"  # help imports no torch or mlflow
    assert data["ceiling"]["fp32_flops"] > 1e9
    assert "`ganbench --help`" in (tmp_path / "cpu-quick.md").read_text()
    bad = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "nope"], cwd=ROOT, capture_output=True
    )
    assert bad.returncode == 2 and b"unknown section" in bad.stderr


def test_the_resilience_benchmark_measures_a_checkpoint_and_reports_it():
    from benchmarks import resilience
    from benchmarks.__main__ import _resilience_lines

    cost = resilience.checkpoint_cost(torch.device("cpu"), repeats=1, resolution=16, batch=8)
    assert cost["size_mb"] > 1 and cost["write_s"] > 0 and cost["checkpoint_in_steps"] > 0
    tracking = {"error": "not measured: no mlflow"}
    text = "\n".join(_resilience_lines({"checkpoint": cost, "tracking": tracking}))
    assert "3x16x16" in text and "written atomically" in text and "not measured" in text


def test_the_allreduce_estimate_follows_the_ring_formula_and_the_papers_networks():
    from benchmarks import ddp_overhead as d

    # one 25 MiB bucket: the bytes at the bus bandwidth, and 2 (n - 1) latency hops
    assert d.allreduce_seconds(10**6, 8, 1e9, 1e-5) == pytest.approx(1e-3 + 14e-5)
    # 60 MB fill three buckets
    assert d.allreduce_seconds(60_000_000, 2, 1e9, 1e-5) == pytest.approx(0.06 + 3 * 2e-5)
    grads = d.gradient_bytes(64)
    # the PyTorch DCGAN example's 64 px networks: 3,576,704 and 2,765,568 parameters
    # (ganbench adds biases where no batch norm follows: 3 in G, 65 in D)
    assert grads["generator"] == 4 * (3_576_704 + 3)
    assert grads["discriminator"] == 4 * (2_765_568 + 65)
    [row] = [r for r in d.on_paper({(64, 128): 11_269.0}) if r["fabric"].startswith("8 GPUs")][:1]
    step = 128 / 11_269.0
    comm = d.allreduce_seconds(grads["per_step"], 8, d.NVLINK_BUSBW, d.NVLINK_LATENCY)
    assert row["efficiency"] == pytest.approx(step / (step + comm))


def test_the_team_storage_benchmark_measures_every_configuration(tmp_path, monkeypatch):
    """``benchmarks/team_storage.py --quick`` against a team server started as users start
    it: every configuration measured, every claim and every logged record accounted for."""
    from team_server import postgres_installed, team_server

    if not postgres_installed():
        pytest.skip("PostgreSQL is not installed (make postgres installs it)")
    # Both MLflow servers without MLflow's job runner (8 idle processes for GenAI jobs,
    # each importing MLflow: half of their start-up CPU on 2 cores; unused here).
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    out = tmp_path / "team.json"
    with team_server() as server:
        done = subprocess.run(
            [
                *(sys.executable, "-m", "benchmarks.team_storage", "--quick"),
                *("--workers", "1,2", "--team", str(server.folder), "--json", str(out)),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert server.password not in done.stdout + done.stderr + text
    data = json.loads(text)
    claims = {(r["storage"], r["workers"]): r for r in data["claim_rows"]}
    assert set(claims) == {(s, w) for s in ("sqlite", "postgresql") for w in (1, 2)}
    for row in claims.values():
        assert "error" not in row, row
        check = row["check"]
        # No trial outside the queue; each enqueued trial finished once or still waiting.
        assert check["trials"] == check["enqueued"] == 20 and check["not_enqueued"] == 0
        assert check["complete"] == check["distinct_params_complete"]
        assert check["complete"] + check["waiting"] == check["enqueued"]
        # ganbench's SQLite storage claims in immediate transactions (see
        # test_study_claims): no trial is handed to two workers on either store.
        assert check["ok"] and check["double_claims"] == 0 and check["waiting"] == 0, row
        assert row["ask"]["p50_ms"] > 0 and row["claims_per_s"] > 0
    logs = {(r["store"], r["workers"]): r for r in data["log_rows"]}
    stores = ("server on postgresql", "server on sqlite", "sqlite file (no server)")
    assert set(logs) == {(s, w) for s in stores for w in (1, 2)}
    for (_, workers), row in logs.items():
        assert "error" not in row, row
        assert row["check"]["ok"], row
        assert row["check"]["counted"] == row["records"] == workers * 5 * 10
        assert row["log_batch"]["p50_ms"] > 0
    assert "| postgresql | 2 |" in done.stdout and "| server on sqlite | 2 |" in done.stdout

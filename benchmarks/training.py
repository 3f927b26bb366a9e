"""The suite's training sections: each implementation's images/s in its own process
(benchmarks/train_speed.py), over resolutions and batches (``train``) and against
torch.compile's modes (``compile``), and their Markdown table."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import torch

from benchmarks import ceiling

#: (resolution, batch) per device: the paper's batch (128) and the GPU-filling 512 at 32
#: and 64 px on a GPU, with 64; the CPU goal's 64 px at 64, and two neighbours.
TRAIN_CONFIGS = {
    "cuda": [(32, 64), (32, 128), (32, 512), (64, 64), (64, 128), (64, 512)],
    "cpu": [(64, 64), (32, 64), (64, 128)],
}
#: Implementations at every config, and those at EXTRA_CONFIG only (the DataLoader-fed
#: textbook loop, the plain path and variants are measured where the goals name them).
TRAIN_IMPLS = {
    "cuda": (
        ("ganbench", "ganbench-eager", "textbook-on-device"),
        ("textbook", "ganbench-plain", "ganbench-no-cudnn-benchmark"),
    ),
    "cpu": (
        ("ganbench", "ganbench-plain", "textbook", "textbook-on-device"),
        ("ganbench-fp32", "ganbench-bf16"),
    ),
}
EXTRA_CONFIG = {"cuda": (64, 128), "cpu": (64, 64)}
#: torch.compile against the captured step, one config (compilation takes minutes).
COMPILE_CONFIG = {"cuda": (64, 128), "cpu": (64, 64)}
COMPILE_IMPLS = {
    "cuda": ("ganbench", "ganbench-reduce-overhead", "ganbench-max-autotune", "ganbench-compile"),
    "cpu": ("ganbench", "ganbench-compile"),
}
#: One implementation's process may take this long (compiling included).
IMPL_TIMEOUT_S = 240


def _train_rows(
    device: torch.device, plan: list[tuple[str, int, int]], steps: int, say: Any
) -> list[dict]:
    """Each (impl, resolution, batch) of ``plan`` in its own process."""
    flops = {r: ceiling.iteration_flops(3, r)["iteration"] for r in (32, 64)}
    rows = []
    for impl, resolution, batch in plan:
        say(f"train: {impl} {resolution}px batch {batch}")
        cmd = [sys.executable, "-m", "benchmarks.train_speed", "--impl", impl]
        cmd += ["--device", str(device), "--resolution", str(resolution)]
        cmd += ["--batch", str(batch), "--steps", str(steps)]
        failed = {"impl": impl, "resolution": resolution, "batch": batch}
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, check=False, timeout=IMPL_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            rows.append({**failed, "error": f"timed out after {IMPL_TIMEOUT_S} s"})
            continue
        if done.returncode != 0:
            lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
            rows.append({**failed, "error": lines[-1][:300]})
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["gflop_per_image"] = flops[resolution] / 1e9
        rows.append(row)
        say(f"  {row['images_per_sec']:,.0f} images/s, {row['ms_per_step']:.2f} ms a step")
    return rows


def train_section(device: torch.device, size: str, say: Any) -> list[dict]:
    configs = TRAIN_CONFIGS[device.type]
    every, first = TRAIN_IMPLS[device.type]
    plan = [(impl, r, b) for r, b in configs for impl in every]
    plan += [(impl, *EXTRA_CONFIG[device.type]) for impl in first]
    return _train_rows(device, plan, {"quick": 6, "full": 100}[size], say)


def compile_section(device: torch.device, size: str, say: Any) -> list[dict]:
    """torch.compile's modes against ganbench's default step at one config."""
    plan = [(impl, *COMPILE_CONFIG[device.type]) for impl in COMPILE_IMPLS[device.type]]
    return _train_rows(device, plan, {"quick": 3, "full": 100}[size], say)


def train_table(rows: list[dict[str, Any]], peak: float | None) -> list[str]:
    """Images/s of each implementation, against the textbook loop (DataLoader-fed and with
    its data on the device) and against ganbench's eager fast path at the same config."""
    lines = [
        "| training | px | batch | images/s | ms a step | vs textbook | vs textbook, data on"
        " device | vs eager fast path | of ceiling | first step | peak memory |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    by = {(x["impl"], x["resolution"], x["batch"]): x for x in rows}

    def against(impl: str, x: dict[str, Any]) -> str:
        base = by.get((impl, x["resolution"], x["batch"]), {}).get("images_per_sec")
        return f"{x['images_per_sec'] / base:.2f}x" if base else ""

    for x in rows:
        if "error" in x:
            lines.append(f"| {x['impl']} | {x['resolution']} | {x['batch']} | error:"
                         f" {x['error']} | | | | | | | |")  # fmt: skip
            continue
        frac = f"{x['images_per_sec'] * x['gflop_per_image'] * 1e9 / peak:.1%}" if peak else ""
        lines.append(
            f"| {x['impl']} | {x['resolution']} | {x['batch']} | {x['images_per_sec']:,.0f}"
            f" | {x['ms_per_step']:.2f} | {against('textbook', x)}"
            f" | {against('textbook-on-device', x)} | {against('ganbench-eager', x)} | {frac}"
            f" | {x['time_to_first_step_s']:.2f} s | {x['peak_memory_mb']:,.0f} MB |"
        )
    kind = next((x.get("peak_memory_kind") for x in rows if "peak_memory_kind" in x), "")
    return [*lines, "", f"(peak memory: {kind})", ""]

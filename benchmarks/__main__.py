"""``python -m benchmarks --device cpu|cuda``: the whole speed suite, written as JSON and a
Markdown table (``benchmarks/results/<device>.json|md``).

Sections: the device's matmul ceiling; training images/s of ganbench against the textbook
loop (batch 128 and 512, 32x32 and 64x64, plus batch 64 at 32x32), time to the first step
and peak memory; FID wall time against a plain torch-fidelity call; the Frechet distance
against ``scipy.linalg.sqrtm``; zoo sampling latency (onnxruntime vs PyTorch eager); the
probe's SVM fit; ``ganbench --help`` latency; what surviving costs (a checkpoint of the
64x64 DCGAN, the tracking journal per step); DDP's per-step overhead with one process, and
the all-reduce cost of 8 and 16 GPUs on paper. ``--size quick`` (the CPU default) scales the
expensive sections down and says so in the table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from benchmarks import (
    ceiling,
    cli_speed,
    ddp_overhead,
    probe_speed,
    resilience,
    scoring_speed,
    training,
    zoo_inference,
)

SECTIONS = (
    "ceiling",
    "train",
    "fid",
    "frechet",
    "zoo",
    "probe",
    "help",
    "resilience",
    "distributed",
    "compile",
)


def _versions() -> dict[str, str]:
    names = ("torch", "torchvision", "torch-fidelity", "onnxruntime-gpu", "onnxruntime", "numpy")
    out = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    out["torch_build"] = torch.__version__
    return out


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores"


def run(device: torch.device, size: str, sections: list[str], say: Any) -> dict[str, Any]:
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "device": _device_name(device),
        "device_type": device.type,
        "size": size,
        "python": platform.python_version(),
        "versions": _versions(),
    }
    if "ceiling" in sections:
        say("ceiling: matmul rate")
        results["ceiling"] = {"fp32_flops": ceiling.matmul_rate(device, torch.float32)}
        if device.type == "cuda":
            results["ceiling"]["bf16_flops"] = ceiling.matmul_rate(device, torch.bfloat16)
    if "train" in sections:
        results["train"] = training.train_section(device, size, say)
    if "compile" in sections:
        results["compile"] = training.compile_section(device, size, say)
    if "fid" in sections:
        samples = {"quick": 256, "full": 50_000}[size]
        say(f"fid: {samples} samples, ganbench vs torch-fidelity")
        results["fid"] = scoring_speed.fid_evaluation(device, samples)
    if "frechet" in sections:
        say("frechet: 2048-d, ganbench vs scipy.linalg.sqrtm")
        results["frechet"] = scoring_speed.frechet()
    if "zoo" in sections:
        say("zoo: onnxruntime vs torch eager")
        threads = len(os.sched_getaffinity(0))
        results["zoo"] = zoo_inference.measure(1, 32, [1, 64], threads, 30) + zoo_inference.measure(
            3, 64, [1, 64], threads, 30
        )
    if "probe" in sections:
        rows = {"quick": 5_000, "full": 50_000}[size]
        say(f"probe: {rows:,} x 28,672 fit")
        results["probe"] = {
            "fit": probe_speed.fit_time(device, rows),
            "linearsvc": probe_speed.against_linearsvc(),
        }
    if "help" in sections:
        say("help: ganbench --help")
        results["help"] = cli_speed.help_latency()
    if "resilience" in sections:
        say("resilience: checkpoint cost, tracking journal overhead")
        results["resilience"] = {"checkpoint": resilience.checkpoint_cost(device)}
        try:
            results["resilience"]["tracking"] = resilience.tracking_overhead(device)
        except ImportError as exc:  # the GPU machines have no MLflow
            results["resilience"]["tracking"] = {"error": f"not measured: {exc}"}
    if "distributed" in sections:
        results["distributed"] = distributed_section(device, size, say)
    return results


def distributed_section(device: torch.device, size: str, say: Any) -> dict[str, Any]:
    """DDP with one process against none (its own process: it makes a process group),
    and the scaling on paper from this device's (or the H200's) training rates."""
    resolution, batch, steps = {"quick": (32, 64, 10), "full": (64, 128, 50)}[size]
    rounds = {"quick": 9, "full": 5}[size]
    say(f"distributed: DDP overhead with one process, {resolution}px batch {batch}")
    cmd = [sys.executable, "-m", "benchmarks.ddp_overhead", "--device", str(device)]
    cmd += ["--resolution", str(resolution), "--batch", str(batch), "--steps", str(steps)]
    cmd += ["--rounds", str(rounds)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1]}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    rates_from = Path(__file__).parent / "results" / "cuda-full.json"
    if rates_from.exists():
        rows = json.loads(rates_from.read_text()).get("train", [])
        rates = {
            (r["resolution"], r["batch"]): r["images_per_sec"]
            for r in rows
            if r.get("impl") == "ganbench" and "images_per_sec" in r
        }
        out["on_paper"] = ddp_overhead.on_paper(rates)
        out["on_paper_rates_from"] = (
            f"{rates_from.name} ({json.loads(rates_from.read_text())['device']})"
        )
    return out


def _fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}"


def markdown(r: dict[str, Any]) -> str:
    dates = sorted(set(r.get("measured", {}).values()))
    lines = [
        f"### {r['device']} ({r['device_type']}), {r['date']}, size {r['size']}",
        "",
    ]
    if len(dates) > 1:
        lines += ["Sections measured in different sessions:", ""]
        lines += [f"- {n}: {d}" for n, d in r["measured"].items()]
        lines += [""]
    lines += [
        ("Versions of the latest session: " if len(dates) > 1 else "Versions: ")
        + ", ".join(f"{k} {v}" for k, v in r["versions"].items())
        + f", Python {r['python']}.",
        "",
    ]
    peak = None
    if "ceiling" in r:
        c = r["ceiling"]
        peak = c.get("bf16_flops") or c["fp32_flops"]
        rates = ", ".join(f"{k.split('_')[0]} {v / 1e12:.3g} TFLOP/s" for k, v in c.items())
        lines += [f"Measured matmul ceiling: {rates}.", ""]
    if "train" in r:
        lines += training.train_table(r["train"], peak)
    if "compile" in r:
        lines += [
            "torch.compile's modes against the default step (first step includes compiling):",
            "",
        ]
        lines += training.train_table(r["compile"], peak)
    if "fid" in r:
        f = r["fid"]
        lines += [
            f"FID of {f['samples']:,} generated {f['resolution']}x{f['resolution']} images"
            f" (random-init Inception-v3 on both sides): ganbench {f['ganbench_s']:.1f} s"
            f" (real statistics cached), plain torch_fidelity.calculate_metrics"
            f" {f['torch_fidelity_s']:.1f} s: **{f['speedup']:.2f}x**. Same uint8 images"
            f" through both: FID {_fmt(f['fid_same_images_ganbench'], 8)} vs"
            f" {_fmt(f['fid_same_images_torch_fidelity'], 8)}, relative difference"
            f" {f['relative_difference_same_images']:.1e}.",
            "",
        ]
    if "frechet" in r:
        f = r["frechet"]
        lines += [
            f"Frechet distance, {f['dim']}-d float64: scipy.linalg.sqrtm {f['scipy_sqrtm_s']:.2f}"
            f" s; ganbench {f['ganbench_cached_s']:.3f} s with the reference's square root"
            f" cached (**{f['speedup_cached']:.0f}x**), {f['ganbench_uncached_s']:.3f} s without"
            f" ({f['speedup_uncached']:.1f}x); relative difference"
            f" {f['relative_difference']:.1e}.",
            "",
        ]
    if "zoo" in r:
        lines += [
            "| zoo sampling | batch | onnxruntime | torch eager | speed-up | max abs diff |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for z in r["zoo"]:
            lines.append(
                f"| {z['image']} | {z['batch']} | {z['onnxruntime_ms']:.2f} ms"
                f" | {z['torch_eager_ms']:.2f} ms | {z['speedup']:.2f}x | {z['max_abs_diff']:.0e} |"
            )
        lines.append("")
    if "probe" in r:
        p, s = r["probe"]["fit"], r["probe"]["linearsvc"]
        lines += [
            f"Probe L2-SVM fit, {p['rows']:,} x {p['dim']:,} synthetic features, C={p['C']:g}:"
            f" {p['fit_s']:.1f} s ({p['passes']} passes over X, converged {p['converged']})."
            f" Against LinearSVC ({s['rows']:,} x {s['dim']:,}): accuracy"
            f" {s['accuracy_ganbench']:.4f} vs {s['accuracy_linearsvc']:.4f}"
            f" ({s['points_apart']:.2f} points apart).",
            "",
        ]
    if "help" in r:
        h = r["help"]
        lines += [
            f"`ganbench --help`: {h['median_s']:.2f} s median (min {h['min_s']:.2f} s); heavy"
            f" modules imported: {h['heavy_modules_imported']}.",
            "",
        ]
    if "resilience" in r:
        lines += _resilience_lines(r["resilience"])
    if "distributed" in r:
        lines += _distributed_lines(r["distributed"])
    return "\n".join(lines)


def _distributed_lines(d: dict[str, Any]) -> list[str]:
    if "error" in d:
        return [f"DDP overhead: not measured ({d['error']}).", ""]
    lines = [
        f"DDP with one process ({d['backend']}, {d['device']}, {d['resolution']}px, batch"
        f" {d['batch']}, {d['threads']} threads): {d['step_s_ddp_1_process'] * 1e3:.1f} ms per"
        f" step against {d['step_s_no_ddp'] * 1e3:.1f} ms without DDP: **{d['overhead']:+.1%}**"
        f" (medians of {len(d['rounds']['ddp'])} alternating blocks; blocks of the same model"
        f" differ by up to {max(_spread(v) for v in d['rounds'].values()):.1f}%).",
        "",
    ]
    if d.get("on_paper"):
        lines += [
            f"All-reduce on paper (fp32 gradients of G and D per step; one GPU's step time"
            f" from {d['on_paper_rates_from']}):",
            "",
            "| px | batch per GPU | global batch | fabric | gradients | step (1 GPU) |"
            " all-reduce | weak-scaling efficiency |",
            "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
        ]
        for row in d["on_paper"]:
            mark = " (extrapolated)" if row["extrapolated"] else ""
            lines.append(
                f"| {row['resolution']} | {row['per_gpu_batch']} | {row['global_batch']:,} |"
                f" {row['fabric']} | {row['grad_mb']:.1f} MB | {row['step_ms']:.1f} ms{mark} |"
                f" {row['allreduce_ms']:.2f} ms | {row['efficiency']:.0%} |"
            )
        lines.append("")
    return lines


def _spread(values: list[float]) -> float:
    """(max - min) / min of repeated measurements, in %."""
    return (max(values) - min(values)) / min(values) * 100


def _resilience_lines(r: dict[str, Any]) -> list[str]:
    c, t = r["checkpoint"], r["tracking"]
    lines = [
        f"Checkpoint of the DCGAN ({c['model']}): {c['size_mb']:.1f} MB; state captured"
        f" in {c['capture_s'] * 1000:.1f} ms, written atomically (temp file, fsync, rename,"
        f" folder fsync) in {c['write_s']:.2f} s against {c['torch_save_no_fsync_s']:.2f} s for"
        f" a bare torch.save; one training step at batch {c['batch']} takes {c['step_s']:.2f}"
        f" s, so a checkpoint costs {c['checkpoint_in_steps']:.2f} steps.",
        "",
    ]
    if "error" in t:
        return [*lines, f"Tracking journal: {t['error']}.", ""]
    e2e = t["end_to_end_step_ms"]
    return [
        *lines,
        f"Tracking journal ({t['run']}; step {t['step_ms']:.0f} ms): a log interval's metrics"
        f" cost {t['metrics_main_ms']:.3f} ms in the training loop and"
        f" {t['metrics_writer_cpu_ms']:.1f} ms of writer CPU; a sample grid"
        f" {t['grid_main_ms']:.1f} ms and {t['grid_writer_cpu_ms']:.0f} ms. Per step:"
        f" **{t['overhead_pct_700_steps']:.2f}%** for a 700-step run,"
        f" {t['overhead_pct_100k_steps']:.3f}% for 100k steps (goal < 1%). End to end"
        f" ({t['end_to_end_run']}), untracked {e2e['none']} ms vs journal"
        f" {e2e['journal']} ms per step ({t['end_to_end_pct']:+.1f}%); two untracked runs"
        f" differ by {_spread(e2e['none']):.1f}% here, so the end-to-end number cannot resolve"
        " a 1% effect: the bound above is the measurement.",
        "",
    ]


def _merged(path: Path, results: dict[str, Any], sections: list[str]) -> dict[str, Any]:
    """``--only`` updates its sections of an earlier report of the same device type and
    size and keeps the others, each with when, where and with which torch it was measured
    (the machines of a kind differ from session to session)."""

    def stamp(r: dict[str, Any]) -> str:
        return f"{r['date']} on {r['device']}, torch {r['versions'].get('torch_build', '?')}"

    measured = {name: stamp(results) for name in sections}
    if path.exists() and set(sections) != set(SECTIONS):
        earlier = json.loads(path.read_text())
        stamps = earlier.get("measured") or {n: stamp(earlier) for n in SECTIONS if n in earlier}
        kept = {n: earlier[n] for n in SECTIONS if n in earlier and n not in sections}
        measured = {**{n: stamps[n] for n in kept if n in stamps}, **measured}
        results = {**results, **kept}
    return {**results, "measured": measured}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", choices=("quick", "full"), help="default: quick on CPU")
    parser.add_argument("--only", help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    device = torch.device(args.device)
    size = args.size or ("full" if device.type == "cuda" else "quick")
    sections = args.only.split(",") if args.only else list(SECTIONS)
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; use {', '.join(SECTIONS)}")

    def say(text: str) -> None:
        print(f"[bench] {text}", file=sys.stderr, flush=True)

    results = run(device, size, sections, say)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{device.type}-{size}"
    results = _merged(stem.with_suffix(".json"), results, sections)
    for path, text in (
        (stem.with_suffix(".json"), json.dumps(results, indent=2)),
        (stem.with_suffix(".md"), markdown(results)),
    ):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, path)
    print(markdown(results))
    say(f"wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()

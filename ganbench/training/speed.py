"""The fast path's switches, resolved for a device: what each ``auto`` becomes, and why.

Every switch is a TrainConfig field (so ``--set channels_last=off`` works and MLflow logs
the request) and the resolved values are logged too (``speed.*`` params), so a run says
exactly how it was computed. Defaults are what measured faster (benchmarks/README.md):

- channels_last: +13% (32x32) and +19% (64x64) images/s on the CPU; the layout cuDNN's
  tensor-core convolutions prefer on GPUs.
- fused Adam: +3-10% on the CPU; one kernel per parameter group on GPUs.
- bf16 autocast on GPUs that support it (fp16 with a gradient scaler otherwise); on the
  CPU bf16 where it has bf16 dot-product instructions (AVX512-BF16 or AMX), fp32 elsewhere
  (emulated bf16 is slower than fp32). Measured on 2 AMD EPYC cores with AVX512-BF16
  (2026-12-04, 64 px, batch 64): convolutions 2.3x faster, the step 1.7x.
- torch.compile: off unless asked; refused on the CPU, where it never paid: G and D
  compiled trained 99 images/s against 346 eager (32 px, batch 64, 2 cores), the whole
  step compiled (fullgraph, inductor) 66-69 against 66-68 eager (64 px, batch 64).
- CUDA graphs (``graphs``): on CUDA each step replays as one graph where the model's step
  is graph-safe (ganbench/training/graphs.py); the reason is logged where they are off.
  Measured on an H200 (2026-12-04, 64 px): 3.7x the eager fast path at batch 128 (42,688
  against 11,553 images/s), 7.0x at 32 px batch 64, 1.32x at 64 px batch 512.
- cuDNN's autotuner (``cudnn_benchmark``): on for CUDA (+8-9% at 64 px, batch 128, with
  graphs: 46,130 against 42,688 images/s), unless cuDNN's deterministic mode is set: the
  autotuner may pick another algorithm in another process, and a resume is bit-exact on a
  GPU only with deterministic algorithms.
- torch.compile on CUDA trains NCHW unless channels_last is asked for: torch 2.11's
  inductor asserts wrong strides in the channels_last convolution backward
  (pytorch#171622; seen on the H200 on 2026-12-04).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ganbench.errors import UsageError
from ganbench.plugins.interfaces import Speed


def cpu_has_native_bf16() -> bool:
    """The CPU multiplies bf16 in hardware (AVX512-BF16 or AMX), where oneDNN's bf16
    convolutions beat fp32; on other CPUs bf16 is emulated and slower."""
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is None:  # older torch: read the kernel's flags
        try:
            flags = Path("/proc/cpuinfo").read_text().split()
        except OSError:
            return False
        return "avx512_bf16" in flags or "amx_bf16" in flags
    found = capabilities()
    return bool(found.get("avx512_bf16") or found.get("amx_bf16"))


def check_compile(compile: str, device: torch.device) -> None:
    """Refuse ``compile=on`` where it was measured not to pay (the CPU), before a run
    starts."""
    if _switch(compile, False) and device.type == "cpu":
        raise UsageError(
            "compile=on does not pay on the CPU: measured 3.5x slower with G and D compiled"
            " and no faster with the whole step compiled (benchmarks/README.md); use"
            " compile=off (the default)"
        )


def _switch(value: str, default: bool) -> bool:
    return default if value == "auto" else value == "on"


def resolve_speed(
    device: torch.device,
    *,
    channels_last: str = "auto",
    precision: str = "auto",
    adam: str = "auto",
    compile: str = "off",
    threads: int = 0,
    compile_mode: str = "default",
    graphs: str = "auto",
    cudnn_benchmark: str = "auto",
) -> Speed:
    """The concrete settings for ``device``; sets torch's CPU thread count (0 = the
    environment's OMP_NUM_THREADS when set, as a study gives each of its parallel trials a
    share of the cores, else one per core this process may use)."""
    omp = os.environ.get("OMP_NUM_THREADS", "")
    torch.set_num_threads(
        threads
        or (int(omp) if omp.isdigit() and int(omp) > 0 else 0)
        or len(os.sched_getaffinity(0))
    )
    cuda = device.type == "cuda"
    check_compile(compile, device)
    if precision == "auto" and cuda:
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    elif precision == "auto":
        precision = "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    if adam == "auto":
        adam = "fused"  # CPU and CUDA both have fused Adam in torch >= 2.4
    compiled = _switch(compile, False)
    captured, off = _switch(graphs, True), ""
    if captured and not cuda:
        captured, off = False, f"CUDA graphs need a CUDA device, not {device.type}"
    elif captured and compiled:
        captured = False
        off = "compile=on: torch.compile's own CUDA graphs (compile_mode=reduce-overhead) instead"
    elif graphs == "off":
        off = "graphs=off"
    if cuda:
        deterministic = torch.backends.cudnn.deterministic
        torch.backends.cudnn.benchmark = _switch(cudnn_benchmark, not deterministic)
    return Speed(
        device=device,
        channels_last=_switch(channels_last, not (cuda and compiled)),
        autocast=dtype,
        adam=adam,  # type: ignore[arg-type]
        compile=compiled,
        compile_mode=compile_mode,
        graphs=captured,
        graphs_off=off,
    )

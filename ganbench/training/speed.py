"""The fast path's switches, resolved for a device: what each ``auto`` becomes, and why.

Every switch is a TrainConfig field (so ``--set channels_last=off`` works and MLflow logs
the request) and the resolved values are logged too (``speed.*`` params), so a run says
exactly how it was computed. Defaults are what measured faster (benchmarks/README.md):

- channels_last: +13% (32x32) and +19% (64x64) images/s on the CPU; the layout cuDNN's
  tensor-core convolutions prefer on GPUs.
- fused Adam: +3-10% on the CPU; one kernel per parameter group on GPUs.
- bf16 autocast on GPUs that support it (fp16 with a gradient scaler otherwise); fp32 on
  the CPU, where bf16 is slower without AMX.
- torch.compile: off unless asked. On the CPU it took 25 s to compile for +1%; on a GPU it
  has not been measured yet (no GPU was lent when this was written).
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

import torch

from ganbench.interfaces import Speed


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
    if precision == "auto":
        precision = "fp32"
        if cuda:
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
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

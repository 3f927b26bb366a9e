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
    return Speed(
        device=device,
        channels_last=_switch(channels_last, True),
        autocast=dtype,
        adam=adam,  # type: ignore[arg-type]
        compile=_switch(compile, False),
    )

"""Every random number generator a training step may draw from, saved and restored.

An exact resume needs all of them: torch's CPU generator (latents on the CPU), each CUDA
device's (latents on a GPU), NumPy's and Python's global ones (which plugins may use).
The data order has its own generator, saved with the batches' cursor. In a distributed run
every rank's generators are in the same state (they draw the same global latents), and
rank 0's checkpoint restores each rank's own device from rank 0's device state.
Lightning's and StudioGAN's checkpoints hold none of these, so their resumes are not exact.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture() -> dict[str, Any]:
    """The state of every global generator, in types ``torch.load(weights_only=True)`` reads."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
        state["cuda_current"] = torch.cuda.get_rng_state()
    return state


def restore(state: dict[str, Any], *, replica: bool = False) -> list[str]:
    """Put every generator back; returns what could not be restored (said to the user).

    ``replica``: this process is one rank of a distributed run, training on its current
    CUDA device: that device takes the saving process's current device state."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (
            n["kind"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
    notes = []
    cuda = state.get("cuda")
    if replica and state.get("cuda_current") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda_current"])
    elif cuda is not None:
        if torch.cuda.is_available() and torch.cuda.device_count() >= len(cuda):
            torch.cuda.set_rng_state_all(cuda)
        else:
            notes.append(
                f"the checkpoint holds the random state of {len(cuda)} CUDA device(s), and"
                " this machine has fewer: the resumed run draws other latents than the"
                " interrupted one would have"
            )
    return notes

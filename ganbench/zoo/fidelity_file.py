"""A torch-fidelity flavour file as a zoo index lists it, and the command that scores it.

Plain data, no ONNX: the index (an entry's ``torch_fidelity``), the model card and the
converter that makes the file (:mod:`ganbench.zoo.flavours`, which also lists it in an
index) all name it from here, so the index need not import the converter.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Samples in the suggested command: the zoo's own scores use 10,000.
COMMAND_SAMPLES = 10_000


@dataclass(frozen=True)
class FidelityFile:
    """A torch-fidelity flavour file as an index entry lists it, beside the plain file."""

    url: str
    sha256: str
    size: int
    z_type: str
    z_size: int

    def to_table(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> FidelityFile:
        return cls(**table)


def fidelity_command(path: str | Path, z_type: str, z_size: int) -> str:
    """The ``fidelity`` command line that scores the flavour file at ``path`` (ISC)."""
    args = ["fidelity", "--isc", "--input1", str(path), "--input1-model-z-type", z_type]
    args += ["--input1-model-z-size", str(z_size)]
    return shlex.join([*args, "--input1-model-num-samples", str(COMMAND_SAMPLES)])

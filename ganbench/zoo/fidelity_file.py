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
    #: Classes of a conditional generator (the file takes torch-fidelity's labels as y);
    #: 0 = unconditional.
    num_classes: int = 0

    def to_table(self) -> dict[str, Any]:
        table = dataclasses.asdict(self)
        if not self.num_classes:  # unconditional entries keep the text they always had
            del table["num_classes"]
        return table

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> FidelityFile:
        return cls(**table)

    def command(self, path: str | Path | None = None) -> str:
        """:func:`fidelity_command` for this file (at ``path``; default its url)."""
        return fidelity_command(path or self.url, self.z_type, self.z_size, self.num_classes)


def fidelity_command(path: str | Path, z_type: str, z_size: int, num_classes: int = 0) -> str:
    """The ``fidelity`` command line that scores the flavour file at ``path`` (ISC); a
    conditional file's says its class count, so torch-fidelity draws labels uniformly over
    them and passes them as the file's second input (torch_fidelity/utils.py 0.4.0, lines
    193-197: ``gen_args.append(cond_labels)`` when ``num_classes > 0``)."""
    args = ["fidelity", "--isc", "--input1", str(path), "--input1-model-z-type", z_type]
    args += ["--input1-model-z-size", str(z_size)]
    if num_classes:
        args += ["--input1-model-num-classes", str(num_classes)]
    return shlex.join([*args, "--input1-model-num-samples", str(COMMAND_SAMPLES)])


#: torch-fidelity 0.4.0 draws the labels of a conditional model with ``dtype=np.int``
#: (torch_fidelity/utils.py line 195), an alias NumPy 1.24 removed, so its CLI stops with
#: AttributeError on a conditional file under NumPy >= 1.24 (its unconditional path does
#: not touch it). Restoring the alias (the builtin int, NumPy's default integer: int64 on
#: Linux and macOS and, since NumPy 2, on Windows) before its ``main`` runs the same CLI.
NP_INT_NOTE = (
    "torch-fidelity 0.4.0 draws conditional labels with np.int (torch_fidelity/utils.py"
    " line 195), which NumPy 1.24 removed; with a newer NumPy run the same command as"
)
NP_INT_SHIM = (
    'import sys, numpy; numpy.int = int; sys.argv[0] = "fidelity";'
    " from torch_fidelity.fidelity import main; main()"
)


def shimmed_command(command: str) -> str:
    """``command`` (a ``fidelity ...`` line) through torch-fidelity's own ``main`` with
    ``np.int`` restored: the same arguments, parser and code."""
    args = shlex.split(command)
    return shlex.join(["python", "-c", NP_INT_SHIM, *args[1:]])

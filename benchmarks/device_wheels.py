"""The wheels a lent GPU machine lacks, downloaded into ``.whl/`` for benchmarks/device.sh.

The machine has its own Python 3.12 with torch and no network; ganbench's other
requirements travel as wheels. This lists the requirement closure of ganbench's
dependencies as installed here (exact versions from this environment's metadata), drops
what the machine already has (``--have``: a file of names, one per line or
comma-separated, e.g. the package list of the device tool's KINDS.md) and downloads the
rest for CPython 3.12 on manylinux x86_64. Packages the machine has in a version too old
for these wheels go to ``.whl/ifold/`` (device.sh installs them only when needed).

    python -m benchmarks.device_wheels --have /tmp/device_pkgs.txt
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

#: What ganbench imports on the device beyond torch (the roots of the closure).
ROOTS = ("mlflow", "torch-fidelity", "optuna", "captum", "lmdb", "platformdirs", "jsonschema")
ROOTS += ("tomli-w", "pluggy", "click", "rich")
#: Never carried: the machine's own CUDA build of these must stay.
NEVER = {"torch", "torchvision", "triton", "numpy", "onnxruntime", "onnxruntime-gpu"}
#: Carried to ifold/: the machine has them, possibly too old for the carried packages.
IFOLD = {"typing-extensions", "protobuf", "anyio", "werkzeug"}
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64")
PLATFORMS += ("manylinux2014_x86_64", "manylinux1_x86_64", "any")


def closure(roots: tuple[str, ...]) -> dict[str, str]:
    """name -> installed version for ``roots`` and everything they require here."""
    found: dict[str, str] = {}
    todo = list(roots)
    env = {"python_version": "3.12", "python_full_version": "3.12.3", "extra": ""}
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[name] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(req.name)
    return found


def have(path: Path) -> set[str]:
    return {canonicalize_name(n) for n in re.split(r"[,\s]+", path.read_text()) if n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--have", type=Path, required=True, help="the machine's package names")
    parser.add_argument("--out", type=Path, default=Path(".whl"))
    args = parser.parse_args()
    machine = have(args.have)
    needed = closure(ROOTS)
    carry = {n: v for n, v in needed.items() if n not in machine and n not in NEVER}
    ifold = {n: v for n, v in needed.items() if n in IFOLD}
    for folder, wanted in ((args.out, carry), (args.out / "ifold", ifold)):
        folder.mkdir(parents=True, exist_ok=True)
        pins = [f"{n}=={v}" for n, v in sorted(wanted.items())]
        platforms = [a for p in PLATFORMS for a in ("--platform", p)]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["--python-version", "3.12", "--implementation", "cp", *platforms]
        subprocess.run([*cmd, "-d", str(folder), *pins], check=True)
        print(f"{folder}: {len(pins)} wheels: {' '.join(pins)}")


if __name__ == "__main__":
    main()

"""``ganbench --help`` latency, and proof that printing help imports neither torch nor MLflow."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time

PROBE = (
    "import sys\n"
    "from ganbench.cli import cli\n"
    "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
    "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'mlflow', 'onnxruntime'}))"
)


def help_latency(repeats: int = 7) -> dict:
    exe = shutil.which("ganbench") or f"{sys.executable} -m ganbench"
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([*exe.split(), "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "heavy_modules_imported": done.stdout.strip().splitlines()[-1],
    }

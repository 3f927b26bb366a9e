"""``--nproc N``: start torchrun's own launcher in this process for one machine.

``ganbench run ... --nproc N`` is ``torchrun --standalone --nproc-per-node N -m ganbench run
...`` (the same workers, the same code path): this module only builds that command line
for ``torch.distributed.run`` and turns its outcome into ganbench's exit codes and one
line. Multi-node jobs call torchrun themselves (README: a two-node command, SLURM).
"""

from __future__ import annotations

import signal
from collections.abc import Sequence

from ganbench.errors import GanbenchError, UsageError

#: Options of ``ganbench run``/``resume`` that belong to the launcher, not the workers.
LAUNCHER_OPTIONS = ("--nproc", "--max-restarts")
#: Seconds torchrun waits for stopped workers (checkpointing) before it kills them.
SHUTDOWN_TIMEOUT = 300


class LaunchFailed(GanbenchError):
    """A worker failed (it said why on stderr): the launcher exits with its code."""


def worker_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` without the launcher's own options (``--nproc 2``, ``--nproc=2``)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in LAUNCHER_OPTIONS:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def torchrun_args(nproc: int, max_restarts: int, argv: Sequence[str]) -> list[str]:
    """torchrun's command line for ``nproc`` workers of ``ganbench ARGV`` on this machine."""
    if nproc < 1:
        raise UsageError(f"--nproc must be at least 1, not {nproc}")
    if max_restarts < 0:
        raise UsageError(f"--max-restarts must be 0 or more, not {max_restarts}")
    known = torchrun_options()
    args = ["--standalone", f"--nproc-per-node={nproc}", f"--max-restarts={max_restarts}"]
    # torchrun SIGKILLs its workers 30 s after passing a stop on; they stop at the next
    # logging step and rank 0 may then be scoring or writing a checkpoint: give them
    # longer. torchrun has this option since 2.12 (2.11's, on the lent H200, refused it);
    # older ones keep their 30 s, and a checkpoint cut short leaves the previous one.
    if "--shutdown-timeout" in known:
        args.append(f"--shutdown-timeout={SHUTDOWN_TIMEOUT}")
    # Pass SIGUSR1 (SLURM's warning before the time limit) on as well.
    if "--signals-to-handle" in known:
        args.append("--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1")
    return [*args, "-m", "ganbench", *worker_argv(argv)]


def torchrun_options() -> frozenset[str]:
    """The options this PyTorch's torchrun accepts (they grow from release to release)."""
    from torch.distributed.run import get_args_parser

    return frozenset(o for action in get_args_parser()._actions for o in action.option_strings)


def launch(nproc: int, max_restarts: int, argv: Sequence[str]) -> None:
    """Run ``ganbench ARGV`` as ``nproc`` torchrun workers; returns when all succeeded.

    A failed worker raises :class:`LaunchFailed` with that worker's exit code (3 for a
    diverged run, 143 for a stop by SIGTERM...); a signal to this process is passed on to
    the workers by torchrun (they checkpoint and stop) and exits 128 + the signal.
    """
    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    args = torchrun_args(nproc, max_restarts, argv)
    try:
        torchrun.run(torchrun.parse_args(args))
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        code = failure.exitcode if failure.exitcode >= 0 else 128 - failure.exitcode
        how = (
            f"was killed by {signal.Signals(-failure.exitcode).name}"
            if failure.exitcode < 0
            else f"exited with code {code}"
        )
        error = LaunchFailed(
            f"worker rank {rank} {how} (its error is above)"
            + (f", after {max_restarts} restart(s)" if max_restarts else "")
            + "; the run resumes from its last checkpoint with `ganbench resume RUN_ID"
            f" --nproc {nproc}`"
        )
        error.exit_code = code
        raise error from None
    except SignalException as exc:
        error = LaunchFailed(
            f"stopped by {signal.Signals(exc.sigval).name}: the workers checkpointed and"
            f" stopped; continue with `ganbench resume RUN_ID --nproc {nproc}`"
        )
        error.exit_code = 128 + int(exc.sigval)
        raise error from None

"""Data-parallel training across processes started by torchrun (``torch.distributed.run``).

PyTorch's own engine does the work: torchrun (or ``ganbench run --nproc N``, which calls
its launcher in-process) starts one process per GPU, sets ``RANK``/``WORLD_SIZE``/
``LOCAL_RANK`` and the rendezvous; :class:`Replicas` joins the process group, wraps
networks in ``DistributedDataParallel`` and offers the few collectives the training loop
needs. Nothing here exchanges gradients or launches processes by hand.

Who does what: rank 0 creates the MLflow run, logs, writes checkpoints; every rank
trains on its share of each global batch. A failure on rank 0 before training (missing
data, a bad resume) is sent to the others, which then exit with the same code, so no
rank waits for a partner that will never come.
"""

from __future__ import annotations

import datetime
import hashlib
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from ganbench.errors import GanbenchError, UsageError

T = TypeVar("T")

#: Environment variables torchrun sets in every worker it starts.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
#: How long a training collective may wait for a slow partner (a rank scoring or writing
#: a checkpoint) before the group gives up.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)
#: The same for the object messages, which also wait while a node prepares a dataset or
#: its reference statistics (hours for LSUN): they go through a gloo group of their own,
#: so NCCL's watchdog never sees the wait.
OBJECT_TIMEOUT = datetime.timedelta(hours=12)


class FollowerExit(GanbenchError):
    """Another rank failed (and said why on its own stderr): this one leaves with its exit
    code, quietly."""

    def __init__(self, rank: int, message: str, exit_code: int) -> None:
        super().__init__(f"rank {rank} failed: {message}")
        self.exit_code = exit_code


def under_torchrun() -> bool:
    """True in a worker process that torchrun (or ``--nproc``) started."""
    return all(k in os.environ for k in TORCHRUN_ENV)


def restart_count() -> int:
    """How many times torchrun has restarted this worker group (``--max-restarts``)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def launch_id() -> str | None:
    """What identifies this torchrun launch across its restarts: the rendezvous id
    (``--standalone`` draws a UUID; multi-node jobs pass ``--rdzv-id``, e.g. SLURM's job
    id). None when the id is torchrun's default "none", which every launch shares."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "none")
    return None if run_id in ("", "none") else run_id


def check_settings(batch_size: int, sync_bn: bool, world: int | None, gpu: bool) -> None:
    """Refuse, before anything runs, what the run cannot do on ``world`` processes (None:
    one, without torchrun) on GPUs or the CPU."""
    if sync_bn and world is None:
        raise UsageError(
            "sync_bn=true synchronises batch-norm statistics across the processes of a"
            " distributed run, and this run has one; start it with --nproc N or torchrun,"
            " or drop --set sync_bn=true"
        )
    if sync_bn and not gpu:
        raise UsageError(
            "sync_bn=true needs GPUs: torch's SyncBatchNorm has no CPU (gloo)"
            " implementation; drop --set sync_bn=true (per-rank statistics, the default)"
            " or train on GPUs"
        )
    if world is not None:
        check_global_batch(batch_size, world)


def check_global_batch(batch_size: int, world: int) -> int:
    """The per-rank batch of a global ``batch_size`` split evenly over ``world`` ranks."""
    if batch_size % world:
        lower, upper = batch_size - batch_size % world, batch_size + world - batch_size % world
        raise UsageError(
            f"the batch size {batch_size} is the global batch and must divide evenly over"
            f" the {world} processes; pass --batch-size {lower or upper} or {upper}"
        )
    return batch_size // world


@dataclass
class Replicas:
    """This process's place in a data-parallel group, and the collectives training uses."""

    rank: int
    world: int
    local_rank: int
    local_world: int
    backend: str
    device: torch.device
    #: Convert batch norm to SyncBatchNorm in :meth:`wrap` (``--set sync_bn=true``).
    sync_bn: bool = False
    #: The gloo group object messages travel in (None: the default group).
    objects: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def params(self, batch_size: int) -> dict[str, Any]:
        """What a run logs about its group (environment params: a resume may change them)."""
        return {
            "distributed.world_size": self.world,
            "distributed.backend": self.backend,
            "distributed.nodes": max(1, self.world // max(1, self.local_world)),
            "distributed.batch_per_rank": batch_size // self.world,
            "distributed.global_batch": batch_size,
        }

    # ---- wrapping -----------------------------------------------------------------------
    def wrap(self, module: torch.nn.Module, *, broadcast_buffers: bool = True) -> Any:
        """``module`` in DistributedDataParallel (it broadcasts rank 0's weights now, and
        averages gradients in backward)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        if self.sync_bn:
            # The same Parameter objects move into the new layers: optimizers stay valid.
            module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
        # torch 2.14 renamed the per-forward buffer broadcast (both also sync at init,
        # which costs nothing here: every rank builds the same initial weights).
        sync = (
            {"forward_sync_buffers": broadcast_buffers}
            if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
            else {"broadcast_buffers": broadcast_buffers}
        )
        return DistributedDataParallel(module, device_ids=ids, **sync)

    # ---- collectives --------------------------------------------------------------------
    def sum_(self, values: torch.Tensor) -> torch.Tensor:
        """Sum ``values`` over ranks, in place (one all-reduce)."""
        import torch.distributed as dist

        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def sync_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's buffers (batch-norm running statistics) on every rank."""
        import torch.distributed as dist

        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=0)

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (others pass anything)."""
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.objects)
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (in rank order); None elsewhere."""
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, dst=0, group=self.objects)
        return out

    def all_gather(self, obj: Any) -> list[Any]:
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj, group=self.objects)
        return out

    # ---- rank 0 decides, everyone learns ------------------------------------------------
    def send(self, value: Any) -> None:
        """Rank 0: hand ``value`` to the ranks waiting in :meth:`receive`."""
        self.broadcast(("ok", value, 0))

    def fail(self, exc: BaseException) -> None:
        """Rank 0: tell the ranks waiting in :meth:`receive` that it failed, and how."""
        self.broadcast(("error", _one_line(exc), _exit_code(exc)))

    def receive(self) -> Any:
        """Other ranks: what rank 0 sent, or :class:`FollowerExit` when it failed."""
        status, value, code = self.broadcast(None)
        if status == "error":
            raise FollowerExit(0, value, code)
        return value

    def share(self, work: Callable[[], T]) -> T:
        """Run ``work`` on rank 0 and hand its result to every rank; an error on rank 0
        is raised there and ends the others with its exit code (:class:`FollowerExit`)."""
        if not self.is_main:
            return self.receive()
        try:
            result = work()
        except BaseException as exc:
            self.fail(exc)
            raise
        self.send(result)
        return result

    def in_turn(self, work: Callable[[], T]) -> T:
        """Run ``work`` on rank 0 first, then on each other node's local rank 0, then on
        the remaining ranks: data preparation and score caches are built once (once per
        node when nodes have their own disks; a shared one is never written by two) and
        then read. An error on any rank ends all of them."""
        mine = 0 if self.rank == 0 else 1 if self.local_rank == 0 else 2
        result: Any = None
        for turn in (0, 1, 2):
            failure = None
            if mine == turn:
                try:
                    result = work()
                except BaseException as exc:
                    failure = (self.rank, _one_line(exc), _exit_code(exc))
                    self.all_gather(failure)
                    raise
            failures = [f for f in self.all_gather(failure) if f is not None]
            if failures:
                raise FollowerExit(*failures[0])
        return result

    def shutdown(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def weights_digest(modules: Mapping[str, torch.nn.Module]) -> str:
    """sha256 of every parameter of ``modules`` (names, shapes, bytes): equal on every
    rank exactly when the replicas hold bit-identical weights."""
    digest = hashlib.sha256()
    for label, module in modules.items():
        for name, p in module.named_parameters():
            t = p.detach().to("cpu", copy=True).contiguous()
            digest.update(f"{label}.{name}{tuple(t.shape)}{t.dtype}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _exit_code(exc: BaseException) -> int:
    code = getattr(exc, "exit_code", None)
    if isinstance(code, int):
        return code
    return 130 if isinstance(exc, KeyboardInterrupt) else 1


def join(device_request: str) -> Replicas:
    """Join the process group torchrun set up; one device per process (``cuda:LOCAL_RANK``
    when GPUs are asked for or available), NCCL on GPUs and gloo on the CPU."""
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if device_request not in ("auto", "cpu", "cuda"):
        raise UsageError(
            f"--device {device_request} names one GPU, but under torchrun each process takes"
            " the GPU of its local rank; pass --device cuda (or auto), and choose GPUs with"
            " CUDA_VISIBLE_DEVICES"
        )
    gpu = device_request == "cuda" or (device_request == "auto" and torch.cuda.is_available())
    if gpu:
        if not torch.cuda.is_available():
            raise UsageError(
                f"--device cuda asked for, but torch {torch.__version__} sees no CUDA GPU"
                " here; use --device cpu (the gloo backend)"
            )
        if local_rank >= torch.cuda.device_count():
            raise UsageError(
                f"local rank {local_rank} has no GPU: this node shows"
                f" {torch.cuda.device_count()}; pass --nproc-per-node"
                f" {torch.cuda.device_count()} or fewer"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"backend": backend, "timeout": COLLECTIVE_TIMEOUT}
        if gpu:
            kwargs["device_id"] = device  # binds NCCL to this GPU at once (eager init)
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and local_world == world:
            # torchrun shares its rendezvous store with the workers, and after a restart
            # (--max-restarts) the new group reads the dead group's addresses from it and
            # fails to connect (pytorch#135712, #167288). On one machine each attempt gets
            # its own keys; across machines the agents count restarts each on their own,
            # so there torch's own switch is the fix (README: set
            # TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 for torchrun with --max-restarts).
            agent = dist.TCPStore(
                os.environ["MASTER_ADDR"],
                int(os.environ["MASTER_PORT"]),
                world,
                is_master=False,
                timeout=COLLECTIVE_TIMEOUT,
            )
            kwargs |= {
                "store": dist.PrefixStore(f"ganbench/attempt-{restart_count()}/", agent),
                "rank": rank,
                "world_size": world,
            }
        dist.init_process_group(**kwargs)
    objects = dist.new_group(backend="gloo", timeout=OBJECT_TIMEOUT)
    return Replicas(rank, world, local_rank, local_world, backend, device, objects=objects)


@contextmanager
def process_group(device_request: str) -> Iterator[Replicas | None]:
    """The group of this torchrun worker (None outside torchrun), left at the end."""
    if not under_torchrun():
        yield None
        return
    replicas = join(device_request)
    try:
        yield replicas
    except FollowerExit as exc:
        raise SystemExit(exc.exit_code) from None  # the failing rank said why
    except RuntimeError as exc:
        if not _lost_peer(exc):
            raise
        raise GanbenchError(
            f"rank {replicas.rank} lost contact with another process of the group"
            f" ({_one_line(exc)[:200]}); torchrun restarts the group if --max-restarts"
            " allows, otherwise continue with `ganbench resume RUN_ID --nproc N`"
        ) from None
    finally:
        replicas.shutdown()


def _lost_peer(exc: RuntimeError) -> bool:
    """A collective that failed because a partner died (gloo or NCCL), not a bug."""
    import torch.distributed as dist

    if isinstance(exc, (dist.DistBackendError, dist.DistNetworkError)):
        return True
    text = str(exc)
    marks = ("Connection reset by peer", "Connection closed by peer", "Broken pipe")
    return any(mark in text for mark in marks)

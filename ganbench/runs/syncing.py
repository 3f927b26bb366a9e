"""``ganbench sync``: deliver the tracking records that wait in run folders, and say how
it went.

The delivery itself is :mod:`ganbench.tracking.outbox.sync`'s; this module picks the
folders (one, or every one under the cache with records waiting), skips runs that are
alive, and turns what did not arrive into an error that names it. The command passes in
where words go: ``say`` for notes (stderr), ``echo`` for results (stdout).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ganbench.data.paths import cache_root
from ganbench.errors import GanbenchError, TrackingError
from ganbench.rundir.folder import RunInUse
from ganbench.tracking.outbox import problems
from ganbench.tracking.outbox.sync import deliver, named, waiting_folders

Say = Callable[[str], None]


def sync_waiting(
    cache_dir: str | None,
    tracking_uri: str | None,
    timeout: float,
    progress: bool,
    *,
    say: Say,
    echo: Say,
) -> None:
    """Deliver every folder under the cache with records waiting (training runs and the
    other commands' outboxes); raise naming the first that was not delivered in full."""
    cache = cache_root(cache_dir)
    folders = list(waiting_folders(cache))
    if not folders:
        echo(f"nothing to deliver: no run folder under {cache} has records waiting")
        return
    delivered, skipped, failed = 0, 0, []
    for folder in folders:
        try:
            sync_folder(folder, tracking_uri, timeout, progress, say=say, echo=echo)
            delivered += 1
        except RunInUse:
            say(f"{folder}: skipped, its run is alive (its own process delivers its records)")
            skipped += 1
        except GanbenchError as exc:
            say(f"{folder}: Error: {exc}")
            failed.append(folder)
    echo(
        f"synced {len(folders)} folders under {cache}: {delivered} delivered in full,"
        f" {len(failed)} not (named above), {skipped} skipped (alive)"
    )
    if failed:
        raise TrackingError(
            f"{len(failed)} of {len(folders)} folders under {cache} were not delivered in"
            f" full, the first {failed[0]}: see the lines above, then run ganbench sync again"
        )


def sync_folder(
    path: Path,
    tracking_uri: str | None,
    timeout: float,
    progress: bool,
    *,
    say: Say,
    echo: Say,
) -> None:
    """``ganbench sync RUN_DIR``: deliver, then say what arrived, or raise naming what
    did not (records set aside, a writer that stopped, records still waiting)."""
    result = deliver(path, tracking_uri, timeout, progress=progress, say=say)
    where = f"run {result.run_id} in {result.uri}"
    outbox = result.path / "outbox"
    if not result.waiting:
        earlier = problems.rejected_count(outbox)
        note = f" ({earlier} set aside earlier: {result.rejected_file})" if earlier else ""
        echo(f"nothing to deliver: {result.uri} has every record of run {result.run_id}{note}")
        return
    for line in result.rejections:
        say(f"set aside: {line}")
    if result.rejected > len(result.rejections):
        say(f"set aside: {result.rejected - len(result.rejections)} more in {result.rejected_file}")
    if result.failure:
        raise TrackingError(
            f"the tracking writer stopped ({result.failure}) with {result.left} of"
            f" {result.waiting} records of {where} still waiting in {result.path} (see"
            f" {outbox / problems.WRITER_FAILED}); fix the cause, then ganbench sync"
            f" {result.path} again"
        )
    if result.left:
        raise TrackingError(
            f"{result.left} of {result.waiting} records are still not delivered to"
            f" {result.uri} after {timeout:.0f} s; they stay in {result.path}: try again later"
        )
    if result.rejected:
        raise TrackingError(
            f"delivered the {result.waiting} waiting records of {where} (now"
            f" {result.status}) except {result.rejected} that could not be: {named(result)}."
            f" They are kept, with the reasons, in {result.rejected_file}"
        )
    echo(f"delivered {result.waiting} records to {where} (now {result.status})")

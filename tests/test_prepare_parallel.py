"""Preparing in worker processes, and continuing a preparation that was stopped: however
the cache was made (1 or 2 workers, any chunk size, killed and continued, a damaged
journal), its files are byte for byte what one process decoding in order writes.

The reference is computed here, independently of the parallel code: the one-process
algorithm as it was (``decode_into`` into a fresh N-row memory map, then ``np.save`` of
the labels and the list of failures).
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
from makers_folders import lsun_key, make_lsun, smooth_image, write_lmdb
from PIL import Image
from processes import finish, ganbench, wait_for

from ganbench.data import prepare as prep
from ganbench.data.chunks import ChunkDecoder
from ganbench.data.journal import JOURNAL, partial_folder
from ganbench.data.partial import PartialFolder
from ganbench.data.prepare import cache_folder, decode_into, prepare
from ganbench.plugins.interfaces import DatasetRequest
from ganbench_plugins.lsun import LsunDataset

FILES = ("images.npy", "labels.npy", "bad_images.txt")


def one_process_files(request: DatasetRequest, root: Path, tmp: Path) -> dict[str, bytes]:
    """The files the one-process preparation writes, made as it made them."""
    source = LsunDataset().open(request, root)
    r = request.resolution
    tmp.mkdir(parents=True, exist_ok=True)
    images = np.lib.format.open_memmap(tmp / "images.npy", "w+", np.uint8, (len(source), 3, r, r))
    decoded = decode_into(source, images, 3, bad_images="skip", progress=False, description="")
    images.flush()
    del images
    np.save(tmp / "labels.npy", decoded.labels if decoded.labels is not None else [])
    (tmp / "bad_images.txt").write_text("".join(f"{w}\t{why}\n" for w, why in decoded.skipped))
    return {name: (tmp / name).read_bytes() for name in FILES}


def cache_files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in FILES}


def manifest(folder: Path) -> dict:
    found = json.loads((folder / "manifest.json").read_text())
    del found["created"]
    return found


def quiet(**kw):
    return {"progress": False, "say": lambda _: None, **kw}


# --- a split of photo-sized WebPs, slow enough to be stopped in the middle ---------------

PHOTOS = 600
CORRUPT = 3
CHUNK = 4


def webp_photo(seed: int) -> bytes:
    """A 256 x 320 lossy WebP, as LSUN's (its short side 256): about 2 ms to decode."""
    rng = np.random.default_rng(seed)
    pixels = smooth_image(seed, 256, 320).astype(np.int16) + rng.integers(-24, 24, (256, 320, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "WEBP", quality=80)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """``ROOT/bedroom_train_lmdb``: 600 photos (12 distinct ones, so making them is quick)
    and 3 values that are not images, wherever their keys sort."""
    root = tmp_path_factory.mktemp("photos")
    blobs = [webp_photo(s) for s in range(12)]
    items = {lsun_key("bedroom", i): blobs[i % 12] for i in range(PHOTOS)}
    good = blobs[0]
    items[lsun_key("bedroom", 10_000)] = b"\x00not an image\xff" * 4
    items[lsun_key("bedroom", 10_001)] = good[: len(good) // 2]  # truncated WebP
    items[lsun_key("bedroom", 10_002)] = b""
    write_lmdb(root / "bedroom_train_lmdb", items)
    return root


REQUEST = DatasetRequest("train", 32, None, {"category": "bedroom"})


@pytest.fixture(scope="module")
def reference(photos, tmp_path_factory) -> dict[str, bytes]:
    return one_process_files(REQUEST, photos, tmp_path_factory.mktemp("reference"))


def journaled(journal: Path) -> int:
    """Chunks the journal records as done (whole lines after the header)."""
    try:
        return max(0, journal.read_bytes().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


def cli_args(photos: Path, cache: Path) -> tuple[str, ...]:
    return (
        *("data", "prepare", "lsun", "--data-root", str(photos), "--cache-dir", str(cache)),
        *("-r", "32", "--workers", "2", "--chunk", str(CHUNK), "--no-progress"),
    )


# --- workers -----------------------------------------------------------------------------


def test_two_workers_write_the_bytes_of_one_process(tmp_path):
    root = tmp_path / "lsun"
    make_lsun(
        root,
        {"bedroom": ("webp", 150), "kitchen": ("jpeg", 90)},
        size=(40, 36),
        corrupt={"bedroom": 3, "kitchen": 2},
    )
    request = DatasetRequest("train", 32, None, {"category": "bedroom,kitchen"})
    expected = one_process_files(request, root, tmp_path / "expected")
    made = {}
    for workers, chunk in ((1, 16), (2, 16), (2, 7)):
        cache = tmp_path / f"cache-{workers}-{chunk}"
        data, reused = prepare(
            LsunDataset(), request, root, cache, **quiet(workers=workers, chunk=chunk)
        )
        assert not reused and len(data) == 240
        folder = cache_folder(cache, LsunDataset(), request)
        assert cache_files(folder) == expected, (workers, chunk)
        made[workers, chunk] = manifest(folder)
        assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no leftovers
    assert made[1, 16] == made[2, 16] == made[2, 7]
    assert made[2, 16]["count"] == 240 and made[2, 16]["skipped"] == 5
    assert made[2, 16]["has_labels"] and made[2, 16]["class_names"] == ["bedroom", "kitchen"]
    assert len(expected["bad_images.txt"].splitlines()) == 5


def test_workers_must_be_at_least_one(ganbench_run_cli, tmp_path):
    for option in ("--workers", "--chunk"):
        got = ganbench_run_cli("data", "prepare", "lsun", option, "0", "--data-root", str(tmp_path))
        assert got.exit_code == 2, got.output
        line = got.output.strip().splitlines()[-1]
        assert line.startswith(f"Error: {option} 0: ")
    assert (
        "pass --workers 1"
        in ganbench_run_cli(
            "data", "prepare", "lsun", "--workers", "-3", "--data-root", str(tmp_path)
        ).output
    )


def _blocked_signals(pipe) -> None:
    """In a spawned process: the signals it started with blocked (Linux)."""
    status = Path("/proc/self/status").read_text().splitlines()
    pipe.send(int(next(line for line in status if line.startswith("SigBlk")).split()[1], 16))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_workers_are_born_deaf_to_ctrl_c():
    """A Ctrl-C reaches the whole process group, workers still importing too: they start
    with it blocked, so none prints a KeyboardInterrupt traceback (the parent stops them)."""
    import multiprocessing

    from ganbench.data.workers import _spawning

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()  # a Queue would start the resource tracker itself
    with _spawning(needs_main=True):
        child = context.Process(target=_blocked_signals, args=(theirs,))
        child.start()
    assert ours.poll(60)
    blocked = ours.recv()
    child.join(60)
    for signum in (signal.SIGINT, signal.SIGTERM):
        assert blocked & (1 << (signum - 1)), hex(blocked)
    assert not signal.pthread_sigmask(signal.SIG_BLOCK, set())  # this process: as before


def test_chunks_are_smaller_for_small_splits():
    assert prep.chunk_size(3_000_000, 16) == prep.CHUNK == 256
    assert prep.chunk_size(3000, 2) == 94  # 32 chunks: 16 a worker
    assert prep.chunk_size(100, 16) == prep.MIN_CHUNK


# --- stopped and continued, as a user's process ------------------------------------------


def test_killed_halfway_continues_to_the_one_process_bytes(
    photos, reference, ganbench_run_cli, tmp_path
):
    cache = tmp_path / "cache"
    folder = cache_folder(cache, LsunDataset(), REQUEST)
    journal = partial_folder(folder) / JOURNAL
    killed = ganbench(*cli_args(photos, cache), cwd=tmp_path, name="killed")
    wait_for("3 chunks journaled", lambda: journaled(journal) >= 3, 120, killed)
    os.kill(killed.pid, signal.SIGKILL)
    assert killed.wait(30) == -signal.SIGKILL
    done = journaled(journal)
    chunks = -(-(PHOTOS + CORRUPT) // CHUNK)
    assert 3 <= done < chunks  # stopped halfway, not after the end
    assert not folder.exists()

    rerun = ganbench_run_cli(*cli_args(photos, cache))  # in this process: it starts faster
    assert rerun.exit_code == 0, rerun.output
    found = re.search(r"continuing: ([\d,]+) of 603 images already decoded", rerun.output)
    assert found, rerun.output
    assert int(found[1].replace(",", "")) == done * CHUNK  # not from zero
    assert "prepared: 600 images of lsun train at 32px" in rerun.output
    assert cache_files(folder) == reference
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_says_one_line_and_leaves_it_continuable(signum, photos, reference, tmp_path):
    cache = tmp_path / "cache"
    folder = cache_folder(cache, LsunDataset(), REQUEST)
    partial = partial_folder(folder)
    proc = ganbench(*cli_args(photos, cache), cwd=tmp_path, name="stopped", start_new_session=True)
    wait_for("3 chunks journaled", lambda: journaled(partial / JOURNAL) >= 3, 120, proc)
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)  # Ctrl-C: the terminal signals the whole group
    else:
        os.kill(proc.pid, signum)  # a scheduler's stop
    assert finish(proc, 60) == 128 + signum
    lines = (tmp_path / "stopped.err").read_text().strip().splitlines()
    name = signal.Signals(signum).name
    assert len(lines) == 1, lines
    found = re.fullmatch(
        rf"preparing lsun train at 32px stopped by {name}: ([\d,]+) of 603 images decoded"
        rf" and kept in {re.escape(str(partial))}; run the same command to continue",
        lines[0],
    )
    assert found, lines[0]
    done = int(found[1].replace(",", ""))
    assert 0 < done < 603 and done == journaled(partial / JOURNAL) * CHUNK
    assert not folder.exists()

    messages: list[str] = []
    data, reused = prepare(
        LsunDataset(), REQUEST, photos, cache, **quiet(workers=2, chunk=CHUNK, say=messages.append)
    )
    assert not reused and len(data) == PHOTOS
    assert messages[0] == f"continuing: {done:,} of 603 images already decoded (in {partial})"
    assert cache_files(folder) == reference


# --- damaged or foreign partial folders --------------------------------------------------


@pytest.fixture
def small(tmp_path):
    """A small LSUN split (204 tiny images, 4 of them corrupt) and its reference files."""
    root = tmp_path / "small"
    make_lsun(root, {"bedroom": ("webp", 200)}, size=(40, 36), corrupt={"bedroom": 4})
    return root, one_process_files(REQUEST, root, tmp_path / "small-expected")


def _interrupt_after(monkeypatch, chunks: int) -> None:
    """The next one-process preparation stops (like Ctrl-C) after ``chunks`` chunks."""
    real = ChunkDecoder.decode
    calls = {"n": 0}

    def decode(self, chunk):
        calls["n"] += 1
        if calls["n"] > chunks:
            raise KeyboardInterrupt
        return real(self, chunk)

    monkeypatch.setattr(ChunkDecoder, "decode", decode)


def _interrupted(monkeypatch, root: Path, cache: Path, chunks: int = 5) -> Path:
    """A preparation stopped after ``chunks`` chunks of 8: its partial folder."""
    with monkeypatch.context() as m:
        _interrupt_after(m, chunks)
        with pytest.raises(KeyboardInterrupt):
            prepare(LsunDataset(), REQUEST, root, cache, **quiet(workers=1, chunk=8))
    partial = partial_folder(cache_folder(cache, LsunDataset(), REQUEST))
    assert journaled(partial / JOURNAL) == chunks
    return partial


def _damage_journal(partial: Path, how: str) -> None:
    journal = partial / JOURNAL
    lines = journal.read_bytes().splitlines(keepends=True)
    if how == "torn last line":
        journal.write_bytes(b"".join(lines) + b'{"chunk": 5, "bad": [], "lab')
    elif how == "garbage in the middle":
        journal.write_bytes(b"".join([*lines[:3], b"\x00\xff not json\n", *lines[4:]]))
    elif how == "a record that lies":  # a chunk that does not exist, then a valid line
        journal.write_bytes(b"".join([*lines, b'{"chunk": 999, "bad": [], "labeled": false}\n']))
    elif how == "a failure outside its chunk":
        bad = b'{"chunk": 6, "bad": [[3, "x", "y"]], "labeled": false}\n'
        journal.write_bytes(b"".join([*lines, bad]))
    elif how == "emptied":
        journal.write_bytes(b"")
    elif how == "another chunk size":  # what a rerun with another --chunk finds
        pass
    elif how == "images.npy truncated":
        with open(partial / "images.npy", "r+b") as f:
            f.truncate(1000)
    else:
        raise AssertionError(how)


@pytest.mark.parametrize(
    ("how", "kept"),
    [
        ("torn last line", 5),
        ("garbage in the middle", 2),
        ("a record that lies", 5),
        ("a failure outside its chunk", 5),
        ("another chunk size", 5),
        ("emptied", None),
        ("images.npy truncated", None),
    ],
)
def test_a_damaged_journal_never_gives_a_wrong_cache(how, kept, small, monkeypatch, tmp_path):
    root, expected = small
    cache = tmp_path / "cache"
    partial = _interrupted(monkeypatch, root, cache)
    _damage_journal(partial, how)
    messages: list[str] = []
    chunk = 5 if how == "another chunk size" else 8
    prepare(
        LsunDataset(), REQUEST, root, cache, **quiet(workers=2, chunk=chunk, say=messages.append)
    )
    if kept is None:
        assert messages[0].startswith(f"starting over: {partial} holds an unfinished")
    else:  # the valid part is kept (in the chunks it was started with), the rest redone
        assert messages[0].startswith(f"continuing: {kept * 8} of 204 images already decoded")
    assert cache_files(cache_folder(cache, LsunDataset(), REQUEST)) == expected
    assert not partial.exists()


def test_a_partial_folder_of_other_files_is_started_over(small, monkeypatch, tmp_path):
    root, _ = small
    cache = tmp_path / "cache"
    partial = _interrupted(monkeypatch, root, cache)
    # The same keys with other pixels: the same number of images, another fingerprint.
    written = make_lsun(
        tmp_path / "other", {"bedroom": ("webp", 200)}, size=(40, 36), corrupt={"bedroom": 4}
    )
    env_items = {}
    for i, key in enumerate(written["bedroom"].keys):
        array = written["bedroom"].arrays[i]
        if array is None:
            env_items[key] = b"\x00not an image\xff" * 4
        else:
            buffer = io.BytesIO()
            Image.fromarray(255 - array).save(buffer, "WEBP", lossless=True)
            env_items[key] = buffer.getvalue()
    for name in ("data.mdb", "lock.mdb"):
        (root / "bedroom_train_lmdb" / name).unlink()
    write_lmdb(root / "bedroom_train_lmdb", env_items)
    expected = one_process_files(REQUEST, root, tmp_path / "expected-other")

    messages: list[str] = []
    prepare(LsunDataset(), REQUEST, root, cache, **quiet(workers=1, say=messages.append))
    assert messages[0].startswith(f"starting over: {partial} holds an unfinished preparation")
    assert cache_files(cache_folder(cache, LsunDataset(), REQUEST)) == expected


@pytest.mark.parametrize("stopped_at", [2, 3, 9])
def test_compaction_stopped_between_a_move_and_its_record_continues_right(
    stopped_at, small, monkeypatch, tmp_path
):
    """The hardest moment to die: a block of rows has moved down over rows it had not read
    yet, and the record still says it has not. The rerun decodes those rows again."""
    root, expected = small
    cache = tmp_path / "cache"
    monkeypatch.setattr(prep, "COMPACT_BLOCK_BYTES", 1)  # blocks of one chunk (8 rows)
    real = PartialFolder.checkpoint
    calls = {"n": 0}

    def checkpoint(self, plan, compaction):
        calls["n"] += 1  # the first call records the start, before anything moved
        if calls["n"] == stopped_at:
            raise KeyboardInterrupt
        real(self, plan, compaction)

    with monkeypatch.context() as m:
        m.setattr(PartialFolder, "checkpoint", checkpoint)
        with pytest.raises(KeyboardInterrupt):
            prepare(LsunDataset(), REQUEST, root, cache, **quiet(workers=1, chunk=8))
    partial = partial_folder(cache_folder(cache, LsunDataset(), REQUEST))
    assert (partial / "compact.json").exists() and not (partial / JOURNAL).exists()

    messages: list[str] = []
    prepare(LsunDataset(), REQUEST, root, cache, **quiet(workers=2, say=messages.append))
    assert messages[0] == f"continuing: all 204 images decoded (in {partial})"
    assert cache_files(cache_folder(cache, LsunDataset(), REQUEST)) == expected


def test_a_damaged_compaction_record_starts_over(small, monkeypatch, tmp_path):
    root, expected = small
    cache = tmp_path / "cache"
    monkeypatch.setattr(prep, "COMPACT_BLOCK_BYTES", 1)
    real = PartialFolder.checkpoint
    calls = {"n": 0}

    def checkpoint(self, plan, compaction):
        calls["n"] += 1
        real(self, plan, compaction)
        if calls["n"] == 3:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(PartialFolder, "checkpoint", checkpoint)
        with pytest.raises(KeyboardInterrupt):
            prepare(LsunDataset(), REQUEST, root, cache, **quiet(workers=1, chunk=8))
    partial = partial_folder(cache_folder(cache, LsunDataset(), REQUEST))
    state = (partial / "compact.json").read_bytes()
    (partial / "compact.json").write_bytes(state[: len(state) // 2])

    messages: list[str] = []
    prepare(LsunDataset(), REQUEST, root, cache, **quiet(workers=1, say=messages.append))
    assert messages[0].startswith(f"starting over: {partial}")
    assert cache_files(cache_folder(cache, LsunDataset(), REQUEST)) == expected


def test_the_compaction_of_any_gaps_at_any_stop_equals_packing(tmp_path):
    """compact() alone, against numpy: every block it may be stopped after."""
    from ganbench.data.compact import compact, damaged

    rng = np.random.default_rng(0)
    pristine = rng.integers(0, 256, (97, 2, 3, 3), dtype=np.uint8)
    skipped = np.array([0, 5, 6, 7, 40, 41, 90, 96], dtype=np.int64)
    packed = np.zeros_like(pristine)
    keep = np.setdiff1d(np.arange(97), skipped)
    packed[: len(keep)] = pristine[keep]
    block = 4
    for stop_after in range(1, 30):
        images = pristine.copy()
        records = [(int(skipped[0]), int(skipped[0]))]

        def checkpoint(i, n, records=records, stop_after=stop_after):
            if len(records) == stop_after:  # moved, then died before recording it
                raise KeyboardInterrupt
            records.append((i, n))

        try:
            compact(
                images, skipped, *records[0], block=block, checkpoint=checkpoint, stop=lambda: None
            )
        except KeyboardInterrupt:
            next_row, count = records[-1]
            lost = [i for i in damaged(next_row, count, block, 97) if i not in set(skipped)]
            images[lost] = pristine[lost]  # decoded again
            compact(
                images,
                skipped,
                next_row,
                count,
                block=block,
                checkpoint=lambda i, n: None,
                stop=lambda: None,
            )
        np.testing.assert_array_equal(images, packed)


def test_a_second_preparation_waits_for_the_first(small, tmp_path):
    root, expected = small
    cache = tmp_path / "cache"
    folder = cache_folder(cache, LsunDataset(), REQUEST)
    owner = PartialFolder(folder)
    owner.lock(say=lambda _: None, stop=lambda: None)  # as another process would hold it
    messages: list[str] = []
    waiting = threading.Thread(
        target=prepare,
        args=(LsunDataset(), REQUEST, root, cache),
        kwargs=quiet(workers=1, say=messages.append),
    )
    waiting.start()
    wait_for("the second one to wait", lambda: bool(messages), 30)
    assert messages[0] == f"waiting for another process that is preparing {folder}"
    owner.unlock()
    waiting.join(60)
    assert cache_files(folder) == expected


def test_the_preparation_benchmark_runs(tmp_path):
    """``benchmarks/prepare_speed.py`` on a tiny LMDB (its speeds are never asserted)."""
    import argparse

    from benchmarks import prepare_speed

    args = argparse.Namespace(
        images=24, resolution=32, workers=[1, 2], torchvision_workers=[0], repeat=1,
        data=str(tmp_path / "lmdb"),
    )  # fmt: skip
    result = prepare_speed.measure(args)
    assert [(r["impl"], r["workers"]) for r in result["rows"]] == [
        ("ganbench", 1), ("ganbench", 2), ("torchvision", 0),
    ]  # fmt: skip
    assert all(r["images_per_sec"] > 0 for r in result["rows"])
    assert result["rows"][0]["efficiency"] == 1.0
    assert 5 < result["mean_webp_kb"] < 40  # photo-like, not flat colours
    assert "| ganbench data prepare | 2 |" in prepare_speed.markdown(result)

"""Deduplication (the DCGAN paper, Sec. 4.1): the hash grouping against brute force, planted
near duplicates in an image folder found and distinct images kept apart (numbers asserted),
and ``ganbench run --dedup`` training on what is left, with the list's digest logged."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image, ImageDraw

from ganbench.data.dedup import KeptImages
from ganbench.data.hash_groups import group_hashes

ORIGINALS, PLANTED = 240, 60
KINDS = ("resized", "jpeg", "shifted")


def _photo(rng: np.random.Generator, size: int = 64) -> Image.Image:
    """A distinct smooth 'photo': a bicubic colour field with a few coloured shapes."""
    img = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize(
        (size, size), Image.BICUBIC
    )
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 5))):
        x0, y0 = (int(v) for v in rng.integers(0, size - 8, 2))
        w, h = (int(v) for v in rng.integers(8, size // 2, 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x0, y0, x0 + w, y0 + h], fill=colour)
    return img


def _variant(img: Image.Image, kind: str) -> Image.Image:
    """A near duplicate: downscaled and back, JPEG re-encoded at quality 60, or shifted 2 px."""
    if kind == "resized":
        return img.resize((48, 48), Image.BILINEAR).resize(img.size, Image.BILINEAR)
    if kind == "jpeg":
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=60)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    a = np.pad(np.asarray(img), ((2, 0), (2, 0), (0, 0)), mode="edge")
    return Image.fromarray(a[: img.size[1], : img.size[0]])


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A flat folder of distinct PNGs and, for the first PLANTED, one near duplicate each
    (named so that the plugin's sorted listing interleaves them): (folder, copy -> original)."""
    folder = tmp_path_factory.mktemp("planted")
    rng = np.random.default_rng(7)
    copies = {}
    for i in range(ORIGINALS):
        img = _photo(rng)
        img.save(folder / f"img{i:04d}.png")
        if i < PLANTED:
            kind = KINDS[i % 3]
            name = f"img{i:04d}_{kind}.png"
            _variant(img, kind).save(folder / name)
            copies[name] = f"img{i:04d}.png"
    return folder, copies


def test_grouping_equals_brute_force():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 256, (300, 16), dtype=np.uint8)
    bits = np.unpackbits(hashes, axis=1)
    for src, flips in [(0, 3), (5, 7), (9, 12), (11, 13), (0, 2)]:  # near copies of some rows
        row = bits[src].copy()
        row[rng.choice(128, flips, replace=False)] ^= 1
        bits = np.vstack([bits, row])
    hashes = np.packbits(bits, axis=1)
    for k in (0, 4, 12, 40):
        # brute force: each image joins the nearest (then earliest) earlier leader in reach
        dist = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
        leads, groups = [], {}
        for j in range(len(bits)):
            reach = [(dist[i, j], i) for i in leads if dist[i, j] <= k]
            if reach:
                groups.setdefault(min(reach)[1], []).append(j)
            else:
                leads.append(j)
        want = [[i, *groups[i]] for i in sorted(groups)]
        assert group_hashes(hashes, k) == want, k
    # random 128-bit hashes are ~64 bits apart: only the planted copies group at 12
    assert group_hashes(hashes, 12) == [[0, 300, 304], [5, 301], [9, 302]]
    # a chain (a-b and b-c within reach, a-c not) does not join a and c
    chain = np.zeros((3, 128), np.uint8)
    chain[1, :6] = 1
    chain[2, :12] = 1
    assert group_hashes(np.packbits(chain, axis=1), 6) == [[0, 1]]


def test_kept_images_index_through_the_list():
    base = np.arange(10 * 2 * 2 * 2, dtype=np.uint8).reshape(10, 2, 2, 2)
    kept = KeptImages(base, np.array([0, 2, 3, 7]))
    assert len(kept) == 4 and kept.shape == (4, 2, 2, 2) and kept.nbytes == 32
    np.testing.assert_array_equal(kept[np.array([1, 3])], base[[2, 7]])
    np.testing.assert_array_equal(np.array(kept), base[[0, 2, 3, 7]])


def test_planted_duplicates_found_and_distinct_images_apart(planted, ganbench_run_cli, tmp_path):
    folder, copies = planted
    cache = tmp_path / "cache"
    common = ["--data-root", str(folder), "--cache-dir", str(cache), "--no-progress"]
    result = ganbench_run_cli("data", "dedup", "imagefolder", "--steps", "1500", *common)
    assert result.exit_code == 0, result.output
    [path] = (cache / "prepared" / "imagefolder").glob("*.duplicates.json")
    body = json.loads(path.read_text())
    assert body["count"] == ORIGINALS + PLANTED
    names = sorted(p.name for p in folder.iterdir())  # the plugin lists files sorted
    group_of = {names[i]: g for g, members in enumerate(body["groups"]) for i in members}
    found = [c for c, o in copies.items() if c in group_of and group_of[c] == group_of.get(o)]
    recall = len(found) / PLANTED
    by_kind = {k: sum(c.endswith(f"_{k}.png") for c in found) for k in KINDS}
    # distinct originals joined in one group are false positives (pairs counted)
    false_pairs = sum(
        n * (n - 1) // 2 for n in (sum("_" not in names[i] for i in g) for g in body["groups"])
    )
    print(f"recall {recall:.3f} by kind {by_kind}, false pairs {false_pairs}")
    assert recall >= 0.9, by_kind
    assert false_pairs == 0
    assert (path.parent / path.name.replace(".json", ".png")).is_file()
    assert "groups of near duplicates" in result.output


@pytest.mark.slow  # default suite time (README, Tests): `make slow` runs it
def test_run_dedup_trains_on_the_rest_and_refuses_without_a_list(
    planted, ganbench_run_cli, tmp_path
):
    folder, _ = planted
    cache = tmp_path / "cache"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ["--data-root", str(folder), "--cache-dir", str(cache), "--no-progress"]
    run = ["run", "dcgan", "--dataset", "imagefolder", "-r", "32", "--steps", "2"]
    run += ["--batch-size", "16", "--set", "ngf=8", "--set", "ndf=8", "--tracking-uri", uri]
    missing = ganbench_run_cli(*run, "--dedup", *common)
    assert missing.exit_code != 0
    assert "no duplicates list" in missing.output and "ganbench data dedup imagefolder" in (
        missing.output
    )
    assert len(missing.output.strip().splitlines()[-1]) < 400
    made = ganbench_run_cli("data", "dedup", "imagefolder", "-r", "32", "--steps", "1500", *common)
    assert made.exit_code == 0, made.output
    [path] = (cache / "prepared" / "imagefolder").glob("train-32px.duplicates.json")
    skipped = len(json.loads(path.read_text())["skipped"])
    assert skipped >= 0.9 * PLANTED
    result = ganbench_run_cli(*run, "--dedup", *common)
    assert result.exit_code == 0, result.output
    client = MlflowClient(uri)
    [r] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    params = r.data.params
    assert params["dedup"] == "True"
    assert params["num_images"] == str(ORIGINALS + PLANTED - skipped)
    assert params["data.duplicates_skipped"] == str(skipped)
    assert len(params["data.duplicates_sha256"]) == 64
    # a list made for other files is refused, naming the command that remakes it
    _photo(np.random.default_rng(99)).save(folder / "zzz_new.png")
    try:
        stale = ganbench_run_cli(*run, "--dedup", *common)
    finally:
        (folder / "zzz_new.png").unlink()
    assert stale.exit_code != 0 and "made for other files" in stale.output

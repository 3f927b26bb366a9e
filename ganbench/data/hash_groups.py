"""Grouping packed binary hashes that lie within a Hamming radius of each other.

The pure-numpy half of near-duplicate removal (:mod:`ganbench.data.dedup` trains the
autoencoder and makes the hashes): multi-index hashing finds the close pairs without
comparing all of them, groups form around leaders, and :func:`auto_hamming` picks the
radius from the data (the choices are explained in :mod:`ganbench.data.dedup`).
"""

from __future__ import annotations

import numpy as np

from ganbench.errors import UsageError

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def _bucket_pairs(hashes: np.ndarray, max_hamming: int, limit: int) -> np.ndarray:
    """Every pair (i < j, distance) of hashes within ``max_hamming`` bits: int64 P x 3."""
    n = len(hashes)
    bits = np.unpackbits(hashes, axis=1)
    found: list[np.ndarray] = []
    count = 0
    for block in np.array_split(np.arange(bits.shape[1]), max_hamming + 1):
        keys = np.packbits(bits[:, block], axis=1)
        keys = np.ascontiguousarray(keys).view(np.dtype((np.void, keys.shape[1]))).ravel()
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], n]
        for s, e in zip(starts, ends, strict=True):
            if e - s < 2:
                continue
            members = np.sort(order[s:e])
            sub = hashes[members]
            # rows in slices: a big bucket costs slice x bucket bytes, not bucket^2
            for r in range(0, len(members), 256):
                rows = sub[r : r + 256]
                dist = _POPCOUNT[np.bitwise_xor(rows[:, None, :], sub[None, :, :])].sum(axis=2)
                a, b = np.nonzero(dist <= max_hamming)
                keep = a + r < b
                a, b = a[keep] + r, b[keep]
                found.append(np.stack([members[a], members[b], dist[a - r, b]], axis=1))
                count += len(a)
                if count > limit:
                    raise UsageError(
                        f"more than {limit:,} image pairs are within {max_hamming} bits: the"
                        " hash cannot tell these images apart at that distance; give a"
                        " smaller --max-hamming"
                    )
    if not found:
        return np.zeros((0, 3), np.int64)
    pairs = np.unique(np.concatenate(found).astype(np.int64), axis=0)  # a pair per block
    return pairs


def group_hashes(
    hashes: np.ndarray, max_hamming: int = 0, *, pair_limit: int = 50_000_000
) -> list[list[int]]:
    """Groups (sorted, leader first; groups sorted by leader) of near-identical hashes.

    Images are taken in index order; each joins the nearest earlier image within
    ``max_hamming`` bits that leads a group (ties: the earliest), or leads one itself.
    Not transitive: two images in a group are each within ``max_hamming`` of the leader.
    """
    n = len(hashes)
    if max_hamming < 0:
        raise UsageError(f"--max-hamming must be 0 or more, not {max_hamming}")
    if n == 0:
        return []
    pairs = _bucket_pairs(hashes, max_hamming, pair_limit)
    # for each later image j: its candidate earlier images i, nearest (then earliest) first
    pairs = pairs[np.lexsort((pairs[:, 0], pairs[:, 2], pairs[:, 1]))]
    leader = np.arange(n)
    is_leader = np.ones(n, bool)
    starts = np.flatnonzero(np.r_[True, pairs[1:, 1] != pairs[:-1, 1]]) if len(pairs) else []
    ends = np.r_[starts[1:], len(pairs)] if len(pairs) else []
    for s, e in zip(starts, ends, strict=True):
        j = int(pairs[s, 1])
        for i in pairs[s:e, 0]:
            if is_leader[i]:
                leader[j], is_leader[j] = int(i), False
                break
    groups: dict[int, list[int]] = {}
    for j in np.flatnonzero(~is_leader):
        groups.setdefault(int(leader[j]), [int(leader[j])]).append(int(j))
    return [sorted(groups[k]) for k in sorted(groups)]


def auto_hamming(hashes: np.ndarray, sample: int = 4096, seed: int = 0) -> tuple[int, float]:
    """(radius, median nearest-neighbour distance of a sample): 40% of that median,
    at most 16 bits, and less where the pair search would take hours. In a sample of a
    big split neighbours are farther than in the whole split, so the radius errs towards
    grouping; ``--max-hamming`` sets it by hand."""
    rng = np.random.default_rng(seed)
    sub = hashes[np.sort(rng.choice(len(hashes), min(sample, len(hashes)), replace=False))]
    nearest = np.full(len(sub), 10**6)
    for r in range(0, len(sub), 256):
        dist = _POPCOUNT[np.bitwise_xor(sub[r : r + 256, None, :], sub[None, :, :])].sum(axis=2)
        dist[np.arange(len(dist)), np.arange(r, r + len(dist))] = 10**6
        nearest[r : r + len(dist)] = dist.min(axis=1)
    median = float(np.median(nearest))
    radius = min(16, int(0.4 * median))
    # The pair search compares about (k + 1) * n^2 / 2 / 2^(bits / (k + 1)) hashes (balanced
    # bits, one block per bucket key): 3 million images at 16 bits would take hours on a
    # CPU. Keep it under ~5e9 comparisons (minutes): 8 bits at 3 million images.
    bits = hashes.shape[1] * 8
    while radius > 0 and (radius + 1) * len(hashes) ** 2 / 2 / 2 ** (bits / (radius + 1)) > 5e9:
        radius -= 1
    return radius, median

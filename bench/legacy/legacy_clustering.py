"""Speaker clustering of window embeddings: spectral clustering with an eigengap estimate of the speaker count.

The affinity refinement follows NME-SC (Park et al., 2019, "Auto-tuning spectral clustering for speaker
diarization using normalized maximum eigengap"): each row of the cosine affinity keeps only its ``p`` strongest
entries, the matrix is symmetrised, and ``p`` is chosen to minimise ``p / max eigengap`` of the normalised
Laplacian. The count is the position of that largest gap within the caller's bounds.

One speaker is not something an eigengap can express, so before clustering the embeddings are split in two and
the two halves' centroids compared: when they are as similar as windows of one voice usually are, the answer is
one speaker. After clustering, clusters whose centroids are that similar are merged (never below the minimum).
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["cluster_embeddings", "kmeans"]

logger = logging.getLogger(__name__)

SAME_SPEAKER_SIMILARITY = 0.86
"""Cosine similarity of two cluster centroids above which they are taken to be one voice (Resemblyzer space)."""

CONTIGUOUS_SAME_SPEAKER_SIMILARITY = 0.80
"""Lower bar for one voice when the two-way split only cuts the recording into at most three stretches."""

MIN_NEIGHBOURS = 6
"""Fewest affinities each row keeps when the affinity is pruned."""

_MAX_POINTS = 800
"""Above this many embeddings, consecutive ones are averaged first so the eigendecomposition stays cheap."""


def _normalise(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return out


def kmeans(x: np.ndarray, k: int, *, n_init: int = 8, iterations: int = 100, seed: int = 0) -> np.ndarray:
    """Plain k-means with k-means++ seeding (deterministic for a given seed); returns labels."""
    n = len(x)
    if k <= 1 or n <= k:
        return np.zeros(n, dtype=int) if k <= 1 else np.arange(n) % k
    rng = np.random.default_rng(seed)
    best_labels, best_inertia = np.zeros(n, dtype=int), np.inf
    for _ in range(n_init):
        centres = [x[rng.integers(n)]]
        for _ in range(1, k):
            d2 = np.min(((x[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
            total = d2.sum()
            centres.append(x[rng.choice(n, p=d2 / total)] if total > 0 else x[rng.integers(n)])
        c = np.array(centres)
        labels = np.zeros(n, dtype=int)
        for it in range(iterations):
            d = ((x[:, None, :] - c[None]) ** 2).sum(-1)
            new = d.argmin(1)
            if it and np.array_equal(new, labels):
                break
            labels = new
            for j in range(k):
                members = x[labels == j]
                c[j] = members.mean(0) if len(members) else x[d.min(1).argmax()]
        inertia = float(((x - c[labels]) ** 2).sum())
        if inertia < best_inertia:
            best_labels, best_inertia = labels.copy(), inertia
    return best_labels


def _pruned_laplacian_spectrum(affinity: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(affinity)
    a = affinity.copy()
    if keep < n:
        thresholds = np.partition(a, n - keep, axis=1)[:, n - keep][:, None]
        a = np.where(a >= thresholds, a, 0.0)
    a = 0.5 * (a + a.T)
    d = a.sum(1)
    inv = 1.0 / np.sqrt(np.maximum(d, 1e-12))
    lap = np.eye(n) - inv[:, None] * a * inv[None, :]
    return np.linalg.eigh(lap)


def _spectral(
    x: np.ndarray, num: int | None, kmin: int, kmax: int, same_audio: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    n = len(x)
    affinity = np.clip(x @ x.T, 0.0, 1.0)
    if same_audio is not None:
        # Overlapping windows share most of their audio, so they are each other's nearest neighbours whatever
        # the voice; left in, the pruned graph becomes a chain along time and the clusters cut time, not voices.
        affinity[same_audio] = 0.0
        np.fill_diagonal(affinity, 1.0)
    kmax = max(kmin, min(kmax, n - 1))
    best: tuple[float, np.ndarray, np.ndarray, int] | None = None
    # Candidate row sizes: from a handful of neighbours up to a quarter of the points.
    keeps = sorted({max(MIN_NEIGHBOURS, int(round(n * p))) for p in np.linspace(0.02, 0.25, 12)})
    for keep in keeps:
        vals, vecs = _pruned_laplacian_spectrum(affinity, keep)
        if num is not None:
            score, k = keep / n, num
        else:
            gaps = np.diff(vals[: kmax + 1])  # gaps[i] = lambda_{i+1} - lambda_i, i.e. the gap after i+1 clusters
            candidates = np.arange(kmin, kmax + 1)
            k = int(candidates[np.argmax(gaps[candidates - 1])])
            score = (keep / n) / max(float(gaps[k - 1]), 1e-9)
        if best is None or score < best[0]:
            best = (score, vals, vecs, k)
        if num is not None:
            break
    assert best is not None
    _, _, vecs, k = best
    spectral = _normalise(vecs[:, :k])
    return kmeans(spectral, k), k


def _centroids(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return _normalise(np.array([x[labels == j].mean(0) for j in range(labels.max() + 1)]))


def _merge_similar(x: np.ndarray, labels: np.ndarray, kmin: int) -> np.ndarray:
    while labels.max() + 1 > kmin:
        c = _centroids(x, labels)
        sim = c @ c.T
        np.fill_diagonal(sim, -1.0)
        i, j = np.unravel_index(int(sim.argmax()), sim.shape)
        if sim[i, j] < SAME_SPEAKER_SIMILARITY:
            break
        logger.debug("merging clusters %d and %d (centroid similarity %.3f)", i, j, sim[i, j])
        labels = np.where(labels == max(i, j), min(i, j), labels)
        labels = np.unique(labels, return_inverse=True)[1]
    return labels


def _looks_like_one_speaker(points: np.ndarray) -> bool:
    """Split the (time-ordered) embeddings in two; one voice if the halves are alike.

    Windows of one voice drift with content and channel, so a two-way split of one speaker tends to cut the
    recording into a few contiguous stretches whose centroids stay similar. Two speakers give either clearly
    different centroids or, for similar voices, clusters that alternate many times.
    """
    halves = kmeans(points, 2)
    c = _centroids(points, halves)
    similarity = float(c[0] @ c[1])
    switches = int(np.count_nonzero(np.diff(halves)))
    logger.debug("two-way split: centroid similarity %.3f, %d switches", similarity, switches)
    return similarity >= SAME_SPEAKER_SIMILARITY or (similarity >= CONTIGUOUS_SAME_SPEAKER_SIMILARITY and switches <= 2)


def _pool(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Average embeddings that share a group id (ids are 0..G-1)."""
    sums = np.zeros((groups.max() + 1, x.shape[1]))
    np.add.at(sums, groups, x)
    return _normalise(sums)


def cluster_embeddings(
    embeddings: np.ndarray,
    *,
    num_speakers: int | None = None,
    min_speakers: int = 1,
    max_speakers: int = 8,
    segment_ids: np.ndarray | None = None,
    times: np.ndarray | None = None,
    window: float = 0.0,
    min_cluster_size: int = 1,
) -> np.ndarray:
    """Cluster L2-normalised embeddings (n, d) into speakers and return a label per embedding.

    Args:
        embeddings: one row per window.
        num_speakers: exact count, when known.
        min_speakers: lower bound of the automatic count.
        max_speakers: upper bound of the automatic count.
        segment_ids: optional non-decreasing group id per row (e.g. its speech span); when there are more than
            a few hundred rows, consecutive rows are pooled only within a group.
        times: optional centre time (seconds) of each row's window.
        window: window length in seconds; with ``times``, rows of the same group whose windows overlap are not
            linked in the spectral affinity.
        min_cluster_size: with an automatic count, clusters with fewer rows than this are dissolved into their
            nearest larger cluster (smallest first, never below ``min_speakers``); spurious small clusters are
            the usual way an eigengap estimate over-counts.

    Returns:
        Integer labels 0..k-1 (arbitrary order).
    """
    x = _normalise(np.asarray(embeddings, dtype=np.float64))
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=int)
    if num_speakers is not None:
        min_speakers = max_speakers = num_speakers
    max_speakers = max(1, min(max_speakers, n))
    min_speakers = max(1, min(min_speakers, max_speakers))
    if max_speakers == 1 or n < 3:
        return np.zeros(n, dtype=int) if max_speakers == 1 or n == 1 else np.arange(n) % min(n, max_speakers)

    # Pool consecutive windows (within a group) to bound the cost of the eigendecomposition.
    factor = int(np.ceil(n / _MAX_POINTS))
    groups = np.zeros(n, dtype=int) if segment_ids is None else np.asarray(segment_ids)
    if factor > 1:
        pooled_ids = np.empty(n, dtype=int)
        next_id, count, prev = -1, factor, None
        for i, g in enumerate(groups):
            if g != prev or count >= factor:
                next_id, count, prev = next_id + 1, 0, g
            pooled_ids[i] = next_id
            count += 1
        points = _pool(x, pooled_ids)
    else:
        pooled_ids, points = np.arange(n), x
    same_audio = None
    if times is not None and window > 0:
        counts = np.bincount(pooled_ids)
        t = np.bincount(pooled_ids, weights=np.asarray(times, dtype=float)) / counts
        g = np.bincount(pooled_ids, weights=groups.astype(float)) / counts
        same_audio = (np.abs(t[:, None] - t[None, :]) < window) & (g[:, None] == g[None, :])

    if num_speakers is None and min_speakers == 1 and _looks_like_one_speaker(points):
        return np.zeros(n, dtype=int)

    if len(points) <= max(min_speakers, 2):
        labels = np.arange(len(points)) % max(min_speakers, 1)
    else:
        kmin = max(min_speakers, 2) if num_speakers is None else 1
        labels, _ = _spectral(points, num_speakers, kmin, max_speakers, same_audio)
        if num_speakers is None:
            labels = _merge_similar(points, labels, min_speakers)
    labels = np.unique(labels, return_inverse=True)[1]

    if factor > 1:
        # Re-assign every window to its nearest cluster centroid, at full resolution.
        labels = np.asarray((x @ _centroids(points, labels).T).argmax(1), dtype=int)
    else:
        labels = np.asarray(labels[pooled_ids], dtype=int)
    if num_speakers is None:
        labels = _dissolve_small(x, labels, min_cluster_size, min_speakers)
    # Number the clusters 0..k-1 even if re-assignment left one empty.
    return np.asarray(np.unique(labels, return_inverse=True)[1], dtype=int)


def _dissolve_small(x: np.ndarray, labels: np.ndarray, min_size: int, kmin: int) -> np.ndarray:
    labels = np.unique(labels, return_inverse=True)[1]
    while labels.max() + 1 > kmin:
        sizes = np.bincount(labels)
        smallest = int(sizes.argmin())
        if sizes[smallest] >= min_size:
            break
        keep = [k for k in range(len(sizes)) if k != smallest]
        c = _centroids(x, labels)[keep]
        members = labels == smallest
        labels[members] = np.array(keep)[(x[members] @ c.T).argmax(1)]
        labels = np.unique(labels, return_inverse=True)[1]
    return labels

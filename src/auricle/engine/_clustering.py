"""Speaker clustering of window embeddings, with the speaker count estimated from calibrated similarities.

Each 1.6 s window embedding is first averaged with its neighbours in the same speech span (``±2`` windows, about
2.6 s of audio; ``±3`` on telephone audio): the content of a single window moves its d-vector about as much as a
change of voice does, and the average keeps the voice. Candidate partitions into ``k`` clusters come from k-means
on those smoothed vectors, then a few rounds of "each window goes to its nearest centroid" on the raw windows
(a resegmentation).

The count (when the caller gives none) is decided on two calibrated quantities of the partitions, measured on
real voices (the corpus's single-speaker recordings, clean and through a telephone channel, against
conversations of two to four of them; see ``tests/diarization_real.py``):

* one speaker or more: the cosine similarity of the two centroids of the best two-way split. One voice splits
  into halves whose centroids stay similar (``>= one_speaker``); a split that cuts the recording into at most
  three stretches (content or channel drift, not turns) needs only ``contiguous_one_speaker``;
* how many: the largest ``k`` whose clusters are all distinct voices (no two centroids more similar than
  ``distinct_speakers``) and each hold enough speech.

Telephone-band audio gets its own thresholds (:data:`NARROWBAND`).

A given count starts from the automatic partition (bounded by the count) and grows it one cluster at a time
(:func:`_to_count`), each time by whichever of two candidates leaves the voices most distinct: the costliest
cluster cut in two, or the windows least like every cluster (a quiet voice in a meeting one person dominates).
Added clusters take a window only by a clear margin (:data:`ADDED_CLUSTER_MARGINS`). So a given count stays close
to what the automatic count found instead of re-cutting the recording from scratch, which on far-field meetings
split the dominant voice by content.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

__all__ = ["NARROWBAND", "WIDEBAND", "Thresholds", "cluster_embeddings", "kmeans"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Thresholds:
    """Calibrated cosine similarities between cluster centroids (Resemblyzer space) that decide the count, and the
    neighbour smoothing they were calibrated with."""

    one_speaker: float
    """The best two-way split's centroids at least this similar: one voice."""
    contiguous_one_speaker: float
    """The same bar when the two-way split only cuts the recording into at most three stretches."""
    distinct_speakers: float
    """A ``k``-way partition is ``k`` speakers only if no two centroids are more similar than this."""
    smooth_windows: int = 2
    """Each window is averaged with this many neighbours on each side (same speech span) before k-means."""


WIDEBAND = Thresholds(one_speaker=0.88, contiguous_one_speaker=0.80, distinct_speakers=0.80)
"""Thresholds for ordinary (16 kHz, full-band) recordings."""

NARROWBAND = Thresholds(one_speaker=0.91, contiguous_one_speaker=0.82, distinct_speakers=0.88, smooth_windows=3)
"""Thresholds for telephone-band audio (nothing above about 3.8 kHz): every voice's d-vectors move closer together,
so distinct voices are allowed closer centroids, and a longer average (about 3 s) steadies each window's voice.
``one_speaker`` sits mid-way between the most similar two-way split of a real multi-voice conversation (0.88) and
the least similar split of a long single voice (0.94); the smoothing and ``distinct_speakers`` were chosen on the
tuning seeds (0 and 1) by DER, among settings with the same count accuracy there."""

ADDED_CLUSTER_MARGINS = (0.15, 0.1)
"""A cluster added to reach a given count (beyond those the automatic count found) takes a window only when the
window is this much more similar to it (cosine) than to any other cluster, by the first margin that leaves the
new cluster any window (so the count is still reached when a voice is there but close to another, as on the
telephone): the voices the automatic count could
not tell apart keep their windows unless the evidence is clear (on far-field meetings one person dominates, and
an even split of their speech costs more than a small extra cluster)."""

_MAX_POINTS = 1200
"""Above this many windows, every other (or every n-th) window feeds the k-means; all are assigned after."""


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
    sq = (x**2).sum(1)
    for _ in range(n_init):
        centres = [x[rng.integers(n)]]
        for _ in range(1, k):
            c = np.array(centres)
            d2 = np.maximum(np.min(sq[:, None] - 2 * x @ c.T + (c**2).sum(1)[None], axis=1), 0.0)
            total = d2.sum()
            centres.append(x[rng.choice(n, p=d2 / total)] if total > 0 else x[rng.integers(n)])
        c = np.array(centres)
        labels = np.zeros(n, dtype=int)
        for it in range(iterations):
            d = sq[:, None] - 2 * x @ c.T + (c**2).sum(1)[None]
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


def _centroids(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    rows = [x[labels == j].mean(0) if (labels == j).any() else np.zeros(x.shape[1]) for j in range(k)]
    return _normalise(np.array(rows))


def _smooth(x: np.ndarray, groups: np.ndarray, width: int) -> np.ndarray:
    """Mean of each row and its ``width`` neighbours on each side that share its group."""
    if width <= 0:
        return x
    n = len(x)
    sums = np.zeros_like(x)
    counts = np.zeros(n)
    for shift in range(-width, width + 1):
        lo, hi = max(0, -shift), min(n, n - shift)
        same = groups[lo:hi] == groups[lo + shift : hi + shift]
        sums[lo:hi][same] += x[lo + shift : hi + shift][same]
        counts[lo:hi] += same
    return _normalise(sums / counts[:, None])


def _reassign(
    x: np.ndarray, labels: np.ndarray, k: int, bias: np.ndarray | None = None, rounds: int = 10
) -> np.ndarray:
    """Move every window to its nearest centroid until nothing moves (k-means in cosine space from ``labels``);
    ``bias`` is added to each cluster's similarity."""
    offset = np.zeros(k) if bias is None else bias
    for _ in range(rounds):
        new = np.asarray((x @ _centroids(x, labels, k).T + offset).argmax(1), dtype=int)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


@dataclass
class _Partition:
    labels: np.ndarray
    centroids: np.ndarray
    sizes: np.ndarray

    @property
    def max_similarity(self) -> float:
        if len(self.centroids) < 2:
            return 1.0
        sim = self.centroids @ self.centroids.T
        np.fill_diagonal(sim, -1.0)
        return float(sim.max())


def _from_labels(x: np.ndarray, labels: np.ndarray) -> _Partition:
    labels = np.unique(labels, return_inverse=True)[1]
    k = int(labels.max()) + 1
    return _Partition(labels, _centroids(x, labels, k), np.bincount(labels, minlength=k))


def _partition(x: np.ndarray, smoothed: np.ndarray, k: int) -> _Partition:
    return _from_labels(x, _reassign(x, kmeans(smoothed, k), k))


def _stretches(labels: np.ndarray, min_run: int) -> int:
    """How many stretches of one label the (time-ordered) labels form, ignoring runs shorter than ``min_run``."""
    change = np.flatnonzero(np.diff(labels)) + 1
    bounds = [0, *change.tolist(), len(labels)]
    long = [int(labels[a]) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b - a >= min_run]
    return 1 + sum(1 for a, b in zip(long, long[1:], strict=False) if a != b) if long else 1


def cluster_embeddings(
    embeddings: np.ndarray,
    *,
    num_speakers: int | None = None,
    min_speakers: int = 1,
    max_speakers: int = 8,
    segment_ids: np.ndarray | None = None,
    min_cluster_size: int = 1,
    thresholds: Thresholds = WIDEBAND,
    added_margins: tuple[float, ...] = ADDED_CLUSTER_MARGINS,
) -> np.ndarray:
    """Cluster L2-normalised window embeddings (n, d), in time order, into speakers; return a label per row.

    Args:
        embeddings: one row per window, in time order.
        num_speakers: exact count, when known.
        min_speakers: lower bound of the automatic count.
        max_speakers: upper bound of the automatic count.
        segment_ids: optional non-decreasing group id per row (its speech span); windows are only smoothed
            with neighbours of the same group.
        min_cluster_size: with an automatic count, a speaker needs at least this many windows.
        thresholds: the calibrated similarities that decide the automatic count.
        added_margins: with ``num_speakers``, the margins by which added clusters take windows, widest first
            (see :data:`ADDED_CLUSTER_MARGINS`).

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
    groups = np.zeros(n, dtype=int) if segment_ids is None else np.asarray(segment_ids)
    smoothed = _smooth(x, groups, thresholds.smooth_windows)
    step = int(np.ceil(n / _MAX_POINTS))
    fit_x, fit_smoothed = x[::step], smoothed[::step]

    min_size = max(1, min_cluster_size // step)
    if num_speakers is not None:
        # Start from what the automatic count finds and reach the given count from there, so a given count
        # degrades gracefully to the automatic answer instead of re-cutting the recording from scratch.
        auto = _choose_count(fit_x, fit_smoothed, 1, num_speakers, min_size, thresholds)
        best, margin = _to_count(fit_x, fit_smoothed, auto, num_speakers, added_margins)
        found = len(auto.centroids)
    else:
        best = _choose_count(fit_x, fit_smoothed, min_speakers, max_speakers, min_size, thresholds)
        found, margin = len(best.centroids), 0.0
    k = len(best.centroids)
    # Every window (not only the fitted ones) goes to its nearest centroid, then the centroids settle at full rate;
    # by a narrower margin if an added cluster would end up empty.
    for narrower in [m for m in added_margins if m <= margin] or [margin]:
        bias = _added_bias(found, k, narrower)
        labels = _reassign(x, np.asarray((x @ best.centroids.T + bias).argmax(1), dtype=int), k, bias)
        if len(np.unique(labels)) == k:
            break
    return np.asarray(np.unique(labels, return_inverse=True)[1], dtype=int)


def _choose_count(
    x: np.ndarray, smoothed: np.ndarray, kmin: int, kmax: int, min_size: int, thresholds: Thresholds
) -> _Partition:
    one = _Partition(np.zeros(len(x), dtype=int), _centroids(x, np.zeros(len(x), dtype=int), 1), np.array([len(x)]))
    two = _partition(x, smoothed, 2)
    if kmin <= 1:
        similarity = two.max_similarity
        stretches = _stretches(two.labels, 4)
        logger.debug("two-way split: centroid similarity %.3f, %d stretches", similarity, stretches)
        if (
            len(two.centroids) < 2
            or two.sizes.min() < min_size
            or similarity >= thresholds.one_speaker
            or (stretches <= 3 and similarity >= thresholds.contiguous_one_speaker)
        ):
            return one
    best = two if kmin <= 2 else _partition(x, smoothed, kmin)
    for k in range(max(3, kmin + 1), kmax + 1):
        candidate = _partition(x, smoothed, k)
        if len(candidate.centroids) < k:
            break
        if candidate.max_similarity < thresholds.distinct_speakers and candidate.sizes.min() >= min_size:
            best = candidate
    return best


def _split_costliest(smoothed: np.ndarray, part: _Partition) -> np.ndarray | None:
    """Labels with the cluster that costs most (summed distance of its windows to its centroid) cut by 2-means."""
    labels = part.labels.copy()
    cost = [float((1 - smoothed[labels == j] @ c).sum()) for j, c in enumerate(part.centroids)]
    members = np.flatnonzero(labels == int(np.argmax(cost)))
    if len(members) < 2:
        return None
    labels[members[kmeans(smoothed[members], 2) == 1]] = len(part.centroids)
    out: np.ndarray = labels
    return out


def _split_outliers(smoothed: np.ndarray, part: _Partition, share: float = 0.1) -> np.ndarray:
    """Labels with a new cluster seeded by the ``share`` of windows least like every current centroid."""
    labels = part.labels.copy()
    nearest = (smoothed @ part.centroids.T).max(1)
    far = np.argsort(nearest)[: max(1, int(share * len(nearest)))]
    seed = _normalise(smoothed[far].mean(0, keepdims=True))[0]
    labels[smoothed @ seed > nearest] = len(part.centroids)
    labels[far] = len(part.centroids)
    out: np.ndarray = labels
    return out


def _added_bias(found: int, k: int, margin: float) -> np.ndarray:
    """Per-cluster similarity offsets: 0 for the ``found`` clusters, minus ``margin`` for those added after."""
    bias = np.zeros(k)
    bias[found:] = -margin
    return bias


def _to_count(
    x: np.ndarray, smoothed: np.ndarray, start: _Partition, k: int, margins: tuple[float, ...]
) -> tuple[_Partition, float]:
    """Grow ``start`` to ``k`` clusters, one at a time, each time adding the more distinct of two candidates: the
    costliest cluster cut in two, or a cluster of the windows least like any current one; the added clusters take
    windows by the widest of ``margins`` that leaves them any. Returns the partition and the margin."""
    part, used = start, margins[0]
    while len(part.centroids) < k:
        splits = (_split_costliest(smoothed, part), _split_outliers(smoothed, part))
        grown = []
        for margin in margins:
            bias = _added_bias(len(start.centroids), len(part.centroids) + 1, margin)
            grown = [_from_labels(x, _reassign(x, c, len(bias), bias)) for c in splits if c is not None]
            grown = [g for g in grown if len(g.centroids) > len(part.centroids)]
            if grown:
                used = min(used, margin)
                break
        if not grown:
            break  # no new cluster holds: keep what we have
        part = min(grown, key=lambda g: g.max_similarity)
    return part, used

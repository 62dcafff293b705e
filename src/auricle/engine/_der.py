"""Diarization error rate (DER), computed on a 10 ms grid, for tests and benchmarks.

DER = (missed speech + false alarm + speaker confusion) / total reference speech, where, on every frame with
``r`` reference speakers and ``h`` hypothesis speakers active:

* missed = max(0, r - h), false alarm = max(0, h - r),
* confusion = min(r, h) - (number of active reference speakers whose mapped hypothesis speaker is also active).

Hypothesis labels are mapped one-to-one onto reference labels so as to maximise the total overlapping time
(optimal assignment, solved exactly with the Hungarian algorithm). Overlapped speech counts once per speaker,
as in NIST md-eval. ``collar`` seconds on *each* side of every reference turn boundary are excluded from scoring
(md-eval's ``-c``); ``pyannote.metrics.DiarizationErrorRate(collar=c)`` removes ``c / 2`` on each side, so its
``collar=0.5`` corresponds to ``collar=0.25`` here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from auricle.engine.types import SpeakerTurn

__all__ = ["DerResult", "diarization_error_rate", "optimal_assignment"]

_STEP = 0.01


@dataclass(frozen=True)
class DerResult:
    """DER and its parts, in seconds of scored reference speech."""

    der: float
    missed: float
    false_alarm: float
    confusion: float
    total: float
    mapping: dict[str, str]


def optimal_assignment(gain: np.ndarray) -> list[tuple[int, int]]:
    """Row/column pairs maximising the summed ``gain`` (rectangular allowed): the Hungarian algorithm, O(n^3)."""
    gain = np.asarray(gain, dtype=float)
    transposed = gain.shape[0] > gain.shape[1]
    cost = -(gain.T if transposed else gain)  # rows <= columns
    n, m = cost.shape
    if n == 0:
        return []
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    p = np.zeros(m + 1, dtype=int)  # p[j]: row (1-based) matched to column j
    way = np.zeros(m + 1, dtype=int)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            cur = cost[i0 - 1] - u[i0] - v[1:]
            free = ~used[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    pairs = [(int(p[j]) - 1, j - 1) for j in range(1, m + 1) if p[j]]
    return sorted((c, r) if transposed else (r, c) for r, c in pairs)


def _activity(turns: Sequence[SpeakerTurn], labels: list[str], frames: int) -> np.ndarray:
    act = np.zeros((len(labels), frames), dtype=bool)
    index = {s: i for i, s in enumerate(labels)}
    for t in turns:
        a, b = int(round(t.start / _STEP)), int(round(t.end / _STEP))
        act[index[t.speaker], max(0, a) : max(0, min(frames, b))] = True
    return act


def diarization_error_rate(
    reference: Sequence[SpeakerTurn], hypothesis: Sequence[SpeakerTurn], *, collar: float = 0.0
) -> DerResult:
    """Score ``hypothesis`` against ``reference`` (see the module docstring for the definition).

    Args:
        reference: true speaker turns.
        hypothesis: system speaker turns (any labels).
        collar: seconds excluded on each side of every reference turn boundary.

    Returns:
        The DER (0.0 when the reference has no scored speech and the hypothesis is empty) and its parts.
    """
    end = max([t.end for t in (*reference, *hypothesis)], default=0.0)
    frames = int(np.ceil(end / _STEP)) + 1
    ref_labels = sorted({t.speaker for t in reference})
    hyp_labels = sorted({t.speaker for t in hypothesis})
    ref = _activity(reference, ref_labels, frames)
    hyp = _activity(hypothesis, hyp_labels, frames)

    scored = np.ones(frames, dtype=bool)
    if collar > 0:
        c = int(round(collar / _STEP))
        for t in reference:
            for edge in (t.start, t.end):
                e = int(round(edge / _STEP))
                scored[max(0, e - c) : max(0, e + c)] = False
    ref, hyp = ref[:, scored], hyp[:, scored]

    overlap = ref.astype(np.int64) @ hyp.T.astype(np.int64) if ref_labels and hyp_labels else np.zeros((0, 0))
    pairs = optimal_assignment(overlap) if overlap.size else []
    mapping = {hyp_labels[j]: ref_labels[i] for i, j in pairs}
    correct = sum(int(overlap[i, j]) for i, j in pairs)

    n_ref, n_hyp = ref.sum(0), hyp.sum(0)
    missed = float(np.maximum(n_ref - n_hyp, 0).sum())
    false_alarm = float(np.maximum(n_hyp - n_ref, 0).sum())
    confusion = float(np.minimum(n_ref, n_hyp).sum()) - correct
    total = float(n_ref.sum())
    errors = missed + false_alarm + confusion
    der = errors / total if total else (0.0 if errors == 0 else float("inf"))
    return DerResult(
        der=der,
        missed=missed * _STEP,
        false_alarm=false_alarm * _STEP,
        confusion=confusion * _STEP,
        total=total * _STEP,
        mapping=mapping,
    )

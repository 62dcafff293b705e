"""The DER used by the diarization tests and benchmark, on hand-made cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from auricle.engine._der import diarization_error_rate, optimal_assignment
from auricle.engine.types import SpeakerTurn as T

REF = [T(0.0, 4.0, "alice"), T(4.0, 10.0, "bob")]


def test_perfect_hypothesis_with_other_labels_scores_zero():
    result = diarization_error_rate(REF, [T(0.0, 4.0, "B"), T(4.0, 10.0, "A")])
    assert result.der == 0.0 and result.mapping == {"B": "alice", "A": "bob"}


def test_missed_false_alarm_and_confusion_are_counted_separately():
    # bob's first second is missed, 1 s of speech is invented after the end, 2 s of bob are given to alice
    hyp = [T(0.0, 4.0, "x"), T(5.0, 8.0, "y"), T(8.0, 10.0, "x"), T(10.0, 11.0, "y")]
    result = diarization_error_rate(REF, hyp)
    assert result.missed == pytest.approx(1.0)
    assert result.false_alarm == pytest.approx(1.0)
    assert result.confusion == pytest.approx(2.0)
    assert result.total == pytest.approx(10.0)
    assert result.der == pytest.approx(0.4)


def test_one_label_for_everyone_confuses_the_minority():
    result = diarization_error_rate(REF, [T(0.0, 10.0, "x")])
    assert result.der == pytest.approx(0.4) and result.confusion == pytest.approx(4.0)


def test_overlap_counts_once_per_speaker():
    ref = [T(0.0, 4.0, "a"), T(2.0, 6.0, "b")]  # 8 s of speaker time, 2 s overlapped
    result = diarization_error_rate(ref, [T(0.0, 4.0, "1"), T(4.0, 6.0, "2")])
    assert result.total == pytest.approx(8.0)
    assert result.missed == pytest.approx(2.0)  # the overlapped b is missed
    assert result.der == pytest.approx(0.25)


def test_collar_forgives_boundary_errors():
    hyp = [T(0.0, 4.2, "x"), T(4.2, 10.0, "y")]  # boundary 0.2 s late
    assert diarization_error_rate(REF, hyp).der == pytest.approx(0.02)
    collared = diarization_error_rate(REF, hyp, collar=0.25)
    # +-0.25 s around 0, 4 and 10 is not scored: 10 s - 0.25 - 0.5 - 0.25 = 9 s remain
    assert collared.der == 0.0 and collared.total == pytest.approx(9.0)


def test_empty_cases():
    assert diarization_error_rate([], []).der == 0.0
    assert diarization_error_rate(REF, []).der == pytest.approx(1.0)
    assert diarization_error_rate([], [T(0, 1, "x")]).der == float("inf")


def test_assignment_is_optimal_against_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(100):
        n, m = (int(v) for v in rng.integers(1, 6, 2))
        gain = rng.integers(0, 20, (n, m)).astype(float)
        pairs = optimal_assignment(gain)
        assert len(pairs) == min(n, m)
        assert len({i for i, _ in pairs}) == len({j for _, j in pairs}) == len(pairs)
        if n <= m:
            best = max(sum(gain[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n))
        else:
            best = max(sum(gain[p[j], j] for j in range(m)) for p in itertools.permutations(range(n), m))
        assert sum(gain[i, j] for i, j in pairs) == pytest.approx(best)

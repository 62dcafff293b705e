"""Known-speaker matching: names go to the voices that match, one-to-one, and bad input is refused clearly."""

from __future__ import annotations

import numpy as np
import pytest

from auricle.engine.known_speakers import (
    KNOWN_SPEAKER_SIMILARITY,
    match_known_speakers,
    name_known_speakers,
    validate_known_speakers,
)
from auricle.engine.protocols import DiarizationResult
from auricle.engine.types import SpeakerTurn
from auricle.errors import InvalidRequestError


def _unit(seed: int) -> np.ndarray:
    v = np.abs(np.random.default_rng(seed).normal(size=256))
    return v / np.linalg.norm(v)


def _near(v: np.ndarray, similarity: float, seed: int) -> list[float]:
    """A unit vector with the given cosine similarity to ``v``."""
    noise = np.random.default_rng(seed).normal(size=256)
    noise -= (noise @ v) * v
    noise /= np.linalg.norm(noise)
    return list(similarity * v + np.sqrt(1 - similarity**2) * noise)


def test_matching_voices_are_named_and_others_stay_anonymous():
    alice, bob = _unit(1), _unit(2)
    speakers = {
        "SPEAKER_00": _near(bob, 0.9, 3),
        "SPEAKER_01": _near(alice, 0.95, 4),
        "SPEAKER_02": _near(_unit(5), 0.99, 6),
    }
    mapping = match_known_speakers(speakers, {"Alice": list(alice), "Bob": list(bob)})
    assert mapping == {"SPEAKER_00": "Bob", "SPEAKER_01": "Alice"}


def test_below_the_threshold_nobody_is_named():
    alice = _unit(1)
    assert (
        match_known_speakers({"SPEAKER_00": _near(alice, KNOWN_SPEAKER_SIMILARITY - 0.05, 2)}, {"Alice": alice}) == {}
    )


def test_one_name_per_voice():
    alice = _unit(1)
    speakers = {"SPEAKER_00": _near(alice, 0.9, 2), "SPEAKER_01": _near(alice, 0.97, 3)}
    assert match_known_speakers(speakers, {"Alice": alice}) == {"SPEAKER_01": "Alice"}


def test_turns_and_embeddings_are_renamed():
    alice = _unit(1)
    result = DiarizationResult(
        turns=[SpeakerTurn(0, 1, "SPEAKER_00"), SpeakerTurn(1, 2, "SPEAKER_01")],
        embeddings={"SPEAKER_00": _near(alice, 0.95, 2), "SPEAKER_01": list(_unit(3))},
    )
    named = name_known_speakers(result, {"Alice": alice})
    assert [t.speaker for t in named.turns] == ["Alice", "SPEAKER_01"]
    assert set(named.embeddings) == {"Alice", "SPEAKER_01"}


@pytest.mark.parametrize(
    "known",
    [{"Alice": [0.1] * 255}, {"": [0.1] * 256}, {"Alice": [0.0] * 256}, {"Alice": [float("nan")] * 256}, {"A": ["x"]}],
    ids=["wrong-dimension", "empty-name", "all-zero", "not-finite", "not-numbers"],
)
def test_bad_enrolment_is_a_clear_error(known):
    with pytest.raises(InvalidRequestError):
        validate_known_speakers(known)

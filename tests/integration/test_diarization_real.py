"""Diarization targets on real voices: generated conversations of corpus speakers, the single-speaker recordings
and the AMI meeting excerpts (see ``tests/diarization_real.py``).

Real model parts throughout: Silero VAD spans with faster-whisper's defaults, Resemblyzer's encoder, our
clustering. DER is speech-weighted, 0.25 s collar, overlapped speech scored. The conversations here use seeds 0
to 3: the count thresholds were fitted on seeds 0 and 1, seeds 2 and 3 were held out (on those alone the wideband
count is right on 16 of 18, the telephone count on 8 of 12). Run with ``-s`` to see the figures.

The issue's target for telephone-band conversations (count right on 90 %, DER at most 5 %) is not met: the
assertions hold what is (16 of 24 counts, DER 9.4 %), so a regression fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pytest

from auricle.engine._der import diarization_error_rate
from auricle.engine.decode import decode
from auricle.engine.diarize import ResemblyzerDiarizer
from auricle.engine.protocols import DiarizationResult
from auricle.engine.types import SpeakerTurn, SpeechSpan
from diarization_real import (
    Conversation,
    conversation_specs,
    make_conversation,
    rttm_turns,
    single_speaker_files,
    speech_spans,
    telephone_channel,
)

from support import CORPUS, corpus_entries

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)

SPEAKR = {"min_speakers": 1, "max_speakers": 4}
SEEDS = [0, 1, 2, 3]
Automatic = Callable[[Conversation], tuple[list[SpeechSpan], DiarizationResult]]
"""A conversation's VAD spans and its diarization with Speakr's request (the ``automatic`` fixture)."""


@pytest.fixture(scope="module")
def diarizer() -> ResemblyzerDiarizer:
    return ResemblyzerDiarizer()


@pytest.fixture(scope="module")
def conversations() -> list[Conversation]:
    return [make_conversation(spec) for spec in conversation_specs(SEEDS)]


@pytest.fixture(scope="module")
def automatic(diarizer) -> Automatic:
    """Each conversation diarized with Speakr's request once per module (the diarizer is deterministic; the
    given-count test compares against the same results the count tests score)."""
    done: dict[str, tuple[list[SpeechSpan], DiarizationResult]] = {}

    def run(conv: Conversation) -> tuple[list[SpeechSpan], DiarizationResult]:
        if conv.name not in done:
            spans = speech_spans(conv.samples)
            done[conv.name] = spans, diarizer.diarize(conv.samples, spans, **SPEAKR)
        return done[conv.name]

    return run


def _score(truth: list[SpeakerTurn], hypothesis: list[SpeakerTurn]) -> tuple[float, float]:
    """(errors, scored speech) in seconds, 0.25 s collar."""
    result = diarization_error_rate(truth, hypothesis, collar=0.25)
    return result.der * result.total, result.total


def _speakers(turns: list[SpeakerTurn]) -> int:
    return len({t.speaker for t in turns})


def _automatic(automatic: Automatic, conversations: list[Conversation], label: str) -> tuple[float, int]:
    """Diarize each with Speakr's request (automatic count between 1 and 4): (speech-weighted DER, counts right)."""
    errors = total = 0.0
    right = 0
    for conv in conversations:
        _, result = automatic(conv)
        e, t = _score(conv.turns, result.turns)
        errors, total = errors + e, total + t
        right += _speakers(result.turns) == len(conv.voices)
        print(f"{conv.name}: {_speakers(result.turns)}/{len(conv.voices)} speakers, DER {e / t:.1%}")
    print(f"{label}: DER {errors / total:.1%}, count right on {right}/{len(conversations)}")
    return errors / total, right


def test_wideband_conversations_meet_the_targets(automatic, conversations):
    # Given conversations of 2-4 real voices (clean, overlapping turns, background noise)
    wide = [c for c in conversations if "phone" not in c.name]
    # When each is diarized with Speakr's request
    der, right = _automatic(automatic, wide, "wideband")
    # Then the speech-weighted DER is at most 5 % and the count is right on at least 90 % of them
    assert der <= 0.05
    assert right >= 0.9 * len(wide)


def test_telephone_conversations_hold_todays_count(automatic, conversations):
    # Given conversations of 2-4 real voices through an 8 kHz telephone channel
    phone = [c for c in conversations if "phone" in c.name]
    # When each is diarized with Speakr's request
    der, right = _automatic(automatic, phone, "telephone")
    # Then the count is right on at least 16 of the 24 and the DER is at most 10 % (the targets are 90 % and 5 %)
    assert right >= 16
    assert der <= 0.10


def test_given_count_is_no_worse_than_automatic(diarizer, automatic, conversations):
    # Given every generated conversation, telephone ones included
    auto_errors = given_errors = total = 0.0
    for conv in conversations:
        # When it is diarized with the automatic count and with the true count
        spans, auto = automatic(conv)
        given = diarizer.diarize(conv.samples, spans, num_speakers=len(conv.voices))
        a, t = _score(conv.turns, auto.turns)
        g, _ = _score(conv.turns, given.turns)
        auto_errors, given_errors, total = auto_errors + a, given_errors + g, total + t
        # Then the given count is what comes back, and on no conversation is it worse than the automatic count
        # (beyond 1 % of its speech)
        assert _speakers(given.turns) == len(conv.voices)
        assert g <= a + 0.01 * t, f"{conv.name}: given count DER {g / t:.1%} > automatic {a / t:.1%}"
    print(f"all conversations: DER automatic {auto_errors / total:.1%}, count given {given_errors / total:.1%}")
    # And over the set the DER with the count given is within 5 %
    assert given_errors / total <= 0.05


@pytest.mark.parametrize("telephone", [False, True], ids=["as-published", "telephone"])
@pytest.mark.parametrize("file", single_speaker_files())
def test_single_speaker_recordings_stay_one_speaker(diarizer, file, telephone):
    # Given a recording of one real person, as published or through a telephone channel
    samples = decode(CORPUS / "audio" / file).samples
    if telephone:
        samples = telephone_channel(samples + np.random.default_rng(0).normal(0, 3e-4, len(samples)).astype(np.float32))
    # When it is diarized with Speakr's bounds
    result = diarizer.diarize(samples, speech_spans(samples), **SPEAKR)
    # Then it is one speaker
    assert _speakers(result.turns) == 1


def _meetings() -> list[dict]:
    return [e for e in corpus_entries() if e["rttm"]]


@pytest.fixture(scope="module")
def meetings() -> list[tuple[dict, np.ndarray, list]]:
    out = []
    for entry in _meetings():
        samples = decode(entry["path"]).samples
        out.append((entry, samples, speech_spans(samples)))
    return out


def test_meeting_excerpts(diarizer, meetings):
    # Given the 13 AMI meeting excerpts (far field, overlap, two near-silent ones)
    auto_errors = one_errors = total = 0.0
    within_one = 0
    for entry, samples, spans in meetings:
        truth = rttm_turns(CORPUS / entry["rttm"])
        # When they are diarized with the automatic count
        auto = diarizer.diarize(samples, spans, **SPEAKR)
        a, t = _score(truth, auto.turns)
        o, _ = _score(truth, [SpeakerTurn(s.start, s.end, "ONE") for s in spans])
        auto_errors, one_errors, total = auto_errors + a, one_errors + o, total + t
        within_one += abs(_speakers(auto.turns) - entry["speakers"]) <= 1
        print(f"{entry['id']}: {_speakers(auto.turns)}/{entry['speakers']} speakers, DER {a / t:.1%} (one {o / t:.1%})")
        # Then the near-silent excerpts get no invented speakers
        if entry["id"] in {"en_ami_excerpt_trn02", "en_ami_excerpt_tst01"}:
            assert _speakers(auto.turns) <= 1
    print(f"AMI automatic: DER {auto_errors / total:.1%}, everyone-one-speaker {one_errors / total:.1%}")
    # And over the set the automatic count does no worse than calling everyone one speaker
    assert auto_errors <= one_errors


def test_meeting_excerpts_with_the_count_given(diarizer, meetings):
    # Given the 12 multi-speaker AMI excerpts
    given_errors = total = 0.0
    beats = 0
    multi = [m for m in meetings if m[0]["speakers"] > 1]
    for entry, samples, spans in multi:
        truth = rttm_turns(CORPUS / entry["rttm"])
        # When they are diarized with their true count
        given = diarizer.diarize(samples, spans, num_speakers=entry["speakers"])
        g, t = _score(truth, given.turns)
        o, _ = _score(truth, [SpeakerTurn(s.start, s.end, "ONE") for s in spans])
        given_errors, total = given_errors + g, total + t
        beats += g < o
        print(f"{entry['id']}: given {entry['speakers']}, DER {g / max(t, 1e-9):.1%} (one {o / max(t, 1e-9):.1%})")
    # Then at least 8 beat "everyone is one speaker" (the target is all of them; the clustering before beat it on
    # 6, and 4 before that) and the set's DER stays at most 34.5 % (33.7 % now, was 36.1 % and 44.8 %; the automatic
    # count gives 34.1 %)
    print(f"AMI count given: DER {given_errors / total:.1%}, beats one speaker on {beats}/{len(multi)}")
    assert beats >= 8
    assert given_errors / total <= 0.345

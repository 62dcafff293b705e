"""The error codec and the typed job events: what a worker stores comes back as it was."""

from __future__ import annotations

import pytest

from auricle import errors
from auricle.engine.pipeline import PipelineEvent
from auricle.engine.protocols import LanguageGuess
from auricle.engine.types import Segment, Word
from auricle.jobs.codec import ErrorInfo, decode_error, encode_error, error_classes
from auricle.jobs.events import FinishedEvent, ProgressEvent, StateEvent, event_from_dict


def sample(cls: type[errors.AuricleError]) -> errors.AuricleError:
    """One instance of ``cls`` made through its own constructor, with a parameter where it takes one."""
    if cls is errors.AudioDecodeError:
        return errors.AudioDecodeError("no audio stream")
    if cls is errors.QueueFullError:
        exc = errors.QueueFullError("the job queue is full")
        exc.param = "file"
        return exc
    return cls(f"{cls.__name__} happened", param="model")


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.__name__)
def test_every_domain_error_round_trips_with_its_class_message_and_param(cls: type[errors.AuricleError]) -> None:
    # Given a domain error a worker hit
    original = sample(cls)
    # When it is stored and rebuilt
    info = encode_error(original)
    rebuilt = decode_error(ErrorInfo(*info))
    # Then it is the same class, with the same message and parameter
    assert type(rebuilt) is cls
    assert (rebuilt.message, rebuilt.param, str(rebuilt)) == (original.message, original.param, str(original))
    assert info.code == cls.__name__


def test_every_error_class_is_in_the_tree() -> None:
    assert set(error_classes()) >= {getattr(errors, name) for name in errors.__all__}


def test_a_non_domain_error_is_an_internal_error() -> None:
    info = encode_error(ValueError("boom"))
    assert info == ErrorInfo(None, "internal error: ValueError: boom", None)
    assert type(decode_error(info)) is errors.AuricleError


def test_an_unknown_code_rebuilds_the_root_error() -> None:
    rebuilt = decode_error(ErrorInfo("GoneError", "from a newer version", "x"))
    assert type(rebuilt) is errors.AuricleError and rebuilt.param == "x"


def test_events_round_trip_through_their_json_form() -> None:
    segment = {"id": 0, "start": 0.0, "end": 1.0, "text": " hi", "words": [], "speaker": None}
    for event in (
        StateEvent({"id": "a", "status": "queued"}),
        FinishedEvent("failed", {"id": "a", "status": "failed", "error": "x"}),
        ProgressEvent("segment", "transcribing", 50.0, segment=segment),
        ProgressEvent("language", "transcribing", 5.0, language="en", language_probability=0.9),
    ):
        assert event_from_dict(event.to_dict()) == event
    assert ProgressEvent("stage", "vad", 1.0).to_dict() == {"type": "stage", "stage": "vad", "progress": 1.0}
    with pytest.raises(ValueError):
        event_from_dict({"type": "nonsense"})


def test_progress_events_carry_pipeline_events_both_ways() -> None:
    word = Word(start=0.0, end=0.5, word=" hi", probability=0.9)
    segment = Segment(id=1, start=0.0, end=0.5, text=" hi", words=[word])
    event = PipelineEvent("segment", "transcribing", 0.25, segment=segment, language=LanguageGuess("en", 0.98))
    stored = ProgressEvent.from_pipeline(event)
    assert stored.progress == 25.0 and stored.language == "en"
    back = stored.to_pipeline()
    assert back.segment == segment and back.language == LanguageGuess("en", 0.98) and back.progress == 0.25

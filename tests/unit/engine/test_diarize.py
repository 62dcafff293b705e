"""Diarization engine parts: speaker assignment, the torch-free checkpoint reader and encoder, per-channel mode."""

from __future__ import annotations

import json
import pickle
import wave
from pathlib import Path

import numpy as np
import pytest

from auricle.engine import _clustering, _voice_encoder, diarize
from auricle.engine._voice_encoder import CheckpointError, VoiceEncoder, load_checkpoint, mel_spectrogram
from auricle.engine.decode import decode
from auricle.engine.diarize import ResemblyzerDiarizer, assign_speakers, diarize_channels
from auricle.engine.types import Segment, SpeakerTurn, SpeechSpan, Word
from auricle.errors import InvalidRequestError

from support import CORPUS

FIXTURE = Path(__file__).resolve().parents[2] / "data" / "resemblyzer_reference.json"


@pytest.fixture(scope="module")
def encoder() -> VoiceEncoder:
    return VoiceEncoder()


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# ---------------------------------------------------------------- public surface


@pytest.mark.parametrize("module", [diarize, _voice_encoder, _clustering])
def test_all_names_exist(module):
    assert module.__all__ and all(hasattr(module, name) for name in module.__all__)


# ---------------------------------------------------------------- assign_speakers

TURNS = [SpeakerTurn(0.0, 2.0, "SPEAKER_00"), SpeakerTurn(2.0, 4.0, "SPEAKER_01"), SpeakerTurn(6.0, 8.0, "SPEAKER_00")]


def _w(start: float, end: float, text: str) -> Word:
    return Word(start, end, text)


def test_segment_is_split_where_the_speaker_changes():
    # Given a segment whose words cross from one speaker's turn into the other's
    words = [_w(0.5, 1.0, " Hello"), _w(1.0, 1.9, " there."), _w(2.1, 2.6, " Hi"), _w(2.6, 3.5, " back.")]
    seg = Segment(id=1, start=0.4, end=3.6, text=" Hello there. Hi back.", words=words, tokens=[1, 2, 3])
    tail = Segment(id=2, start=6.2, end=7.0, text=" Bye.", words=[_w(6.2, 7.0, " Bye.")])
    # When speakers are assigned
    out = assign_speakers([seg, tail], TURNS)
    # Then it becomes two segments, renumbered, each with one speaker and its own words and text
    assert [(s.id, s.speaker, s.text) for s in out] == [
        (1, "SPEAKER_00", " Hello there."),
        (2, "SPEAKER_01", " Hi back."),
        (3, "SPEAKER_00", " Bye."),
    ]
    assert (out[0].start, out[0].end, out[1].start, out[1].end) == (0.4, 1.9, 2.1, 3.6)
    assert out[0].tokens == [1, 2, 3] and out[1].tokens == []
    assert all(w.speaker == s.speaker for s in out for w in s.words)
    # and the input is untouched
    assert seg.speaker is None and all(w.speaker is None for w in words) and len(seg.words) == 4


def test_word_takes_the_speaker_it_overlaps_most():
    word = _w(1.5, 2.9, " straddling")  # 0.5 s with SPEAKER_00, 0.9 s with SPEAKER_01
    out = assign_speakers([Segment(0, 1.5, 2.9, " straddling", words=[word])], TURNS)
    assert out[0].words[0].speaker == "SPEAKER_01" and out[0].speaker == "SPEAKER_01"


def test_word_outside_every_turn_takes_the_nearest():
    out = assign_speakers([Segment(0, 4.5, 5.8, " late", words=[_w(5.5, 5.8, " late")])], TURNS)
    assert out[0].words[0].speaker == "SPEAKER_00"  # 0.2 s before the turn at 6.0, 1.5 s after the one ending at 4.0


def test_segment_without_words_takes_the_speaker_by_overlap():
    out = assign_speakers([Segment(5, 1.0, 3.8, " no words"), Segment(6, 4.2, 4.4, " gap")], TURNS)
    assert [(s.id, s.speaker) for s in out] == [(5, "SPEAKER_01"), (6, "SPEAKER_01")]


def test_no_turns_leaves_segments_unlabelled():
    seg = Segment(0, 0.0, 1.0, " x", words=[_w(0.0, 1.0, " x")])
    out = assign_speakers([seg], [])
    assert out[0] is not seg and out[0].speaker is None and out[0].words[0].speaker is None
    assert assign_speakers([], TURNS) == []


# ---------------------------------------------------------------- checkpoint reader


class _Boom:
    """Pickles to a call of os.system: what a hostile checkpoint would contain."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _legacy_checkpoint(payload: bytes) -> bytes:
    header = b"".join(
        pickle.dumps(v, protocol=2)
        for v in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True})
    )
    return header + payload + pickle.dumps([], protocol=2)


def test_restricted_unpickler_refuses_code(tmp_path):
    # Given a checkpoint whose object pickle would run a shell command
    marker = tmp_path / "pwned"
    hostile = _legacy_checkpoint(pickle.dumps({"model_state": _Boom(marker)}, protocol=2))
    # When it is loaded, Then it is refused and nothing ran
    with pytest.raises(CheckpointError, match="forbidden global"):
        load_checkpoint(hostile)
    assert not marker.exists()


def test_restricted_unpickler_refuses_code_in_the_header(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(CheckpointError, match="forbidden global"):
        load_checkpoint(pickle.dumps(_Boom(marker), protocol=2))
    assert not marker.exists()


@pytest.mark.parametrize("raw", [b"", b"not a pickle", pickle.dumps("hello"), b"PK\x03\x04zip"])
def test_garbage_is_not_a_checkpoint(raw):
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)


def test_truncated_checkpoint_is_refused():
    raw = _voice_encoder.default_weights_path().read_bytes()
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(raw[: len(raw) // 2])


def test_pretrained_checkpoint_loads_without_torch():
    state = load_checkpoint(_voice_encoder.default_weights_path())
    assert state["lstm.weight_ih_l0"].shape == (1024, 40)
    assert state["lstm.weight_hh_l2"].shape == (1024, 256)
    assert state["linear.weight"].shape == (256, 256)
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in state.values())


# ---------------------------------------------------------------- encoder vs the torch reference


def _read_pcm16(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def test_encoder_matches_resemblyzer_with_torch(encoder):
    """The fixture was made with torch + librosa + resemblyzer in a throwaway venv; see its ``produced_by``."""
    reference = json.loads(FIXTURE.read_text())
    assert len(reference["clips"]) == 3
    for clip in reference["clips"]:
        wav = _read_pcm16(CORPUS / clip["audio"].removeprefix("corpus/"))[: int(clip["seconds"] * 16000)]
        wav = _voice_encoder.normalize_volume(wav)
        mel = mel_spectrogram(wav)
        assert mel[:160].sum() == pytest.approx(clip["mel_first_frame_sum"], rel=1e-4)
        partial = encoder.embed_frames(mel[None, :160])[0]
        assert _cos(partial, np.array(clip["partial_first_160_frames"])) > 0.99
        assert _cos(encoder.embed_utterance(wav), np.array(clip["embedding"])) > 0.99


def test_mel_spectrogram_shape_and_silence():
    mel = mel_spectrogram(np.zeros(16000, dtype=np.float32))
    assert mel.shape == (101, 40) and not mel.any()


# ---------------------------------------------------------------- diarizer edges


def test_counts_are_validated():
    diarizer = ResemblyzerDiarizer()
    silence = np.zeros(16000, dtype=np.float32)
    with pytest.raises(InvalidRequestError):
        diarizer.diarize(silence, [], num_speakers=0)
    with pytest.raises(InvalidRequestError):
        diarizer.diarize(silence, [], min_speakers=3, max_speakers=2)


def test_no_speech_gives_no_turns():
    result = ResemblyzerDiarizer().diarize(np.zeros(16000, dtype=np.float32), [SpeechSpan(2.0, 3.0)])
    assert result.turns == [] and result.embeddings == {}


def test_one_short_utterance_is_one_speaker():
    wav = _read_pcm16(CORPUS / "audio" / "librispeech_1995-1837-0001.wav")
    result = ResemblyzerDiarizer().diarize(wav, [SpeechSpan(0.3, 8.5)], max_speakers=4)
    assert {t.speaker for t in result.turns} == {"SPEAKER_00"}
    assert len(result.embeddings["SPEAKER_00"]) == 256
    assert result.turns[0].start == pytest.approx(0.3) and result.turns[-1].end == pytest.approx(8.5, abs=0.01)


# ---------------------------------------------------------------- per-channel mode


def _spans(samples: np.ndarray) -> list[SpeechSpan]:
    from faster_whisper.vad import get_speech_timestamps

    return [SpeechSpan(s["start"] / 16000, s["end"] / 16000) for s in get_speech_timestamps(samples)]


def test_per_channel_attribution_on_the_stereo_call():
    # Given the stereo file: left channel talks throughout, right channel from about 0.4 s to 2.5 s
    audio = decode(CORPUS / "audio" / "stereo_two_speakers.wav", keep_channels=True)
    assert audio.channels is not None
    spans = [_spans(audio.channels[0]), _spans(audio.channels[1])]
    # When it is diarized per channel
    result = ResemblyzerDiarizer().diarize_channels(audio.channels, spans)
    # Then every turn comes from its channel's speech, labelled by channel
    left = [t for t in result.turns if t.speaker == "SPEAKER_00"]
    right = [t for t in result.turns if t.speaker == "SPEAKER_01"]
    assert left and right and len(left) + len(right) == len(result.turns)
    assert left[0].start < 0.5 and left[-1].end > 4.5
    assert 0.0 <= right[0].start <= 0.5 and 2.3 <= right[-1].end <= 3.0
    assert [(t.start, t.end) for t in left] == [(round(s.start, 3), round(s.end, 3)) for s in spans[0]]
    # and the two channels' voices are told apart by their embeddings
    a, b = (np.array(result.embeddings[k]) for k in ("SPEAKER_00", "SPEAKER_01"))
    assert _cos(a, b) < 0.85


def test_per_channel_without_encoder_needs_no_model():
    channels = np.zeros((2, 32000), dtype=np.float32)
    result = diarize_channels(channels, [[SpeechSpan(1.0, 1.5)], [SpeechSpan(0.2, 1.2)]])
    assert [(t.start, t.speaker) for t in result.turns] == [(0.2, "SPEAKER_01"), (1.0, "SPEAKER_00")]
    assert result.embeddings == {}
    with pytest.raises(InvalidRequestError):
        diarize_channels(channels, [[]])


def test_short_spans_are_attributed_without_shaping_the_clusters():
    # Given one voice cut by VAD into long and very short spans
    wav = _read_pcm16(CORPUS / "audio" / "librispeech_1995-1837-0001.wav")
    spans = [SpeechSpan(0.3, 4.0), SpeechSpan(4.2, 4.5), SpeechSpan(4.7, 8.5)]
    # When it is diarized, Then every span is attributed, to the one speaker
    result = ResemblyzerDiarizer().diarize(wav, spans)
    assert [(t.start, t.end, t.speaker) for t in result.turns] == [
        (0.3, 4.0, "SPEAKER_00"),
        (4.2, 4.5, "SPEAKER_00"),
        (4.7, 8.5, "SPEAKER_00"),
    ]

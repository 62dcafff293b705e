"""The real models on the real corpus: accuracy no worse than calling faster-whisper directly, languages,
translation, silence and noise."""

from __future__ import annotations

import numpy as np
import pytest

from auricle.engine.decode import decode
from auricle.engine.types import Audio, TranscribeOptions

from support import english_with_reference, normalise, wer

pytestmark = [pytest.mark.model, pytest.mark.slow]


def _direct(model_dir, files):
    """faster-whisper called directly, plain sequential form, the same decoding settings as ours."""
    from faster_whisper import WhisperModel

    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=2)
    texts = []
    for path in files:
        segments, _ = model.transcribe(str(path), beam_size=5, vad_filter=True, language="en")
        texts.append(" ".join(s.text for s in segments))
    return texts


@pytest.mark.parametrize("model", ["tiny.en", "base"])
def test_english_wer_no_worse_than_faster_whisper_directly(runtime, model):
    entries = english_with_reference()
    assert len(entries) >= 4
    refs = [e["reference"] for e in entries]
    ours = [runtime.transcribe(e["path"], TranscribeOptions(model=model, language="en")).text for e in entries]
    direct = _direct(runtime.registry.resolve(model), [e["path"] for e in entries])
    ours_wer, direct_wer = wer(refs, ours), wer(refs, direct)
    print(f"{model}: auricle WER {ours_wer:.3%} vs faster-whisper direct {direct_wer:.3%}")
    assert ours_wer <= direct_wer + 0.005
    assert ours_wer < 0.25, "sanity: the model really recognises the speech"


def test_non_english_language_is_detected(runtime, corpus):
    for entry in corpus:
        if entry["language"] in ("de", "zh"):
            transcript = runtime.transcribe(entry["path"], TranscribeOptions(model="base"))
            assert transcript.language == entry["language"], entry["id"]
            assert transcript.language_probability > 0.5
            assert transcript.text


def test_translate_gives_english(runtime, corpus):
    german = next(e for e in corpus if e["language"] == "de")
    transcript = runtime.transcribe(german["path"], TranscribeOptions(model="base", task="translate"))
    words = set(normalise(transcript.text).split())
    assert len(words & {"the", "and", "of", "a", "is", "in", "to"}) >= 3, transcript.text
    assert "und" not in words and "der" not in words


def test_word_timestamps_are_ordered_and_inside_segments(runtime, corpus):
    entry = next(e for e in corpus if e["id"] == "en_librivox_sonnet001")
    transcript = runtime.transcribe(entry["path"], TranscribeOptions(model="tiny.en", word_timestamps=True))
    words = transcript.words
    assert len(words) > 50
    assert all(a.start <= b.start for a, b in zip(words, words[1:], strict=False))
    for segment in transcript.segments:
        for word in segment.words:
            assert segment.start - 0.05 <= word.start <= word.end <= segment.end + 0.05


@pytest.mark.parametrize("kind", ["silence", "noise"])
def test_silence_and_noise_give_empty_transcripts(runtime, kind):
    rng = np.random.default_rng(1)
    n = 16000 * 20
    samples = np.zeros(n, np.float32) if kind == "silence" else (rng.normal(0, 0.05, n)).astype(np.float32)
    for model in ("tiny.en", "base"):
        transcript = runtime.transcribe(Audio(samples), TranscribeOptions(model=model))
        assert transcript.text == "", (model, transcript.text)
        assert transcript.segments == []


def test_initial_prompt_and_hotwords_are_accepted(runtime, corpus):
    entry = next(e for e in corpus if e["id"] == "en_ami_ES2011a_headset0_40-46s")
    transcript = runtime.transcribe(
        entry["path"], TranscribeOptions(model="base", initial_prompt="Abigail Claflin, Abbie.", hotwords="Claflin")
    )
    assert "abigail" in normalise(transcript.text)


def test_long_file_is_processed_in_bounded_windows(runtime, corpus):
    """Two readings joined into about 2 minutes: segments come in order and cover both halves."""
    sonnet = decode(next(e for e in corpus if e["id"] == "en_librivox_sonnet001")["path"]).samples
    audio = Audio(np.concatenate([sonnet, np.zeros(16000 * 5, np.float32), sonnet]))
    transcript = runtime.transcribe(audio, TranscribeOptions(model="tiny.en"))
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts)
    assert transcript.segments[-1].end > audio.duration - 15
    assert normalise(transcript.text).count("fairest creatures") == 2

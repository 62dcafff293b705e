"""The streaming loop, driven by a scripted fake transcriber and VAD (no model).

Audio is synthetic: each word is a 0.3 s block of a constant value that encodes its index, words are 0.1 s apart
and utterances are separated by silence. The fake decoder reads the words back and garbles a word cut off at the
end of the audio, as Whisper would.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from auricle.engine.types import Word
from auricle.streaming.agreement import normalize_word
from auricle.streaming.recognizer import Hypothesis, Phrase, StreamingRecognizer

RATE = 16_000
WORD_S, GAP_S = 0.3, 0.1
VOCABULARY = [f"w{i}" for i in range(200)]


def synth(utterances: list[int], pause_s: float = 1.5, lead_s: float = 0.5) -> tuple[np.ndarray, list[str]]:
    """Audio of ``utterances`` (word counts) and the words it holds."""
    parts = [np.zeros(int(lead_s * RATE), dtype=np.float32)]
    spoken: list[str] = []
    for count in utterances:
        for _ in range(count):
            index = len(spoken)
            spoken.append(VOCABULARY[index])
            parts.append(np.full(int(WORD_S * RATE), 0.5 + index / 1000, dtype=np.float32))
            parts.append(np.zeros(int(GAP_S * RATE), dtype=np.float32))
        parts.append(np.zeros(int(pause_s * RATE), dtype=np.float32))
    return np.concatenate(parts), spoken


def _runs(samples: np.ndarray) -> list[tuple[int, int]]:
    voiced = np.concatenate([[0], (samples != 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(voiced))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def fake_decode(samples: np.ndarray, prompt: str, final: bool) -> list[Word]:
    words = []
    for start, end in _runs(samples):
        index = round((float(samples[start]) - 0.5) * 1000)
        complete = end - start >= int(WORD_S * RATE) - 1
        # Every fifth word ends a clause (punctuation), where a long utterance may be cut.
        text = f" {VOCABULARY[index]}{',' if index % 5 == 4 else ''}" if complete else f" {VOCABULARY[index]}~"
        words.append(Word(start / RATE, end / RATE, text, 0.9))
    return words


def fake_vad(samples: np.ndarray) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for start, end in _runs(samples):
        if spans and start - spans[-1][1] < 0.5 * RATE:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


class ScriptedDecoder:
    """A :class:`~auricle.engine.protocols.StreamingDecoder` over a decode function."""

    def __init__(self, decode: Callable[[np.ndarray, str, bool], list[Word]]) -> None:
        self.decode = decode


class FakeVad:
    """A :class:`~auricle.engine.protocols.StreamingVad` over :func:`fake_vad`."""

    def speech_samples(self, samples: np.ndarray) -> list[tuple[int, int]]:
        return fake_vad(samples)


def recognizer_over(decode, **kwargs) -> StreamingRecognizer:
    return StreamingRecognizer(ScriptedDecoder(decode), FakeVad(), **kwargs)


def run(audio: np.ndarray, chunk_s: float, **kwargs) -> list[Hypothesis | Phrase]:
    return run_with(fake_decode, audio, chunk_s, **kwargs)


def run_with(decode, audio: np.ndarray, chunk_s: float, **kwargs) -> list[Hypothesis | Phrase]:
    """Stream ``audio`` in ``chunk_s`` steps through a recognizer over ``decode`` and the fake VAD."""
    recognizer = recognizer_over(decode, **kwargs)
    events: list[Hypothesis | Phrase] = []
    step = int(chunk_s * RATE)
    for offset in range(0, len(audio), step):
        events += recognizer.step(audio[offset : offset + step]).events
    events += recognizer.step(np.zeros(0, dtype=np.float32), final=True).events
    return events


def phrase_text(events: list[Hypothesis | Phrase]) -> list[str]:
    return [normalize_word(w) for w in " ".join(e.text for e in events if isinstance(e, Phrase)).split()]


@pytest.mark.parametrize("policy", ["eager", "utterance", "la2"])
@pytest.mark.parametrize("chunk_s", [0.2, 1.0, 5.0, 30.0])
def test_every_word_ends_up_in_exactly_one_phrase(chunk_s, policy):
    # Given three utterances, the second longer than the phrase window
    audio, spoken = synth([4, 30, 6])
    # When it is streamed in chunks of any size (real-time frames to a whole backlog), under any policy
    events = run(audio, chunk_s, window_s=5.0, policy=policy)
    # Then the phrases hold every word once, in order
    assert phrase_text(events) == spoken


def test_hypotheses_come_before_the_phrase_of_an_utterance():
    audio, spoken = synth([8])
    events = run(audio, 0.2)
    kinds = [type(e).__name__ for e in events]
    assert kinds[-1] == "Phrase" and "Hypothesis" in kinds
    assert kinds.index("Hypothesis") < kinds.index("Phrase")
    assert phrase_text(events) == spoken


def test_silence_produces_no_events():
    events = run(np.zeros(10 * RATE, dtype=np.float32), 0.2)
    assert events == []


def test_a_long_utterance_gives_phrases_before_it_ends():
    audio, _ = synth([40])
    events = run(audio, 0.2, window_s=3.0)
    phrases = [e for e in events if isinstance(e, Phrase)]
    assert len(phrases) >= 3
    assert all(p.end - p.start < 6.0 for p in phrases)


def test_offsets_continue_from_the_resume_point():
    audio, spoken = synth([3])
    events = run(audio, 0.2, base_s=100.0, policy="utterance")
    phrase = next(e for e in events if isinstance(e, Phrase))
    assert phrase.start == pytest.approx(100.5, abs=0.05)
    assert phrase.resume_s >= phrase.end
    assert phrase.text.split() == spoken


def test_resumed_recognizer_does_not_repeat_confirmed_words():
    # Given a checkpoint taken mid-utterance: words w0-w3 confirmed, ending at 2.1 s
    audio, spoken = synth([8])
    recognizer = recognizer_over(fake_decode, base_s=1.5, committed_time=2.1, prompt="w0 w1 w2 w3", window_s=10)
    # When the audio is sent again from the resume point (1.5 s)
    events = recognizer.step(audio[int(1.5 * RATE) :], final=True).events
    # Then only the words after the confirmed ones come out
    assert phrase_text(events) == spoken[4:]


def greedy_garbles(samples: np.ndarray, prompt: str, final: bool) -> list[Word]:
    """Like :func:`fake_decode`, but the tentative (greedy) decodes get every third word wrong, consistently."""
    words = fake_decode(samples, prompt, final)
    if final:
        return words
    return [Word(w.start, w.end, f"{w.word}x" if int(normalize_word(w.word)[1:]) % 3 == 0 else w.word) for w in words]


@pytest.mark.parametrize("chunk_s", [0.2, 1.0])
def test_phrases_of_a_long_utterance_come_from_final_decodes(chunk_s):
    # Given one utterance much longer than the window, and tentative decodes that agree on wrong words
    audio, spoken = synth([40])
    events = run_with(greedy_garbles, audio, chunk_s, window_s=3.0, policy="utterance")
    # Then it is emitted in several phrases before it ends, and every phrase holds the final decode's words
    phrases = [e for e in events if isinstance(e, Phrase)]
    assert len(phrases) >= 3
    assert phrase_text(events) == spoken


def test_final_decodes_see_the_audio_before_them_but_not_its_words_in_the_prompt():
    # Given two utterances, the decodes the recognizer asks for are recorded
    audio, spoken = synth([5, 5])
    calls: list[tuple[float, str, bool]] = []

    def recording(samples: np.ndarray, prompt: str, final: bool) -> list[Word]:
        calls.append((len(samples) / RATE, prompt, final))
        return fake_decode(samples, prompt, final)

    events = run_with(recording, audio, 0.2, policy="utterance")
    finals = [c for c in calls if c[2]]
    # Then the second utterance's final decode also holds the first utterance's audio (context) ...
    assert finals[-1][0] > 5 * (WORD_S + GAP_S) + 1.0
    # ... with the prompt from before that audio (here: nothing), and the first utterance's words come out once
    assert finals[-1][1] == ""
    assert phrase_text(events) == spoken


def test_a_long_utterance_without_clause_ends_is_cut_only_when_the_buffer_is_full():
    # Given a long utterance whose decodes show no punctuation
    audio, spoken = synth([60])

    def unpunctuated(samples: np.ndarray, prompt: str, final: bool) -> list[Word]:
        return [Word(w.start, w.end, w.word.rstrip(","), w.probability) for w in fake_decode(samples, prompt, final)]

    events = run_with(unpunctuated, audio, 0.5, window_s=3.0, max_buffer_s=16.0, policy="utterance")
    phrases = [e for e in events if isinstance(e, Phrase)]
    # Then it is not cut at every window, only about when the buffer (8 s of decodes here) fills, and no word is lost
    assert len(phrases) >= 2
    assert all(p.end - p.start > 4.0 for p in phrases[:-1])
    assert phrase_text(events) == spoken


def test_a_final_decode_that_skips_audio_is_not_trusted():
    # Given final decodes that stop halfway (as Whisper sometimes does), tentative decodes being right
    audio, spoken = synth([12, 12])

    def stops_early(samples: np.ndarray, prompt: str, final: bool) -> list[Word]:
        words = fake_decode(samples, prompt, final)
        return words[: len(words) // 2] if final else words

    events = run_with(stops_early, audio, 0.2, window_s=30.0)
    # Then the phrases keep the words the tentative decodes agreed on
    assert phrase_text(events) == spoken


def test_what_a_step_has_is_published_before_its_final_decode():
    # Given a long utterance streamed in 1 s steps, with a hook for early results
    audio, _ = synth([20])
    log: list[str] = []

    def decode(samples: np.ndarray, prompt: str, final: bool) -> list[Word]:
        log.append("final" if final else "tentative")
        return fake_decode(samples, prompt, final)

    recognizer = recognizer_over(decode, window_s=3.0, policy="utterance")
    for offset in range(0, len(audio), RATE):
        recognizer.step(audio[offset : offset + RATE], early=lambda part: log.append(f"early:{len(part.events)}"))
    # Then the hypothesis of a step that cuts a phrase is published before the phrase's final decode
    finals = [i for i, entry in enumerate(log) if entry == "final"]
    assert len(finals) >= 3
    assert sum(log[i - 1] == "early:1" for i in finals) >= 2


def test_eager_confirms_words_while_the_utterance_goes_on():
    # Given one long utterance streamed in real-time frames
    audio, spoken = synth([30])
    recognizer = recognizer_over(fake_decode)
    lags: list[float] = []
    step = int(0.2 * RATE)
    for offset in range(0, len(audio), step):
        now = (offset + step) / RATE
        lags += [now - e.end for e in recognizer.step(audio[offset : offset + step]).events if isinstance(e, Phrase)]
    # Then words come out in many phrases, each within about two steps of its audio, not at the pause
    assert len(lags) >= 10
    assert max(lags) < 2.0


def truncating_decode(samples: np.ndarray, prompt: str, final: bool) -> list[Word]:
    """Whisper on audio that ends inside a word may hear a shorter word ("America" of "Americans") with the same
    confidence: here a whole word reads ``wNs`` and a cut-off one ``wN``, so two decodes cut in it agree."""
    return [
        Word(w.start, w.end, w.word.replace("~", "") if w.word.endswith("~") else f"{w.word.rstrip(',')}s", 0.9)
        for w in fake_decode(samples, prompt, final)
    ]


@pytest.mark.parametrize("policy", ["eager", "utterance"])
def test_a_word_cut_off_by_the_end_of_the_audio_is_not_confirmed_even_when_two_decodes_agree(policy):
    # Given decodes every 0.1 s, so that two in a row end inside the same word and both hear it cut short
    audio, spoken = synth([12, 8])
    # When it is streamed in real-time frames
    events = run_with(truncating_decode, audio, 0.1, interval_s=0.1, window_s=3.0, policy=policy)
    # Then every phrase holds whole words only: a word is confirmed once a decode has heard past its end
    assert phrase_text(events) == [f"{word}s" for word in spoken]


def test_eager_keeps_a_word_whisper_split_in_two_in_one_phrase_when_the_rest_comes_a_decode_later():
    # Given a word (the sixth) that decodes as "w5" alone until the decoder has heard well past it, and then as
    # "w5" "-tail" (as Whisper gave "bud," and later "bud" "-buriest")
    audio, _ = synth([12])

    def decode(samples: np.ndarray, prompt: str, final: bool) -> list[Word]:
        words = fake_decode(samples, prompt, final)
        split = next((i for i, w in enumerate(words) if w.word.strip(" ,") == "w5"), None)
        if split is None:
            return words
        heard_past = len(samples) / RATE - words[split].end
        if heard_past < 1.2:
            return words[: split + 1]
        tail = Word(words[split].end, words[split].end + 0.05, "-tail", 0.9)
        return [*words[: split + 1], tail, *words[split + 1 :]]

    # When it is streamed in real-time frames with eager phrases
    events = run_with(decode, audio, 0.2, policy="eager", interval_s=0.2)
    # Then the two pieces are never in different phrases
    phrases = [e.text for e in events if isinstance(e, Phrase)]
    assert not any(p.rstrip(" ,").endswith("w5") for p in phrases), phrases
    assert any("w5-tail" in p.replace(",", "") for p in phrases), phrases


def test_the_rest_of_a_word_whose_start_is_out_already_opens_its_phrase_as_a_word():
    # Given a word (the seventh) that decodes as " w6" until the decoder has heard 0.3 s past it, and then as
    # "-w6", the rest of the word before it (as Whisper gave "to" "cruel" and later "to" "-cruel"): "w5" goes out
    # in a phrase while " w6" is heard after it, and the decodes then agree on "-w6"
    audio, spoken = synth([12])

    def decode(samples: np.ndarray, prompt: str, final: bool) -> list[Word]:
        words = fake_decode(samples, prompt, final)
        heard_past = len(samples) / RATE - next((w.end for w in words if w.word.strip(" ,") == "w6"), np.inf)
        split = heard_past >= 0.3
        return [Word(w.start, w.end, "-w6", w.probability) if split and w.word == " w6" else w for w in words]

    # When it is streamed in real-time frames with eager phrases
    events = run_with(decode, audio, 0.2, policy="eager", interval_s=0.2)
    phrases = [e.text for e in events if isinstance(e, Phrase)]
    # Then "w6" opens a phrase of its own, with no joiner before it, and every word is there once
    assert any(p.startswith("w6") for p in phrases), phrases
    assert not any(p.startswith("-") for p in phrases), phrases
    assert phrase_text(events) == spoken


def loops_at_the_pause(samples: np.ndarray, prompt: str, final: bool) -> list[Word]:
    """Like :func:`fake_decode`, but a greedy decode that hears an utterance end (w9 and silence after it) loops,
    as Whisper does now and then: it says the three words before w9 again, unsure of them ("much more in it than it
    was. The much more in it than he said", AMI trn00). The beam (final) decode does not."""
    words = fake_decode(samples, prompt, final)
    ends = [i for i, w in enumerate(words) if normalize_word(w.word) == "w9" and len(samples) / RATE - w.end > 0.2]
    if final or not ends or ends[0] < 3:
        return words
    i = ends[0]
    # Whisper crams the repeated words into the time of the next one.
    start, step = words[i].start, (words[i].end - words[i].start) / 5
    again = [Word(start + k * step, start + (k + 1) * step, w.word, 0.3) for k, w in enumerate(words[i - 3 : i])]
    return words[:i] + again + [Word(start + 3 * step, words[i].end, words[i].word, words[i].probability)]


@pytest.mark.parametrize("chunk_s", [0.2, 0.5, 1.0])
@pytest.mark.parametrize("policy", ["eager", "utterance"])
def test_a_loop_in_the_tentative_decodes_is_not_emitted_when_the_final_decode_has_none(chunk_s, policy):
    # Given an utterance whose greedy decodes loop once they hear its end
    audio, spoken = synth([10, 4])
    events = run_with(loops_at_the_pause, audio, chunk_s, interval_s=0.2, policy=policy)
    # Then every word comes out once: the final decode, without the loop, is taken though it has fewer words
    assert phrase_text(events) == spoken


SAID_AGAIN = {6: 1, 7: 2, 8: 3}  # the speaker says w1 w2 w3 again as w6 w7 w8


def says_again(*, greedy_stops_early: bool = False, beam_skips: bool = False):
    """Like :func:`fake_decode`, but the second utterance's w6 w7 w8 are the words w1 w2 w3 said again ("what your
    country can do for you, ask what you can do for your country"). ``greedy_stops_early``: greedy decodes stop
    after w7, as Whisper does now and then (JFK, base: "ask what you can do."). ``beam_skips``: the beam (final)
    decode ends early, stretching w5 over the rest (AMI trn00, base: "... and stuff." over 3.5 s where the greedy
    decodes heard "duplication of effort and stuff")."""

    def decode(samples: np.ndarray, prompt: str, final: bool) -> list[Word]:
        words: list[Word] = []
        for word in fake_decode(samples, prompt, final):
            index = int(normalize_word(word.word)[1:])
            if greedy_stops_early and not final and index >= 8:
                break
            if beam_skips and final and index > 5 and words:
                words[-1] = Word(words[-1].start, word.end, words[-1].word, words[-1].probability)
                continue
            said = index if word.word.endswith("~") else SAID_AGAIN.get(index, index)
            words.append(Word(word.start, word.end, word.word.replace(f"w{index}", f"w{said}"), word.probability))
        return words

    return decode


@pytest.mark.parametrize("chunk_s", [0.2, 0.5, 1.0])
@pytest.mark.parametrize(
    ("fault", "policy"),
    # (Not beam_skips under eager: there the final decode covers only the words still pending, and one that ends
    # early loses the last word, w9; the word-count guard allows one word short. Known, not mended here.)
    [("greedy_stops_early", "eager"), ("greedy_stops_early", "utterance"), ("beam_skips", "utterance")],
)
def test_words_the_speaker_says_again_are_kept_when_one_decode_misses_them(fault, policy, chunk_s):
    # Given a second utterance that says the first one's last three words again, which either the greedy decodes
    # miss (they stop early) or the final decodes skip
    audio, spoken = synth([4, 6])
    spoken = [f"w{SAID_AGAIN.get(int(w[1:]), int(w[1:]))}" for w in spoken]
    events = run_with(says_again(**{fault: True}), audio, chunk_s, interval_s=0.2, policy=policy)
    # Then the decode that has them wins: the repeat is speech, not a loop
    assert phrase_text(events) == spoken

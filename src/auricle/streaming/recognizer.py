"""The streaming recognition loop over one session's audio: VAD endpointing, re-decoding of the unconfirmed tail,
LocalAgreement-2 confirmation, and the phrases and hypotheses that result.

Tentative decodes (cheap, greedy) drive hypotheses and tell when words are settled; the text of a phrase comes
from one final decode (beam search) of its audio with up to ``_CONTEXT_S`` of the audio before it, taken when a
pause ends the utterance or, in long speech, at a clause end. That keeps a streamed transcript as accurate as a
batch one: words agreed between short greedy decodes lose a few in a hundred against it.

:class:`StreamingRecognizer` is pure: it gets a :class:`~auricle.engine.protocols.StreamingDecoder` and a
:class:`~auricle.engine.protocols.StreamingVad`, so tests drive it with scripted fakes and no model. It is not
thread-safe; the scheduler runs at most one step of a session at a time.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from auricle.engine.protocols import StreamingDecoder, StreamingVad
from auricle.engine.types import SAMPLE_RATE, Word
from auricle.streaming.agreement import LocalAgreement, join_words, normalize_word

__all__ = ["Hypothesis", "Phrase", "Policy", "StepResult", "StreamingRecognizer"]

Policy = Literal["eager", "utterance", "la2"]
"""When words become final: see :class:`StreamingRecognizer`."""

logger = logging.getLogger(__name__)

_PAD_S = 0.3  # audio kept before speech and after its end when decoding
_MAX_DECODE_S = 28.0  # Whisper sees at most 30 s
_PROMPT_CHARS = 200
_PROMPT_WORDS = 80  # words kept with times, for prompts before context audio
_MIN_PHRASE_S = 3.0  # speech an utterance needs before a short pause may end it
_LONG_ENDPOINT_S = 1.2  # a pause that ends an utterance of any length
_GAP_S = 0.1  # a pause between confirmed words where the buffer may be cut
_TAIL_S = 0.2  # audio decoded after the end of an utterance's speech
_CONTEXT_S = 15.0  # emitted audio a final decode sees before the speech it decodes
_TAIL_HYPOTHESIS = 0.3 * SAMPLE_RATE  # undecoded speech at an utterance end that gets a hypothesis first
_EAGER_MIN_PROBABILITY = 0.5  # an agreed word less likely than this is doubtful (eager)
_EAGER_BUFFER_S = 6.0  # eager keeps decodes about this short: the words before are out already (a prompt)
_DOUBT_S = 1.0  # audio after a doubtful word that agreeing decodes must have heard to confirm it (eager)
_EDGE_S = 0.4  # a word ending this close to the end of the decoded audio is not confirmed yet
_MIN_FINAL_SHARE = 0.75  # a final decode with fewer words than this share of the tentative ones skipped audio


@dataclass
class Hypothesis:
    """Interim text of the phrase being recognised (confirmed words plus the tentative tail)."""

    start: float
    end: float
    text: str


@dataclass
class Phrase:
    """Final text of a completed stretch of speech."""

    start: float
    end: float
    text: str
    confidence: float
    resume_s: float = 0.0
    """Session time from which a resumed session must be sent audio again to continue after this phrase."""


@dataclass
class StepResult:
    """What one step produced, plus word end times for latency metrics."""

    events: list[Hypothesis | Phrase] = field(default_factory=list)
    hypothesized: list[float] = field(default_factory=list)
    confirmed: list[float] = field(default_factory=list)


class StreamingRecognizer:
    """Turns a stream of 16 kHz samples into hypotheses and phrases.

    Args:
        decoder: the transcriber.
        vad: the speech detector (its minimum silence is ``endpoint_s``).
        base_s: session time (s) of the first sample fed (non-zero after a resume).
        window_s: longest phrase; past it, the confirmed words are emitted as a phrase without waiting for a pause.
        overlap_s: confirmed audio kept as context when the buffer is shortened.
        interval_s: new audio needed before the tentative tail is decoded again.
        endpoint_s: silence that ends an utterance (must match the VAD's minimum silence).
        max_buffer_s: most audio to hold; decodes are kept to about half of it (and under 30 s).
        committed_time: end (s) of the last confirmed word (resume).
        prompt: text confirmed earlier (resume), used as the decoding prompt.
        policy: when confirmed words go out as a phrase. ``eager``: as soon as two tentative decodes agree on them
            (a phrase per step; the phrase text is exactly the agreed words, so no boundary is ever decoded twice),
            a word near the end of the decoded audio (it may be cut off) or a doubtful one waiting for decodes that
            hear past it; the words left at a pause come from one more decode (a final beam decode with context
            when one of them is doubtful). ``utterance``: one phrase per pause, or clause end in long speech, whose
            text comes from a final beam decode of the whole phrase. ``la2``: plain LocalAgreement-2 (no VAD
            endpointing, no final decode), the published policy, kept as a benchmark contender.
    """

    def __init__(
        self,
        decoder: StreamingDecoder,
        vad: StreamingVad,
        *,
        base_s: float = 0.0,
        window_s: float = 5.0,
        overlap_s: float = 0.5,
        interval_s: float = 1.0,
        endpoint_s: float = 0.5,
        max_buffer_s: float = 24.0,
        committed_time: float = 0.0,
        prompt: str = "",
        policy: Policy = "eager",
    ) -> None:
        self._decoder = decoder
        self._policy = policy
        self._vad = vad
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = round(base_s * SAMPLE_RATE)  # session sample index of _buf[0]
        self._window = window_s
        self._trim_s = max(2.0, min(_MAX_DECODE_S / 2, max_buffer_s / 2))
        self._hard_s = 2 * self._trim_s
        self._overlap = min(overlap_s, self._trim_s / 2)
        self._interval = interval_s
        self._endpoint = round(endpoint_s * SAMPLE_RATE)
        self._long_endpoint = round(max(endpoint_s, _LONG_ENDPOINT_S) * SAMPLE_RATE)
        self._min_phrase = _MIN_PHRASE_S
        self._agreement = LocalAgreement(committed_time, prompt.split()[-5:])
        self._emitted_time = committed_time
        self._emitted_tail = prompt.split()[-5:]
        self._phrase_words: list[Word] = []
        self._buffer_words: list[Word] = []  # confirmed words still inside the buffer
        self._decoded_until = self._buf_start
        self._hypothesized_until = committed_time
        self._last_hypothesis = ""
        self._prompt = prompt[-_PROMPT_CHARS:]
        self._history = np.zeros(0, dtype=np.float32)  # audio before the buffer, up to _CONTEXT_S
        self._gone: list[Word] = []  # recent words in the prompt, with times
        self._early: Callable[[StepResult], None] | None = None
        self._phrase_starts: list[int] = []  # session sample where recent phrases' audio starts

    @property
    def buffered_s(self) -> float:
        """Audio held and not yet emitted as a phrase (s)."""
        return len(self._buf) / SAMPLE_RATE

    @property
    def accounted_s(self) -> float:
        """Session time up to which all audio is reflected in emitted phrases (the resume point)."""
        return self._buf_start / SAMPLE_RATE

    @property
    def committed_time(self) -> float:
        """End (s) of the last confirmed word."""
        return self._agreement.committed_time

    @property
    def pending_text(self) -> bool:
        """Whether confirmed or tentative words wait to be emitted."""
        return bool(self._phrase_words or self._agreement.tentative)

    def step(
        self, samples: np.ndarray, *, final: bool = False, early: Callable[[StepResult], None] | None = None
    ) -> StepResult:
        """Append ``samples`` and recognise what is now decidable; with ``final`` flush everything.

        Args:
            samples: new 16 kHz audio.
            final: the stream ended.
            early: receives what the step has produced so far before each final decode (the slow part), so
                hypotheses reach the client without waiting for it; the returned result holds the rest.
        """
        self._early = early
        if len(samples):
            self._buf = np.concatenate([self._buf, samples.astype(np.float32, copy=False)])
        result = StepResult()
        if self._policy == "la2":
            self._la2_step(result, final)
            return result
        pad = round(_PAD_S * SAMPLE_RATE)
        while True:
            spans = self._vad.speech_samples(self._buf) if len(self._buf) >= SAMPLE_RATE // 10 else []
            if not spans:
                self._no_speech(result, final)
                break
            start = max(0, spans[0][0] - pad)
            found = self._utterance_end(spans)
            if found is None and final:
                found = (len(self._buf), spans[-1][1])
            if found is None:
                self._tentative(result, start, spans[-1][1])
                break
            if self._early and not final and found[1] - (self._decoded_until - self._buf_start) >= _TAIL_HYPOTHESIS:
                # Speech since the last decode would otherwise show only after the final decode: hypothesise it
                # first (a tentative decode costs a fraction of a final one).
                self._hypothesize(result, start, found[1], found[1])
            # Then look again: what remains may hold the next utterance (or, when final, nothing).
            self._finish_utterance(result, start, *found)
        return result

    def _utterance_end(self, spans: list[tuple[int, int]]) -> tuple[int, int] | None:
        """Where the first finished utterance in the buffer may be cut and where its speech ends, if there is one.

        An utterance ends at a pause of at least the endpoint silence once it holds enough speech to decode well
        on its own, or at a long pause whatever its length: short fragments decoded alone come out poorly.
        """
        group_start = spans[0][0]
        for index, (_, end) in enumerate(spans):
            following = spans[index + 1][0] if index + 1 < len(spans) else len(self._buf)
            gap = following - end
            long_enough = end - group_start >= self._min_phrase * SAMPLE_RATE
            if gap >= self._long_endpoint or (gap >= self._endpoint and long_enough):
                return min(end + round(_PAD_S * SAMPLE_RATE), (end + following) // 2), end
        return None

    # -- steps ---------------------------------------------------------------------------------------------------

    def _la2_step(self, result: StepResult, final: bool) -> None:
        """Plain LocalAgreement-2: decode the whole buffer, emit what two decodes agree on, trim when long."""
        if len(self._buf) and (
            final or self._buf_start + len(self._buf) - self._decoded_until >= self._interval * SAMPLE_RATE
        ):
            self._hypothesize(result, 0, len(self._buf), len(self._buf))
            if len(self._buf) > self._trim_s * SAMPLE_RATE:
                self._shorten(result)
        if final:
            self._emit_phrase(result, self._agreement.complete(), len(self._buf))
            self._trim(len(self._buf))

    def _no_speech(self, result: StepResult, final: bool) -> None:
        keep = 0 if final else min(len(self._buf), round(_PAD_S * SAMPLE_RATE))
        if self.pending_text:
            # Speech that VAD no longer sees (e.g. trimmed) still gets its words out.
            self._emit_phrase(result, self._agreement.complete(), len(self._buf) - keep)
        self._trim(len(self._buf) - keep)

    def _finish_utterance(self, result: StepResult, start: int, cut: int, speech_end: int) -> None:
        """Decode the whole utterance once more and confirm all of it.

        In ``eager`` most of it is out already; when nothing doubtful is left, the rest comes from one more
        tentative decode (which hears the whole utterance now), not from a final one, which costs several times
        more and would delay every other session.
        """
        end = min(cut, speech_end + round(_TAIL_S * SAMPLE_RATE))
        if self._policy == "eager" and not self._phrase_words:
            offset = (self._buf_start + start) / SAMPLE_RATE
            quick = [w.shifted(offset) for w in self._decoder.decode(self._buf[start:end], self._prompt, False)]
            quick = _strip_invented_tail(quick, (self._buf_start + speech_end) / SAMPLE_RATE)
            pending = self._phrase_agreement(quick).pending
            if all(w.probability >= _EAGER_MIN_PROBABILITY for w in pending) and self._repeat_against(pending) <= 0:
                self._note_hypothesized(result, quick)
                self._restart_phrase(quick)
                self._emit_phrase(result, self._agreement.complete(), cut)
                self._trim(cut)
                return
        words = self._decode_phrase(result, start, end, speech_end)
        if words is not None:
            self._restart_phrase(words)
        self._emit_phrase(result, self._agreement.complete(), cut)
        self._trim(cut)

    def _finish_window(self, result: StepResult, start: int, speech_end: int, *, forced: bool) -> bool:
        """A long stretch without a pause: emit its confirmed part as a phrase now (latency).

        The emitted words come from one more decode, with the final beam, of everything buffered (the audio after
        the confirmed words is right context), cut between words up to the confirmed time: at the end of a clause
        (a word Whisper ends with punctuation, then a pause), or when ``forced`` (the buffer is full) at the
        longest pause. A cut mid-clause costs the next decode its context; greedy words agreed between short
        decodes would lose a few words in a hundred. The audio after the cut stays for the next decodes.
        Returns False when there is no such cut.
        """
        confirmed_until = self.committed_time
        words = self._decode_phrase(result, start, len(self._buf), speech_end)
        if words is None:
            return False
        agreement = self._phrase_agreement(words)
        cut_s = _cut_point(agreement.pending, self._window / 2, confirmed_until, clause=not forced)
        if cut_s is None:
            return False
        self._restart_phrase(words)
        self._emit_phrase(result, self._agreement.complete(cut_s), round(cut_s * SAMPLE_RATE) - self._buf_start)
        # The words after the cut are decoded again from the new buffer start.
        self._agreement = LocalAgreement(self._emitted_time, self._emitted_tail)
        self._trim(round(cut_s * SAMPLE_RATE) - self._buf_start)
        return True

    def _decode_phrase(self, result: StepResult, start: int, end: int, speech_end: int) -> list[Word] | None:
        """The final decode of ``_buf[start:end]``, checked against the tentative words of the same audio.

        Whisper sometimes ends a decode early and skips the rest of its input. A final decode with clearly fewer
        words than the tentative decodes saw is tried again without context; if that fails too, None: the caller
        keeps the tentative words.
        """
        if self._early and (result.events or result.hypothesized or result.confirmed):
            self._early(StepResult(result.events[:], result.hypothesized[:], result.confirmed[:]))
            result.events.clear()
            result.hypothesized.clear()
            result.confirmed.clear()
        expected = len(self._phrase_words) - len(self._kept_phrase_words()) + len(self._agreement.tentative)
        # Eager decodes hear the whole utterance in the buffer: the audio before it adds little for its cost.
        for context in (False,) if self._policy == "eager" else (True, False):
            words = self._final_decode(result, start, end, speech_end, context=context)
            pending = self._phrase_agreement(words).pending
            repeat = self._repeat_against(pending)
            # (A tentative decode that looped makes too many words expected.)
            if repeat < 0 or (repeat == 0 and len(pending) >= _MIN_FINAL_SHARE * expected - 1):
                return words
            logger.debug("final decode gave %d words where %d were expected, or looped", len(words), expected)
        return None

    def _repeat_against(self, pending: list[Word]) -> int:
        """1 when a decode of the phrase says three words twice (with the words just before it) where the tentative
        decodes said them once, -1 the other way round, else 0: Whisper loops ("much more in it than it was. The
        much more in it than he said", where batch heard it once), and either decode may be the one that looped.
        Speech said twice ("what your country can do for you, ask what you can do for your country") is in both
        once both have heard it, so a repeat counts only where the other decode's words reach.
        """
        kept = self._kept_phrase_words()
        before = self._emitted_tail + [w.word for w in kept]
        tentative = self._phrase_words[len(kept) :] + self._agreement.tentative
        if not pending or not tentative:
            return 0
        new = _repeated_trigrams(before, pending, until=tentative[-1].end)
        old = _repeated_trigrams(before, tentative, until=pending[-1].end)
        if old - new and not new - old:
            # Unless the decode without the repeat ended early, stretching its last word over it ("and stuff." over
            # 3.5 s where the tentative decodes heard "duplication of effort and stuff", AMI trn00).
            return 1 if _stretched_over(pending, tentative) else -1
        return 1 if new - old else 0

    def _final_decode(
        self, result: StepResult, start: int, end: int, speech_end: int, *, context: bool = True
    ) -> list[Word]:
        """Decode ``_buf[start:end]`` with the final beam; words in session time, invented tail removed.

        The decode also sees up to ``_CONTEXT_S`` of the audio before (already emitted), prompted with the text
        before that, as a batch decode of a 30 s window would: words decoded in their sentence come out better.
        The repeated words are dropped again by :meth:`_phrase_agreement`.
        """
        audio = self._buf[start:end]
        if not len(audio):
            return []
        room = round(min(_CONTEXT_S, _MAX_DECODE_S - len(audio) / SAMPLE_RATE) * SAMPLE_RATE) if context else 0
        # The context starts where an earlier phrase did, as a batch decode's window starts at a segment.
        available = len(self._history) + start
        first = self._buf_start + start - min(room, available)
        begin = next((b for b in self._phrase_starts if b >= first), self._buf_start + start)
        before = np.concatenate([self._history, self._buf[:start]])[available - (self._buf_start + start - begin) :]
        offset = (self._buf_start + start - len(before)) / SAMPLE_RATE
        prompt = self._prompt_before(offset)
        words = [w.shifted(offset) for w in self._decoder.decode(np.concatenate([before, audio]), prompt, True)]
        words = _strip_invented_tail(words, (self._buf_start + speech_end) / SAMPLE_RATE)
        self._note_hypothesized(result, words)
        return words

    def _phrase_agreement(self, words: list[Word]) -> LocalAgreement:
        """An agreement holding ``words``, a decode of the buffered speech, as the phrase's only hypothesis.

        Words confirmed since the last phrase were never promised to the client (only hypotheses showed them),
        so the new decode replaces them; words whose audio was already dropped from the buffer stay (and the
        decode's copies of them, and of earlier phrases, are dropped).
        """
        kept = self._kept_phrase_words()
        tail = self._emitted_tail + [w.word for w in kept]
        agreement = LocalAgreement(kept[-1].end if kept else self._emitted_time, tail[-5:])
        agreement.insert(words)
        return agreement

    def _kept_phrase_words(self) -> list[Word]:
        return [w for w in self._phrase_words if w.end * SAMPLE_RATE <= self._buf_start]

    def _restart_phrase(self, words: list[Word]) -> None:
        """Make ``words`` the phrase's only hypothesis (see :meth:`_phrase_agreement`)."""
        self._agreement = self._phrase_agreement(words)
        kept = self._kept_phrase_words()
        replaced = {id(w) for w in self._phrase_words[len(kept) :]}
        self._buffer_words = [w for w in self._buffer_words if id(w) not in replaced]
        self._phrase_words = kept

    def _tentative(self, result: StepResult, start: int, speech_end: int) -> None:
        end = self._buf_start + len(self._buf)
        if end - self._decoded_until < self._interval * SAMPLE_RATE:
            return
        self._hypothesize(result, start, len(self._buf), speech_end)
        forced = len(self._buf) > self._trim_s * SAMPLE_RATE
        if self._policy == "eager" and len(self._buf) > _EAGER_BUFFER_S * SAMPLE_RATE:
            # A decode costs in proportion to its audio: drop emitted audio (its words become the prompt).
            self._shorten(result)
        long = bool(self._phrase_words) and end / SAMPLE_RATE - self._phrase_words[0].start > self._window
        # A long phrase is cut where the tentative words show a clause end (checked first: a final decode costs).
        clause = long and _cut_point(self._phrase_words, self._window / 2, self.committed_time, clause=True)
        cut = bool(self._phrase_words) and (clause or forced)
        if cut and not self._finish_window(result, start, speech_end, forced=forced) and forced:
            # No pause to cut at: the confirmed words go out as they are, while the audio stays as context for the
            # next decodes; words before the confirmed time are skipped by time.
            self._emit_phrase(result, [], 0)
        if len(self._buf) > self._trim_s * SAMPLE_RATE:
            self._shorten(result)

    def _hypothesize(self, result: StepResult, start: int, end: int, speech_end: int) -> None:
        """Decode ``_buf[start:end]`` tentatively: confirm what two decodes agree on, show the rest."""
        self._decoded_until = self._buf_start + end
        offset = (self._buf_start + start) / SAMPLE_RATE
        words = [w.shifted(offset) for w in self._decoder.decode(self._buf[start:end], self._prompt, False)]
        # Two decodes can invent the same words at the edge of the audio; agreement would then confirm them.
        words = _strip_invented_tail(words, (self._buf_start + speech_end) / SAMPLE_RATE)
        self._agreement.insert(words)
        confirmed = self._agreement.flush(None if self._policy == "la2" else self._settled_by(self._buf_start + end))
        self._phrase_words.extend(confirmed)
        self._buffer_words.extend(confirmed)
        result.confirmed.extend(w.end for w in confirmed)
        if self._policy != "utterance":
            self._emit_agreed(result)
        current = self._phrase_words + self._agreement.tentative
        self._note_hypothesized(result, current)
        text = join_words(current)
        if text and text != self._last_hypothesis:
            result.events.append(Hypothesis(current[0].start, current[-1].end, text))
            self._last_hypothesis = text

    def _settled_by(self, end: int) -> Callable[[Word], bool]:
        """Whether two agreeing decodes of audio up to session sample ``end`` settle a word (not ``la2``, which
        stays as published).

        A word ending at the very end of the decoded audio may be cut off there ("America" of "Americans") even when
        both decodes heard it so: it waits for a decode that hears past it. In ``eager`` a doubtful word (a rare
        name, "ask" heard as "asked") waits until the decodes that agree on it heard ``_DOUBT_S`` after it.
        """
        end_s = end / SAMPLE_RATE

        def settled(word: Word) -> bool:
            doubtful = self._policy == "eager" and word.probability < _EAGER_MIN_PROBABILITY
            return word.end <= end_s - (_DOUBT_S if doubtful else _EDGE_S)

        return settled

    def _emit_agreed(self, result: StepResult) -> None:
        """Emit the confirmed words as a phrase now (``eager``, ``la2``); see :meth:`_settled_by` for when a word
        counts as confirmed."""
        words = self._phrase_words[:]
        following = [*self._phrase_words[len(words) :], *self._agreement.tentative]
        if self._policy == "eager" and words and not following:
            # Nothing decoded after the last word yet: the rest of it may still come ("bud" then "-buriest").
            following.insert(0, words.pop())
        while words and following and not _starts_word(following[0]):
            # A word Whisper split in two ("self" "-substantial") stays in one phrase.
            following.insert(0, words.pop())
        if not words:
            return
        held = self._phrase_words[len(words) :]
        self._phrase_words = words
        self._emit_phrase(result, [], 0)
        self._phrase_words = held

    def _shorten(self, result: StepResult) -> None:
        """Keep decodes short: drop audio up to a pause between confirmed words, or force words out."""
        latest = self.committed_time - self._overlap
        cut_s = None
        for before, after in zip(self._buffer_words, self._buffer_words[1:], strict=False):
            if after.start - before.end >= _GAP_S and before.end <= latest:
                cut_s = (before.end + after.start) / 2
        if cut_s is None and self._buffer_words:
            cut_s = max(self._buf_start / SAMPLE_RATE, latest)
        if cut_s is not None and cut_s * SAMPLE_RATE - self._buf_start >= SAMPLE_RATE:
            self._trim(round(cut_s * SAMPLE_RATE) - self._buf_start)
            return
        if len(self._buf) <= self._hard_s * SAMPLE_RATE:
            return
        # Nothing agreed for a long time: accept the tentative words but the last (it may be cut off).
        tentative = self._agreement.tentative
        if len(tentative) > 1:
            upto = tentative[-2].end
            self._emit_phrase(result, self._agreement.complete(upto), 0)
            self._trim(round(upto * SAMPLE_RATE) - self._buf_start)
        else:
            # No words at all in a long stretch (noise VAD took for speech): let its oldest part go.
            self._trim(len(self._buf) - round(self._trim_s * SAMPLE_RATE))

    # -- helpers -------------------------------------------------------------------------------------------------

    def _note_hypothesized(self, result: StepResult, words: list[Word]) -> None:
        fresh = [w.end for w in words if w.end > self._hypothesized_until]
        if fresh:
            result.hypothesized.extend(fresh)
            self._hypothesized_until = fresh[-1]

    def _emit_phrase(self, result: StepResult, more: list[Word], cut: int) -> None:
        result.confirmed.extend(w.end for w in more)
        self._buffer_words.extend(more)
        words = self._phrase_words + more
        self._phrase_words = []
        self._last_hypothesis = ""
        if words and not _starts_word(words[0]) and self._emitted_tail:
            # The rest of a word whose start is out already ("to" | "-cruel": a later decode heard "to-cruel"):
            # it reads as a word of its own rather than opening the phrase with a joiner.
            words[0] = replace(words[0], word=" " + words[0].word.lstrip(" -"))
        text = join_words(words)
        if not text:
            return
        self._emitted_time = words[-1].end
        self._phrase_starts = [*self._phrase_starts[-20:], max(0, round((words[0].start - _PAD_S) * SAMPLE_RATE))]
        self._emitted_tail = (self._emitted_tail + [w.word for w in words])[-5:]
        confidence = float(np.mean([w.probability for w in words]))
        resume_s = (self._buf_start + max(0, min(cut, len(self._buf)))) / SAMPLE_RATE
        result.events.append(Phrase(words[0].start, words[-1].end, text, confidence, resume_s))

    def _trim(self, upto: int) -> None:
        upto = max(0, min(upto, len(self._buf)))
        if upto:
            self._history = np.concatenate([self._history, self._buf[:upto]])[-round(_CONTEXT_S * SAMPLE_RATE) :]
            self._buf = self._buf[upto:].copy()
            self._buf_start += upto
            # Confirmed words whose audio is gone become the prompt; words still in the buffer must not be in it,
            # or Whisper takes their audio as already transcribed and skips it.
            gone = [w for w in self._buffer_words if w.end * SAMPLE_RATE <= self._buf_start]
            self._buffer_words = self._buffer_words[len(gone) :]
            if gone:
                self._prompt = f"{self._prompt} {join_words(gone)}".strip()[-_PROMPT_CHARS:]
                self._gone = (self._gone + gone)[-_PROMPT_WORDS:]
            self._decoded_until = max(self._decoded_until, self._buf_start)

    def _prompt_before(self, time_s: float) -> str:
        """The prompt for a decode starting at ``time_s``: the prompt without the words of the audio after it."""
        after = [w for w in self._gone if w.end > time_s]
        if not after:
            return self._prompt
        text = self._prompt
        for word in reversed(after):
            # The prompt ends with these words' texts (joined with single spaces); cut them off from the end.
            stripped = word.word.strip()
            cut = text.rstrip().rfind(stripped)
            if cut < 0:
                break
            text = text[:cut]
        return text.strip()


def _cut_point(words: list[Word], min_s: float, until: float, *, clause: bool) -> float | None:
    """Where to end a phrase of ``words`` early: the middle of a pause after a word ending by ``until``, at least
    ``min_s`` into the phrase; only after a word with closing punctuation when ``clause``. Later and longer pauses,
    and clause ends, are preferred.
    """
    if not words:
        return None
    earliest = words[0].start + min_s
    best: tuple[float, float] | None = None
    for before, after in zip(words, words[1:], strict=False):
        gap = after.start - before.end
        punctuated = before.word.rstrip()[-1:] in ".,;:!?"
        # A cut inside a word Whisper split in two ("bud-buriest") would show as two phrases.
        starts_word = _starts_word(after)
        if earliest <= before.end <= until and gap >= _GAP_S / 2 and starts_word and (punctuated or not clause):
            score = gap + (1.0 if punctuated else 0.0)
            if best is None or score >= best[0]:
                best = (score, (before.end + after.start) / 2)
    return best[1] if best else None


def _starts_word(word: Word) -> bool:
    """Whether ``word`` begins a new word (Whisper also splits one word in pieces: "bud" "-buriest")."""
    return word.word[:1].isspace() and bool(normalize_word(word.word[:2]))


def _repeated_trigrams(before: list[str], words: list[Word], *, until: float) -> set[tuple[str, ...]]:
    """The three-word sequences (normalised) said again in ``words`` after ``before``, where the repeat ends by
    ``until`` (session seconds)."""
    items = [(t, -math.inf) for t in map(normalize_word, before)] + [(normalize_word(w.word), w.end) for w in words]
    items = [item for item in items if item[0]]
    seen: set[tuple[str, ...]] = set()
    repeated = set()
    for index in range(len(items) - 2):
        gram = tuple(text for text, _ in items[index : index + 3])
        if gram in seen and items[index + 2][1] <= until:
            repeated.add(gram)
        seen.add(gram)
    return repeated


def _stretched_over(words: list[Word], other: list[Word]) -> bool:
    """Whether the last of ``words`` lasts over a second and spans the middles of two or more of ``other``: a decode
    that ended early, skipping audio in which another decode heard words. (A long word inside a decode is often a
    pause or another speaker, where a looping decode crams its repeat.)"""
    last = words[-1]
    return last.end - last.start > 1.0 and sum(last.start <= (o.start + o.end) / 2 <= last.end for o in other) >= 2


def _strip_invented_tail(words: list[Word], speech_end: float) -> list[Word]:
    """Drop words Whisper invents in the silence after an utterance ("Thank you for watching.").

    Whisper squeezes invented words into next to no time, so a tail of mostly zero-length words goes; then single
    trailing words that start after the speech ended, get no time, or are improbable in the last moments.
    """

    def squeezed(word: Word) -> bool:
        return word.end - word.start < 0.05

    for index, word in enumerate(words):
        rest = words[index:]
        if squeezed(word) and len(rest) >= 3 and sum(map(squeezed, rest)) >= 0.7 * len(rest):
            words = words[:index]
            break
    words = list(words)
    while words:
        last = words[-1]
        late = last.start >= speech_end - 0.1
        doubtful = (
            squeezed(last) or last.probability < 0.05 or (last.probability < 0.2 and last.start >= speech_end - 0.4)
        )
        if not (late or doubtful):
            break
        words.pop()
    return words

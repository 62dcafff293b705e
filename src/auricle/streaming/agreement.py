"""LocalAgreement-2: a word is confirmed once two consecutive decodes of a growing buffer agree on it.

This is the policy of Macháček et al., "Turning Whisper into Real-Time Transcription System" (2023): each new
decode is compared with the previous one, and their longest common prefix (after the already confirmed words)
is confirmed. Times are absolute seconds from session start, so the audio buffer can be trimmed freely.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["LocalAgreement", "TimedWord", "join_words", "normalize_word"]

_NON_WORD = re.compile(r"[^\w']+", re.UNICODE)
# Words that start this close before the last confirmed word's end are re-decodes of it, not new words.
_TIME_TOLERANCE_S = 0.1
# How far (s) the first new word may be from the last confirmed one for an n-gram overlap to be removed.
_OVERLAP_WINDOW_S = 1.0
_MAX_NGRAM = 5


@dataclass(frozen=True)
class TimedWord:
    """A decoded word with absolute times in seconds; ``text`` keeps Whisper's leading space."""

    start: float
    end: float
    text: str
    probability: float = 1.0

    def shifted(self, seconds: float) -> TimedWord:
        """The same word moved by ``seconds``."""
        return TimedWord(self.start + seconds, self.end + seconds, self.text, self.probability)


def normalize_word(text: str) -> str:
    """Lower-case and strip punctuation so that "Hello," and "hello" agree."""
    return _NON_WORD.sub("", text.lower())


def join_words(words: list[TimedWord]) -> str:
    """Join words into text (Whisper words carry their own leading space)."""
    text = "".join(w.text for w in words).strip()
    return re.sub(r"\s+", " ", text)


class LocalAgreement:
    """Confirms words that two consecutive hypotheses share.

    Args:
        committed_time: end (s) of the last confirmed word, e.g. from a resumed checkpoint.
        committed_tail: the last confirmed words' texts (for removing their re-decoded copies).
    """

    def __init__(self, committed_time: float = 0.0, committed_tail: list[str] | None = None) -> None:
        self.committed_time = committed_time
        self._committed_tail: list[str] = [normalize_word(w) for w in committed_tail or [] if normalize_word(w)]
        self._previous: list[TimedWord] = []
        self._new: list[TimedWord] = []

    @property
    def tentative(self) -> list[TimedWord]:
        """The latest hypothesis after the confirmed words (not yet confirmed)."""
        return list(self._previous)

    def insert(self, words: list[TimedWord]) -> None:
        """Take a new decode (absolute times) covering the buffer; drops words already confirmed."""
        fresh = [w for w in words if w.start > self.committed_time - _TIME_TOLERANCE_S and normalize_word(w.text)]
        if fresh and abs(fresh[0].start - self.committed_time) < _OVERLAP_WINDOW_S and self._committed_tail:
            # The decode may repeat the last confirmed words with slightly earlier times: drop the longest
            # n-gram at its head that equals the confirmed tail.
            longest = min(len(self._committed_tail), len(fresh), _MAX_NGRAM)
            for n in range(longest, 0, -1):
                head = [normalize_word(w.text) for w in fresh[:n]]
                if head == self._committed_tail[-n:]:
                    fresh = fresh[n:]
                    break
        self._new = fresh

    def flush(self) -> list[TimedWord]:
        """Confirm and return the common prefix of the previous and the newest hypothesis."""
        confirmed: list[TimedWord] = []
        while (
            self._new and self._previous and normalize_word(self._new[0].text) == normalize_word(self._previous[0].text)
        ):
            confirmed.append(self._new.pop(0))
            self._previous.pop(0)
        self._previous = self._new
        self._new = []
        self._remember(confirmed)
        return confirmed

    def complete(self, upto: float | None = None) -> list[TimedWord]:
        """Confirm the newest hypothesis as it stands (end of an utterance or of the stream).

        Args:
            upto: confirm only words ending at or before this time (s); the rest stay tentative.
        """
        pending = self._new or self._previous
        if upto is None:
            confirmed, rest = pending, []
        else:
            confirmed = [w for w in pending if w.end <= upto]
            rest = pending[len(confirmed) :]
        self._previous, self._new = rest, []
        self._remember(confirmed)
        return list(confirmed)

    def _remember(self, confirmed: list[TimedWord]) -> None:
        if not confirmed:
            return
        self.committed_time = max(self.committed_time, confirmed[-1].end)
        self._committed_tail = (self._committed_tail + [normalize_word(w.text) for w in confirmed])[-_MAX_NGRAM:]

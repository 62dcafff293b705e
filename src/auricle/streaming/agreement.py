"""LocalAgreement-2: a word is confirmed once two consecutive decodes of a growing buffer agree on it.

This is the policy of Macháček et al., "Turning Whisper into Real-Time Transcription System" (2023): each new
decode is compared with the previous one, and their longest common prefix (after the already confirmed words)
is confirmed. Words are :class:`~auricle.engine.types.Word` (``word`` keeps Whisper's leading space); times are
absolute seconds from session start, so the audio buffer can be trimmed freely.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from auricle.engine.types import Word

__all__ = ["LocalAgreement", "join_words", "normalize_word"]

_NON_WORD = re.compile(r"[^\w']+", re.UNICODE)
# How far (s) a re-decoded copy of the last confirmed words may have moved.
_OVERLAP_WINDOW_S = 1.0
_ANCHOR_WORDS = 3
_MAX_NGRAM = 5


def normalize_word(text: str) -> str:
    """Lower-case and strip punctuation so that "Hello," and "hello" agree."""
    return _NON_WORD.sub("", text.lower())


def join_words(words: list[Word]) -> str:
    """Join words into text (Whisper words carry their own leading space)."""
    text = "".join(w.word for w in words).strip()
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
        self._previous: list[Word] = []
        self._new: list[Word] = []

    @property
    def tentative(self) -> list[Word]:
        """The latest hypothesis after the confirmed words (not yet confirmed)."""
        return list(self._previous)

    @property
    def pending(self) -> list[Word]:
        """The newest hypothesis after the confirmed words (what :meth:`complete` would confirm)."""
        return list(self._new or self._previous)

    def insert(self, words: list[Word]) -> None:
        """Take a new decode (absolute times) covering the buffer; drops words already confirmed.

        The decode repeats confirmed words still in the audio, with times that may move by a few hundred ms, so
        the cut is found by text first: the newest occurrence near the confirmed time of the last confirmed
        words. Only without such an anchor does the cut fall back to word midpoints against the confirmed time.
        """
        words = [w for w in words if normalize_word(w.word)]
        # A new word starts after the confirmed ones, whatever the alignment says: Whisper sometimes stretches a
        # re-decoded word back over audio whose words are out already, and a phrase would then start before the
        # one it follows.
        self._new = [
            w if w.start >= self.committed_time else replace(w, start=min(self.committed_time, w.end))
            for w in words[self._anchor(words) :]
        ]

    def _anchor(self, words: list[Word]) -> int:
        """Index of the first word after the confirmed ones."""
        texts = [normalize_word(w.word) for w in words]
        for n in range(min(len(self._committed_tail), _ANCHOR_WORDS), 0, -1):
            tail = self._committed_tail[-n:]
            best: tuple[float, int] | None = None
            for end in range(n - 1, len(words)):
                if texts[end - n + 1 : end + 1] != tail:
                    continue
                distance = abs(words[end].end - self.committed_time)
                # One common word ("the") is a weak anchor: accept it only close to the confirmed time.
                window = _OVERLAP_WINDOW_S if n > 1 else _OVERLAP_WINDOW_S / 2
                if distance < window and (best is None or distance < best[0]):
                    best = (distance, end + 1)
            if best is not None:
                return best[1]
        index = next((i for i, w in enumerate(words) if (w.start + w.end) / 2 > self.committed_time), len(words))
        last = self._committed_tail[-1] if self._committed_tail else ""
        if (
            index < len(words)
            and last
            and words[index].start < self.committed_time
            and (texts[index] == last or (len(last) > 3 and texts[index].startswith(last)))
        ):
            # The last confirmed word again, re-decoded longer ("goo" into the pause after it), or cut short before
            # ("America" of "Americans"): a word that starts before it ended is no new word.
            index += 1
        return index

    def flush(self, settled: Callable[[Word], bool] | None = None) -> list[Word]:
        """Confirm and return the common prefix of the previous and the newest hypothesis.

        Args:
            settled: confirm the prefix only up to the first word of the newest hypothesis this rejects; the rest
                stay in it, to be agreed on again by the next decode.
        """
        confirmed: list[Word] = []
        while (
            self._new
            and self._previous
            and normalize_word(self._new[0].word) == normalize_word(self._previous[0].word)
            and (settled is None or settled(self._new[0]))
        ):
            confirmed.append(self._new.pop(0))
            self._previous.pop(0)
        self._previous = self._new
        self._new = []
        self._remember(confirmed)
        return confirmed

    def complete(self, upto: float | None = None) -> list[Word]:
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

    def _remember(self, confirmed: list[Word]) -> None:
        if not confirmed:
            return
        self.committed_time = max(self.committed_time, confirmed[-1].end)
        self._committed_tail = (self._committed_tail + [normalize_word(w.word) for w in confirmed])[-_MAX_NGRAM:]

"""Text normalisation and error rates for ``auricle eval``: WER, CER (edit distance), and a Whisper-style English
normaliser.

The edit distance is the textbook Levenshtein dynamic programme over tokens (words for WER, characters for CER),
one row at a time, so a 30-minute reference costs milliseconds; it needs no dependency. The English normaliser
follows the steps of Whisper's ``EnglishTextNormalizer`` that matter for scoring read and conversational speech:
lower case, bracketed and parenthesised asides removed, filler words (uh, um, hmm ...) dropped, common contractions
expanded, number words up to the tens written as digits, diacritics and punctuation removed, whitespace folded.
Other languages get Whisper's basic normaliser (lower case, brackets, punctuation and symbols removed).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CER_LANGUAGES",
    "ErrorCounts",
    "character_errors",
    "edit_distance",
    "normalize_basic",
    "normalize_english",
    "word_errors",
]

CER_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})
"""Languages written without spaces between words: scored with the character error rate."""

_FILLERS = frozenset({"hmm", "mm", "mhm", "mmm", "uh", "um", "uhm", "er", "ah", "eh", "hm"})
_CONTRACTIONS = (
    (r"\bwon't\b", "will not"),
    (r"\bcan't\b", "can not"),
    (r"\blet's\b", "let us"),
    (r"\bain't\b", "is not"),
    (r"n't\b", " not"),
    (r"'re\b", " are"),
    (r"'ll\b", " will"),
    (r"'ve\b", " have"),
    (r"'m\b", " am"),
    (r"'d\b", " would"),
)
_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
)
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety"
_NUMBERS = {word: str(value) for value, word in enumerate(_UNITS.split())}
_NUMBERS.update({word: str(20 + 10 * i) for i, word in enumerate(_TENS.split())})


def _strip_brackets(text: str) -> str:
    return re.sub(r"[<\[][^>\]]*[>\]]|\([^)]*\)", " ", text)


def normalize_basic(text: str) -> str:
    """Lower case; brackets, punctuation and symbols removed (letters with diacritics kept); whitespace folded."""
    text = _strip_brackets(text.lower())
    text = "".join(" " if unicodedata.category(c)[0] in "MSP" else c for c in unicodedata.normalize("NFKC", text))
    return " ".join(text.split())


def normalize_english(text: str) -> str:
    """A compact Whisper-style English normaliser (see the module docstring)."""
    text = _strip_brackets(text.lower()).replace("’", "'")
    for pattern, replacement in _CONTRACTIONS:
        text = re.sub(pattern, replacement, text)
    text = re.sub(r"(\d),(\d)", r"\1\2", text)  # 1,000 -> 1000
    text = text.replace("-", " ")
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    text = re.sub(r"[^\w\s]", " ", text)
    words = [_NUMBERS.get(w, w) for w in text.split() if w not in _FILLERS]
    return " ".join(words)


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Levenshtein distance (substitutions, deletions, insertions all cost 1) between two token sequences."""
    if not reference:
        return len(hypothesis)
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp in enumerate(hypothesis, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp))
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class ErrorCounts:
    """Edit operations against a reference of ``length`` tokens; the rate is ``errors / length``."""

    errors: int
    length: int

    @property
    def rate(self) -> float | None:
        """Errors per reference token (None for an empty reference)."""
        return self.errors / self.length if self.length else None


def word_errors(reference: str, hypothesis: str, language: str = "en") -> ErrorCounts:
    """Word errors after normalising both sides (the English normaliser for ``en``, the basic one otherwise)."""
    normalise = normalize_english if language == "en" else normalize_basic
    ref, hyp = normalise(reference).split(), normalise(hypothesis).split()
    return ErrorCounts(edit_distance(ref, hyp), len(ref))


def character_errors(reference: str, hypothesis: str) -> ErrorCounts:
    """Character errors after the basic normaliser, spaces removed (for languages written without spaces)."""
    ref = list(normalize_basic(reference).replace(" ", ""))
    hyp = list(normalize_basic(hypothesis).replace(" ", ""))
    return ErrorCounts(edit_distance(ref, hyp), len(ref))

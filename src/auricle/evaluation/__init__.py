"""Accuracy evaluation: ``auricle eval`` (WER/CER, DER, speaker counts, language, speed) over a manifest."""

from auricle.evaluation.metrics import character_errors, normalize_basic, normalize_english, word_errors
from auricle.evaluation.runner import FileResult, ManifestEntry, add_parser, evaluate, read_manifest, summarise

__all__ = [
    "FileResult",
    "ManifestEntry",
    "add_parser",
    "character_errors",
    "evaluate",
    "normalize_basic",
    "normalize_english",
    "read_manifest",
    "summarise",
    "word_errors",
]

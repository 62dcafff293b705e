"""Known speakers: put a caller's names on diarized voices that match enrolled voice embeddings.

An enrolled voice is a 256-float Resemblyzer embedding: what :meth:`ResemblyzerDiarizer.embed` returns for a
reference clip, or a ``speaker_embeddings`` entry from an earlier transcript. Each diarized speaker's mean
embedding is compared (cosine) with every enrolled voice; names are given one-to-one, best pairs first, and only
when the similarity reaches :data:`KNOWN_SPEAKER_SIMILARITY`. A voice that matches no one keeps its anonymous
``SPEAKER_NN`` label.

Calibration (``tests/diarization_real.py`` voices, enrolled from half of each person's speech, matched against
diarized speakers of 60 generated conversations): on full-band audio the same person scored 0.84-0.99 (mean 0.94)
and different people 0.40-0.73 (mean 0.58), so 0.78 sits in the gap. Across channels it does not hold: a voice
enrolled from full-band audio scores only 0.57-0.75 against the same person on a telephone line, no better than
strangers; enrol telephone callers from telephone audio.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from collections.abc import Mapping, Sequence

import numpy as np

from auricle.engine._voice_encoder import EMBEDDING_SIZE
from auricle.engine.decode import decode
from auricle.engine.protocols import DiarizationResult, Diarizer, VadModel
from auricle.engine.types import SpeakerTurn
from auricle.errors import AudioDecodeError, InvalidRequestError

__all__ = [
    "KNOWN_SPEAKER_SIMILARITY",
    "MAX_KNOWN_SPEAKERS",
    "MAX_REFERENCE_BYTES",
    "enrolled_voices",
    "match_known_speakers",
    "name_known_speakers",
    "reference_audio",
    "validate_known_speakers",
]

MAX_KNOWN_SPEAKERS = 8
"""Most voices one request may enrol."""
MAX_REFERENCE_BYTES = 4 * 1024 * 1024
"""Largest reference clip (decoded bytes of its ``data:`` URL)."""
_MAX_REFERENCE_S = 60.0

KNOWN_SPEAKER_SIMILARITY = 0.78
"""Cosine similarity at or above which a diarized voice is taken to be an enrolled speaker."""


def validate_known_speakers(
    known: Mapping[str, Sequence[float]], *, param: str = "known_speakers"
) -> dict[str, np.ndarray]:
    """Check enrolled voices and return them L2-normalised.

    Raises:
        InvalidRequestError: an empty name, a vector that is not 256 finite numbers, or an all-zero vector.
    """
    out: dict[str, np.ndarray] = {}
    for name, vector in known.items():
        if not isinstance(name, str) or not name.strip():
            raise InvalidRequestError("known speaker names must be non-empty strings", param=param)
        try:
            array = np.asarray(vector, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidRequestError(f"the embedding of {name!r} must be a list of numbers", param=param) from None
        if array.shape != (EMBEDDING_SIZE,):
            raise InvalidRequestError(
                f"the embedding of {name!r} must have {EMBEDDING_SIZE} numbers, not {array.size}", param=param
            )
        norm = float(np.linalg.norm(array))
        if not math.isfinite(norm) or norm == 0.0:
            raise InvalidRequestError(f"the embedding of {name!r} must be finite and not all zero", param=param)
        out[name.strip()] = array / norm
    return out


def match_known_speakers(
    speakers: Mapping[str, Sequence[float]],
    known: Mapping[str, Sequence[float]],
    *,
    threshold: float = KNOWN_SPEAKER_SIMILARITY,
) -> dict[str, str]:
    """Map diarized labels to known names (one-to-one, most similar pairs first, only at or above ``threshold``).

    Args:
        speakers: diarized label -> mean voice embedding (``DiarizationResult.embeddings``).
        known: name -> enrolled embedding (validated with :func:`validate_known_speakers`).
        threshold: the lowest cosine similarity that counts as the same voice.

    Returns:
        Label -> name, for the labels that matched.
    """
    enrolled = validate_known_speakers(known)
    pairs = []
    for label, vector in speakers.items():
        v = np.asarray(vector, dtype=np.float64)
        v = v / max(float(np.linalg.norm(v)), 1e-12)
        for name, reference in enrolled.items():
            pairs.append((float(v @ reference), label, name))
    mapping: dict[str, str] = {}
    for similarity, label, name in sorted(pairs, reverse=True):
        if similarity < threshold:
            break
        if label not in mapping and name not in mapping.values():
            mapping[label] = name
    return mapping


def name_known_speakers(
    result: DiarizationResult, known: Mapping[str, Sequence[float]], *, threshold: float = KNOWN_SPEAKER_SIMILARITY
) -> DiarizationResult:
    """The diarization with matched speakers renamed in its turns and embeddings (others keep their labels)."""
    mapping = match_known_speakers(result.embeddings, known, threshold=threshold)
    turns = [SpeakerTurn(t.start, t.end, mapping.get(t.speaker, t.speaker)) for t in result.turns]
    embeddings = {mapping.get(label, label): vector for label, vector in result.embeddings.items()}
    return DiarizationResult(turns=turns, embeddings=embeddings)


def reference_audio(url: str, *, name: str, param: str = "known_speaker_references[]") -> bytes:
    """The bytes of a reference clip sent as a ``data:`` URL (``data:audio/wav;base64,...``), checked for shape.

    Raises:
        InvalidRequestError: not a base64 ``data:`` URL, not audio, empty, or over :data:`MAX_REFERENCE_BYTES`.
    """
    head, comma, body = url.partition(",")
    if not comma or not head.lower().startswith("data:") or not head.lower().endswith(";base64"):
        raise InvalidRequestError(
            f"the reference of {name!r} must be a base64 data URL (data:audio/...;base64,...)", param=param
        )
    mime = head[5:].split(";")[0].strip().lower()
    if mime and not mime.startswith(("audio/", "video/")) and mime != "application/octet-stream":
        raise InvalidRequestError(f"the reference of {name!r} is {mime}, not audio", param=param)
    if len(body) > MAX_REFERENCE_BYTES * 4 // 3 + 4:
        raise InvalidRequestError(f"the reference of {name!r} is over {MAX_REFERENCE_BYTES // 2**20} MB", param=param)
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"the reference of {name!r} is not valid base64", param=param) from None
    if not data:
        raise InvalidRequestError(f"the reference of {name!r} is empty", param=param)
    return data


def enrolled_voices(
    known: Mapping[str, Sequence[float]] | None,
    references: Mapping[str, str] | None,
    diarizer: Diarizer,
    vad: VadModel,
) -> dict[str, list[float]]:
    """Every enrolled voice as an embedding: the given ones, and one per reference clip (decoded, VAD, embedded).

    Raises:
        InvalidRequestError: a clip with no speech in it (it could not name anyone).
        AudioDecodeError: a clip that is not decodable audio.
    """
    voices = {name: list(vector) for name, vector in (known or {}).items()}
    for name, url in (references or {}).items():
        try:
            audio = decode(io.BytesIO(reference_audio(url, name=name)), max_seconds=_MAX_REFERENCE_S)
        except AudioDecodeError:
            raise InvalidRequestError(
                f"the reference of {name!r} is not decodable audio", param="known_speaker_references[]"
            ) from None
        spans = vad.speech_spans(audio.samples)
        if not spans:
            raise InvalidRequestError(f"the reference of {name!r} holds no speech", param="known_speaker_references[]")
        voices[name] = [float(x) for x in diarizer.embed(audio.samples, spans)]
    return voices

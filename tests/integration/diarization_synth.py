"""Synthetic multi-speaker conversations from Debian's ``flite`` voices (recorded from real people), with truth.

Used by the diarization quality tests and by ``bench/diarization.py``. Needs the ``flite`` binary; ``sox`` is
used to resample the 8 kHz voices.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from auricle.engine.types import SAMPLE_RATE, SpeakerTurn, SpeechSpan

__all__ = ["VOICES", "Conversation", "flite_available", "make_conversation", "read_wav", "speech_spans"]

VOICES = ("awb", "slt", "rms", "kal16")
"""Four distinct flite voices: Scottish male, US female, US male, US male (diphone)."""

SENTENCES = (
    "I think we should move the meeting to Thursday afternoon.",
    "That works for me, but the room upstairs is already booked.",
    "Could you send the report before the end of the week?",
    "The numbers from the last quarter look much better than expected.",
    "We still need someone to review the design of the new interface.",
    "Let me check with the team and get back to you tomorrow morning.",
    "Honestly, the customer feedback was mostly positive this time.",
    "Do we have a budget for the additional testing equipment?",
    "I will write a short summary and share it with everyone.",
    "The train was late again, so I missed the first part of the call.",
    "Please remember to update the documentation after the release.",
    "We could try a different approach if this one does not work.",
    "My main concern is the deadline, it seems a little too tight.",
    "Yes, and the supplier confirmed the delivery date yesterday.",
    "Nobody told me that the server would be down all weekend.",
    "Perhaps we should ask the legal department for their opinion.",
)


def flite_available() -> bool:
    """Whether the ``flite`` and ``sox`` binaries are installed."""
    return shutil.which("flite") is not None and shutil.which("sox") is not None


def read_wav(path: Path) -> np.ndarray:
    """Read a 16-bit PCM WAV as float32 (channels first when stereo)."""
    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
        channels = w.getnchannels()
    return data.reshape(-1, channels).T.copy() if channels > 1 else data


def _utterance(voice: str, text: str, workdir: Path, index: int) -> np.ndarray:
    raw, out = workdir / f"u{index}_raw.wav", workdir / f"u{index}.wav"
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(raw)], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(out)], check=True)
    audio = read_wav(out)
    # Trim leading/trailing silence so the truth turns are where the voice is.
    loud = np.flatnonzero(np.abs(audio) > 0.02)
    return audio[loud[0] : loud[-1] + 1] if len(loud) else audio


@dataclass
class Conversation:
    """A synthetic conversation: audio and the true speaker turns."""

    samples: np.ndarray
    turns: list[SpeakerTurn]

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / SAMPLE_RATE


def make_conversation(
    workdir: Path,
    voices: tuple[str, ...],
    *,
    turns: int,
    seed: int = 0,
    gap: tuple[float, float] = (0.2, 0.6),
    sentences_per_turn: tuple[int, int] = (1, 2),
) -> Conversation:
    """Alternate ``voices`` over ``turns`` turns of one or two sentences, separated by short random gaps.

    The speaker order is a random walk that never repeats the previous speaker; every voice speaks at least once
    when ``turns >= len(voices)`` (the first turns go round all voices).
    """
    rng = np.random.default_rng(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    pieces: list[np.ndarray] = [np.zeros(int(0.5 * SAMPLE_RATE), np.float32)]
    truth: list[SpeakerTurn] = []
    t = 0.5
    previous = -1
    for i in range(turns):
        # The first turns go round every voice, then a random walk that never repeats the previous speaker.
        who = i if i < len(voices) else int(rng.choice([v for v in range(len(voices)) if v != previous]))
        previous = who
        n_sent = int(rng.integers(sentences_per_turn[0], sentences_per_turn[1] + 1))
        text = " ".join(SENTENCES[int(k)] for k in rng.choice(len(SENTENCES), n_sent, replace=False))
        audio = _utterance(voices[who], text, workdir, i) * float(rng.uniform(0.6, 1.0))
        pieces.append(audio.astype(np.float32))
        truth.append(SpeakerTurn(round(t, 3), round(t + len(audio) / SAMPLE_RATE, 3), f"spk{who}"))
        t += len(audio) / SAMPLE_RATE
        pause = np.zeros(int(rng.uniform(*gap) * SAMPLE_RATE), np.float32)
        pieces.append(pause)
        t += len(pause) / SAMPLE_RATE
    pieces.append(np.zeros(int(0.5 * SAMPLE_RATE), np.float32))
    samples = np.concatenate(pieces)
    # A little noise floor, as in a real recording.
    samples += rng.normal(0, 1e-3, len(samples)).astype(np.float32)
    return Conversation(samples=samples, turns=truth)


def speech_spans(samples: np.ndarray) -> list[SpeechSpan]:
    """Silero VAD speech spans with faster-whisper's default options (what the transcription pipeline uses)."""
    from faster_whisper.vad import get_speech_timestamps

    stamps = get_speech_timestamps(samples)
    return [SpeechSpan(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]

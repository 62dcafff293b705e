"""Real-voice conversations with exact truth, built from the corpus's single-speaker recordings.

Each voice is one real person from the public corpus (LibriSpeech, LJ Speech, JFK, two LibriVox readers, an AMI
headset, the left channel of the stereo LibriSpeech file, an AISHELL reader). A conversation alternates turns of
2, 3 or 4 of them (never the same voice twice in a row), each turn the next 2-5 s stretch of that person's speech, with
short pauses; variants overlap neighbouring turns by 0.3-1 s, pass the whole mix through 8 kHz telephone
bandwidth (300-3400 Hz), or add quiet background noise. Everything is deterministic for a given seed.

Shared by the diarization quality tests and ``bench/diarization.py``; the truth is written as RTTM by
:meth:`Conversation.write_rttm`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from auricle.engine.decode import decode
from auricle.engine.types import SAMPLE_RATE, SpeakerTurn, SpeechSpan

from support import CORPUS

__all__ = [
    "VOICES",
    "Conversation",
    "ConversationSpec",
    "conversation_specs",
    "conversation_voices",
    "make_conversation",
    "recording_of",
    "rttm_turns",
    "single_speaker_files",
    "speech_spans",
    "telephone_channel",
]

VOICES: dict[str, tuple[str, int | None]] = {
    "jfk": ("jfk.flac", None),
    "librispeech1995": ("librispeech_1995-1837-0001.wav", None),
    "ljspeech": ("ljspeech_LJ050-0131.wav", None),
    "sonnet_reader": ("librivox_sonnet001.mp3", None),
    "simplicissimus_reader": ("librivox_simplicissimus_de.mp3", None),
    "ami_fee041": ("ami_ES2011a_headset0_40-46s.wav", None),
    "librispeech61": ("stereo_two_speakers.wav", 0),
    "aishell": ("aishell_BAC009S0724W0121.wav", None),
}
"""Voice name -> (corpus audio file, channel or None for a mono downmix). One real person each."""

_MIN_PIECE_S, _MAX_PIECE_S = 2.0, 5.0
_MIN_VOICE_S = 4.0
"""A voice joins conversations only with at least this much speech (shorter ones would repeat one clip)."""


def speech_spans(samples: np.ndarray) -> list[SpeechSpan]:
    """Speech spans from the server's VAD (``SileroVad`` with its defaults), what the pipeline gives the diarizer."""
    from auricle.engine.vad import SileroVad

    return SileroVad().speech_spans(samples)


@cache
def _voice_audio(name: str) -> np.ndarray:
    file, channel = VOICES[name]
    audio = decode(CORPUS / "audio" / file, keep_channels=channel is not None)
    samples = audio.samples if channel is None or audio.channels is None else audio.channels[channel]
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    peak = float(np.abs(samples).max()) or 1.0
    return samples * np.float32(0.5 / peak)


def _trim(audio: np.ndarray) -> np.ndarray:
    """Cut leading and trailing 20 ms frames quieter than 10 % of the piece's loudest frame."""
    frame = SAMPLE_RATE // 50
    n = len(audio) // frame
    if n == 0:
        return audio
    rms = np.sqrt((audio[: n * frame].reshape(n, frame) ** 2).mean(1))
    loud = np.flatnonzero(rms >= 0.1 * rms.max())
    return audio[loud[0] * frame : (loud[-1] + 1) * frame]


@cache
def _pieces(name: str) -> tuple[np.ndarray, ...]:
    """The voice's speech cut into consecutive pieces of 2-5 s (whole VAD spans when shorter), in order."""
    samples = _voice_audio(name)
    rng = np.random.default_rng(sum(map(ord, name)))
    out: list[np.ndarray] = []
    for span in speech_spans(samples):
        a, b = int(span.start * SAMPLE_RATE), int(span.end * SAMPLE_RATE)
        while b - a >= int(0.8 * SAMPLE_RATE):
            length = int(rng.uniform(_MIN_PIECE_S, _MAX_PIECE_S) * SAMPLE_RATE)
            if b - (a + length) < int(_MIN_PIECE_S * SAMPLE_RATE):
                length = b - a  # do not leave a scrap behind
            piece = _trim(samples[a : a + length])
            if len(piece) >= int(0.6 * SAMPLE_RATE):
                out.append(piece)
            a += length
    return tuple(out)


def conversation_voices() -> list[str]:
    """The voices with enough speech to hold a conversation (the AMI headset and AISHELL clips are too short)."""
    return [v for v in sorted(VOICES) if sum(len(p) for p in _pieces(v)) >= _MIN_VOICE_S * SAMPLE_RATE]


@dataclass(frozen=True)
class ConversationSpec:
    """How to build one conversation."""

    name: str
    speakers: int
    seed: int
    overlap: bool = False
    telephone: bool = False
    noise: bool = False
    turns: int = 0  # 0: three per speaker plus four


@dataclass
class Conversation:
    """A generated conversation: 16 kHz mono audio and its true speaker turns."""

    name: str
    samples: np.ndarray
    turns: list[SpeakerTurn]
    voices: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / SAMPLE_RATE

    def write_rttm(self, path: Path) -> None:
        """Write the truth as RTTM (file id = the conversation's name)."""
        path.write_text(
            "".join(
                f"SPEAKER {self.name} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n"
                for t in self.turns
            )
        )


def telephone_channel(samples: np.ndarray) -> np.ndarray:
    """8 kHz telephone channel: 300-3400 Hz band, resampled down to 8 kHz and back, 8-bit-ish mu-law noise floor."""
    import soxr

    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    band = np.fft.irfft(spectrum, len(samples)).astype(np.float32)
    narrow = soxr.resample(band, SAMPLE_RATE, 8000)
    mu = 255.0
    companded = np.sign(narrow) * np.log1p(mu * np.minimum(np.abs(narrow), 1.0)) / np.log1p(mu)
    quantised = np.round(companded * 127) / 127
    expanded = np.sign(quantised) * ((1 + mu) ** np.abs(quantised) - 1) / mu
    back = soxr.resample(expanded.astype(np.float32), 8000, SAMPLE_RATE)
    return np.asarray(back[: len(samples)], dtype=np.float32)


def make_conversation(spec: ConversationSpec) -> Conversation:
    """Build the conversation ``spec`` describes (deterministic)."""
    rng = np.random.default_rng(1000 + spec.seed)
    voices = [str(v) for v in rng.choice(conversation_voices(), spec.speakers, replace=False)]
    cursor = {v: int(rng.integers(len(_pieces(v)))) for v in voices}
    turns = spec.turns or 3 * spec.speakers + 4
    placed: list[tuple[int, np.ndarray, str]] = []
    t = int(0.5 * SAMPLE_RATE)
    previous = -1
    for i in range(turns):
        who = i if i < len(voices) else int(rng.choice([v for v in range(len(voices)) if v != previous]))
        previous = who
        voice = voices[who]
        pieces = _pieces(voice)
        piece = pieces[cursor[voice] % len(pieces)] * np.float32(rng.uniform(0.5, 1.0))
        cursor[voice] += 1
        if placed and spec.overlap and rng.random() < 0.5:
            start = t - int(rng.uniform(0.3, 1.0) * SAMPLE_RATE)  # talk over the end of the previous turn
            start = max(start, placed[-1][0] + int(0.5 * SAMPLE_RATE))
        else:
            start = t + (int(rng.uniform(0.2, 0.7) * SAMPLE_RATE) if placed else 0)
        placed.append((start, piece, voice))
        t = max(t, start + len(piece))
    samples = np.zeros(t + int(0.5 * SAMPLE_RATE), np.float32)
    for start, piece, _ in placed:
        samples[start : start + len(piece)] += piece
    noise_rng = np.random.default_rng(2000 + spec.seed)
    if spec.noise:
        # Quiet pink-ish background (about 25 dB below the speech), like a room or a car.
        white = noise_rng.normal(0, 1, len(samples))
        pink = np.fft.irfft(np.fft.rfft(white) / np.sqrt(np.arange(1, len(white) // 2 + 2)), len(white))
        speech_rms = float(np.sqrt(np.mean(np.concatenate([p for _, p, _ in placed]) ** 2)))
        samples += (pink / pink.std() * speech_rms * 10 ** (-25 / 20)).astype(np.float32)
    else:
        samples += noise_rng.normal(0, 3e-4, len(samples)).astype(np.float32)
    if spec.telephone:
        # After the noise: the line carries the room, and nothing is left above 3.4 kHz (Silero VAD misses most
        # band-limited speech when a full-band noise floor is added afterwards).
        samples = telephone_channel(samples)
    truth = [SpeakerTurn(round(s / SAMPLE_RATE, 3), round((s + len(p)) / SAMPLE_RATE, 3), v) for s, p, v in placed]
    truth.sort(key=lambda turn: (turn.start, turn.end))
    return Conversation(name=spec.name, samples=samples.astype(np.float32), turns=truth, voices=voices)


def conversation_specs(seeds: range | list[int] = range(2)) -> list[ConversationSpec]:
    """2, 3 and 4 speakers x (clean, overlap, telephone, noise, telephone+overlap+noise) x ``seeds``."""
    variants = {
        "clean": {},
        "overlap": {"overlap": True},
        "phone": {"telephone": True},
        "noise": {"noise": True},
        "phone_overlap_noise": {"telephone": True, "overlap": True, "noise": True},
    }
    specs = []
    for seed in seeds:
        for n in (2, 3, 4):
            for label, flags in variants.items():
                specs.append(
                    ConversationSpec(f"real{n}_{label}_s{seed}", n, seed * 100 + n * 10 + len(specs) % 5, **flags)
                )
    return specs


def single_speaker_files() -> list[str]:
    """Corpus recordings of one person (the stereo two-speaker file is excluded, the AMI headset included)."""
    return [file for file, channel in VOICES.values() if channel is None]


def rttm_turns(path: Path) -> list[SpeakerTurn]:
    """The turns of an RTTM file."""
    turns = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            turns.append(SpeakerTurn(start, start + duration, fields[7]))
    return turns


def recording_of(voices: list[str], part: int, *, parts: int = 2, turns: int = 6) -> Conversation:
    """Alternating turns of ``voices`` made of every ``parts``-th piece of their speech, from piece ``part`` on.

    Recordings with different ``part`` hold different utterances of the same people (for known-speaker tests).
    """
    pause = np.zeros(int(0.5 * SAMPLE_RATE), np.float32)
    chunks: list[np.ndarray] = [pause]
    truth: list[SpeakerTurn] = []
    t = len(pause)
    for i in range(turns):
        voice = voices[i % len(voices)]
        pieces = _pieces(voice)
        piece = pieces[(part + parts * (i // len(voices))) % len(pieces)]
        truth.append(SpeakerTurn(round(t / SAMPLE_RATE, 3), round((t + len(piece)) / SAMPLE_RATE, 3), voice))
        chunks += [piece, pause]
        t += len(piece) + len(pause)
    name = f"{'+'.join(voices)}-part{part}"
    return Conversation(name=name, samples=np.concatenate(chunks), turns=truth, voices=list(voices))

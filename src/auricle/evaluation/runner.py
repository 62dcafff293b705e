"""``auricle eval``: run a manifest of recordings through the server's pipeline and score them.

The manifest is JSON Lines, one recording per line (the corpus format; paths relative to the manifest's folder)::

    {"id": "en_call_01", "audio": "audio/call01.wav", "reference": "hello ...", "language": "en",
     "speakers": 2, "rttm": "rttm/call01.rttm"}

Only ``audio`` is required; ``id`` defaults to the file name, and ``reference``, ``language``, ``speakers`` and
``rttm`` are scored when present. A stereo recording with ``channel_references`` (``{"left": ..., "right": ...}``,
one talker per channel) is scored per channel: each channel is transcribed on its own and its WER pooled over both.
With an English-only model, an entry whose ``language`` is not English is skipped (reported, not scored).

Each file goes through :func:`auricle.engine.pipeline.run_pipeline` with the
runtime's model, VAD and diarizer, exactly as a server request would (``diarize=True`` with ``--diarize``); the
diarizer's speaker turns are recorded on the way for the DER.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from auricle.engine._der import diarization_error_rate
from auricle.engine.decode import decode
from auricle.engine.pipeline import PipelineStats, run_pipeline
from auricle.engine.protocols import DiarizationResult, Diarizer
from auricle.engine.types import Audio, SpeakerTurn, SpeechSpan, TranscribeOptions, Transcript
from auricle.evaluation.metrics import CER_LANGUAGES, character_errors, word_errors

__all__ = ["FileResult", "ManifestEntry", "evaluate", "read_manifest", "read_rttm", "summarise"]

logger = logging.getLogger(__name__)

COLLAR_S = 0.25
"""DER collar, seconds on each side of every reference boundary (md-eval ``-c 0.25``)."""

NO_SPEECH_MARGIN_S = 0.5
"""A word counts as produced where there is no speech when its centre is this far from every reference turn."""


@dataclass(frozen=True)
class ManifestEntry:
    """One recording to evaluate."""

    id: str
    audio: Path
    reference: str | None = None
    language: str | None = None
    speakers: int | None = None
    rttm: Path | None = None
    channel_references: tuple[str, str] | None = None
    """(left, right) references of a stereo recording with one talker per channel."""


@dataclass
class FileResult:
    """The scores of one recording (None where there is nothing to score against)."""

    id: str
    wer: float | None = None
    cer: float | None = None
    der: float | None = None
    der_no_collar: float | None = None
    speakers: int | None = None
    speakers_expected: int | None = None
    language: str | None = None
    language_expected: str | None = None
    rtf: float | None = None
    audio_s: float | None = None
    words_without_speech: int | None = None
    text: str | None = None
    channel_wer: list[float] | None = None
    error: str | None = None
    skipped: str | None = None
    # Totals behind the rates, for the summary's weighted figures.
    _edits: tuple[int, int] | None = field(default=None, repr=False)
    _der_parts: tuple[float, float, float] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: public fields only."""
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


def read_manifest(path: Path) -> list[ManifestEntry]:
    """Read a JSON Lines manifest; relative paths are resolved against the manifest's folder.

    Raises:
        ValueError: a line is not a JSON object with an ``audio`` field.
    """
    base = path.parent
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        data = json.loads(line)
        if not isinstance(data, dict) or not data.get("audio"):
            raise ValueError(f"{path}:{number}: each line must be a JSON object with an 'audio' path")
        audio = base / data["audio"]
        channels = data.get("channel_references")
        entries.append(
            ManifestEntry(
                id=str(data.get("id") or audio.stem),
                audio=audio,
                reference=data.get("reference"),
                language=data.get("language"),
                speakers=data.get("speakers"),
                rttm=base / data["rttm"] if data.get("rttm") else None,
                channel_references=(channels["left"], channels["right"]) if channels else None,
            )
        )
    return entries


def read_rttm(path: Path) -> list[SpeakerTurn]:
    """The ``SPEAKER`` lines of an RTTM file as turns."""
    turns = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            turns.append(SpeakerTurn(start, start + duration, fields[7]))
    return turns


class _RecordingDiarizer:
    """Passes calls to the runtime's diarizer and keeps the last result (the turns the transcript was built on)."""

    def __init__(self, inner: Diarizer) -> None:
        self.inner = inner
        self.result: DiarizationResult | None = None

    def diarize(self, samples: np.ndarray, spans: list[SpeechSpan], **counts: int | None) -> DiarizationResult:
        self.result = self.inner.diarize(samples, spans, **counts)
        return self.result

    def diarize_channels(self, channels: np.ndarray, spans: Sequence[Sequence[SpeechSpan]]) -> DiarizationResult:
        self.result = self.inner.diarize_channels(channels, spans)  # type: ignore[attr-defined]
        return self.result

    def embed(self, samples: np.ndarray, spans: Sequence[SpeechSpan]) -> np.ndarray:
        return self.inner.embed(samples, spans)


def _words_without_speech(transcript: Transcript, truth: list[SpeakerTurn]) -> int:
    count = 0
    for word in transcript.words:
        centre = (word.start + word.end) / 2
        if all(centre < t.start - NO_SPEECH_MARGIN_S or centre > t.end + NO_SPEECH_MARGIN_S for t in truth):
            count += 1
    return count


def _turns_from_transcript(transcript: Transcript) -> list[SpeakerTurn]:
    """Per-channel diarization labels the transcript directly: its words' (else segments') extents are the turns."""
    words = [SpeakerTurn(w.start, w.end, w.speaker) for w in transcript.words if w.speaker]
    return words or [SpeakerTurn(s.start, s.end, s.speaker) for s in transcript.segments if s.speaker]


def evaluate_file(entry: ManifestEntry, runtime: Any, options: TranscribeOptions) -> FileResult:
    """Transcribe (and diarize) one recording as the server would, and score it."""
    truth = read_rttm(entry.rttm) if entry.rttm else None
    opts = TranscribeOptions(**{**options.to_dict(), "word_timestamps": options.word_timestamps or truth is not None})
    recorder = _RecordingDiarizer(runtime.diarizer) if options.diarize else None
    stats = PipelineStats()
    channel_wer: list[tuple[int, int]] | None = None
    with runtime.models.use(opts.model) as transcriber:
        language = options.language or entry.language
        if language and language != "en" and not getattr(transcriber, "multilingual", True):
            return FileResult(
                id=entry.id,
                language_expected=entry.language,
                skipped=f"model '{transcriber.name}' is English-only and the recording is in '{language}'",
            )

        def transcribe(
            source: Path | Audio, run_options: TranscribeOptions, diarizer: Any, run_stats: PipelineStats
        ) -> Transcript:
            return run_pipeline(
                source,
                run_options,
                transcriber,
                runtime.vad,
                diarizer=diarizer,
                max_audio_s=runtime.settings.max_audio_s,
                stats=run_stats,
            )

        transcript = transcribe(entry.audio, opts, recorder, stats)
        if entry.channel_references:
            channel_wer = _channel_errors(entry, transcribe, replace(opts, diarize=False), language)
    result = FileResult(
        id=entry.id,
        language=transcript.language,
        language_expected=entry.language,
        speakers_expected=entry.speakers,
        audio_s=round(stats.audio_seconds, 3),
        rtf=round(stats.processing_seconds / stats.audio_seconds, 4) if stats.audio_seconds else None,
        text=transcript.text,
    )
    if channel_wer is not None:
        result.channel_wer = [errors / length for errors, length in channel_wer]
        result._edits = (sum(e for e, _ in channel_wer), sum(n for _, n in channel_wer))
        result.wer = result._edits[0] / result._edits[1]
    elif entry.reference is not None:
        language = entry.language or transcript.language
        if language in CER_LANGUAGES:
            counts = character_errors(entry.reference, transcript.text)
            result.cer = counts.rate
        else:
            counts = word_errors(entry.reference, transcript.text, language)
            result.wer = counts.rate
        result._edits = (counts.errors, counts.length)
    if options.diarize:
        hypothesis = recorder.result.turns if recorder and recorder.result and recorder.result.turns else None
        if hypothesis is None:
            hypothesis = _turns_from_transcript(transcript)
        result.speakers = len({t.speaker for t in hypothesis})
        if truth is not None:
            collared = diarization_error_rate(truth, hypothesis, collar=COLLAR_S)
            plain = diarization_error_rate(truth, hypothesis)
            result.der, result.der_no_collar = collared.der, plain.der
            result._der_parts = (collared.der * collared.total, plain.der * plain.total, collared.total)
    if truth is not None:
        result.words_without_speech = _words_without_speech(transcript, truth)
    elif entry.reference is not None and not entry.reference.strip():
        result.words_without_speech = len(transcript.text.split())
    return result


def _channel_errors(
    entry: ManifestEntry,
    transcribe: Callable[[Path | Audio, TranscribeOptions, Any, PipelineStats], Transcript],
    options: TranscribeOptions,
    language: str | None,
) -> list[tuple[int, int]] | None:
    """(errors, reference words) of each channel transcribed on its own; None when the file is not stereo."""
    assert entry.channel_references is not None
    audio = decode(entry.audio, keep_channels=True)
    if audio.channels is None:
        return None
    counts = []
    for channel, reference in zip(audio.channels, entry.channel_references, strict=True):
        text = transcribe(Audio(np.ascontiguousarray(channel)), options, None, PipelineStats()).text
        scored = word_errors(reference, text, language or "en")
        counts.append((scored.errors, scored.length))
    return counts


def evaluate(
    entries: list[ManifestEntry], runtime: Any, options: TranscribeOptions, *, progress: bool = True
) -> list[FileResult]:
    """Evaluate every entry; a file that fails to process gets ``error`` set and the run goes on."""
    from tqdm import tqdm

    results = []
    for entry in tqdm(entries, desc="eval", unit="file", disable=None if progress else True, file=sys.stderr):
        try:
            results.append(evaluate_file(entry, runtime, options))
        except Exception as exc:  # one bad file must not stop the run; the reason is reported per file
            logger.exception("evaluating %s failed", entry.id)
            results.append(FileResult(id=entry.id, error=f"{type(exc).__name__}: {exc}"))
    return results


def summarise(results: list[FileResult]) -> dict[str, Any]:
    """Mean WER/CER, pooled error rates, speech-weighted DER, count and language accuracy, words without speech."""
    ok = [r for r in results if r.error is None and r.skipped is None]

    def mean(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return sum(present) / len(present) if present else None

    def ratio(hits: list[bool]) -> float | None:
        return sum(hits) / len(hits) if hits else None

    wer_edits = [r._edits for r in ok if r.wer is not None and r._edits]
    der_parts = [r._der_parts for r in ok if r._der_parts]
    der_total = sum(p[2] for p in der_parts)
    audio = sum(r.audio_s or 0.0 for r in ok)
    return {
        "files": len(results),
        "failed": sum(r.error is not None for r in results),
        "skipped": sum(r.skipped is not None for r in results),
        "mean_wer": mean([r.wer for r in ok]),
        "pooled_wer": sum(e for e, _ in wer_edits) / sum(n for _, n in wer_edits) if wer_edits else None,
        "mean_cer": mean([r.cer for r in ok]),
        "der": sum(p[0] for p in der_parts) / der_total if der_total else None,
        "der_no_collar": sum(p[1] for p in der_parts) / der_total if der_total else None,
        "speaker_count_accuracy": ratio(
            [r.speakers == r.speakers_expected for r in ok if r.speakers is not None and r.speakers_expected]
        ),
        "language_accuracy": ratio([r.language == r.language_expected for r in ok if r.language_expected]),
        "words_without_speech": sum(r.words_without_speech or 0 for r in ok),
        "audio_s": round(audio, 3),
        "rtf": sum((r.rtf or 0.0) * (r.audio_s or 0.0) for r in ok) / audio if audio else None,
    }


def _fmt(value: float | None, percent: bool = True) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if percent else f"{value:.2f}"


def render_table(results: list[FileResult], summary: dict[str, Any]) -> str:
    """A plain-text table of the results and the summary."""
    lines = [f"{'file':<40} {'WER/CER':>8} {'DER':>7} {'DER0':>7} {'spk':>5} {'lang':>7} {'RTF':>6}"]
    for r in results:
        if r.error:
            lines.append(f"{r.id:<40} FAILED: {r.error}")
            continue
        if r.skipped:
            lines.append(f"{r.id:<40} skipped: {r.skipped}")
            continue
        error_rate = r.wer if r.wer is not None else r.cer
        speakers = f"{r.speakers}/{r.speakers_expected or '?'}" if r.speakers is not None else "-"
        language = f"{r.language}/{r.language_expected or '?'}"
        lines.append(
            f"{r.id:<40} {_fmt(error_rate):>8} {_fmt(r.der):>7} {_fmt(r.der_no_collar):>7} {speakers:>5} "
            f"{language:>7} {_fmt(r.rtf, False):>6}"
        )
    s = summary
    lines += [
        "",
        f"files {s['files']} (failed {s['failed']}, skipped {s['skipped']}), audio {s['audio_s']:.0f} s, "
        f"RTF {_fmt(s['rtf'], False)}",
        f"mean WER {_fmt(s['mean_wer'])} (pooled {_fmt(s['pooled_wer'])}), mean CER {_fmt(s['mean_cer'])}",
        f"DER {_fmt(s['der'])} with a {COLLAR_S} s collar, {_fmt(s['der_no_collar'])} without (speech-weighted)",
        f"speaker count right {_fmt(s['speaker_count_accuracy'])}, language right {_fmt(s['language_accuracy'])}, "
        f"words where there is no speech {s['words_without_speech']}",
    ]
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace, settings: Any) -> int:
    """Run ``auricle eval`` with parsed arguments; exit status 1 if any file failed."""
    from auricle.engine.runtime import Runtime

    if args.model:
        settings.default_model = args.model
    entries = read_manifest(Path(args.manifest))
    options = TranscribeOptions(model=args.model, language=args.language, diarize=args.diarize)
    results = evaluate(entries, Runtime(settings), options, progress=not args.json)
    summary = summarise(results)
    if args.json:
        sys.stdout.write(json.dumps({"files": [r.to_dict() for r in results], "summary": summary}, indent=2) + "\n")
    else:
        sys.stdout.write(render_table(results, summary) + "\n")
    for r in results:
        if r.error:
            sys.stderr.write(f"auricle eval: {r.id}: {r.error}\n")
    return 1 if summary["failed"] else 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``eval`` on the ``auricle`` command's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "eval", help="score a manifest of recordings (WER/CER, DER, speaker count, language, speed)"
    )
    parser.add_argument("manifest", help="JSON Lines manifest (the corpus format)")
    parser.add_argument("--model", default=None, help="model to evaluate (default: the configured default)")
    parser.add_argument("--diarize", action="store_true", help="diarize too, and score DER and speaker counts")
    parser.add_argument("--language", default=None, help="force this language instead of detecting it")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    parser.set_defaults(func=cmd_eval)
    return parser

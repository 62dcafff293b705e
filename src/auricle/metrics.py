"""Prometheus metrics, one module so that names stay consistent. Exposed at ``GET /metrics``.

Metrics are process-wide (prometheus_client's default registry), as is usual for exporters.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

from auricle import __version__

__all__ = [
    "AUDIO_DURATION_SECONDS",
    "AUDIO_SECONDS",
    "AUTH_REJECTIONS",
    "BACKPRESSURE_EVENTS",
    "ERRORS",
    "IN_FLIGHT",
    "JOBS_BY_STATE",
    "JOB_RUN_SECONDS",
    "JOB_WAIT_SECONDS",
    "MODELS_LOADED",
    "MODEL_EVICTIONS",
    "MODEL_LOAD_SECONDS",
    "PROCESSING_SECONDS",
    "QUEUE_DEPTH",
    "REAL_TIME_FACTOR",
    "REQUESTS",
    "REQUEST_SECONDS",
    "SERVICE_INFO",
    "STAGE_SECONDS",
    "STREAM_AUDIO_BYTES",
    "STREAM_CONFIRM_SECONDS",
    "STREAM_CONNECTIONS",
    "STREAM_ERRORS",
    "STREAM_FIRST_HYPOTHESIS_SECONDS",
    "STREAM_LAG_SECONDS",
    "STREAM_SCHEDULER_BACKLOG",
    "STREAM_STEP_SECONDS",
    "STREAM_SESSIONS",
    "STREAM_SESSIONS_CLOSED",
    "STREAM_SESSIONS_OPENED",
    "TEXT_WITHOUT_SPEECH",
    "TRANSCRIPTIONS",
    "TRANSCRIPTION_AVG_LOGPROB",
    "UPLOAD_BYTES",
    "WAITING",
    "WEBHOOK_DELIVERIES",
    "WEBHOOK_SECONDS",
    "WORKERS",
    "set_service_info",
]

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800)
_STREAM_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10)

# HTTP
REQUESTS = Counter("auricle_http_requests_total", "HTTP requests by route and status.", ["route", "method", "status"])
REQUEST_SECONDS = Histogram(
    "auricle_http_request_seconds", "HTTP request latency.", ["route"], buckets=_LATENCY_BUCKETS
)
ERRORS = Counter("auricle_errors_total", "Errors reported to clients, by type.", ["type"])
# Set by api/transcription.py: a sync request waits until a worker starts its job, then is in flight until it ends.
IN_FLIGHT = Gauge("auricle_transcriptions_in_flight", "Sync requests of this process whose job a worker is running.")
WAITING = Gauge("auricle_transcriptions_waiting", "Sync requests of this process whose job waits for a worker.")

# Transcription
PROCESSING_SECONDS = Histogram(
    "auricle_processing_seconds", "Wall time to transcribe one file.", buckets=_LATENCY_BUCKETS
)
STAGE_SECONDS = Histogram("auricle_stage_seconds", "Wall time per pipeline stage.", ["stage"], buckets=_LATENCY_BUCKETS)
AUDIO_SECONDS = Counter("auricle_audio_seconds_total", "Seconds of audio transcribed.")
REAL_TIME_FACTOR = Histogram(
    "auricle_real_time_factor",
    "Audio seconds per wall second for one file (higher is faster).",
    buckets=(0.5, 1, 2, 4, 8, 16, 32, 64, 128),
)
MODEL_LOAD_SECONDS = Gauge("auricle_model_load_seconds", "Time it took to load a model.", ["model"])
MODELS_LOADED = Gauge("auricle_models_loaded", "Models loaded in this process.")
MODEL_EVICTIONS = Counter("auricle_model_evictions_total", "Models unloaded after their idle TTL.", ["model"])
AUDIO_DURATION_SECONDS = Histogram(
    "auricle_audio_duration_seconds",
    "Duration of each transcribed file (seconds of audio).",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400),
)
UPLOAD_BYTES = Histogram(
    "auricle_upload_bytes",
    "Size of each uploaded audio file (bytes).",
    buckets=tuple(float(kb * 1024) for kb in (16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)),
)
# Accuracy signals, recorded by the process that transcribes (engine/signals.py): see the README's metrics table.
TRANSCRIPTIONS = Counter(
    "auricle_transcriptions_total",
    "Transcriptions (files, and streaming sessions that produced text), by the language of the text: a Whisper "
    "language code, or none when no text came out.",
    ["language"],
)
TEXT_WITHOUT_SPEECH = Counter(
    "auricle_transcriptions_text_without_speech_total",
    "Transcriptions with a segment of text lying wholly outside the speech VAD found (a hallucination signal).",
)
TRANSCRIPTION_AVG_LOGPROB = Histogram(
    "auricle_transcription_avg_logprob",
    "Mean avg_logprob of one transcription's segments, weighted by segment duration (closer to 0 is surer).",
    buckets=(-2, -1.5, -1.2, -1, -0.8, -0.7, -0.6, -0.5, -0.4, -0.3, -0.2, -0.1, 0),
)
SERVICE_INFO = Info("auricle_service", "The server: version, inference device and compute type.")


def set_service_info(device: str, compute_type: str) -> None:
    """Fill ``auricle_service_info`` (every process that exposes metrics calls this as it starts)."""
    SERVICE_INFO.info({"version": __version__, "device": device, "compute_type": compute_type})


# Auth
AUTH_REJECTIONS = Counter(
    "auricle_auth_rejections_total",
    "Requests and WebSocket handshakes refused by API-key auth, by reason: missing_key, invalid_key, locked_out.",
    ["reason"],
)

# Jobs
QUEUE_DEPTH = Gauge("auricle_queue_depth", "Jobs waiting to run.")
JOBS_BY_STATE = Gauge("auricle_jobs", "Jobs by state.", ["state"])
JOB_WAIT_SECONDS = Histogram("auricle_job_wait_seconds", "Time from submit to start.", buckets=_LATENCY_BUCKETS)
JOB_RUN_SECONDS = Histogram("auricle_job_run_seconds", "Time from start to finish.", buckets=_LATENCY_BUCKETS)
WORKERS = Gauge("auricle_workers", "Job workers alive.")

# Streaming
STREAM_SESSIONS = Gauge("auricle_stream_sessions", "Active streaming sessions.")
STREAM_AUDIO_BYTES = Counter("auricle_stream_audio_bytes_total", "Audio bytes received over WebSocket.")
STREAM_FIRST_HYPOTHESIS_SECONDS = Histogram(
    "auricle_stream_first_hypothesis_seconds",
    "Time from a word's audio arriving to its first hypothesis.",
    buckets=_STREAM_BUCKETS,
)
STREAM_CONFIRM_SECONDS = Histogram(
    "auricle_stream_confirm_seconds", "Time from a word's audio arriving to its confirmation.", buckets=_STREAM_BUCKETS
)
STREAM_STEP_SECONDS = Histogram(
    "auricle_stream_step_seconds", "Wall time of one recognition step (decodes) of a session.", buckets=_STREAM_BUCKETS
)
STREAM_LAG_SECONDS = Histogram(
    "auricle_stream_lag_seconds",
    "Real-time lag of a session when its step starts: received audio not yet recognised (seconds of audio).",
    buckets=_STREAM_BUCKETS,
)
STREAM_SCHEDULER_BACKLOG = Gauge("auricle_stream_scheduler_backlog", "Streaming sessions waiting for a step.")
BACKPRESSURE_EVENTS = Counter("auricle_stream_backpressure_total", "Backpressure messages sent.", ["action"])
STREAM_ERRORS = Counter("auricle_stream_errors_total", "Streaming errors by code.", ["code"])
STREAM_CONNECTIONS = Counter(
    "auricle_stream_connections_total",
    "WebSocket connections by endpoint (transcribe, realtime) and outcome: accepted, session_limit, draining, "
    "no_model.",
    ["endpoint", "outcome"],
)
STREAM_SESSIONS_OPENED = Counter("auricle_stream_sessions_opened_total", "Streaming sessions started.", ["endpoint"])
STREAM_SESSIONS_CLOSED = Counter(
    "auricle_stream_sessions_closed_total",
    "Streaming sessions ended, by endpoint and reason (completed, client closed, idle timeout, message rate limit, "
    "client not reading, ...).",
    ["endpoint", "reason"],
)

# Webhooks
WEBHOOK_DELIVERIES = Counter(
    "auricle_webhook_deliveries_total",
    "Webhook delivery attempts by outcome: delivered, retry (will be tried again), failed (given up), refused.",
    ["outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "auricle_webhook_seconds", "Wall time of one webhook delivery attempt.", buckets=_LATENCY_BUCKETS
)

"""Settings: the only place that reads the environment.

Every field is an ``AURICLE_<NAME>`` environment variable (nested sections use ``__``,
e.g. ``AURICLE_STREAMING__SESSION_LIMIT``). A TOML file named by ``AURICLE_CONFIG_FILE``
can provide the same keys; the environment wins. ``auricle config`` prints the reference.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "StreamingSettings", "default_cpu_threads", "default_workers"]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def _xdg(variable: str, fallback: str) -> Path:
    base = os.environ.get(variable)
    return (Path(base) if base else Path.home() / fallback) / "auricle"


def default_cpu_threads() -> int:
    """Threads per transcription: 1 on CPU.

    Measured on a 2-core machine: int8 CTranslate2 with one OpenMP thread per request and one request
    per core gave about 3x the throughput of one request using both cores (see bench/throughput.py).
    """
    return 1


def default_workers() -> int:
    """Transcriptions run at once: one per core, since each uses one thread."""
    return max(1, _cores() // default_cpu_threads())


class StreamingSettings(BaseModel):
    """Limits of the WebSocket ``/transcribe`` endpoint."""

    session_limit: int = Field(20, ge=1, description="Maximum concurrent streaming sessions.")
    idle_timeout_s: float = Field(120.0, gt=0, description="Seconds without any client message before closing.")
    max_session_s: float = Field(7200.0, gt=0, description="Maximum session length in seconds of wall time.")
    max_transcript_bytes: int = Field(1_000_000, ge=1, description="Maximum size of a session's transcript (bytes).")
    max_frame_bytes: int = Field(16 * 1024 * 1024, ge=1, description="Maximum size of one WebSocket frame (bytes).")
    buffer_s: float = Field(30.0, gt=1, description="Per-session audio buffer (seconds) used for backpressure.")
    model: str | None = Field(None, description="Default streaming model (defaults to the server's default model).")
    max_messages_per_s: float = Field(
        0.0,
        ge=0,
        description="Client messages (frames) per second a session may send above its burst; beyond, an error "
        "message and close 1008 (0: no limit; 20 ms audio chunks in real time are 50/s).",
    )
    message_burst: int = Field(
        200, ge=1, description="Client messages a session may send at once above `max_messages_per_s`."
    )
    max_outbox_messages: int = Field(
        1000,
        ge=1,
        description="Messages queued for a client that is not reading them before its session is closed with 1008.",
    )
    policy: Literal["eager", "utterance", "la2"] = Field(
        "utterance",
        description=(
            "When words become final: `eager` = as soon as two decodes agree (a phrase per step; a word near the "
            "end of the decoded audio waits for a decode that hears past it, a doubtful word for decodes that heard "
            "1 s after it), `utterance` = one phrase per pause or clause "
            "(beam re-decode; the default until `eager` matches batch accuracy on every file, and what /v1/realtime "
            "items use), `la2` = plain fixed-step LocalAgreement-2 (benchmark contender)."
        ),
    )
    step_s: float = Field(
        0.5, gt=0.05, le=5, description="New audio (seconds) before the unconfirmed tail is decoded again."
    )
    endpoint_ms: int = Field(500, ge=100, le=3000, description="Silence (ms) that ends an utterance (VAD endpointing).")
    beam_size: int = Field(
        1, ge=1, le=10, description="Beam size of the frequent tentative decodes (1 = greedy; 5 costs about the same)."
    )
    final_beam_size: int = Field(5, ge=1, le=20, description="Beam size of the decode at the end of an utterance.")
    language: str = Field(
        "en",
        min_length=2,
        max_length=16,
        description="Language of a `/transcribe` session whose `speech.config` names none (the protocol's default "
        "is `en`): a code such as `de`, or `auto` to detect it on the first utterance (English-only models always "
        "use `en`).",
    )


class Settings(BaseSettings):
    """Auricle configuration. Every field has a safe default so that ``auricle serve`` works with none."""

    model_config = SettingsConfigDict(
        env_prefix="AURICLE_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    # -- models -----------------------------------------------------------------------------------
    default_model: str = Field("base", description="Model used when a request names none (or names `whisper-1`).")
    preload_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Models loaded at start (comma-separated list or JSON array)."
    )
    models_dir: Path | None = Field(
        None, description="Extra directory searched for CTranslate2 model folders named after the model."
    )
    allow_download: bool = Field(
        False, description="Allow downloading hub models (`small`, `large-v3` ...) when online. Off by default."
    )
    model_idle_ttl_s: float = Field(0.0, ge=0, description="Unload a model idle for this many seconds (0 = never).")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Inference device; `auto` picks CUDA when present."
    )
    compute_type: str = Field(
        "default", description="CTranslate2 compute type; `default` = int8 on CPU, float16 on CUDA."
    )
    cpu_threads: int = Field(
        default_factory=default_cpu_threads, ge=1, description="CPU threads per transcription (measured best: 1)."
    )
    workers: int = Field(
        default_factory=default_workers, ge=1, description="Transcriptions run at the same time (default: CPU cores)."
    )
    batch_size: int = Field(
        1, ge=1, description="Windows decoded together per long-file piece (pieces run in parallel; 1 measured best)."
    )
    beam_size: int = Field(5, ge=1, le=20, description="Beam size for decoding.")
    batched_min_s: float = Field(
        90.0, ge=0, description="Files at least this long (seconds) use the batched decoder; shorter ones sequential."
    )

    # -- data and limits ---------------------------------------------------------------------------
    data_dir: Path = Field(
        default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share"),
        description="Directory for the job database and spooled uploads (default ~/.local/share/auricle).",
    )
    cache_dir: Path = Field(
        default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache"),
        description="Where assembled bundled models are cached (default ~/.cache/auricle).",
    )
    max_upload_mb: float = Field(1024.0, gt=0, description="Maximum upload size in MB (413 beyond).")
    max_audio_s: float = Field(4 * 3600.0, gt=0, description="Maximum audio duration in seconds (413 beyond).")
    max_queue: int = Field(64, ge=0, description="Requests/jobs allowed to wait for a worker (503 beyond).")

    # -- HTTP ----------------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address `auricle serve` listens on.")
    port: int = Field(
        9000, ge=0, le=65535, description="Port `auricle serve` listens on (9000 like whisper-asr-webservice)."
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="API keys; when set every route but /health and /ready needs a Bearer key."
    )
    allow_unauthenticated: bool = Field(
        False,
        description="Let `auricle serve` listen on a non-loopback address with no API keys (refused otherwise).",
    )
    protect_metrics: bool = Field(True, description="Require an API key for /metrics when keys are configured.")
    auth_fail_limit: int = Field(10, ge=1, description="Failed auth attempts from one address before 429.")
    auth_fail_window_s: float = Field(60.0, gt=0, description="Window (and lock-out time) for failed auth attempts.")
    rate_limit_per_key: float = Field(
        0.0, ge=0, description="Requests per second each API key may make to the APIs (429 beyond; 0: no limit)."
    )
    rate_limit_per_address: float = Field(
        0.0,
        ge=0,
        description="Requests per second each client address may make to the APIs without a key (0: no limit).",
    )
    rate_limit_burst: int = Field(20, ge=1, description="Requests a key or address may make at once above its rate.")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Addresses or networks of reverse proxies whose `X-Forwarded-For`/`-Proto` are believed (default none:"
            " the peer address counts for limits and logs)."
        ),
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Allowed CORS origins (default none)."
    )
    asr_word_timestamps_default: bool = Field(
        False, description="`/asr` word timestamps when the client sends none (whisper-asr-webservice: false)."
    )
    asr_diarize_default: bool = Field(False, description="`/asr` diarization when the client sends no flag.")
    asr_subtitles_as_json: bool = Field(
        False,
        description="Wrap srt/vtt/tsv/text `/asr` answers in JSON (WhisperX service style) instead of raw bodies.",
    )
    asr_json_text_segments: bool = Field(
        False,
        description="`/asr` JSON in the WhisperX service shape: `text` holds the segment list instead of a string.",
    )

    # -- jobs ------------------------------------------------------------------------------------------
    redis_url: str | None = Field(
        None, description="Redis/Valkey URL; when set jobs go through Redis to `auricle worker`s."
    )
    local_workers: bool = Field(True, description="Run job workers inside `auricle serve` (embedded mode).")
    worker_metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description=(
            "Port on which `auricle worker` serves Prometheus metrics (any path) on `AURICLE_HOST`, without an API"
            " key: keep it private (0 = off)."
        ),
    )
    job_ttl_s: float = Field(7 * 86400.0, gt=0, description="Seconds a finished job's result and audio are kept.")
    job_lease_s: float = Field(60.0, gt=0, description="Seconds a claimed job stays leased without a heartbeat.")
    shutdown_grace_s: float = Field(
        30.0,
        ge=0,
        description=(
            "Seconds `auricle serve` and `auricle worker` keep finishing running work after SIGTERM (while `/ready`"
            " says `draining` and new work gets 503); what is still running then is re-queued."
        ),
    )
    max_beam_size: int = Field(10, ge=1, le=20, description="Largest `beam_size` a request may ask for (400 beyond).")

    # -- webhooks and URLs ---------------------------------------------------------------------------
    webhook_url: str | None = Field(
        None, description="Default webhook URL told when a job ends (a job's own `webhook_url` wins)."
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="Signing secrets `whsec_<base64>` (space-separated during rotation: each signs every delivery).",
    )
    webhook_timeout_s: float = Field(10.0, gt=0, description="Seconds one webhook delivery attempt may take.")
    webhook_max_attempts: int = Field(8, ge=1, description="Delivery attempts of one webhook event before giving up.")
    webhook_backoff_s: float = Field(
        5.0, gt=0, description="Seconds before the first retry; doubles with each attempt (capped at one hour)."
    )
    webhook_poll_s: float = Field(1.0, gt=0, description="Seconds between looks for webhook deliveries that are due.")
    public_url: str | None = Field(
        None, description="This server's public base URL, for absolute `result_url`s in webhook events."
    )
    url_allow_private: bool = Field(
        False, description="Allow webhook and audio URLs on private, loopback or link-local addresses."
    )
    url_fetch_timeout_s: float = Field(300.0, gt=0, description="Seconds a worker may spend fetching one audio URL.")
    url_max_redirects: int = Field(5, ge=0, description="Redirects followed when fetching an audio URL.")

    # -- logs ------------------------------------------------------------------------------------------
    log_level: str = Field("INFO", description="Log level.")
    log_format: Literal["text", "json"] = Field("text", description="`text` or `json` lines.")

    streaming: StreamingSettings = Field(default_factory=StreamingSettings, description="WebSocket streaming limits.")

    @field_validator("preload_models", "api_keys", "cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        """Accept a comma-separated string or a JSON array for list settings."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        """Each space-separated secret must be ``whsec_`` followed by base64 (the key bytes)."""
        if value is None:
            return None
        import base64
        import binascii

        for item in value.get_secret_value().split():
            try:
                base64.b64decode(item.removeprefix("whsec_"), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("each webhook secret must be `whsec_` followed by base64") from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("AURICLE_CONFIG_FILE")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def model_cache_dir(self) -> Path:
        """Directory holding assembled bundled models."""
        return self.cache_dir / "models"

    @property
    def spool_dir(self) -> Path:
        """Directory for uploaded audio."""
        return self.data_dir / "spool"


def reference() -> list[dict[str, Any]]:
    """The configuration reference, drawn from the Settings class (used by `auricle config` and the README)."""
    rows: list[dict[str, Any]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, f"{prefix}{name.upper()}__")
                continue
            default = field.get_default(call_default_factory=True)
            if field.default_factory is not None and isinstance(default, Path | int):
                default = "(computed)"  # depends on the machine (cores, home directory)
            elif isinstance(default, list):
                default = ",".join(map(str, default))
            rows.append({"env": f"{prefix}{name.upper()}", "default": default, "description": field.description or ""})

    walk(Settings, "AURICLE_")
    return rows

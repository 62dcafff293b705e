"""Durable jobs: the job contract and its state machine (``base``), typed events (``events``), the error codec
(``codec``), the stores (``memory``, ``sqlite``, ``redis``), Redis delivery (``dramatiq``), the workers that run
jobs (``worker``), the sync endpoints' submit-and-wait (``service``), signed webhooks when jobs end (``webhooks``)
and the guard and fetch of outbound URLs (``urls``).

``jobs`` imports the engine and never :mod:`auricle.api`.
"""

from __future__ import annotations

from auricle.jobs.base import STATES, TERMINAL, Claim, Job, JobQueue, JobStatus
from auricle.jobs.codec import ErrorInfo, decode_error, encode_error
from auricle.jobs.events import FinishedEvent, JobEvent, ProgressEvent, StateEvent
from auricle.jobs.memory import MemoryJobQueue
from auricle.jobs.sqlite import SqliteJobQueue

__all__ = [
    "STATES",
    "TERMINAL",
    "Claim",
    "ErrorInfo",
    "FinishedEvent",
    "Job",
    "JobEvent",
    "JobQueue",
    "JobStatus",
    "MemoryJobQueue",
    "ProgressEvent",
    "SqliteJobQueue",
    "StateEvent",
    "decode_error",
    "encode_error",
]

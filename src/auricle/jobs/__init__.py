"""Durable jobs: the queue contract, its backends (memory, SQLite, Redis) and the workers that run jobs."""

from __future__ import annotations

from auricle.jobs.base import STATES, TERMINAL, Job, JobEvent, JobQueue, JobStatus
from auricle.jobs.memory import MemoryJobQueue
from auricle.jobs.sqlite import SqliteJobQueue

__all__ = ["STATES", "TERMINAL", "Job", "JobEvent", "JobQueue", "JobStatus", "MemoryJobQueue", "SqliteJobQueue"]

"""Jobs: any tool can run in the background (start -> id -> status / result / cancel / wait), journaled in the
workspace so a restarted server still knows every finished job and marks interrupted ones."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from tools.core.errors import ToolError, ToolInputError, describe
from tools.core.registry import Cancelled, ToolContext, ToolSpec, internal_error
from tools.core.settings import Settings

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
FINISHED: set[str] = {"succeeded", "failed", "cancelled", "interrupted"}


@dataclass
class JobRecord:
    """The journaled state of one job."""

    id: str
    tool: str
    arguments: dict[str, Any]
    state: JobState = "queued"
    progress: float = 0.0
    total: float | None = None
    message: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    estimated_seconds: float | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    resumed_as: str | None = None  # the job that resume started for this one, so a second resume returns it


class JobManager:
    """Runs tools in worker threads and keeps one JSON journal file per job under workspace/jobs."""

    def __init__(self, settings: Settings, max_workers: int = 2) -> None:
        self.settings = settings
        self.dir = settings.resolved_workspace() / "jobs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="matsearch-job")
        self._lock = threading.Lock()
        self._jobs: dict[str, JobRecord] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._done: dict[str, threading.Event] = {}
        self._resume_lock = threading.Lock()
        self._recover()

    def _path(self, job_id: str) -> Path:
        return self.dir / f"{job_id}.json"

    def _save(self, job: JobRecord) -> None:
        """Write the journal entry atomically (temp file + rename), so a kill never leaves half a file."""
        tmp = self._path(job.id).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(job), default=str))
        tmp.replace(self._path(job.id))

    def _recover(self) -> None:
        """Load the journal; jobs that were queued or running when the process died are marked interrupted."""
        for path in sorted(self.dir.glob("*.json")):
            try:
                job = JobRecord(**json.loads(path.read_text()))
            except (ValueError, TypeError):
                continue
            if job.state not in FINISHED:
                job.state = "interrupted"
                job.error = "the server stopped while this job ran; start it again"
                job.finished_at = time.time()
                self._save(job)
            self._jobs[job.id] = job
            done = threading.Event()
            done.set()
            self._done[job.id] = done

    def start(self, spec: ToolSpec, arguments: dict[str, Any], settings: Settings | None = None) -> JobRecord:
        """Validate the arguments now (errors reach the caller at once), then run the tool in the background."""
        validated = spec.validate(arguments)
        job = JobRecord(
            id="job-" + uuid.uuid4().hex[:12],
            tool=spec.name,
            arguments=validated.model_dump(mode="json"),
            estimated_seconds=spec.estimated_seconds(validated),
        )
        cancel, done = threading.Event(), threading.Event()
        with self._lock:
            self._jobs[job.id] = job
            self._cancel[job.id] = cancel
            self._done[job.id] = done
            self._save(job)

        def progress(value: float, total: float | None, message: str | None) -> None:
            with self._lock:
                job.progress, job.total, job.message = value, total, message
                self._save(job)

        def work() -> None:
            ctx = ToolContext(settings=settings or self.settings, progress_fn=progress, cancel_event=cancel)
            with self._lock:
                job.state, job.started_at = "running", time.time()
                self._save(job)
            try:
                if cancel.is_set():
                    raise Cancelled(f"{spec.name} was cancelled")
                output = spec.run(validated, ctx)
                state, result, error = "succeeded", output.model_dump(mode="json"), None
            except Cancelled as exc:
                state, result, error = "cancelled", None, str(exc)
            except ToolError as exc:
                state, result, error = "failed", None, describe(exc)
            except Exception as exc:  # noqa: BLE001 - a job must always end in a journaled state
                state, result, error = "failed", None, describe(internal_error(spec.name, exc, ctx.settings))
            with self._lock:
                job.state, job.result, job.error, job.finished_at = state, result, error, time.time()
                self._save(job)
            done.set()

        self._pool.submit(work)
        return job

    def resume(self, job_id: str, spec: ToolSpec, settings: Settings | None = None) -> JobRecord:
        """Start an interrupted, failed or cancelled job again with the same arguments. Work already stored in
        memory is reused (the search treats memory as its transposition table), so it continues, not restarts.
        Idempotent: while the job's resume is queued, running or has succeeded, resuming again returns that one
        instead of starting a second run of the same work."""
        with self._resume_lock:
            old = self.get(job_id)
            if old.state not in {"interrupted", "failed", "cancelled"}:
                raise ToolInputError(f"job {job_id} is {old.state}; only interrupted, failed or cancelled jobs resume")
            if old.resumed_as is not None and old.resumed_as in self._jobs:
                previous = self.get(old.resumed_as)
                if previous.state in {"queued", "running", "succeeded"}:
                    return previous
            new = self.start(spec, old.arguments, settings)
            with self._lock:
                old.resumed_as = new.id
                self._save(old)
            return new

    def get(self, job_id: str) -> JobRecord:
        with self._lock:
            if job_id not in self._jobs:
                raise ToolInputError(f"no job with id {job_id!r}")
            return self._jobs[job_id]

    def cancel(self, job_id: str) -> JobRecord:
        """Ask a job to stop; it stops at its next progress report (a queued job never starts)."""
        job = self.get(job_id)
        if job.state not in FINISHED:
            self._cancel[job_id].set()
        return job

    def wait(self, job_id: str, timeout_s: float) -> JobRecord:
        """Block up to timeout_s for the job to finish, then return its record either way."""
        self.get(job_id)
        self._done[job_id].wait(timeout=timeout_s)
        return self.get(job_id)

    def list(self, limit: int = 50) -> list[JobRecord]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created_at, reverse=True)[:limit]


_managers: dict[str, JobManager] = {}
_managers_lock = threading.Lock()


def get_job_manager(settings: Settings) -> JobManager:
    """The process-wide job manager for this workspace."""
    key = str(settings.resolved_workspace())
    with _managers_lock:
        if key not in _managers:
            _managers[key] = JobManager(settings)
        return _managers[key]

"""Job tools: run any long tool in the background and poll it, so clients with short call timeouts still work."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field

from tools.core.errors import ToolInputError
from tools.core.jobs import FINISHED, JobRecord, get_job_manager
from tools.core.registry import ANY_TOOL, ToolContext, ToolInput, get_tool, tool

MAX_WAIT_S = 50.0


class JobInfo(BaseModel):
    job_id: str
    tool: str
    state: str = Field(description="queued, running, succeeded, failed, cancelled or interrupted")
    progress: float
    total: float | None
    message: str | None
    estimated_seconds: float | None
    elapsed_seconds: float | None
    error: str | None = None
    result: dict[str, Any] | None = Field(default=None, description="The tool's output once succeeded.")
    resumed_as: str | None = Field(default=None, description="The job job_resume started for this one, if any.")
    note: str | None = Field(default=None, description="What the caller should know about how the job will run.")

    @classmethod
    def of(cls, job: JobRecord, with_result: bool = False) -> JobInfo:
        end = job.finished_at or (None if job.started_at is None else time.time())
        return cls(
            job_id=job.id,
            tool=job.tool,
            state=job.state,
            progress=job.progress,
            total=job.total,
            message=job.message,
            estimated_seconds=job.estimated_seconds,
            elapsed_seconds=None if job.started_at is None or end is None else round(end - job.started_at, 2),
            error=job.error,
            result=job.result if with_result else None,
            resumed_as=job.resumed_as,
        )


# Over stdio the server is a child of its client: when the client exits, the server and its jobs stop.
STDIO_NOTE = (
    "this server talks to its client over stdio, so it stops when the client process exits and a running job "
    "stops with it (job_status then says interrupted; job_resume continues it, reusing stored results); for work "
    "that should outlive the client, run the HTTP server (`matsearch serve --http`) and connect to it"
)


class JobStartInput(ToolInput):
    tool: str = Field(description="Name of the tool to run as a job, e.g. 'hierarchical_search'.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="The tool's arguments, as for a direct call.")


@tool(cost="instant", reaches=(ANY_TOOL,))
def job_start(inp: JobStartInput, ctx: ToolContext) -> JobInfo:
    """Start any tool as a background job and return its job id at once (with an estimated cost in seconds
    when the tool can estimate it). Poll with job_status or job_wait; fetch the output with job_result."""
    spec = get_tool(inp.tool)
    if inp.tool.startswith("job_"):
        raise ToolInputError("job tools cannot themselves run as jobs")
    info = JobInfo.of(get_job_manager(ctx.settings).start(spec, inp.arguments, ctx.settings))
    if ctx.transport == "stdio":
        info.note = STDIO_NOTE
    return info


class JobIdInput(ToolInput):
    job_id: str = Field(min_length=1, max_length=64, description="Job id from job_start or job_list.")


@tool(cost="instant", reaches=(), read_only=True, idempotent=True)
def job_status(inp: JobIdInput, ctx: ToolContext) -> JobInfo:
    """State and progress of a job (queued, running, succeeded, failed, cancelled, interrupted)."""
    return JobInfo.of(get_job_manager(ctx.settings).get(inp.job_id))


@tool(cost="instant", reaches=(), read_only=True, idempotent=True)
def job_result(inp: JobIdInput, ctx: ToolContext) -> JobInfo:
    """The output of a finished job (its `result`), or its error; an error if it has not finished yet."""
    job = get_job_manager(ctx.settings).get(inp.job_id)
    if job.state not in FINISHED:
        raise ToolInputError(f"job {inp.job_id} is still {job.state} ({job.progress}/{job.total}); use job_wait")
    return JobInfo.of(job, with_result=True)


@tool(cost="instant", reaches=(), destructive=True)
def job_cancel(inp: JobIdInput, ctx: ToolContext) -> JobInfo:
    """Cancel a queued or running job; it stops at its next progress step."""
    return JobInfo.of(get_job_manager(ctx.settings).cancel(inp.job_id))


@tool(cost="instant", reaches=(ANY_TOOL,))
def job_resume(inp: JobIdInput, ctx: ToolContext) -> JobInfo:
    """Start an interrupted (server restarted), failed or cancelled job again with its original arguments; results
    already stored in memory are reused, so a search continues where it stopped. Returns the new job; resuming
    again while that one is queued, running or done returns it rather than starting a second run."""
    manager = get_job_manager(ctx.settings)
    old = manager.get(inp.job_id)
    return JobInfo.of(manager.resume(inp.job_id, get_tool(old.tool), ctx.settings))


class JobWaitInput(ToolInput):
    job_id: str = Field(min_length=1, max_length=64, description="Job id from job_start or job_list.")
    timeout_s: float = Field(default=20.0, ge=0, le=MAX_WAIT_S, description="Longest wait, at most 50 s.")


@tool(cost="instant", reaches=(), read_only=True, idempotent=True)
def job_wait(inp: JobWaitInput, ctx: ToolContext) -> JobInfo:
    """Wait up to timeout_s (at most 50 s) for a job to finish; returns its state, and its result if done."""
    job = get_job_manager(ctx.settings).wait(inp.job_id, inp.timeout_s)
    return JobInfo.of(job, with_result=job.state == "succeeded")


class JobListInput(ToolInput):
    limit: int = Field(default=20, ge=1, le=500, description="Most jobs to list, newest first (1-500).")


class JobListOutput(BaseModel):
    jobs: list[JobInfo]


@tool(cost="instant", reaches=(), read_only=True, idempotent=True)
def job_list(inp: JobListInput, ctx: ToolContext) -> JobListOutput:
    """The most recent jobs with their states, newest first."""
    return JobListOutput(jobs=[JobInfo.of(j) for j in get_job_manager(ctx.settings).list(inp.limit)])


class EstimateCostInput(ToolInput):
    tool: str = Field(description="Name of the tool to estimate, e.g. 'run_md'.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="The tool's arguments, as for a direct call.")


class EstimateCostOutput(BaseModel):
    tool: str
    cost_class: str = Field(description="instant, minutes or long")
    estimated_seconds: float | None


@tool(cost="instant", reaches=(), read_only=True, idempotent=True)
def estimate_cost(inp: EstimateCostInput, ctx: ToolContext) -> EstimateCostOutput:
    """Estimate how long a tool call would take (seconds, from its size) before running it."""
    spec = get_tool(inp.tool)
    return EstimateCostOutput(
        tool=spec.name, cost_class=spec.cost, estimated_seconds=spec.estimated_seconds(inp.arguments)
    )

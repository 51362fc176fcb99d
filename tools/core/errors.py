"""Typed tool errors: they become clean MCP errors, agent observations and CLI messages, never tracebacks.

Two kinds reach a caller, and every adapter shows which (`describe`): an input error (the arguments are wrong:
validation or an explicit check said what to fix) and a runtime error (the arguments were fine but the work
failed). A failure nobody anticipated (a bug) is a runtime error of its own class carrying a short id; its
traceback is logged under that id, never shown to the caller."""


class ToolError(Exception):
    """Base class of errors a tool reports to its caller with a readable message."""

    kind = "error"


class ToolInputError(ToolError, ValueError):
    """The caller's input is wrong (bad structure text, unknown element, out-of-range number, bad path)."""

    kind = "input error"


class ToolRuntimeError(ToolError, RuntimeError):
    """The input was fine but the work failed (model failure, store unavailable, job cancelled)."""

    kind = "runtime error"


class ToolInternalError(ToolRuntimeError):
    """An unexpected failure inside a tool (a bug, not the caller's arguments): the message names the tool, the
    exception and `error_id`, under which the traceback was logged."""

    kind = "internal error"

    def __init__(self, message: str, error_id: str) -> None:
        super().__init__(message)
        self.error_id = error_id


def describe(exc: ToolError) -> str:
    """How every adapter shows a tool error to its caller: the kind, then the message."""
    return f"{exc.kind}: {exc}"

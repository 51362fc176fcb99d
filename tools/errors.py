"""Typed tool errors: they become clean MCP errors, agent observations and CLI messages, never tracebacks."""


class ToolError(Exception):
    """Base class of errors a tool reports to its caller with a readable message."""


class ToolInputError(ToolError, ValueError):
    """The caller's input is wrong (bad structure text, unknown element, out-of-range number, bad path)."""


class ToolRuntimeError(ToolError, RuntimeError):
    """The input was fine but the work failed (model failure, store unavailable, job cancelled)."""

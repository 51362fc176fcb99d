"""matsearch agent: planning, chat and the command-line interface on top of the tool registry.

Python API: `from agent import call, search, chat, run, tools`.
"""

from agent.api import call, chat, run, search, tools

__all__ = ["call", "chat", "run", "search", "tools"]

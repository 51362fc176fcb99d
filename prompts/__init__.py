"""Prompt texts live here as files, so wording changes never touch code."""

from __future__ import annotations

import re
from pathlib import Path

PROMPT_DIR = Path(__file__).parent


def load_prompt(name: str) -> str:
    """The text of prompts/<name>.md."""
    return (PROMPT_DIR / f"{name}.md").read_text()


def render_prompt(name: str, **values: str) -> str:
    """A prompt with {placeholders} filled; unknown placeholders are left as they are."""
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), m.group(0))), load_prompt(name))


def mcp_prompts() -> dict[str, tuple[str, dict[str, str], str]]:
    """MCP prompts offered to clients: name -> (description, {argument: its description}, template), from
    prompts/mcp/*.md.

    Each file starts with front matter lines `description: ...`, `arguments: a, b` and one `a: what a is` per
    argument, then a blank line.
    """
    out = {}
    for path in sorted((PROMPT_DIR / "mcp").glob("*.md")):
        head, _, body = path.read_text().partition("\n\n")
        fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in head.splitlines() if ":" in line)}
        names = [a.strip() for a in fields.get("arguments", "").split(",") if a.strip()]
        args = {a: fields.get(a) or a.replace("_", " ") for a in names}
        out[path.stem] = (fields.get("description", path.stem), args, body.strip())
    return out

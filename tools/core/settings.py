"""One settings object for the whole product; defaults work offline with nothing set."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """matsearch configuration from environment variables (MATSEARCH_*, OPENAI_*) or a .env file."""

    model_config = SettingsConfigDict(env_prefix="MATSEARCH_", env_file=".env", extra="ignore")

    workspace: Path = Field(
        default_factory=lambda: Path.home() / ".matsearch" / "workspace",
        description="Directory for the memory store, job journal and artifacts.",
    )
    chroma_url: str | None = Field(default=None, description="chromadb HTTP server URL; on-disk store when unset.")
    chroma_token: SecretStr | None = Field(
        default=None,
        description="Token for a chromadb server with token auth (MATSEARCH_CHROMA_TOKEN); never logged or shown.",
    )
    chroma_auth_header: Literal["Authorization", "X-Chroma-Token"] = Field(
        default="Authorization",
        description="Where the chromadb token goes: 'Authorization' (as 'Bearer <token>') or 'X-Chroma-Token'.",
    )
    llm_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("MATSEARCH_LLM_BASE_URL", "OPENAI_BASE_URL")
    )
    llm_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("MATSEARCH_LLM_API_KEY", "OPENAI_API_KEY")
    )
    llm_model: str | None = Field(default=None, description="Chat model name at the OpenAI-compatible endpoint.")
    device: str = Field(default="cpu", description="Torch device for models.")
    potential: str = Field(default="chgnet", description="Default potential: a universal name or a checkpoint path.")
    mcp_servers: str | None = Field(
        default=None,
        description='Other MCP servers the chat agent mounts: a JSON file path or inline JSON, {"mcpServers": '
        '{name: {"command": ..., "args": [...]} | {"url": ..., "headers": {...}}}}; tools appear as name__tool.',
    )
    diffusion_checkpoint: Path | None = Field(
        default=None, description="Diffusion checkpoint for generate_structures (unset: the committed one)."
    )
    dask_address: str | None = Field(default=None, description="Dask scheduler address for batch work.")
    max_atoms: int = Field(default=2000, ge=1, description="Largest cell a tool accepts unless allow_large is set.")
    torch_threads: int = Field(
        default=1,
        ge=0,
        description="Torch intra-op threads while tools run (0: torch's default). One is fastest for the small cells "
        "scored here (benchmarks/scale.py: CHGNet relaxations 2.1x faster than with 2 threads on 2 cores); scale out "
        "with Dask workers instead.",
    )

    def resolved_workspace(self) -> Path:
        """The workspace as an absolute path, created on first use."""
        path = self.workspace.expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path


def apply_torch_threads(settings: Settings) -> None:
    """Set torch's process-wide intra-op thread count from the settings (no-op when 0 or already set)."""
    if settings.torch_threads > 0:
        import torch

        if torch.get_num_threads() != settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment)."""
    return Settings()

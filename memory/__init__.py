"""matsearch memory: a chromadb store of every generated or relaxed structure with its provenance."""

from memory.store import StructureRecord, StructureStore

__all__ = ["StructureRecord", "StructureStore"]

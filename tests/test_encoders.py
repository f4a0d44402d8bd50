"""The text encoders: BM25 terms for spaced and unspaced scripts, token counts without noise."""

from __future__ import annotations

import logging

import pytest
from personagraph.memory import Bm25Encoder, Memory, MiniLMEmbedder, Scope


def test_english_bm25_stems_and_drops_stop_words() -> None:
    encoder = Bm25Encoder()
    assert set(encoder.embed_query("Where does she live?")[0]) == set(encoder.embed_query("lives")[0])


def test_chinese_text_is_split_into_words_not_one_term_per_clause() -> None:
    encoder = Bm25Encoder()
    query_terms = set(encoder.embed_query("北京的图书馆")[0])
    document_terms = set(encoder.embed_document("我昨天去了北京的图书馆看书")[0])
    assert len(document_terms) > 3
    assert query_terms and query_terms <= document_terms


def test_a_chinese_memory_is_found_by_bm25(memory: Memory) -> None:
    zh = Scope(user_id="lin")
    memory.add_events(zh, [
        {"speaker": "林", "text": "我昨天去了北京的图书馆看书", "thread_id": "t1"},
        {"speaker": "林", "text": "周末我们在海边烧烤", "thread_id": "t2"},
    ])
    bm25_only = memory.retrieval.model_copy(update={"dense": False, "graph": False, "recency": False, "neighbours": False})
    result = memory.search(zh, "图书馆", config=bm25_only)
    assert [item.text.split(": ", 1)[1] for item in result.items] == ["我昨天去了北京的图书馆看书"]


def test_counting_tokens_of_a_long_text_is_exact_and_quiet(embedder: MiniLMEmbedder, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert embedder.count_tokens("memory " * 600) == 600
    assert not [r for r in caplog.records if "sequence length" in r.getMessage()]

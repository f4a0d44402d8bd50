"""The LoCoMo harness measures what it says, on any file of the LoCoMo schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from personagraph.memory import MiniLMEmbedder

from benchmarks.locomo import normalise_evidence, run


def test_malformed_evidence_ids_are_normalised_or_counted() -> None:
    assert normalise_evidence(["D:11:26", "D30:05", "D8:6; D9:17", "D", "D2:3"]) == (
        ["D11:26", "D30:5", "D8:6", "D9:17", "D2:3"], 1,
    )


def _sample() -> dict:
    turns = [
        ("Mira", "Hey Tom! I started pottery classes last week."),
        ("Tom", "Nice! I've been repairing my old sailing boat all month."),
        ("Mira", "I made a wonky blue bowl and I love it."),
        ("Tom", "The boat goes back in the water at Lake Garda in June."),
    ]
    return {
        "sample_id": "conv-x",
        "conversation": {
            "speaker_a": "Mira", "speaker_b": "Tom",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [{"speaker": w, "dia_id": f"D1:{n}", "text": t} for n, (w, t) in enumerate(turns, 1)],
            "session_7_date_time": "1:00 pm on 9 May, 2023",  # dangling date key, as in conv-26
        },
        "qa": [
            {"question": "What colour was the bowl Mira made?", "answer": "blue", "evidence": ["D1:3"], "category": 4},
            {"question": "Where will Tom's boat go back in the water?", "answer": "Lake Garda", "evidence": ["D:1:4"], "category": 2},
            {"question": "What hobbies do Mira and Tom have?", "answer": "pottery, sailing", "evidence": ["D1:1", "D1:2"], "category": 1},
            {"question": "Did Mira win a prize?", "adversarial_answer": "yes", "evidence": ["D1:3"], "category": 5},
            {"question": "Nothing to find", "answer": "x", "evidence": ["D9:9"], "category": 4},
        ],
    }


def test_the_harness_reports_recall_per_system_and_category(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    data = tmp_path / "mini_locomo.json"
    data.write_text(json.dumps([_sample()]))
    out = tmp_path / "report.json"

    report = run(data, None, ["dense", "bm25", "personagraph"], out, embedder=embedder)

    assert json.loads(out.read_text()) == json.loads(json.dumps(report, default=str))
    assert report["n_questions"] == 3  # category 5 and the unknown-evidence item are left out
    assert report["evidence"] == {"malformed_evidence": 0, "unknown_evidence": 1, "questions_without_evidence": 1}
    for system in ("dense", "bm25", "personagraph"):
        summary = report["systems"][system]
        assert set(summary["per_category"]) == {"1", "2", "4"}
        assert summary["recall@20"] == 1.0  # only four turns: every evidence turn is within 20
        assert 0.0 < summary["recall@1"] <= summary["recall@5"] <= summary["recall@10"] <= 1.0
    assert report["systems"]["personagraph"]["per_category"]["4"]["recall@1"] == 1.0
    assert report["search_ms"]["p50"] > 0 and report["context_tokens_per_query"] > 0


@pytest.mark.slow
def test_the_full_dev_set_beats_each_single_retriever(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    data = SHARED_DATA / "locomo" / "locomo_dev.json"
    if not data.exists():
        pytest.skip(f"LoCoMo data not found at {data} (shared benchmark data is not shipped with the project)")
    report = run(data, None, ["dense", "bm25", "personagraph"], tmp_path / "locomo.json", embedder=embedder)
    recall = {name: report["systems"][name]["recall@10"] for name in report["systems"]}
    assert recall["personagraph"] > max(recall["dense"], recall["bm25"])
    assert report["context_tokens_per_query"] <= 2000

"""The reflection benchmark measures what it says, on a LoCoMo file small enough to check by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from personagraph.memory import MiniLMEmbedder
from personagraph.memory.models import Fact
from scripted_model import ScriptedChatModel

from benchmarks.reflection import (
    COVERAGE_THRESHOLD,
    RowRun,
    RowSpec,
    Thresholds,
    load_conversations,
    oracle_extractor,
    run,
    score_row,
)

LOCOMO_DEV = SHARED_DATA / "locomo" / "locomo_dev.json"

CHIT_CHAT = [("Mira", "Hey!"), ("Tom", "Hi! How are you?"), ("Mira", "Good, thanks! You?"), ("Tom", "Doing well, thanks!")]
CONTENT = [
    ("Mira", "I started pottery classes last week and I love pottery."),
    ("Tom", "I'm a nurse at the city hospital."),
    ("Mira", "I made a blue bowl in class."),
    ("Tom", "I'm allergic to peanuts, so I skip the office snacks."),
    ("Mira", "My sister Anna lives in Lisbon."),
    ("Tom", "I love sailing on Lake Garda in June."),
]
OBSERVATIONS = {
    "session_1_observation": {"Mira": [["Mira greeted Tom warmly.", "D1:1"]], "Tom": []},
    "session_2_observation": {
        "Mira": [
            ["Mira started pottery classes last week and loves pottery.", "D2:1"],
            ["Mira made a blue bowl in class.", ["D2:3"]],  # a list of ids, as some LoCoMo entries are
            ["Mira's sister Anna lives in Lisbon.", "D2:5"],
        ],
        "Tom": [
            ["Tom is a nurse at the city hospital.", "D2:2"],
            ["Tom is allergic to peanuts.", "D2:4"],
            ["Tom loves sailing on Lake Garda.", "D2:6"],
        ],
    },
}


def _sample() -> dict:
    return {
        "sample_id": "conv-x",
        "conversation": {
            "speaker_a": "Mira", "speaker_b": "Tom",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [{"speaker": w, "dia_id": f"D1:{n}", "text": t} for n, (w, t) in enumerate(CHIT_CHAT, 1)],
            "session_2_date_time": "2:00 pm on 15 May, 2023",
            "session_2": [{"speaker": w, "dia_id": f"D2:{n}", "text": t} for n, (w, t) in enumerate(CONTENT, 1)],
        },
        "qa": [
            {"question": "What did Mira make in her pottery class?", "answer": "a blue bowl", "evidence": ["D2:3"], "category": 4},
            {"question": "Where does Tom go sailing?", "answer": "Lake Garda", "evidence": ["D2:6"], "category": 4},
            {"question": "How did Mira greet Tom?", "answer": "Hey", "evidence": ["D1:1"], "category": 4},
            {"question": "Did Tom win a race?", "adversarial_answer": "yes", "evidence": ["D2:6"], "category": 5},
        ],
        "observation": OBSERVATIONS,
    }


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "mini_locomo.json"
    path.write_text(json.dumps([_sample()]))
    return path


def test_observations_and_questions_follow_the_processed_sessions(data: Path) -> None:
    (full,) = load_conversations(data, None, None)
    assert len(full.observations) == 7 and len(full.questions) == 3  # category 5 left out
    assert full.observations[2].event_ids == ["conv-x:D2:3"]
    (first,) = load_conversations(data, None, 1)
    assert len(first.sample.events) == 4 and first.sessions == 1
    assert [o.text for o in first.observations] == ["Mira greeted Tom warmly."]
    assert [q[2] for q in first.questions] == [{"conv-x:D1:1"}]  # evidence wholly in session 1
    assert first.stats["questions_outside_sessions"] == 2


def test_the_oracle_cites_only_events_of_its_batch(data: Path) -> None:
    convs = load_conversations(data, None, None)
    extract = oracle_extractor(convs)
    events = {e.id: e for e in convs[0].sample.events}
    facts, entities = extract([events["conv-x:D2:1"], events["conv-x:D2:2"]])
    assert entities == []
    assert [(f.text, f.sources, f.subject, f.origin) for f in facts] == [
        ("Mira started pottery classes last week and loves pottery.", ["conv-x:D2:1"], "Mira", "oracle"),
        ("Tom is a nurse at the city hospital.", ["conv-x:D2:2"], "Tom", "oracle"),
    ]
    assert facts[0].valid_from == events["conv-x:D2:1"].time


def test_metric_definitions_on_hand_made_facts(data: Path, embedder: MiniLMEmbedder) -> None:
    (conv,) = load_conversations(data, None, None)
    src = ["conv-x:D2:2"]
    facts = [
        Fact(text="Tom is a nurse at the city hospital.", sources=src),  # covers one observation
        Fact(text="tom is a nurse at the city  hospital!", sources=src),  # same normalised text: a duplicate
        Fact(text="The stock market closed higher on Tuesday.", sources=src),  # near no observation, no turn: junk
    ]
    row = RowRun(RowSpec("hand", [conv]), facts={"conv-x": facts})
    scored = score_row(row, embedder, Thresholds())
    assert scored["observations"] == 7 and scored["observations_matched"] == 1
    assert scored["coverage"] == pytest.approx(1 / 7)
    assert scored["duplicates"] == 1 and scored["duplicate_rate"] == pytest.approx(1 / 3)
    assert scored["junk"] == 1 and scored["junk_rate"] == pytest.approx(1 / 3)
    assert scored["examples"]["junk"][0]["fact"].startswith("The stock market")


def test_explicit_and_oracle_rows_end_to_end(data: Path, tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    out = tmp_path / "reflection.json"
    report = run(data, ["explicit", "oracle"], out, batch_size=4, embedder=embedder)

    assert json.loads(out.read_text()) == json.loads(json.dumps(report, default=str))
    assert report["config"]["thresholds"] == {"coverage": COVERAGE_THRESHOLD, "turn": 0.5, "duplicate": 0.92}
    assert report["config"]["batch_size"] == 4
    assert set(report["rows"]) == {"explicit", "oracle"}
    for name, row in report["rows"].items():
        # session 1 (4 chit-chat turns) is one batch, session 2 two: [4 turns] and [2 turns]
        assert row["batches"] == 3 and row["statuses"]["skipped"] == 1, name
        assert row["skip_rate"] == pytest.approx(1 / 3)
        # "Mira greeted Tom warmly." rests on a turn of the skipped batch alone
        assert row["missed_facts"] == 1 and row["missed_fraction"] == pytest.approx(1 / 7)
        assert row["llm_calls"] == 0 and row["llm_calls_in_gated_batches"] == 0
        assert row["failed_records"] == 0 and row["deferred_records"] == 0
        assert row["messages"] == row["reflected_messages"] == 10
        assert row["n_questions"] == 3
        assert row["retrieval"]["turns"]["recall@10"] == 1.0  # ten turns: every one is in the top 10
        assert set(row["retrieval"]) == {"turns", "all kinds", "events+facts"}
        assert row["seconds_per_message"] > 0
        assert set(row["coverage_at"]) == {"0.60", "0.65", "0.70", "0.75", "0.80", "0.85", "0.90"}
    oracle = report["rows"]["oracle"]
    assert oracle["candidates"] == 6  # the skipped batch never reaches the extractor
    assert oracle["grounding_rejections"] == 0 and oracle["facts_written"] == 6
    assert oracle["coverage"] == pytest.approx(6 / 7)  # all but the greeting the gate skipped
    assert oracle["duplicate_rate"] == 0 and oracle["junk_rate"] == 0
    assert oracle["entities"] == 0  # the oracle proposes no entities
    assert report["rows"]["explicit"]["facts_written"] >= 1
    assert report["rows"]["explicit"]["coverage"] <= oracle["coverage"]


@pytest.mark.slow
def test_explicit_and_oracle_rows_on_locomo_dev(tmp_path: Path) -> None:
    if not LOCOMO_DEV.exists():
        pytest.skip(f"LoCoMo dev data not found at {LOCOMO_DEV} (it lives in ../shared/data/locomo)")
    out = tmp_path / "reflection_locomo.json"
    cmd = [sys.executable, "-m", "benchmarks.reflection", "--data", str(LOCOMO_DEV), "--samples", "1",
           "--rows", "explicit,oracle", "--out", str(out)]
    done = subprocess.run(cmd, check=False, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    explicit, oracle = report["rows"]["explicit"], report["rows"]["oracle"]
    assert explicit["conversations"] == oracle["conversations"] == 1
    assert explicit["observations"] == oracle["observations"] > 100
    assert oracle["coverage"] > 0.8 > explicit["coverage"]
    assert oracle["candidates"] == oracle["observations"] - oracle["missed_facts"]
    for row in (explicit, oracle):
        assert row["llm_calls"] == 0 and row["llm_calls_in_gated_batches"] == 0
        assert row["n_questions"] > 100
        assert 0 < row["retrieval"]["turns"]["recall@10"] <= 1


def test_the_model_row_counts_calls_and_reruns_the_cheap_rows_on_its_subset(
    data: Path, tmp_path: Path, embedder: MiniLMEmbedder,
) -> None:
    # session 2 in batches of 4 and 2: one good fact, then a copied prompt example grounding must reject
    model = ScriptedChatModel(script=[
        {"facts": [{"message": 3, "text": "Mira made a blue bowl in class", "kind": "event", "subject": "Mira"}],
         "entities": [], "summary": "Mira and Tom talked about pottery and work."},
        {"facts": [{"message": 1, "text": "Dana is allergic to shellfish", "kind": "attribute", "subject": "Dana"}],
         "entities": [], "summary": ""},
    ])
    report = run(data, ["explicit", "model", "oracle"], tmp_path / "r.json", model="scripted", model_sessions=2,
                 sessions=1, batch_size=4, embedder=embedder, chat_model=model)

    assert list(report["rows"]) == ["explicit", "scripted", "explicit@model-subset", "oracle@model-subset", "oracle"]
    assert report["rows"]["explicit"]["messages"] == 4 and report["rows"]["scripted"]["messages"] == 10
    row = report["rows"]["scripted"]
    assert model.calls == row["llm_calls"] == 2  # one extraction per content batch, none for the gated one
    assert row["llm_calls_in_gated_batches"] == 0
    assert row["llm_calls_per_batch"] == pytest.approx(2 / 3) and row["llm_calls_per_message"] == pytest.approx(2 / 10)
    assert row["by_origin"]["llm"] == {"candidates": 2, "rejected": 1, "written": 1}
    assert any(r["text"] == "Dana is allergic to shellfish" for r in row["examples"]["rejected_by_grounding"])
    for name in ("explicit", "oracle"):  # gated-only session 1: nothing reaches the extractor
        assert report["rows"][name]["skip_rate"] == 1.0 and report["rows"][name]["facts_written"] == 0

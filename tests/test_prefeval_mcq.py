"""The PrefEval MCQ harness end to end on two real users (no adapters): report shape and option order."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import SHARED_DATA

from benchmarks.prefeval_mcq import CONDITIONS, read_users, run, shuffled

DATA = SHARED_DATA / "prefeval"
TOPIC = "lifestyle_fit"

pytestmark = pytest.mark.skipif(
    not (DATA / "mcq_options").is_dir(), reason=f"PrefEval data not found at {DATA} (the MCQ harness needs it)"
)


def test_shuffle_is_fixed_per_user() -> None:
    order = list(range(4))
    random.Random(f"{TOPIC}:1").shuffle(order)
    assert shuffled(TOPIC, 1, 4) == order == shuffled(TOPIC, 1, 4)
    users = read_users(DATA, [TOPIC], 3)
    records = json.loads((DATA / "mcq_options" / f"{TOPIC}.json").read_text())
    assert [u.order for u in users] == [u.order for u in read_users(DATA, [TOPIC], 3)]
    for user, record in zip(users, records[:3], strict=True):
        assert user.options[user.correct] == record["classification_task_options"][0]
        assert sorted(user.options) == sorted(record["classification_task_options"])


def test_run_reports_every_condition(tmp_path: Path) -> None:
    out = tmp_path / "mcq.json"
    report = run(DATA, 1, out, topics=[TOPIC], limit_per_topic=2, skip_adapter=True)
    assert json.loads(out.read_text()) == json.loads(json.dumps(report, default=str))
    conditions = CONDITIONS[:3]
    assert report["n_users"] == 2
    assert report["settings"]["inter_turns"] == 1 and report["settings"]["max_context"] == 2048
    summary = report["summary"]["conditions"]
    assert set(summary) == set(conditions)
    for stats in summary.values():
        assert 0.0 <= stats["accuracy"] <= 1.0 and stats["n"] == 2
        assert 0.0 <= stats["ci95"][0] <= stats["accuracy"] <= stats["ci95"][1] <= 1.0
    assert set(report["summary"]["topics"]) == {TOPIC}
    for index, row in enumerate(report["users"]):
        assert (row["topic"], row["index"]) == (TOPIC, index)
        assert row["order"] == shuffled(TOPIC, index, 4) and row["correct"] == row["order"].index(0)
        assert set(row["conditions"]) == set(conditions)
        for result in row["conditions"].values():
            assert result["chosen"] in range(4) and len(result["logprobs"]) == 4
            assert result["correct"] == (result["chosen"] == row["correct"])

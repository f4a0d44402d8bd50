"""The command line, end to end through typer's CliRunner on real stores in a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from personagraph.memory import MiniLMEmbedder, Scope
from personagraph.memory.index.edge import EdgeIndex
from typer.testing import CliRunner, Result

from personagraph import Fact, Settings, cli, open_memory

runner = CliRunner()

ALICE_CHAT = [
    {"id": "a1", "speaker": "Alice", "role": "user", "time": "2025-01-05T10:00:00Z", "text": "I just adopted a grey cat called Pixel."},
    {"id": "a2", "speaker": "assistant", "role": "assistant", "time": "2025-01-05T10:00:20Z", "text": "Congratulations on the new cat!"},
    {"id": "a3", "speaker": "Alice", "role": "user", "time": "2025-01-06T09:00:00Z", "text": "I'm training for the Valencia marathon in December."},
    {"id": "a4", "speaker": "assistant", "role": "assistant", "time": "2025-01-06T09:00:30Z", "text": "Good luck with the training plan."},
    {"id": "a5", "speaker": "Alice", "role": "user", "time": "2025-01-07T19:30:00Z", "text": "Tonight I'm cooking mushroom risotto for friends."},
]
BOB_CHAT = [
    {"id": "b1", "speaker": "Bob", "role": "user", "time": "2025-02-01T08:00:00Z", "text": "My cello lesson moved to Thursday evenings."},
    {"id": "b2", "speaker": "Bob", "role": "user", "time": "2025-02-02T08:00:00Z", "text": "I prefer tea over coffee in the morning."},
]


def _turns(session: int, lines: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"speaker": who, "dia_id": f"D{session}:{n}", "text": text} for n, (who, text) in enumerate(lines, start=1)]


LOCOMO = [
    {
        "sample_id": "conv-t1",
        "conversation": {
            "speaker_a": "Mira", "speaker_b": "Tom",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": _turns(1, [
                ("Mira", "Hey Tom! I started pottery classes last week."),
                ("Tom", "Nice! I've been busy repairing my old sailing boat."),
                ("Mira", "I made a wonky blue bowl, I love it."),
            ]),
            "session_2_date_time": "7:10 pm on 20 May, 2023",
            "session_2": _turns(2, [
                ("Tom", "The boat is finally back in the water at Lake Garda."),
                ("Mira", "Amazing, send me photos of the lake!"),
            ]),
        },
        "qa": [{"question": "What did Mira make?", "answer": "a blue bowl", "evidence": ["D1:3"], "category": 4}],
    },
    {
        "sample_id": "conv-t2",
        "conversation": {
            "speaker_a": "Ivo", "speaker_b": "Lea",
            "session_1_date_time": "9:00 am on 1 June, 2023",
            "session_1": _turns(1, [("Ivo", "I got a job offer in Oslo."), ("Lea", "That's huge, congratulations!")]),
        },
        "qa": [],
    },
]


@pytest.fixture(autouse=True)
def shared_embedder(monkeypatch: pytest.MonkeyPatch, embedder: MiniLMEmbedder) -> None:
    """Every CLI call in the session reuses the one loaded model."""
    monkeypatch.setattr(cli, "_embedder", lambda model_path: embedder)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _run(data_dir: Path, *args: str, stdin: str | None = None) -> Result:
    return runner.invoke(cli.app, ["--data-dir", str(data_dir), *args], input=stdin)


def _ok(data_dir: Path, *args: str) -> Result:
    result = _run(data_dir, *args)
    assert result.exit_code == 0, result.output
    return result


def _recall_ids(data_dir: Path, user: str, query: str, *extra: str) -> list[str]:
    result = _ok(data_dir, "recall", user, query, "--json", *extra)
    return [item["id"] for item in json.loads(result.stdout)["items"]]


def _row(output: str, label: str) -> str:
    """The rest of the output line that starts with `label`, spaces squeezed."""
    line = next(line for line in output.splitlines() if line.startswith(label))
    return " ".join(line[len(label):].split())


def _stats(data_dir: Path) -> dict[str, str]:
    """`stats` rows as label -> value."""
    lines = _ok(data_dir, "stats").stdout.splitlines()
    return {label.strip(): value.split()[0] for label, value in (line.rsplit("  ", 1) for line in lines if "  " in line)}


@pytest.fixture
def two_users(tmp_path: Path, data_dir: Path) -> Path:
    _ok(data_dir, "ingest", str(_write_jsonl(tmp_path / "alice.jsonl", ALICE_CHAT)), "--user", "alice")
    _ok(data_dir, "ingest", str(_write_jsonl(tmp_path / "bob.jsonl", BOB_CHAT)), "--user", "bob")
    return data_dir


def test_ingest_jsonl_then_recall_finds_the_message(tmp_path: Path, data_dir: Path) -> None:
    result = _ok(data_dir, "ingest", str(_write_jsonl(tmp_path / "chat.jsonl", ALICE_CHAT)), "--user", "alice")
    assert "added 5 messages to alice" in result.stdout
    assert _recall_ids(data_dir, "alice", "What is the name of Alice's cat?")[0] == "a1"
    assert _recall_ids(data_dir, "alice", "Which marathon is she running?")[0] == "a3"

    table = _ok(data_dir, "recall", "alice", "cat name", "--k", "2").stdout
    assert "Pixel" in table and "found by" in table


def test_recall_options_reach_the_search(two_users: Path) -> None:
    known_then = _recall_ids(two_users, "alice", "marathon training", "--as-of", "2025-01-06")
    assert known_then and set(known_then) <= {"a1", "a2"}  # what was said before 6 January
    assert len(_recall_ids(two_users, "alice", "cat", "--k", "2")) == 2
    assert _recall_ids(two_users, "alice", "cat", "--kinds", "fact") == []
    bad = _run(two_users, "recall", "alice", "cat", "--kinds", "entity")
    assert bad.exit_code == 2 and "searchable kinds" in bad.output
    bad_time = _run(two_users, "recall", "alice", "cat", "--as-of", "last tuesday")
    assert bad_time.exit_code == 2 and "ISO 8601" in bad_time.output


def test_recall_json_is_scoped_to_the_user(two_users: Path) -> None:
    payload = json.loads(_ok(two_users, "recall", "bob", "cat called Pixel marathon risotto", "--json").stdout)
    assert payload["query"] == "cat called Pixel marathon risotto"
    assert {item["id"] for item in payload["items"]} <= {"b1", "b2"}
    assert all(item["sources"] for item in payload["items"])
    assert not {"a1", "a3", "a5"} & set(_recall_ids(two_users, "bob", "Pixel"))


def test_ingest_locomo_puts_every_sample_in_the_users_memory(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "locomo_mini.json"
    path.write_text(json.dumps(LOCOMO), encoding="utf-8")
    result = _ok(data_dir, "ingest", str(path), "--user", "reader")
    assert "added 7 turns from 2 LoCoMo samples to reader" in result.stdout
    assert _recall_ids(data_dir, "reader", "Which lake is the boat in?")[0] == "conv-t1:D2:1"
    assert "conv-t2:D1:1" in _recall_ids(data_dir, "reader", "job offer in Oslo")

    events = json.loads(_ok(data_dir, "export", "reader").stdout)["records"]["event"]
    assert {e["thread_id"] for e in events} == {"conv-t1-s1", "conv-t1-s2", "conv-t2-s1"}


def test_ingest_one_locomo_sample(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "locomo_mini.json"
    path.write_text(json.dumps(LOCOMO), encoding="utf-8")
    assert "added 2 turns from 1 LoCoMo sample " in _ok(data_dir, "ingest", str(path), "-u", "ivo", "--sample", "conv-t2").stdout
    missing = _run(data_dir, "ingest", str(path), "-u", "ivo", "--sample", "conv-99")
    assert missing.exit_code == 2 and "no sample 'conv-99'" in missing.output


def test_export_to_stdout_and_file(two_users: Path, tmp_path: Path) -> None:
    data = json.loads(_ok(two_users, "export", "alice").stdout)
    assert data["scope"] == {"tenant": "default", "user_id": "alice"}
    assert sorted(e["id"] for e in data["records"]["event"]) == ["a1", "a2", "a3", "a4", "a5"]

    out = tmp_path / "bob.json"
    assert "wrote 2 records of bob" in _ok(two_users, "export", "bob", "--out", str(out)).stdout
    assert sorted(e["id"] for e in json.loads(out.read_text())["records"]["event"]) == ["b1", "b2"]


def test_forget_user_leaves_nothing_and_spares_others(two_users: Path) -> None:
    assert _stats(two_users)["users"] == "2"
    result = _ok(two_users, "forget", "alice", "--yes")
    assert _row(result.stdout, "records deleted") == "event 5"
    assert _row(result.stdout, "complete") == "yes"

    numbers = _stats(two_users)
    assert numbers["users"] == "1" and numbers["event records"] == "2" and numbers["index points"] == "2"
    assert _recall_ids(two_users, "alice", "cat called Pixel") == []
    assert json.loads(_ok(two_users, "export", "alice").stdout)["records"]["event"] == []
    assert _recall_ids(two_users, "bob", "cello lesson")[0] == "b1"


def test_forget_user_asks_first(two_users: Path) -> None:
    declined = _run(two_users, "forget", "alice", stdin="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.output
    assert _recall_ids(two_users, "alice", "cat called Pixel")[0] == "a1"
    assert _run(two_users, "forget", "alice", stdin="y\n").exit_code == 0
    assert _recall_ids(two_users, "alice", "cat called Pixel") == []


def test_forget_event_cascades_to_what_rests_on_it(two_users: Path, embedder: MiniLMEmbedder) -> None:
    memory = open_memory(Settings(data_dir=two_users), embedder=embedder)
    try:
        scope = cli._scope(Settings(data_dir=two_users), "alice")
        memory.add_fact(scope, Fact(text="Alice has a cat named Pixel.", subject="Alice", predicate="has_pet", object="Pixel", sources=["a1"]))
    finally:
        memory.close()

    result = _ok(two_users, "forget", "alice", "--event", "a1")
    deleted = _row(result.stdout, "records deleted").split(" · ")
    assert sorted(deleted) == ["entity 2", "event 1", "fact 1", "relation 1"]
    assert _row(result.stdout, "complete") == "yes"
    records = json.loads(_ok(two_users, "export", "alice").stdout)["records"]
    assert sorted(e["id"] for e in records["event"]) == ["a2", "a3", "a4", "a5"]
    assert records["fact"] == records["relation"] == records["entity"] == []

    gone = _run(two_users, "forget", "alice", "--event", "a1")
    assert gone.exit_code == 2 and "no event 'a1'" in gone.output


def test_malformed_jsonl_names_the_line_and_writes_nothing(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(ALICE_CHAT[0]) + "\n" + "{not json\n", encoding="utf-8")
    result = _run(data_dir, "ingest", str(path), "--user", "alice")
    assert result.exit_code == 2
    assert f"{path}:2" in result.output and "Traceback" not in result.output
    assert not data_dir.exists()  # the file is read in full before memory is opened


def test_missing_field_and_missing_file(tmp_path: Path, data_dir: Path) -> None:
    no_text = _write_jsonl(tmp_path / "no_text.jsonl", [{"speaker": "Alice"}])
    result = _run(data_dir, "ingest", str(no_text), "--user", "alice")
    assert result.exit_code == 2 and f"{no_text}:1" in result.output

    result = _run(data_dir, "ingest", str(tmp_path / "nowhere.jsonl"), "--user", "alice")
    assert result.exit_code == 2 and "no such file" in result.output


@pytest.mark.parametrize("args", [
    ["recall", "alice/../bob", "cat"],
    ["ingest", "whatever.jsonl", "--user", "bad user"],
    ["forget", ".alice", "--yes"],
    ["--tenant", "a.b", "export", "alice"],
])
def test_invalid_labels_are_reported(data_dir: Path, args: list[str]) -> None:
    result = _run(data_dir, *args)
    assert result.exit_code == 2
    assert "invalid" in result.output and "use 1-128 characters" in result.output
    assert "Traceback" not in result.output


def test_a_second_owner_of_the_index_gets_a_clean_error(two_users: Path) -> None:
    holder = EdgeIndex(two_users / "index")
    try:
        result = _run(two_users, "stats")
    finally:
        holder.close()
    assert result.exit_code == 2 and "open in another process" in result.output


def test_tenants_are_separate(tmp_path: Path, data_dir: Path) -> None:
    chat = str(_write_jsonl(tmp_path / "chat.jsonl", BOB_CHAT))
    _ok(data_dir, "--tenant", "acme", "ingest", chat, "--user", "bob")
    assert _recall_ids(data_dir, "bob", "cello") == []
    items = json.loads(_ok(data_dir, "--tenant", "acme", "recall", "bob", "cello", "--json").stdout)["items"]
    assert items[0]["id"] == "b1"


def test_data_dir_comes_from_the_environment_too(tmp_path: Path, data_dir: Path) -> None:
    chat = str(_write_jsonl(tmp_path / "chat.jsonl", BOB_CHAT))
    result = runner.invoke(cli.app, ["ingest", chat, "--user", "bob"], env={"PERSONAGRAPH_DATA_DIR": str(data_dir)})
    assert result.exit_code == 0, result.output
    assert _stats(data_dir)["event records"] == "2"


def test_reconcile_reports_repairs(two_users: Path) -> None:
    assert "2 users checked, nothing to repair" in _ok(two_users, "reconcile").stdout
    index = EdgeIndex(two_users / "index")
    try:
        index.delete(Scope(user_id="bob"), [("event", "b1")])
        index.flush()
    finally:
        index.close()
    result = _ok(two_users, "reconcile", "bob")
    assert "default/bob" in result.stdout and "1 repaired" in result.stdout


def test_demo_recalls_the_facts_of_the_sample_chat(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = runner.invoke(cli.app, ["demo", "--data-dir", str(folder)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    sections = out.split("\n? ")
    expected = {
        "Does Sam have any food allergies?": "peanuts",
        "What is the dog's name?": "Biscuit",
        "Where does Sam work now?": "Tidewater",
        "Who is coming to Lisbon in October?": "Nadia",
        "How should answers be formatted?": ("bullet", "short"),  # Sam asked for both
    }
    for query, answers in expected.items():
        section = next(s for s in sections if s.startswith(query))
        first_row = section.split("\n1 ", 1)[1].split("\n2 ", 1)[0]
        assert any(answer in first_row for answer in ([answers] if isinstance(answers, str) else answers)), section
    travel = out.split("time travel", 1)[1]
    now, then = travel.split("profile", 1)[0].split("before the move", 1)
    assert "Bristol" in now and "Leeds" in then and "Bristol" not in then
    profile = out.split("profile", 1)[1]
    assert "location" in profile and "Bristol" in profile and "peanuts" in profile

    again = runner.invoke(cli.app, ["demo", "--data-dir", str(folder)])  # wiped first: repeatable
    assert again.exit_code == 0 and "stored 38 messages" in again.stdout


def test_demo_refuses_to_wipe_a_folder_that_is_not_its_own(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("precious", encoding="utf-8")
    result = runner.invoke(cli.app, ["demo", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "holds other files" in result.output
    assert (tmp_path / "notes.txt").exists()

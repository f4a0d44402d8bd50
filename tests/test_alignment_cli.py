"""Alignment as a user drives it: from the CLI and from Python, give feedback, watch the
preference data grow, train, see the planner serve the aligned adapter, forget everything.
Real stores and the real local model throughout."""

from __future__ import annotations

from pathlib import Path

import pytest
from datasets import load_from_disk
from personagraph.agents.alignment.trainer import PreferenceConfig
from personagraph.memory import MiniLMEmbedder, Scope
from test_cli import _ok, _run

from personagraph import Settings, cli, open_memory
from personagraph.assistant import Assistant

QUESTIONS = ["What should I pack for a beach day?", "How do I make tea?", "Any tips for a first 5k run?",
             "How do I water a cactus?", "What should I cook tonight?", "How do I stay focused at work?"]


@pytest.fixture(autouse=True)
def shared_embedder(monkeypatch: pytest.MonkeyPatch, embedder: MiniLMEmbedder) -> None:
    monkeypatch.setattr(cli, "_embedder", lambda model_path: embedder)
    monkeypatch.setenv("PERSONAGRAPH_CHAT_MODEL", "none")
    monkeypatch.setenv("PERSONAGRAPH_ADAPTER_AUTO_TRAIN", "false")


def _exchange(data_dir: Path, embedder: MiniLMEmbedder, user: str, question: str, answer: str, minute: int) -> str:
    """Store a question and an answer as the respond graph would (no model needed)."""
    from datetime import UTC, datetime, timedelta

    memory = open_memory(Settings(data_dir=data_dir), embedder=embedder)
    try:
        when = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=minute)
        _, reply = memory.add_events(Scope(user_id=user), [
            {"speaker": user, "role": "user", "text": question, "time": when, "thread_id": "chat"},
            {"speaker": "assistant", "role": "assistant", "text": answer, "time": when + timedelta(seconds=2),
             "thread_id": "chat", "metadata": {"backend": "prompting"}},
        ])
    finally:
        memory.close()
    return reply.id


def test_feedback_commands_grow_the_data_export_it_and_learn_instructions(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    data = tmp_path / "data"
    long = ("Well, there are quite a few things you could do here, depending on your mood, the weather and the time "
            "you have, but one option many people enjoy is a long walk followed by a good book 😀")
    first = _exchange(data, embedder, "ann", QUESTIONS[0], long, 0)
    second = _exchange(data, embedder, "ann", QUESTIONS[1], long, 1)
    out = _ok(data, "feedback", "add", "ann", first, "--down", "--comment", "too long").stdout
    assert "recorded thumbs" in out and "0 DPO pairs, 1 KTO rows" in out
    out = _ok(data, "feedback", "add", "ann", second, "--edit", "Boil water, steep 3 minutes.").stdout
    assert "1 DPO pairs, 1 KTO rows, 1 SFT examples" in out
    flat = " ".join(out.split())  # rich wraps the line wherever the two instructions' order puts the break
    assert "Prefers short, concise answers." in flat and "Does not want emojis" in flat  # an edit is enough
    out = _ok(data, "feedback", "add", "ann", first, "--alt", "Walk.", "--alt", long, "--choose", "0").stdout
    assert "2 DPO pairs" in out
    listing = _ok(data, "feedback", "list", "ann").stdout
    assert listing.count("fbk_") == 3 and "thumbs" in listing and "choice" in listing and "edit" in listing
    exported = tmp_path / "prefs"
    assert "3 feedback → 2 DPO pairs, 1 KTO rows, 1 SFT examples" in _ok(data, "feedback", "data", "ann", "--export", str(exported)).stdout
    dataset = load_from_disk(str(exported))
    assert dataset["dpo"].num_rows == 2 and dataset["kto"][0]["label"] is False
    shown = _ok(data, "feedback", "instructions", "ann").stdout
    assert "Prefers short, concise answers." in shown
    assert "nothing learned" in _ok(data, "feedback", "instructions", "bob").stdout  # per user
    assert "no feedback from bob" in _ok(data, "feedback", "list", "bob").stdout


def test_feedback_mistakes_get_clear_errors_and_change_nothing(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    data = tmp_path / "data"
    reply = _exchange(data, embedder, "ann", QUESTIONS[0], "Pack sunscreen.", 0)
    for args in (["--up", "--down"], [], ["--edit", "Pack sunscreen."], ["--alt", "a", "--choose", "3"]):
        result = _run(data, "feedback", "add", "ann", reply, *args)
        assert result.exit_code == 2, args
    assert _run(data, "feedback", "add", "bob", reply, "--up").exit_code == 2  # not bob's answer
    assert _run(data, "feedback", "train", "ann", "--method", "ppo").exit_code == 2
    result = _run(data, "feedback", "train", "ann")
    assert result.exit_code == 2 and "not enough feedback" in result.output
    assert "no feedback from ann" in _ok(data, "feedback", "list", "ann").stdout
    assert "no style adapters yet" in _ok(data, "styles", "list").stdout
    result = _run(data, "styles", "soup", "ann", "--length", "1")
    assert result.exit_code == 2 and "styles build" in result.output


@pytest.mark.slow
def test_from_python_feedback_to_an_aligned_adapter_the_planner_serves_and_forget(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    from personagraph.memory import Memory, RecordStore
    from personagraph.memory.index.edge import EdgeIndex

    memory = Memory(RecordStore.sqlite(tmp_path / "records.sqlite"), EdgeIndex(tmp_path / "index"), embedder)
    settings = Settings(data_dir=tmp_path, adapter_auto_train=False)
    assistant = Assistant(memory, reflection_model="none", settings=settings, owns_memory=True)
    try:
        counts = []
        for n, question in enumerate(QUESTIONS):
            reply = assistant.respond("ann", question)
            assert reply.reply_id and reply.prompt and reply.prompt[-1].content == question
            answer = reply.answer.strip() or "(empty)"
            short = "- keep it simple\n- start small"
            if n % 3 == 2:
                assistant.edit("ann", reply.reply_id, short)
            else:
                assistant.choose("ann", reply.reply_id, [answer, short] if answer != short else [answer, "No."], 1)
            counts.append(assistant.preference_data("ann").counts()["dpo_pairs"])
        assert counts == sorted(counts) and counts[-1] == len(QUESTIONS)  # one pair per choice and per edit
        kept = assistant.memory.feedback(Scope(user_id="ann"))
        assert kept[0].prompt and kept[0].backend == "prompting"  # the prompt as the model saw it
        outcome = assistant.train_preferences("ann", PreferenceConfig(max_steps=3, time_budget_s=600))
        assert outcome.record.objective == "dpo" and outcome.run is not None
        if outcome.registered:
            plan = assistant.plan("ann", "Write a short note to my sister")
            assert plan.adapter_id == outcome.record.id and plan.backend != "prompting"
            served = assistant.respond("ann", "Write a short note to my sister about dinner")
            assert served.plan.adapter_id == outcome.record.id
        else:
            assert assistant.plan("ann", "Write a short note to my sister").adapter_id is None
        receipt = assistant.forget_user("ann")
        assert receipt.complete and receipt.records_deleted["feedback"] == len(QUESTIONS)
        assert assistant.memory.adapters(Scope(user_id="ann")) == [] and assistant.feedback.count(Scope(user_id="ann")) == 0
    finally:
        assistant.close()


@pytest.mark.slow
def test_style_adapters_built_for_real_and_a_soup_the_planner_serves(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    data = tmp_path / "data"
    out = _ok(data, "styles", "build", "--seconds", "20", "--questions", "8").stdout
    assert "length" in out and "tone" in out and "style adapters in" in out
    assert "length" in _ok(data, "styles", "list").stdout
    reply = _exchange(data, embedder, "ann", QUESTIONS[0], "Sunscreen, a towel, water and a hat are all you need.", 0)
    _ok(data, "feedback", "add", "ann", reply, "--down", "--comment", "too formal, relax")
    out = _ok(data, "styles", "soup", "ann", "--length", "0.5").stdout
    assert "registered soup" in out and '"length": 0.5' in out
    memory = open_memory(Settings(data_dir=data), embedder=embedder)
    try:
        (soup,) = memory.adapters(Scope(user_id="ann"))
        assert soup.objective == "soup" and soup.soup_weights == {"length": 0.5}
    finally:
        memory.close()
    plan = _ok(data, "chat", "ann", "-m", "Write a short note to my sister", "--plan").stdout
    assert f"soup adapter {soup.id}" in plan

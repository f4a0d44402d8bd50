"""`personagraph graph validate|schema|draw|run` through typer's CliRunner on real stores: errors
name file and line, drawings are written without a network, runs work on the user's memory and
a run that stops for approval is resumed by a later command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from personagraph.graphs.spec import spec_json_schema
from personagraph.memory import MiniLMEmbedder, Scope
from test_cli import ALICE_CHAT, _ok, _run, _write_jsonl

from personagraph import Settings, cli, cli_chat, open_memory
from personagraph.assistant import Assistant
from tests.scripted_model import ScriptedChatModel

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(autouse=True)
def shared_embedder(monkeypatch: pytest.MonkeyPatch, embedder: MiniLMEmbedder) -> None:
    monkeypatch.setattr(cli, "_embedder", lambda model_path: embedder)
    monkeypatch.setenv("PERSONAGRAPH_CHAT_MODEL", "none")  # background reflection by the rules: fast
    monkeypatch.setenv("PERSONAGRAPH_ADAPTER_AUTO_TRAIN", "false")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    _ok(data, "ingest", str(_write_jsonl(tmp_path / "alice.jsonl", ALICE_CHAT)), "--user", "alice")
    return data


def _flat(output: str) -> str:
    """CLI output with rich's wrapping and error boxes taken out."""
    return " ".join(output.replace("│", " ").split())


def _facts(data_dir: Path, embedder: MiniLMEmbedder, user: str = "alice") -> list[str]:
    memory = open_memory(Settings(data_dir=data_dir), embedder=embedder)
    try:
        return [fact.text for fact in memory.facts(Scope(user_id=user))]
    finally:
        memory.close()


def test_validate_reports_a_valid_spec_and_names_the_line_of_a_mistake(tmp_path: Path) -> None:
    out = _ok(tmp_path, "graph", "validate", str(EXAMPLES / "slack_helper.yaml")).stdout
    assert "✓" in out and "slack_helper, 4 nodes, 1 edge, 2 branches, state messages" in _flat(out)
    bad = tmp_path / "bad.yaml"
    bad.write_text((EXAMPLES / "slack_helper.yaml").read_text().replace("uses: tools.run", "uses: tool.run"))
    result = _run(tmp_path, "graph", "validate", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:26: nodes[2].uses: unknown node factory 'tool.run'; did you mean 'tools.run'?" in _flat(result.output)
    missing = _run(tmp_path, "graph", "validate", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "nope.yaml: no such file or directory" in missing.output


def test_schema_prints_the_json_schema(tmp_path: Path) -> None:
    assert json.loads(_ok(tmp_path, "graph", "schema").stdout) == spec_json_schema()


def test_draw_writes_mermaid_and_a_png(tmp_path: Path) -> None:
    _ok(tmp_path, "graph", "draw", str(EXAMPLES / "slack_helper.yaml"), "--out", str(tmp_path / "out"))
    mermaid = (tmp_path / "out" / "slack_helper.mmd").read_text()
    assert mermaid.startswith("flowchart TD") and '-. "approved" .->' in mermaid and "human.approve" in mermaid
    assert (tmp_path / "out" / "slack_helper.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_reflection_only_on_a_users_messages(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    data = tmp_path / "data"
    said = [{"speaker": "Bea", "role": "user", "time": "2025-01-05T10:00:00Z", "text": "My cat is called Pixel.", "thread_id": "chat"}]
    _ok(data, "ingest", str(_write_jsonl(tmp_path / "bea.jsonl", said)), "--user", "bea")
    out = _ok(data, "graph", "run", str(EXAMPLES / "reflection_only.yaml"), "--user", "bea", "--thread", "chat").stdout
    report = json.loads(out)
    assert report["status"] == "done" and report["events"] == 1 and report["llm_calls"] == 0
    assert any("Pixel" in fact for fact in _facts(data, embedder, "bea"))


def test_run_checks_its_input(data_dir: Path) -> None:
    spec = str(EXAMPLES / "reflection_only.yaml")
    bad_json = _run(data_dir, "graph", "run", spec, "--user", "alice", "--input", "{oops")
    assert bad_json.exit_code == 2 and "not JSON" in bad_json.output
    unknown = _run(data_dir, "graph", "run", spec, "--user", "alice", "--query", "hi")
    assert unknown.exit_code == 2 and "query not in this graph's state" in _flat(unknown.output)
    other_user = _run(data_dir, "graph", "run", spec, "--user", "alice", "--input", '{"user_id": "bob", "thread_id": "chat"}')
    assert other_user.exit_code == 2
    assert "user_id: --user and the settings' tenant name the user; the input may not" in _flat(other_user.output)
    other_tenant = _run(data_dir, "graph", "run", spec, "--user", "alice", "--input", '{"tenant": "acme"}')
    assert other_tenant.exit_code == 2 and "tenant: --user and the settings' tenant name the user" in _flat(other_tenant.output)
    both = _run(data_dir, "graph", "run", spec, "--user", "alice", "--resume", "yes", "--query", "hi")
    assert both.exit_code == 2 and "takes no --input or --query" in _flat(both.output)
    nothing = _run(data_dir, "graph", "run", spec, "--user", "alice", "--resume", "yes")
    assert nothing.exit_code == 2 and "nothing waiting to be resumed" in nothing.output


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> ScriptedChatModel:
    """Every command's assistant answers with one scripted model, shared across commands."""
    model = ScriptedChatModel()
    monkeypatch.setattr(cli_chat, "_assistant", lambda settings, memory, name: Assistant(
        memory, chat_model=model, reflection_model="none", settings=settings,
    ))
    return model


def test_run_stops_for_approval_and_a_later_command_resumes_it(
    data_dir: Path, tmp_path: Path, scripted: ScriptedChatModel, embedder: MiniLMEmbedder,
) -> None:
    spec = tmp_path / "slack.yaml"  # `remember` bound first: the scripted model calls the first tool
    spec.write_text((EXAMPLES / "slack_helper.yaml").read_text().replace(
        "short sentences.\n", "short sentences.\n      tools: [remember, forget, search_memory]\n",
    ))
    scripted.script = [{"text": "Alice is vegan"}, "Noted: you're vegan."]
    run = ("graph", "run", str(spec), "--user", "alice", "--thread", "slack")
    stopped = _flat(_ok(data_dir, *run, "--query", "Remember that I'm vegan").stdout)
    assert 'waiting: {"question": "May I change what I remember about you?"' in stopped and "--resume VALUE" in stopped
    assert "Alice is vegan" not in _facts(data_dir, embedder)
    again = _run(data_dir, *run, "--query", "Hello?")
    assert again.exit_code == 2 and "is waiting for an answer" in again.output
    done = _ok(data_dir, *run, "--resume", "yes").stdout
    assert "assistant> Noted: you're vegan." in done
    assert "Alice is vegan" in _facts(data_dir, embedder)


@pytest.mark.slow
def test_run_the_personal_assistant_with_the_local_model(data_dir: Path, embedder: MiniLMEmbedder) -> None:
    out = _ok(data_dir, "graph", "run", str(EXAMPLES / "personal_assistant.yaml"), "--user", "alice",
              "--thread", "chat", "--query", "What is my cat called?").stdout
    assert "assistant>" in out and "plan: prompting on local" in out
    memory = open_memory(Settings(data_dir=data_dir), embedder=embedder)
    try:
        turns = memory.events(Scope(user_id="alice"), "chat")
    finally:
        memory.close()
    assert [t.role for t in turns] == ["user", "assistant"] and turns[0].text == "What is my cat called?"


def test_a_runs_checkpoint_never_holds_a_secret_and_forget_deletes_the_users_threads(
    data_dir: Path, tmp_path: Path, scripted: ScriptedChatModel,
) -> None:
    from personagraph.graph_checkpoints import user_threads

    spec = tmp_path / "slack.yaml"
    spec.write_text((EXAMPLES / "slack_helper.yaml").read_text().replace(
        "short sentences.\n", "short sentences.\n      tools: [remember, forget, search_memory]\n",
    ))
    scripted.script = [{"text": "Alice's PIN is withheld"}]
    _ok(data_dir, "graph", "run", str(spec), "--user", "alice", "--thread", "t", "--query", "Remember my PIN is 4821")
    checkpoints = (data_dir / "graphs.sqlite").read_bytes()
    assert b"[redacted password]" in checkpoints and b"4821" not in checkpoints
    settings = Settings(data_dir=data_dir)
    assert len(user_threads(settings, Scope(user_id="alice"))) == 1

    out = _flat(_ok(data_dir, "forget", "alice", "--yes").stdout)
    assert "checkpoint_threads 1" in out and "complete yes" in out
    assert user_threads(settings, Scope(user_id="alice")) == []

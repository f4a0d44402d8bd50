"""Part 7 of the reliability suite, fuzzing: the SMOKE run's figures, the harness's own checks,
and one focused test per bug the fuzzers found (each fixed)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from langgraph.store.base import InvalidNamespaceError
from personagraph.graphs.spec import SpecError, load_spec
from personagraph.memory import Memory, MiniLMEmbedder, PersonaStore, Scope
from personagraph.memory.errors import PersonagraphError
from typer.testing import CliRunner

from benchmarks.reliability.fuzz import run
from benchmarks.reliability.fuzz_bots import running_slack, signed_headers
from benchmarks.reliability.fuzz_cli import shared_embedder
from benchmarks.reliability.fuzz_common import Tally, lost, snapshot
from benchmarks.reliability.fuzz_inputs import junk
from benchmarks.reliability.fuzz_models import FixedModel
from benchmarks.reliability.fuzz_spec import CASE_SECONDS, Hang, alias_bomb, time_limit
from benchmarks.reliability.part import PartResult
from benchmarks.reliability.profile import SMOKE
from personagraph import cli
from personagraph.assistant import Assistant
from personagraph.bridges import ChatService, Speaker
from personagraph.settings import Settings

SURFACES = ("api", "spec", "slack", "chat_service", "reflection", "respond", "cli")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory, embedder: MiniLMEmbedder) -> PartResult:
    return run(SMOKE, tmp_path_factory.mktemp("fuzz"), embedder)


# --------------------------------------------------------------------------------- the run

def test_every_surface_got_its_cases_and_nothing_was_lost(smoke: PartResult) -> None:
    figures = smoke.figures
    assert {f"cases_{s}" for s in SURFACES} <= figures.keys()
    assert all(figures[f"cases_{s}"] == SMOKE.fuzz_cases for s in SURFACES)
    assert figures["fuzz_cases"] == SMOKE.fuzz_cases * len(SURFACES)
    assert figures["data_lost"] == 0 and figures["half_written"] == 0, smoke.details["lost_records"]
    # Cases were refused the expected ways, not only accepted: the fuzz reached the checks.
    for surface in smoke.details["surfaces"].values():
        assert surface["typed_errors"] > 0, surface
    assert smoke.details["reflection_statuses"].get("failed", 0) > 0
    assert set(smoke.must_be_zero) == {"untyped_crashes", "half_written", "data_lost", "spec_errors_without_line"}


def test_every_crash_is_kept_with_a_repro(smoke: PartResult) -> None:
    for surface in smoke.details["surfaces"].values():
        kept = surface["crashes"]
        assert bool(kept) == bool(surface["untyped_crashes"] or surface["half_written"])
        assert all({"case", "call", "repro", "error"} <= c.keys() for c in kept)
    json.dumps(smoke.details)  # the report is JSON as it stands


def test_no_untyped_crashes(smoke: PartResult) -> None:
    assert smoke.figures["untyped_crashes"] == 0, {s: d["crashes"][:3] for s, d in smoke.details["surfaces"].items()}


# --------------------------------------------------------------------------------- the harness

def test_a_refusal_that_wrote_is_seen(memory: Memory, alice: Scope) -> None:
    before = snapshot(memory, alice)
    event = memory.add_event(alice, {"speaker": "alice", "text": "hello"})
    after = snapshot(memory, alice)
    assert ("event", event.id) in after and ("index", f"event:{event.id}") in after
    assert lost(after, before) == [f"event:{event.id}", f"index:event:{event.id}"]


def test_an_unexpected_error_is_a_crash_with_its_repro() -> None:
    tally = Tally("t")
    tally.refused("InvalidRecordError")
    try:
        raise TypeError("boom")
    except TypeError as exc:
        tally.crash(7, "call", {"x": "\ud800" * 2000}, exc)
    details = tally.details()
    assert (details["cases"], details["typed_errors"], details["untyped_crashes"]) == (2, 1, 1)
    crash = details["crashes"][0]
    assert crash["case"] == 7 and crash["error"] == "TypeError: boom" and len(crash["repro"]) < 700


def test_the_time_limit_stops_a_hang() -> None:
    with pytest.raises(Hang), time_limit(1):
        while True:
            pass


# --------------------------------------------------------------------------------- bugs found

@pytest.mark.parametrize("bad_id", [{"a": 1}, 2**70, "\ud800"])
def test_a_bad_record_id_is_a_typed_error(disk_memory: Memory, alice: Scope, bad_id: object) -> None:
    with pytest.raises(PersonagraphError):
        disk_memory.forget_event(alice, bad_id)  # type: ignore[arg-type]


def test_search_with_k_none_is_a_typed_error(memory: Memory, alice: Scope) -> None:
    with pytest.raises(PersonagraphError):
        memory.search(alice, "tea", k=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("options", [{"limit": "x"}, {"offset": math.nan}, {"max_depth": "2"}])
def test_list_namespaces_with_bad_paging_is_a_typed_error(memory: Memory, options: dict) -> None:
    with pytest.raises(PersonagraphError):
        PersonaStore(memory).list_namespaces(**options)


def test_a_platform_id_with_a_lone_surrogate_is_a_typed_error() -> None:
    with pytest.raises(PersonagraphError):
        Scope.for_platform("discord", "\ud800")


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(7))
    with pytest.raises(SpecError), time_limit(CASE_SECONDS):
        load_spec(path)


@pytest.mark.parametrize(("name", "text"), [("deep.json", "[" * 100_000), ("deep.yaml", "[" * 1_000)])
def test_a_deeply_nested_spec_is_a_spec_error(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SpecError) as refused, time_limit(CASE_SECONDS):
        load_spec(path)
    assert refused.value.issues[0].line == 1 and "nested too deeply" in str(refused.value)


@pytest.mark.parametrize("body", ["{", "[]", '{"type": "event_callback", "event": 5, "team_id": "T1"}'])
def test_a_signed_malformed_slack_body_is_a_4xx(memory: Memory, tmp_path: Path, body: str) -> None:
    with running_slack(memory, tmp_path) as slack:
        assert slack.dispatch(body, signed_headers(body)).status < 500


def test_a_badly_signed_slack_request_stores_nothing(memory: Memory, tmp_path: Path) -> None:
    event = {"type": "app_mention", "user": "U1", "text": "<@UBOT> I live in Oslo", "channel": "C1", "ts": "1.1"}
    body = json.dumps({"team_id": "T1", "type": "event_callback", "event": event, "event_id": "Ev1",
                       "authorizations": [{"team_id": "T1", "user_id": "UBOT", "is_bot": True}]})
    headers = signed_headers(body) | {"x-slack-signature": "v0=" + "0" * 64}
    with running_slack(memory, tmp_path) as slack:
        assert slack.dispatch(body, headers).status == 401
    assert memory.records.scopes() == []


def test_a_seed_replays_the_same_junk() -> None:
    one, two = random.Random(5), random.Random(5)
    assert [type(junk(one)).__name__ for _ in range(200)] == [type(junk(two)).__name__ for _ in range(200)]


def test_a_message_with_a_lone_surrogate_is_a_typed_error(memory: Memory, tmp_path: Path) -> None:
    assistant = Assistant(memory, chat_model=FixedModel(), reflection_model="none",
                          settings=Settings(data_dir=tmp_path, adapter_auto_train=False))
    try:
        with pytest.raises(PersonagraphError):
            ChatService(assistant).answer(Speaker("discord", ("1",)), "hi \ud800 there", conversation=("c",))
    finally:
        assistant.close()


def test_a_query_with_a_lone_surrogate_is_a_typed_error(memory: Memory, alice: Scope) -> None:
    with pytest.raises(PersonagraphError):
        memory.search(alice, "x\udfffy")


def test_a_garbled_slack_timestamp_is_a_401(memory: Memory, tmp_path: Path) -> None:
    body = json.dumps({"type": "event_callback", "team_id": "T1", "event": {"type": "app_mention"}})
    headers = {"content-type": "application/json", "x-slack-request-timestamp": "not-a-time", "x-slack-signature": "v1=abc"}
    with running_slack(memory, tmp_path) as slack:
        assert slack.dispatch(body, headers).status == 401


def test_a_mention_without_a_channel_fails_quietly(memory: Memory, tmp_path: Path) -> None:
    event = {"type": "app_mention", "user": "U1", "text": "<@UBOT> hello", "ts": "1.1"}
    body = json.dumps({"team_id": "T1", "api_app_id": "A1", "type": "event_callback", "event": event, "event_id": "Ev1",
                       "authorizations": [{"enterprise_id": None, "team_id": "T1", "user_id": "UBOT", "is_bot": True}]})
    with running_slack(memory, tmp_path) as slack:
        assert slack.dispatch(body, signed_headers(body)).status == 200
        assert slack.answers.raised == [] and slack.listeners.raised == []


def test_a_control_character_in_a_spec_is_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "ctl.yaml"
    path.write_text("version: 1\nname: t\nentry: a\x1b\n")
    with pytest.raises(SpecError) as refused:
        load_spec(path)
    assert all(issue.line == 3 for issue in refused.value.issues), str(refused.value)


@pytest.mark.parametrize("case", ["forget", "ingest"])
def test_the_cli_answers_junk_without_a_traceback(tmp_path: Path, embedder: MiniLMEmbedder, case: str) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    args = {"forget": ["forget", "alice", "--event", "x\udfffy", "--yes"],
            "ingest": ["ingest", str(deep), "--user", "alice", "--format", "locomo"]}[case]
    with shared_embedder(embedder):
        result = CliRunner().invoke(cli.app, ["--data-dir", str(tmp_path / "data"), *args])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def test_a_deeply_nested_junk_id_gets_a_typed_error_not_a_recursion_error(disk_memory: Memory, alice: Scope) -> None:
    nested: object = "x"
    for _ in range(5_000):
        nested = [nested]
    with pytest.raises(PersonagraphError):
        disk_memory.forget_event(alice, nested)  # type: ignore[arg-type]


@pytest.mark.parametrize("body", [
    "team_id=T1&user_id=U1&command=%2Fmemory&text=show&channel_id=C1",  # no response_url to answer on
    '{"team_id": "T1", "type": "event_callback", "event": {"type": "app_mention", "user": "U1", "channel": "C1", "ts": "1.1", "text": -1}}',
])
def test_a_signed_request_bolt_cannot_serve_is_a_400(memory: Memory, tmp_path: Path, body: str) -> None:
    kind = "application/json" if body.startswith("{") else "application/x-www-form-urlencoded"
    with running_slack(memory, tmp_path) as slack:
        assert slack.dispatch(body, signed_headers(body, kind)).status == 400
        assert slack.answers.raised == [] and slack.listeners.raised == []


def test_a_conversation_id_or_name_that_is_not_unicode_is_a_typed_error(memory: Memory, tmp_path: Path) -> None:
    assistant = Assistant(memory, chat_model=FixedModel(), reflection_model="none",
                          settings=Settings(data_dir=tmp_path, adapter_auto_train=False))
    try:
        with pytest.raises(PersonagraphError):
            ChatService(assistant).answer(Speaker("discord", ("1",)), "hello", conversation=("\udd61",))
        with pytest.raises(PersonagraphError):
            ChatService(assistant).answer(Speaker("discord", ("1",), name="\ud800"), "hello", conversation=("c",))
        assert memory.records.scopes() == []
    finally:
        assistant.close()


@pytest.mark.parametrize("where", ["namespace", "key", "value"])
def test_a_store_put_nested_past_recursion_is_a_typed_error(memory: Memory, where: str) -> None:
    nested: object = "x"
    for _ in range(5_000):
        nested = (nested,)
    args = {"namespace": ("alice", "notes"), "key": "k", "value": {"a": 1}}
    args[where] = ("alice", nested) if where == "namespace" else nested if where == "key" else {"a": nested}
    with pytest.raises((PersonagraphError, InvalidNamespaceError)):
        PersonaStore(memory).put(args["namespace"], args["key"], args["value"])
    assert memory.records.scopes() == []


def test_memory_command_with_an_unreachable_response_url_is_still_a_200(memory: Memory, tmp_path: Path) -> None:
    body = "team_id=T1&user_id=U0&command=%2Fmemory&text=show&channel_id=C1&response_url=http%3A%2F%2F127.0.0.1%3A9%2Frespond"
    with running_slack(memory, tmp_path) as slack:
        assert slack.dispatch(body, signed_headers(body, "application/x-www-form-urlencoded")).status == 200
        assert slack.listeners.raised == [] and not any(r.exc_info for r in slack.errors.records)

"""Secrets never reach a store: the detector, its settings, and every way text comes in."""

from __future__ import annotations

from pathlib import Path

import pytest
from personagraph.memory import Memory, Scope
from personagraph.memory.models import Feedback, StoreItem
from personagraph.memory.redact_records import redact_record
from personagraph.memory.redaction import Redactor, redact_value
from pydantic import ValidationError

from benchmarks.reliability import secrets
from benchmarks.reliability.profile import SMOKE
from benchmarks.reliability.secrets import load_corpus
from personagraph.settings import Settings


@pytest.fixture(scope="module")
def corpus() -> dict:
    return load_corpus()


def test_every_secret_of_the_corpus_is_redacted_and_no_benign_message_is_touched(corpus: dict) -> None:
    redactor = Redactor()
    for case in corpus["secrets"]:
        text, kinds = redactor.redact(case["text"])
        assert case["secret"] not in text, case
        assert kinds, case
    for benign in corpus["benign"]:
        assert redactor.redact(benign) == (benign, [])


def test_redaction_names_the_kind_and_is_idempotent() -> None:
    redactor = Redactor()
    text, kinds = redactor.redact("my password is Hunter2!zz and card 4111 1111 1111 1111")
    assert text == "my password is [redacted password] and card [redacted card_number]"
    assert sorted(kinds) == ["card_number", "password"]
    assert redactor.redact(text) == (text, [])


def test_card_numbers_must_pass_luhn_and_ibans_mod_97() -> None:
    redactor = Redactor()
    assert redactor.redact("card 4111 1111 1111 1112")[1] == []  # fails the Luhn check
    assert "account_number" not in redactor.redact("IBAN DE89 3704 0044 0532 0130 01")[1]  # fails mod 97
    assert redactor.redact("evt_4111111111111111a and ab4111111111111111")[1] == []  # never inside an id or a word
    assert redactor.redact("IBAN DE89 3704 0044 0532 0130 00")[1] == ["account_number"]


def test_kinds_can_be_chosen_and_a_deployment_can_add_its_own_patterns() -> None:
    only_cards = Redactor(kinds=["card_number"])
    assert only_cards.redact("password: hunter2x, card 4111111111111111") == (
        "password: hunter2x, card [redacted card_number]", ["card_number"])
    own = Redactor(kinds=(), extra_patterns={"employee_id": r"EMP-(?P<value>\d{6})"})
    assert own.redact("badge EMP-123456") == ("badge EMP-[redacted employee_id]", ["employee_id"])
    assert not Redactor(kinds=()).enabled


@pytest.mark.parametrize("bad", [{"kinds": ["pasword"]}, {"extra_patterns": {"x": "("}}, {"extra_patterns": {"Bad Name": "a"}}])
def test_bad_redaction_settings_are_refused_when_the_settings_load(bad: dict) -> None:
    with pytest.raises(ValueError):
        Redactor(**bad)
    fields = {"redact_kinds": bad["kinds"]} if "kinds" in bad else {"redact_patterns": bad["extra_patterns"]}
    with pytest.raises(ValidationError):
        Settings(**fields)


def test_settings_turn_redaction_off_or_extend_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not Settings(redact_secrets=False).redactor().enabled
    monkeypatch.setenv("PERSONAGRAPH_REDACT_PATTERNS", '{"ticket": "TCK-\\\\d{4}"}')
    assert Settings().redactor().redact("see TCK-1234") == ("see [redacted ticket]", ["ticket"])


def test_store_values_under_secret_keys_are_replaced_whole() -> None:
    value = {"password": "plain-words", "note": "my pin is 4821", "nested": [{"api_key": "abc"}], "count": 3}
    assert redact_value(Redactor(), value) == {
        "password": "[redacted password]", "note": "my pin is [redacted password]",
        "nested": [{"api_key": "[redacted api_key]"}], "count": 3,
    }


def test_records_of_every_kind_lose_their_secrets() -> None:
    redactor = Redactor()
    item = StoreItem(namespace=["u", "notes"], key="k", value={"text": "pwd=q9W!e7R"}, text="pwd=q9W!e7R")
    feedback = Feedback(feedback_kind="thumbs", query="my PIN is 8842", response="ok", rating="up",
                        comment="token: ghp_abcdefghijklmnopqrstuvwxyz0123456789")
    assert "q9W!e7R" not in redact_record(item, redactor).model_dump_json()
    clean = redact_record(feedback, redactor)
    assert "8842" not in clean.query and "ghp_" not in (clean.comment or "")
    untouched = StoreItem(namespace=["u", "notes"], key="k", value={"text": "hello"}, text="hello")
    assert redact_record(untouched, redactor) is untouched


def test_memory_keeps_the_redacted_text_and_says_what_it_withheld(memory: Memory, alice: Scope) -> None:
    event = memory.add_event(alice, {"speaker": "alice", "text": "my password is Hunter2!zz"})
    assert event.text == "my password is [redacted password]"
    assert event.metadata["redacted"] == "password"
    assert memory.events(alice)[0].text == event.text
    # A replay of the same message finds it, redacted the same way.
    assert memory.add_event(alice, {"speaker": "alice", "text": "my password is Hunter2!zz", "time": event.time}).id == event.id
    fact = memory.add_fact(alice, {"text": "alice's card is 4111 1111 1111 1111"})
    assert "4111" not in memory.get_fact(alice, fact.id).text


def test_redaction_off_keeps_text_as_typed(tmp_path: Path, embedder) -> None:
    from benchmarks.common import fresh_memory

    memory = fresh_memory(tmp_path, embedder)
    memory.redactor = Redactor(kinds=())
    try:
        assert memory.add_event(Scope(user_id="u"), {"speaker": "u", "text": "my password is Hunter2!zz"}).text.endswith("Hunter2!zz")
    finally:
        memory.close()


def test_no_secret_reaches_a_store_or_the_model_and_the_unredacted_control_finds_them_all(tmp_path: Path, embedder) -> None:
    result = secrets.run(SMOKE, tmp_path, embedder)
    assert result.figures["secrets"] >= 30
    assert result.ok, result.details
    assert result.figures["control_secrets_stored"] == result.figures["secrets"]
    assert result.figures["benign_altered"] == 0


def test_an_id_derived_from_text_is_derived_again_from_the_redacted_text(memory: Memory, alice: Scope) -> None:
    from personagraph.memory.models import Event

    raw = Event(speaker="alice", text="my PIN is 4821")
    kept = memory.add_event(alice, raw)
    assert kept.id != raw.id  # a hash of the raw text would let anyone try every PIN against it
    assert kept.id == Event(speaker="alice", text="my PIN is [redacted password]", time=raw.time).id
    assert memory.add_event(alice, raw).id == kept.id  # the replay still finds it
    given = memory.add_event(alice, {"id": "msg-1", "speaker": "alice", "text": "pin is 9911"})
    assert given.id == "msg-1"  # an id the caller chose is theirs


def test_a_marker_that_would_push_text_past_its_limit_is_a_typed_error(memory: Memory, alice: Scope) -> None:
    from personagraph.memory.errors import InvalidRecordError

    with pytest.raises(InvalidRecordError, match="once redacted"):
        memory.add_event(alice, {"speaker": "alice", "text": "x" * 19_985 + " pin 1234"})
    assert memory.events(alice) == []


def test_a_number_under_a_secret_looking_key_keeps_its_type() -> None:
    assert redact_value(Redactor(), {"max_token": 5, "use_pin": True}) == {"max_token": 5, "use_pin": True}

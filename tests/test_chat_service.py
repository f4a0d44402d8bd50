"""The platform-neutral chat service the Slack and Discord bridges share."""

from __future__ import annotations

from pathlib import Path

import pytest
from personagraph.memory import Memory
from personagraph.memory.errors import InvalidRecordError

from personagraph.assistant import Assistant
from personagraph.bridges import ChatService, Speaker
from personagraph.settings import Settings
from tests.scripted_model import ScriptedChatModel

ALICE = Speaker("slack", ("T1", "U_ALICE"), "Alice")
BOB = Speaker("slack", ("T1", "U_BOB"), "Bob")
ALICE_ELSEWHERE = Speaker("slack", ("T2", "U_ALICE"), "Alice")  # the same user id in another workspace


@pytest.fixture
def service(memory: Memory, tmp_path: Path) -> ChatService:
    model = ScriptedChatModel(script=[f"answer {n}" for n in range(20)])
    assistant = Assistant(memory, chat_model=model, reflection_model="none", settings=Settings(data_dir=tmp_path, adapter_auto_train=False))
    yield ChatService(assistant)
    assistant.close()


def _shown(service: ChatService) -> str:
    return " ".join(str(m.content) for m in service.assistant.chat_model.prompts[-1])


def test_platform_ids_become_hashed_labels(service: ChatService) -> None:
    scope = service.scope(ALICE)
    assert scope.user_id.startswith("slack-") and "U_ALICE" not in scope.user_id
    assert service.scope(ALICE_ELSEWHERE) != scope != service.scope(BOB)
    label = service.thread_label("slack", "C1", "1712345678.000100")
    assert label.startswith("thr-") and "1712345678" not in label
    with pytest.raises(InvalidRecordError):
        service.thread_label("slack", "C1", "")


def test_a_fact_told_in_one_channel_is_used_in_another_and_never_for_someone_else(service: ChatService) -> None:
    told = service.answer(ALICE, "I live in Lisbon now.", conversation=("C1", "1.0"))
    assert told.reply_id and told.text == "answer 0"
    service.assistant.reflection.flush()
    service.answer(ALICE, "Where do I live?", conversation=("C2", "2.0"))
    assert "Lisbon" in _shown(service)
    service.answer(BOB, "Where do I live?", conversation=("C2", "3.0"))
    assert "Lisbon" not in _shown(service)
    service.answer(ALICE_ELSEWHERE, "Where do I live?", conversation=("C9", "4.0"))
    assert "Lisbon" not in _shown(service)
    threads = {e.thread_id for e in service.assistant.memory.events(service.scope(ALICE))}
    assert all(t.startswith("thr-") for t in threads) and len(threads) == 2


def test_only_the_askers_reactions_are_feedback(service: ChatService) -> None:
    reply = service.answer(ALICE, "Suggest a book", conversation=("C1", "1.0"))
    service.posted(ALICE, reply, ("C1", "99.1"))
    assert service.react(BOB, ("C1", "99.1"), "+1") is None
    assert service.react(ALICE, ("C1", "123.4"), "+1") is None  # not a message we posted
    assert service.react(ALICE, ("C1", "99.1"), "tada") is None  # not a thumb
    feedback = service.react(ALICE, ("C1", "99.1"), "-1::skin-tone-3")
    assert feedback is not None and feedback.rating == "down"
    assert service.react(ALICE, ("C1", "99.1"), "👍🏽").rating == "up"
    assert len(service.assistant.memory.feedback(service.scope(ALICE))) == 2
    assert service.assistant.memory.feedback(service.scope(BOB)) == []


def test_forgetting_waits_for_an_answer_under_way(service: ChatService) -> None:
    """Nothing of a person is stored after their forget's receipt, even mid-answer."""
    import threading
    import time

    started = threading.Event()
    original = service.assistant.respond

    def slow_respond(*args: object, **kwargs: object) -> object:
        started.set()
        time.sleep(0.5)
        return original(*args, **kwargs)

    service.assistant.respond = slow_respond  # type: ignore[method-assign]
    answering = threading.Thread(target=service.answer, args=(ALICE, "I live in Lisbon now."), kwargs={"conversation": ("C1", "1.0")})
    answering.start()
    started.wait(5)
    receipt = service.forget(ALICE)
    answering.join()
    assert receipt.complete and receipt.records_deleted["event"] == 2  # the answer landed first, then went
    assert service.assistant.memory.records.count(service.scope(ALICE)) == 0


def test_memory_commands_act_on_the_caller_only(service: ChatService) -> None:
    service.answer(ALICE, "I live in Lisbon now.", conversation=("C1", "1.0"))
    service.answer(BOB, "I live in Oslo now.", conversation=("C1", "2.0"))
    service.assistant.reflection.flush()
    shown = service.show(ALICE)
    assert "Lisbon" in shown and "Oslo" not in shown
    exported = service.export(ALICE)
    assert "Lisbon" in str(exported) and "Oslo" not in str(exported)
    receipt = service.forget(ALICE)
    assert receipt.complete
    assert all(records == [] for records in service.export(ALICE)["records"].values())
    assert "Oslo" in service.show(BOB)


@pytest.mark.parametrize("text", ["", "   ", "x" * 4001])
def test_bad_messages_get_a_typed_error_and_store_nothing(service: ChatService, text: str) -> None:
    with pytest.raises(InvalidRecordError):
        service.answer(ALICE, text, conversation=("C1", "1.0"))
    assert service.assistant.memory.records.count(service.scope(ALICE)) == 0


def test_an_answer_forgotten_before_it_was_posted_is_not_tracked(service: ChatService) -> None:
    reply = service.answer(ALICE, "Suggest a film", conversation=("C1", "1.0"))
    service.forget(ALICE)
    service.posted(ALICE, reply, ("C1", "5.5"))
    assert service.react(ALICE, ("C1", "5.5"), "+1") is None
    assert service.assistant.memory.records.count(service.scope(ALICE)) == 0

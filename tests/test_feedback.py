"""Feedback: capture with provenance, scoping, conversion to preference data, and deletion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from personagraph.agents.alignment.preferences import (
    as_kto_rows,
    dpo_pairs,
    kto_rows,
    preference_data,
    sft_examples,
    to_datasets,
)
from personagraph.memory import (
    Feedback,
    InvalidRecordError,
    Memory,
    RecordNotFoundError,
    Scope,
)
from personagraph.memory.models import AdapterRecord, PromptMessage
from personagraph.tools.feedback import (
    FeedbackRecorder,
    ReplyProvenance,
    record_feedback_tool,
)

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def exchange(memory: Memory, scope: Scope, query: str, answer: str, minute: int = 0) -> tuple[str, str]:
    request, reply = memory.add_events(scope, [
        {"speaker": "alice", "role": "user", "text": query, "time": T0 + timedelta(minutes=minute)},
        {"speaker": "assistant", "role": "assistant", "text": answer, "time": T0 + timedelta(minutes=minute, seconds=5),
         "metadata": {"backend": "prompting", "used": "fct_a,fct_b"}},
    ])
    return request.id, reply.id


@pytest.fixture
def recorder(memory: Memory) -> FeedbackRecorder:
    return FeedbackRecorder(memory)


def test_thumbs_keeps_the_exchange_and_its_provenance(memory: Memory, alice: Scope, recorder: FeedbackRecorder) -> None:
    memory.add_fact(alice, {"id": "fct_a", "text": "Alice loves trams"})
    request, reply = exchange(memory, alice, "Any tips for Lisbon?", "Try the trams.")
    prompt = (PromptMessage(role="system", content="notes"), PromptMessage(role="user", content="Any tips for Lisbon?"))
    recorder.remember(alice, reply, ReplyProvenance(prompt=prompt, memory_ids=("fct_a",), backend="adapter+memory", adapter_id="adp_1"))
    feedback = recorder.thumbs(alice, reply, up=False, comment="too long")
    assert (feedback.feedback_kind, feedback.rating, feedback.comment) == ("thumbs", "down", "too long")
    assert (feedback.query, feedback.response) == ("Any tips for Lisbon?", "Try the trams.")
    assert feedback.sources == [request, reply] and feedback.reply_event_id == reply
    assert [m.role for m in feedback.prompt] == ["system", "user"]
    assert (feedback.backend, feedback.adapter_id, feedback.memory_ids) == ("adapter+memory", "adp_1", ["fct_a"])
    assert memory.feedback(alice) == [feedback]


def test_without_the_reply_log_provenance_comes_from_the_reply_event(memory: Memory, alice: Scope, recorder: FeedbackRecorder) -> None:
    memory.add_fact(alice, {"id": "fct_a", "text": "Alice says hi a lot"})
    memory.add_fact(alice, {"id": "fct_b", "text": "Alice likes greetings"})
    _, reply = exchange(memory, alice, "Hi", "Hello!")
    feedback = recorder.thumbs(alice, reply, up=True)
    assert feedback.prompt == [] and feedback.backend == "prompting" and feedback.memory_ids == ["fct_a", "fct_b"]


def test_feedback_is_scoped_to_its_user(memory: Memory, alice: Scope, bob: Scope, recorder: FeedbackRecorder) -> None:
    _, reply = exchange(memory, alice, "Hi", "Hello!")
    with pytest.raises(RecordNotFoundError):
        recorder.thumbs(bob, reply, up=True)  # bob cannot rate alice's answer
    with pytest.raises(RecordNotFoundError):  # nor attach feedback to her events directly
        memory.add_feedback(bob, Feedback(feedback_kind="thumbs", query="Hi", response="Hello!", rating="up", sources=[reply]))
    recorder.thumbs(alice, reply, up=True)
    assert memory.feedback(bob) == [] and len(memory.feedback(alice)) == 1


def test_bad_feedback_gets_typed_errors_and_writes_nothing(memory: Memory, alice: Scope, recorder: FeedbackRecorder) -> None:
    request, reply = exchange(memory, alice, "Hi", "Hello there, friend.")
    with pytest.raises(InvalidRecordError):
        recorder.thumbs(alice, request, up=True)  # a user message is not an answer
    with pytest.raises(InvalidRecordError):
        recorder.edit(alice, reply, "Hello there, friend.")  # nothing changed
    with pytest.raises(InvalidRecordError):
        recorder.choose(alice, reply, ["a", "b"], chosen=2)  # no such alternative
    with pytest.raises(InvalidRecordError):
        recorder.choose(alice, reply, ["same", "same"], chosen=0)
    with pytest.raises(InvalidRecordError):
        memory.add_feedback(alice, {"feedback_kind": "thumbs", "query": "Hi"})  # no rating, no response
    with pytest.raises(RecordNotFoundError):
        recorder.thumbs(alice, "evt_missing", up=True)
    assert memory.feedback(alice) == []
    fb = recorder.thumbs(alice, reply, up=True)
    with pytest.raises(InvalidRecordError):
        memory.add_feedback(alice, fb)  # feedback is never rewritten


def test_reactions_map_to_thumbs_and_others_are_ignored(memory: Memory, alice: Scope, recorder: FeedbackRecorder) -> None:
    _, reply = exchange(memory, alice, "Hi", "Hello!")
    assert recorder.reaction(alice, reply, "👍").rating == "up"
    assert recorder.reaction(alice, reply, ":-1:").rating == "down"
    assert recorder.reaction(alice, reply, "tada") is None
    assert len(memory.feedback(alice)) == 2


def test_thumbs_become_kto_rows(memory: Memory, alice: Scope, recorder: FeedbackRecorder) -> None:
    _, reply = exchange(memory, alice, "Name a fruit", "Apple.")
    up, down = recorder.thumbs(alice, reply, up=True), recorder.thumbs(alice, reply, up=False)
    assert [(r.completion, r.label) for r in kto_rows(up) + kto_rows(down)] == [("Apple.", True), ("Apple.", False)]
    assert kto_rows(up)[0].prompt == [{"role": "user", "content": "Name a fruit"}]  # the bare request without a logged prompt
    assert dpo_pairs(up) == [] and sft_examples(up) == []


def test_a_choice_becomes_one_pair_per_answer_not_chosen(memory: Memory, alice: Scope, recorder: FeedbackRecorder) -> None:
    _, reply = exchange(memory, alice, "Name a fruit", "Apple.")
    choice = recorder.choose(alice, reply, ["Apple.", "Pear.", "Plum."], chosen=1)
    pairs = dpo_pairs(choice)
    assert [(p.chosen, p.rejected) for p in pairs] == [("Pear.", "Apple."), ("Pear.", "Plum.")]
    assert all(p.feedback_id == choice.id for p in pairs) and kto_rows(choice) == []


def test_an_edit_becomes_a_pair_and_an_sft_example(memory: Memory, alice: Scope, recorder: FeedbackRecorder) -> None:
    request, reply = exchange(memory, alice, "Plan my day", "Well, you could start by perhaps going for a walk.")
    edit = recorder.edit(alice, reply, "- walk\n- read")
    (pair,) = dpo_pairs(edit)
    assert (pair.chosen, pair.rejected) == ("- walk\n- read", "Well, you could start by perhaps going for a walk.")
    (example,) = sft_examples(edit)
    assert example.target == "- walk\n- read" and example.source_ids == (request, reply) and example.kind == "edit"


def test_preference_data_grows_and_exports_as_datasets(memory: Memory, alice: Scope, recorder: FeedbackRecorder) -> None:
    _, r1 = exchange(memory, alice, "Name a fruit", "Apple.")
    _, r2 = exchange(memory, alice, "Name a colour", "Blue.", minute=1)
    recorder.thumbs(alice, r1, up=True)
    first = preference_data(memory.feedback(alice)).counts()
    recorder.choose(alice, r2, ["Blue.", "Red."], chosen=0)
    recorder.edit(alice, r2, "Blue, like the sea.")
    data = preference_data(memory.feedback(alice))
    assert first == {"kto_rows": 1, "dpo_pairs": 0, "sft_examples": 0, "feedback": 1}
    assert data.counts() == {"kto_rows": 1, "dpo_pairs": 2, "sft_examples": 1, "feedback": 3}
    assert len(as_kto_rows(data)) == 1 + 2 * 2  # each pair gives a desirable and an undesirable row
    exported = to_datasets(data)
    assert {name: exported[name].num_rows for name in exported} == {"kto": 1, "dpo": 2, "sft": 1}
    assert exported["dpo"][0]["chosen"] == [{"role": "assistant", "content": "Blue."}]
    assert exported["kto"][0]["label"] is True


def test_forgetting_the_exchange_forgets_feedback_and_adapters_trained_on_it(
    memory: Memory, alice: Scope, recorder: FeedbackRecorder, tmp_path,
) -> None:
    _, reply = exchange(memory, alice, "Name a fruit", "Apple.")
    _, other = exchange(memory, alice, "Name a colour", "Blue.", minute=1)
    doomed = recorder.thumbs(alice, reply, up=True)
    kept = recorder.thumbs(alice, other, up=True)
    folder = tmp_path / "adp"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    memory.register_adapter(alice, AdapterRecord(
        adapter_kind="lora", status="registered", base_model="m", data_hash="abcdef0123", example_count=1,
        heldout_count=1, path=str(folder), objective="kto", feedback_ids=[doomed.id],
    ))
    receipt = memory.forget_event(alice, reply)
    assert receipt.records_deleted.get("feedback") == 1 and receipt.records_deleted.get("adapter") == 1
    assert receipt.complete and not folder.exists()
    assert [f.id for f in memory.feedback(alice)] == [kept.id]


def test_feedback_quoting_a_forgotten_memory_is_forgotten(memory: Memory, alice: Scope, recorder: FeedbackRecorder) -> None:
    (told,) = memory.add_events(alice, [{"speaker": "alice", "text": "I live in Porto", "time": T0 - timedelta(days=1)}])
    _, reply = exchange(memory, alice, "Where do I live?", "Porto.")
    recorder.remember(alice, reply, ReplyProvenance(memory_ids=(told.id,)))
    recorder.thumbs(alice, reply, up=True)
    memory.forget_event(alice, told.id)
    assert memory.feedback(alice) == []


def test_delete_feedback_takes_adapters_trained_on_it(memory: Memory, alice: Scope, recorder: FeedbackRecorder, tmp_path) -> None:
    _, reply = exchange(memory, alice, "Name a fruit", "Apple.")
    fb = recorder.thumbs(alice, reply, up=True)
    memory.register_adapter(alice, AdapterRecord(
        adapter_kind="lora", status="rejected", base_model="m", data_hash="abcdef0123", example_count=1,
        heldout_count=1, objective="kto", feedback_ids=[fb.id],
    ))
    deleted = memory.delete_feedback(alice, fb.id)
    assert len(deleted) == 2 and memory.feedback(alice) == [] and memory.adapters(alice) == []


def test_forget_user_removes_feedback(memory: Memory, alice: Scope, recorder: FeedbackRecorder) -> None:
    _, reply = exchange(memory, alice, "Hi", "Hello!")
    recorder.thumbs(alice, reply, up=True)
    receipt = memory.forget_user(alice)
    assert receipt.records_deleted["feedback"] == 1 and receipt.complete
    assert memory.feedback(alice) == []


def test_the_feedback_tool_takes_the_user_from_the_run_config_only(memory: Memory, alice: Scope, bob: Scope, recorder: FeedbackRecorder) -> None:
    _, reply = exchange(memory, alice, "Hi", "Hello!")
    tool = record_feedback_tool(recorder)
    assert set(tool.args) == {"reply_id", "rating", "comment"}  # no argument names a user
    with pytest.raises(RecordNotFoundError):  # run for bob: alice's reply is out of reach
        tool.invoke({"reply_id": reply, "rating": "up"}, config={"configurable": {"user_id": "bob"}})
    out = tool.invoke({"reply_id": reply, "rating": "down", "comment": "too long"}, config={"configurable": {"user_id": "alice"}})
    assert "recorded down" in out and memory.feedback(alice)[0].comment == "too long" and memory.feedback(bob) == []
    with pytest.raises(InvalidRecordError):
        tool.invoke({"reply_id": reply, "rating": "up"})  # no user in the config


def test_feedback_keeps_only_memory_ids_of_its_own_user(memory: Memory, alice: Scope, bob: Scope, recorder: FeedbackRecorder) -> None:
    (bobs,) = memory.add_events(bob, [{"speaker": "bob", "text": "My PIN is 1234", "time": T0}])
    (hers,) = memory.add_events(alice, [{"speaker": "alice", "text": "I live in Porto", "time": T0}])
    _, reply = exchange(memory, alice, "Where do I live?", "Porto.")
    recorder.remember(alice, reply, ReplyProvenance(memory_ids=(hers.id, bobs.id, "fct_gone")))
    feedback = recorder.thumbs(alice, reply, up=True)
    assert feedback.memory_ids == [hers.id]


def test_blank_text_is_refused(memory: Memory, alice: Scope, recorder: FeedbackRecorder) -> None:
    _, reply = exchange(memory, alice, "Plan my day", "Walk, then read a little before lunch.")
    with pytest.raises(InvalidRecordError):
        recorder.edit(alice, reply, "   ")
    with pytest.raises(InvalidRecordError):
        recorder.choose(alice, reply, ["Walk.", "  "], chosen=0)
    with pytest.raises(InvalidRecordError):  # the reply must be a source, or forgetting it would miss the feedback
        memory.add_feedback(alice, Feedback(feedback_kind="thumbs", query="q", response="r", rating="up", reply_event_id=reply))
    assert memory.feedback(alice) == []


def test_a_forgotten_request_is_never_replaced_by_an_older_one(memory: Memory, alice: Scope, recorder: FeedbackRecorder) -> None:
    exchange(memory, alice, "An older question", "An older answer.")
    request = memory.add_event(alice, {"speaker": "alice", "role": "user", "text": "My secret question", "time": T0 + timedelta(minutes=5)})
    reply = memory.add_event(alice, {"speaker": "assistant", "role": "assistant", "text": "The answer.",
                                     "time": T0 + timedelta(minutes=5, seconds=1), "metadata": {"request": request.id}})
    memory.forget_event(alice, request.id)
    with pytest.raises(RecordNotFoundError, match="forgotten"):
        recorder.thumbs(alice, reply.id, up=True)
    assert memory.feedback(alice) == []

"""Supervised examples for a per-user adapter, built from that user's memory.

Two kinds: the user's own messages, each prompted with the turns before it (teaches how and
about what the user writes), and active facts about the user (teaches what is known). The
split is by time: the newest messages are held out, as a model trained today is judged on
what the user says tomorrow, and no fact resting on a held-out message may be trained on.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

from personagraph.memory.errors import InvalidRecordError
from personagraph.memory.models import Event, Fact, FactKind
from pydantic import BaseModel, ConfigDict

_FACT_QUESTIONS: dict[FactKind, str] = {
    "preference": "What does {user} like or dislike?",
    "attribute": "Tell me something about {user}.",
    "relationship": "Who matters to {user}?",
    "plan": "What is {user} planning?",
    "event": "What has happened to {user}?",
    "instruction": "How does {user} want to be treated?",
    "other": "What do you know about {user}?",
}


class SFTExample(BaseModel):
    """One prompt (chat messages without the assistant turn) and the assistant text to learn.

    `source_ids` names every record whose words are in the example (target and context), so
    an adapter can record every event it rests on (forgetting one deletes the adapter).
    """

    model_config = ConfigDict(frozen=True)

    messages: list[dict[str, str]]
    target: str
    source_ids: tuple[str, ...]
    time: datetime
    kind: Literal["message", "fact", "edit"]


class TrainingData(BaseModel):
    """A time-ordered split; `data_hash` identifies it, `event_ids` are the trained-on events."""

    model_config = ConfigDict(frozen=True)

    train: list[SFTExample]
    heldout: list[SFTExample]
    data_hash: str
    event_ids: tuple[str, ...]
    fact_ids: tuple[str, ...] = ()


def _turn(event: Event) -> str:
    text = f"{event.speaker}: {event.text}"
    if event.caption:
        text += f" [shared an image: {event.caption}]"
    return text


def persona_instruction(user_speaker: str) -> str:
    """The system line adapters are trained under; serving an adapter uses it too."""
    return f"You are {user_speaker}. Write the next message as {user_speaker} would."


def style_examples(events: Iterable[Event], user_speaker: str, context_turns: int = 2) -> list[SFTExample]:
    """One example per message by `user_speaker`: the previous `context_turns` turns of its
    thread as the prompt, its text as the target. Sorted by time (ties by id)."""
    if context_turns < 0:
        raise InvalidRecordError(f"context_turns must be >= 0, got {context_turns}")
    threads: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        threads[event.thread_id].append(event)
    examples = []
    for thread in threads.values():
        thread.sort(key=lambda e: (e.time, e.id))
        for i, event in enumerate(thread):
            if event.speaker != user_speaker:
                continue
            context = thread[max(0, i - context_turns):i] if context_turns else []
            user_text = "\n".join(_turn(e) for e in context) or "(a new conversation starts)"
            examples.append(SFTExample(
                messages=[
                    {"role": "system", "content": persona_instruction(user_speaker)},
                    {"role": "user", "content": user_text},
                ],
                target=event.text,
                source_ids=(event.id, *(e.id for e in context)),
                time=event.time,
                kind="message",
            ))
    examples.sort(key=lambda x: (x.time, x.source_ids))
    return examples


def fact_examples(facts: Iterable[Fact], user_speaker: str) -> list[SFTExample]:
    """One example per active fact about the user (its subject, or named in its text when it
    has none): a question about the user, answered by the fact's text. Facts about other
    people in the conversation would teach the adapter wrong things about the user."""
    examples = []
    me = user_speaker.casefold()
    for fact in facts:
        about_me = fact.subject.casefold() == me if fact.subject else me in fact.text.casefold()
        if fact.status != "active" or not about_me:
            continue
        examples.append(SFTExample(
            messages=[
                {"role": "system", "content": f"You know {user_speaker} well."},
                {"role": "user", "content": _FACT_QUESTIONS[fact.fact_kind].format(user=user_speaker)},
            ],
            target=fact.text,
            source_ids=(fact.id, *fact.sources),
            time=fact.valid_from or fact.created_at,
            kind="fact",
        ))
    examples.sort(key=lambda x: (x.time, x.source_ids))
    return examples


def _hash(train: Sequence[SFTExample], heldout: Sequence[SFTExample]) -> str:
    lines = sorted(
        "\x1f".join((split, *x.source_ids, x.target))
        for split, part in (("train", train), ("heldout", heldout))
        for x in part
    )
    return hashlib.sha256("\x1e".join(lines).encode()).hexdigest()


def build_training_data(
    events: Iterable[Event],
    facts: Iterable[Fact],
    user_speaker: str,
    *,
    heldout_fraction: float = 0.2,
    max_train: int | None = None,
    context_turns: int = 2,
) -> TrainingData:
    """Messages and facts split by time: the newest `heldout_fraction` of the user's messages
    are held out (0 keeps none, for a final adapter trained on everything).

    Every event from the first held-out message on (any speaker) counts as held out, and a
    fact resting on one is left out of training, so no held-out content leaks in through
    memory. `max_train` keeps the newest train examples.
    """
    if not 0.0 <= heldout_fraction < 1.0:
        raise InvalidRecordError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    if max_train is not None and max_train < 1:
        raise InvalidRecordError(f"max_train must be at least 1, got {max_train}")
    events = list(events)
    messages = style_examples(events, user_speaker, context_turns)
    if not messages:
        raise InvalidRecordError(f"no messages by speaker {user_speaker!r}; nothing to train on")
    n_held = max(1, round(len(messages) * heldout_fraction)) if heldout_fraction > 0 else 0
    if len(messages) - n_held < 1:
        raise InvalidRecordError(
            f"{len(messages)} message(s) by {user_speaker!r} are too few to hold out {heldout_fraction:.0%}"
        )
    train, heldout = messages[:len(messages) - n_held], messages[len(messages) - n_held:]
    held_ids: set[str] = set()
    if heldout:
        cutoff = heldout[0].time
        held_ids = {e.id for e in events if e.time >= cutoff} | {x.source_ids[0] for x in heldout}
    usable_facts = [x for x in fact_examples(facts, user_speaker) if not held_ids.intersection(x.source_ids[1:])]
    train = sorted(train + usable_facts, key=lambda x: (x.time, x.source_ids))
    if max_train is not None:
        train = train[-max_train:]
    event_ids = {i for x in train for i in (x.source_ids if x.kind == "message" else x.source_ids[1:])}
    return TrainingData(
        train=train,
        heldout=heldout,
        data_hash=_hash(train, heldout),
        event_ids=tuple(sorted(event_ids)),
        fact_ids=tuple(sorted(x.source_ids[0] for x in train if x.kind == "fact")),
    )


def with_context(example: SFTExample, context: str) -> SFTExample:
    """The same example with retrieved memory added to its system message (the base + memory
    condition: what the base model does when it is told what the adapter had to learn)."""
    block = f"What you remember:\n{context.strip()}"
    messages = [dict(m) for m in example.messages]
    if messages and messages[0]["role"] == "system":
        messages[0]["content"] = f"{messages[0]['content']}\n\n{block}"
    else:
        messages.insert(0, {"role": "system", "content": block})
    return example.model_copy(update={"messages": messages})

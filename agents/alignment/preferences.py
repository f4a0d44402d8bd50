"""Feedback turned into preference data: KTO rows, DPO pairs and SFT examples.

- a thumb is one KTO row: (prompt, the rated answer, up = desirable);
- a choice is one DPO pair per answer not chosen (chosen over each of them);
- an edit is a DPO pair (the user's text over the draft) and an SFT example of the user's text.

Prompts are the chat messages the model was given when the feedback carries them, so a
preference is learned in the context it was expressed in; otherwise the bare request.
Every row names its feedback and the events of its exchange, so what was trained on can be
traced and forgotten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from personagraph.agents.adapters.examples import SFTExample
from personagraph.memory.models import Feedback
from pydantic import BaseModel, ConfigDict

Messages = list[dict[str, str]]


class KTORow(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt: Messages
    completion: str
    label: bool
    feedback_id: str


class DPOPair(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt: Messages
    chosen: str
    rejected: str
    feedback_id: str


class PreferenceData(BaseModel):
    """All of one user's preference data, in feedback order."""

    model_config = ConfigDict(frozen=True)

    kto: list[KTORow]
    dpo: list[DPOPair]
    sft: list[SFTExample]

    @property
    def feedback_ids(self) -> list[str]:
        seen = dict.fromkeys([*(r.feedback_id for r in self.kto), *(p.feedback_id for p in self.dpo)])
        return list(seen)

    def counts(self) -> dict[str, int]:
        return {"kto_rows": len(self.kto), "dpo_pairs": len(self.dpo), "sft_examples": len(self.sft),
                "feedback": len(self.feedback_ids)}

    def data_hash(self) -> str:
        """Identifies the data, so the same feedback is not trained on twice."""
        payload = json.dumps(
            [[r.model_dump() for r in self.kto], [p.model_dump() for p in self.dpo]], sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:24]


def feedback_prompt(feedback: Feedback) -> Messages:
    """The messages the answer was generated from, or the bare request when they were not kept."""
    if feedback.prompt:
        return [{"role": m.role, "content": m.content} for m in feedback.prompt]
    return [{"role": "user", "content": feedback.query}]


def kto_rows(feedback: Feedback) -> list[KTORow]:
    if feedback.feedback_kind != "thumbs" or feedback.response is None:
        return []
    return [KTORow(prompt=feedback_prompt(feedback), completion=feedback.response,
                   label=feedback.rating == "up", feedback_id=feedback.id)]


def dpo_pairs(feedback: Feedback) -> list[DPOPair]:
    prompt = feedback_prompt(feedback)
    if feedback.feedback_kind == "choice" and (chosen := feedback.chosen_text) is not None:
        return [
            DPOPair(prompt=prompt, chosen=chosen, rejected=other, feedback_id=feedback.id)
            for i, other in enumerate(feedback.alternatives) if i != feedback.chosen
        ]
    if feedback.feedback_kind == "edit" and feedback.edited and feedback.response:
        return [DPOPair(prompt=prompt, chosen=feedback.edited, rejected=feedback.response, feedback_id=feedback.id)]
    return []


def sft_examples(feedback: Feedback) -> list[SFTExample]:
    if feedback.feedback_kind != "edit" or not feedback.edited:
        return []
    return [SFTExample(
        messages=feedback_prompt(feedback), target=feedback.edited,
        source_ids=tuple(feedback.sources) or (feedback.id,), time=feedback.created_at, kind="edit",
    )]


def preference_data(feedback: Sequence[Feedback]) -> PreferenceData:
    ordered = sorted(feedback, key=lambda f: (f.created_at, f.id))
    return PreferenceData(
        kto=[row for f in ordered for row in kto_rows(f)],
        dpo=[pair for f in ordered for pair in dpo_pairs(f)],
        sft=[x for f in ordered for x in sft_examples(f)],
    )


def as_kto_rows(data: PreferenceData) -> list[KTORow]:
    """Every row KTO can learn from: the thumbs, plus each pair split into a desirable and an
    undesirable answer (KTO needs no pairing, so choices and edits count too). TRL estimates
    KTO's KL term by pairing each row's prompt with its neighbour's answer, so the two halves
    of a pair are kept apart: all chosen answers first, then all rejected ones."""
    chosen = [KTORow(prompt=p.prompt, completion=p.chosen, label=True, feedback_id=p.feedback_id) for p in data.dpo]
    rejected = [KTORow(prompt=p.prompt, completion=p.rejected, label=False, feedback_id=p.feedback_id) for p in data.dpo]
    return [*data.kto, *chosen, *rejected]


def assistant_turn(text: str) -> Messages:
    """An answer as TRL's conversational format wants it."""
    return [{"role": "assistant", "content": text}]


def to_datasets(data: PreferenceData) -> Any:
    """A `datasets.DatasetDict` with `kto`, `dpo` and `sft` splits in TRL's conversational
    format (prompt as chat messages, answers as assistant messages), ready for TRL or the Hub."""
    from datasets import Dataset, DatasetDict

    answer = assistant_turn
    kto = {"prompt": [r.prompt for r in data.kto], "completion": [answer(r.completion) for r in data.kto],
           "label": [r.label for r in data.kto], "feedback_id": [r.feedback_id for r in data.kto]}
    dpo = {"prompt": [p.prompt for p in data.dpo], "chosen": [answer(p.chosen) for p in data.dpo],
           "rejected": [answer(p.rejected) for p in data.dpo], "feedback_id": [p.feedback_id for p in data.dpo]}
    sft = {"prompt": [x.messages for x in data.sft], "completion": [answer(x.target) for x in data.sft],
           "source_ids": [list(x.source_ids) for x in data.sft]}
    return DatasetDict({name: Dataset.from_dict(columns) for name, columns in (("kto", kto), ("dpo", dpo), ("sft", sft))})

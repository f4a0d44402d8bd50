"""Repairs and checks for what a model extracted, beyond word-level grounding.

Measured on SmolLM2-135M over the shipped sample: it names the wrong message number for a
right fact (the assistant's reply after the user's message), fills subject/predicate/object
with words that are no relation at all ("eating_half_a_sock" → "two-year-old beagle"), and
writes episode summaries copied from the prompt's example, and loops on a phrase. Each of
these is cheap to catch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from personagraph.memory.models import Event

from .grounding import check_grounding
from .schema import CandidateEntity, CandidateFact, GroundingResult

MAX_PREDICATE_WORDS = 3


def _norm(text: str) -> str:
    return re.sub(r"[^\w]+", " ", text.lower()).strip()


def support(candidate: CandidateFact, sources: Sequence[Event], speakers: Sequence[str]) -> GroundingResult:
    """Grounding against `sources`, plus: a fact about one speaker of the conversation cannot
    rest only on another speaker's words unless they name that speaker ("Caroline is a big fan
    of pottery" from Melanie's "I love pottery" is Melanie's fact, not Caroline's)."""
    verdict = check_grounding(candidate, sources, names=speakers)
    subject = _norm(candidate.subject or candidate.text.split("'")[0].split(" ")[0])
    by_name = {_norm(s): s for s in speakers}
    if verdict.supported and subject in by_name and sources:
        said_by_subject = any(_norm(e.speaker) == subject for e in sources)
        named = any(f" {subject} " in f" {_norm(e.text)} " for e in sources)
        if not (said_by_subject or named):
            others = ", ".join(sorted({e.speaker for e in sources}))
            return GroundingResult(supported=False, score=0.0, reason=f"about {by_name[subject]} but said by {others}")
    return verdict


def best_source(candidate: CandidateFact, batch: Sequence[Event]) -> tuple[CandidateFact, GroundingResult]:
    """The candidate against its named sources; if they do not support it, against each other
    non-assistant message of the batch (a misnumbered source), keeping the best support. A
    model's fact never rests on the assistant's words: those are not what the user said."""
    speakers = sorted({e.speaker for e in batch if e.role != "assistant"})
    if candidate.origin != "llm":
        return candidate, check_grounding(candidate, [e for e in batch if e.id in candidate.sources], names=speakers)
    if repetitive(candidate.text):
        return candidate, GroundingResult(supported=False, score=0.0, reason="the text repeats itself")
    named = [e for e in batch if e.id in candidate.sources and e.role != "assistant"]
    verdict = support(candidate, named, speakers)
    if verdict.supported:
        return candidate, verdict
    best: tuple[CandidateFact, GroundingResult] = (candidate, verdict)
    for event in batch:
        if event.role == "assistant" or event.id in candidate.sources:
            continue
        moved = candidate.model_copy(update={"sources": [event.id]})
        other = support(moved, [event], speakers)
        if other.supported and other.score > best[1].score:
            best = (moved, other)
    return best


def repetitive(text: str, n: int = 4) -> bool:
    """A small model stuck in a loop repeats a phrase ("a great person, a great person")."""
    words = _norm(text).split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(grams) != len(set(grams))


def plausible_triple(candidate: CandidateFact, sources: Sequence[Event]) -> bool:
    """A triple is kept only if its ends are in the sources (or the subject is the speaker)
    and its predicate is a short relation name."""
    if not (candidate.subject and candidate.predicate and candidate.object):
        return False
    said = " ".join(_norm(e.text) for e in sources)
    speakers = {_norm(e.speaker) for e in sources}
    subject, obj = _norm(candidate.subject), _norm(candidate.object)
    predicate_words = [w for w in re.split(r"[\s_]+", candidate.predicate.strip()) if w]
    return (
        bool(subject) and bool(obj) and subject != obj
        and (subject in speakers or f" {subject} " in f" {said} ")
        and f" {obj} " in f" {said} "
        and 0 < len(predicate_words) <= MAX_PREDICATE_WORDS
    )


def without_bad_triple(candidate: CandidateFact, sources: Sequence[Event]) -> CandidateFact:
    """Model facts keep their text but lose a triple the sources do not bear out."""
    if candidate.origin != "llm" or candidate.predicate is None or plausible_triple(candidate, sources):
        return candidate
    return candidate.model_copy(update={"subject": None, "predicate": None, "object": None})


def named_in(entities: Sequence[CandidateEntity], batch: Sequence[Event]) -> list[CandidateEntity]:
    """Entities whose name (or an alias) the batch's messages actually say."""
    said = " " + " ".join(_norm(" ".join([e.speaker, e.text, e.caption or ""])) for e in batch) + " "
    return [e for e in entities if any(f" {_norm(n)} " in said for n in [e.name, *e.aliases] if _norm(n))]


def grounded_summary(summary: str, batch: Sequence[Event], example_summary: str) -> str:
    """The model's episode summary if the batch's words support it, else nothing."""
    if not summary or _norm(summary) == _norm(example_summary) or repetitive(summary):
        return ""
    probe = CandidateFact(text=summary[:500], sources=[e.id for e in batch], origin="llm")
    return summary if check_grounding(probe, [e for e in batch if e.role != "assistant"] or batch).supported else ""

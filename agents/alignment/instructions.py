"""Learned instructions (procedural memory): short notes on how the user wants answers,
read off their edits and repeated corrections.

Only the user's own feedback teaches them: an edit shows a preference once (the user rewrote
the answer themselves); a comment or a choice is weaker, so the same note must come up
twice. Each note becomes a fact of kind `instruction` with the feedback's exchange as its
sources; a newer note on the same dimension (concise over detailed) supersedes the older one.
The rules are deterministic and English-only.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from personagraph.memory.api import Memory
from personagraph.memory.models import Fact, Feedback
from personagraph.memory.scope import Scope

INSTRUCTION_PREDICATE = "answer_style"
EDIT_WEIGHT = 2  # one edit is enough
NEEDED = 2  # evidence needed before a note is kept
_LEARNING = threading.Lock()

# note key -> (dimension, text of the fact)
NOTES: dict[str, tuple[str, str]] = {
    "concise": ("length", "Prefers short, concise answers."),
    "detailed": ("length", "Prefers detailed, thorough answers."),
    "bullets": ("layout", "Prefers answers as bullet points."),
    "no_emojis": ("emojis", "Does not want emojis in answers."),
    "formal": ("tone", "Prefers a formal tone without slang or contractions."),
    "casual": ("tone", "Prefers a relaxed, casual tone."),
}

_COMMENT_CUES: dict[str, re.Pattern[str]] = {
    "concise": re.compile(r"\b(too long|shorter|more concise|be brief|briefer|less verbose|tl;?dr|wordy)\b", re.IGNORECASE),
    "detailed": re.compile(r"\b(too short|more detail|more details|elaborate|expand on|too brief)\b", re.IGNORECASE),
    "bullets": re.compile(r"\b(bullet|bullets|bullet points|as a list|list form)\b", re.IGNORECASE),
    "no_emojis": re.compile(r"\b(no|stop|without|fewer|drop the|lose the) (the )?emojis?\b|\bemojis? (are|is) annoying\b", re.IGNORECASE),
    "formal": re.compile(r"\b(more formal|more professional|too casual|too chatty)\b", re.IGNORECASE),
    "casual": re.compile(r"\b(too formal|less formal|more casual|relax|stiff)\b", re.IGNORECASE),
}
_EMOJI = re.compile("[\U0001F300-\U0001FAFF\U00002600-\U000027BF\U0001F000-\U0001F2FF]")
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+\S", re.MULTILINE)
_CONTRACTION = re.compile(r"\b\w+'(?:s|re|ve|ll|d|t|m)\b", re.IGNORECASE)
_SLANG = re.compile(r"\b(hey|gonna|wanna|yeah|cool|awesome|lol|btw|kinda|stuff)\b", re.IGNORECASE)


@dataclass
class LearnedInstruction:
    key: str
    text: str
    dimension: str
    evidence: float
    feedback_ids: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def word_count(text: str) -> int:
    return len(text.split())


def casualness(text: str) -> int:
    """Contractions, chatty words and exclamation marks: what a formal rewrite removes."""
    return len(_CONTRACTION.findall(text)) + len(_SLANG.findall(text)) + text.count("!")


def edit_signals(draft: str, edited: str) -> set[str]:
    """What the user changed about the answer's form when rewriting it."""
    found: set[str] = set()
    before, after = word_count(draft), word_count(edited)
    if before >= 20 and after <= 0.6 * before:
        found.add("concise")
    if after >= 20 and after >= 1.6 * before:
        found.add("detailed")
    if len(_BULLET.findall(edited)) >= 2 and not _BULLET.search(draft):
        found.add("bullets")
    if _EMOJI.search(draft) and not _EMOJI.search(edited):
        found.add("no_emojis")
    drop = casualness(draft) - casualness(edited)
    if drop >= 2 and casualness(edited) == 0:
        found.add("formal")
    elif drop <= -2 and casualness(draft) == 0:
        found.add("casual")
    return found


def comment_signals(comment: str | None) -> set[str]:
    return {key for key, cue in _COMMENT_CUES.items() if comment and cue.search(comment)}


def choice_signals(feedback: Feedback) -> set[str]:
    """A choice says something about length when the chosen answer is far shorter or longer
    than every other one."""
    chosen = feedback.chosen_text
    if chosen is None:
        return set()
    others = [word_count(a) for i, a in enumerate(feedback.alternatives) if i != feedback.chosen]
    mine = word_count(chosen)
    found = set()
    if others and mine <= 0.6 * min(others) and min(others) >= 20:
        found.add("concise")
    if others and mine >= 1.6 * max(others) and mine >= 20:
        found.add("detailed")
    return found


def learn(feedback: Sequence[Feedback]) -> list[LearnedInstruction]:
    """The notes the feedback supports, at most one per dimension (the latest evidence wins
    when two notes of one dimension both qualify)."""
    evidence: dict[str, float] = defaultdict(float)
    latest: dict[str, int] = {}
    ids: dict[str, list[str]] = defaultdict(list)
    sources: dict[str, list[str]] = defaultdict(list)
    for position, item in enumerate(sorted(feedback, key=lambda f: (f.created_at, f.id))):
        signals: dict[str, float] = {}
        if item.feedback_kind == "edit" and item.response and item.edited:
            signals |= dict.fromkeys(edit_signals(item.response, item.edited), EDIT_WEIGHT)
        if item.feedback_kind == "choice":
            signals |= {k: 1.0 for k in choice_signals(item) if k not in signals}
        if item.rating != "up":  # a comment on a thumbs-up praises, it does not correct
            signals |= {k: 1.0 for k in comment_signals(item.comment) if k not in signals}
        for key, weight in signals.items():
            evidence[key] += weight
            latest[key] = position
            ids[key].append(item.id)
            sources[key] += [s for s in item.sources if s not in sources[key]]
    best: dict[str, str] = {}
    for key, amount in evidence.items():
        if amount < NEEDED:
            continue
        dimension = NOTES[key][0]
        if dimension not in best or latest[key] > latest[best[dimension]]:
            best[dimension] = key
    return [
        LearnedInstruction(key=key, text=NOTES[key][1], dimension=NOTES[key][0], evidence=evidence[key],
                           feedback_ids=ids[key], sources=sources[key])
        for key in sorted(best.values())
    ]


def instruction_facts(memory: Memory, scope: Scope) -> list[Fact]:
    """The user's active learned instructions."""
    return [f for f in memory.facts(scope) if f.fact_kind == "instruction" and f.predicate == INSTRUCTION_PREDICATE]


def learned_rules(memory: Memory, scope: Scope) -> list[str]:
    """The texts of the user's learned instructions, for the prompting backend. Only our own
    fixed note texts qualify, so nothing a user or a third party typed becomes an instruction."""
    known = {text for _, text in NOTES.values()}
    return sorted(f.text for f in instruction_facts(memory, scope) if f.text in known)


def apply_learned(memory: Memory, scope: Scope) -> list[Fact]:
    """Bring the user's instruction facts in line with their feedback; returns facts written.

    A note already kept is left alone; a note on a dimension that had another one supersedes
    it (the old one stays in history, closed); a note its feedback no longer supports (the
    feedback was deleted) is retracted."""
    with _LEARNING:  # two pieces of feedback at once must not both supersede one fact
        current = {f.object: f for f in instruction_facts(memory, scope)}
        learned = learn(memory.feedback(scope))
        by_dimension = {NOTES[key][0]: fact for key, fact in current.items() if key in NOTES}
        written: list[Fact] = []
        replaced: set[str] = set()
        for note in learned:
            if note.key in current:
                continue
            fact = Fact(
                text=note.text, fact_kind="instruction", subject="user", predicate=INSTRUCTION_PREDICATE,
                object=note.key, confidence=min(1.0, 0.5 + 0.125 * note.evidence), sources=note.sources,
            )
            old = by_dimension.get(note.dimension)
            written.append(memory.supersede_fact(scope, old.id, fact) if old else memory.add_fact(scope, fact))
            replaced |= {old.id} if old else set()
        keys = {note.key for note in learned}
        written += [memory.retract_fact(scope, f.id) for key, f in current.items() if key not in keys and f.id not in replaced]
        return written

"""Derive the typed Profile from a user's active facts (pure; no I/O, no LLM)."""

from __future__ import annotations

from collections.abc import Iterable

from .models import Event, Fact, Profile, ProfileValue

_SINGLE_FIELDS = {
    "name": {"name", "is_named", "called"},
    "location": {"lives_in", "location", "based_in", "moved_to", "lives"},
    "occupation": {"works_as", "occupation", "job", "works_at", "profession"},
}
_STYLE_FIELDS = {"verbosity", "formality", "language", "tone"}
_DISLIKE_PREDICATES = {"dislikes", "hates", "avoids", "allergic_to", "cannot_stand", "dislike"}


def _predicate(fact: Fact) -> str:
    return (fact.predicate or "").strip().lower().replace(" ", "_")


def _value(fact: Fact) -> ProfileValue:
    return ProfileValue(value=fact.object or fact.text, fact_ids=[fact.id])


def _newest_first(facts: Iterable[Fact]) -> list[Fact]:
    return sorted(facts, key=lambda f: (f.valid_from or f.created_at, f.created_at), reverse=True)


_OWNER_WORDS = frozenset(("user", "the user", "i", "me", "myself"))


def about_owner(fact: Fact, owners: set[str] | None) -> bool:
    """Is `fact` about the user themself? `owners` are the names the user goes by (lower case):
    the speakers of their own messages and their id. A fact about someone else ("Ana lives in
    Lisbon", "Sam's sister loves horror films", what another speaker in a group chat asked the
    assistant to do) is theirs, and must not become the user's location, taste or instruction."""
    if owners is None or not fact.subject or not fact.sources:  # a fact put through the API is the caller's word
        return True
    subject = fact.subject.strip().lower()
    return subject in owners or subject in _OWNER_WORDS


def profile_owners(user_id: str, sources: Iterable[Event]) -> set[str]:
    """The names the user goes by (lower case): their id, and the speakers of their own messages
    among the facts' sources (every non-assistant speaker when none is marked as the user's, as
    in imported logs, where everyone's role is "other")."""
    events = list(sources)
    own = {e.speaker.lower() for e in events if e.role == "user"} or {
        e.speaker.lower() for e in events if e.role not in ("assistant", "system")}
    return {user_id.lower(), *own}


def derive_profile(facts: Iterable[Fact], owners: set[str] | None = None) -> Profile:
    """Build the profile from the active facts about the user (all of them when `owners` is
    None); a single-valued field takes the newest active fact that sets it."""
    profile = Profile()
    for fact in _newest_first(f for f in facts if f.status == "active" and about_owner(f, owners)):
        pred = _predicate(fact)
        single = next((field for field, preds in _SINGLE_FIELDS.items() if pred in preds), None)
        if single:
            if getattr(profile, single) is None:
                setattr(profile, single, _value(fact))
        elif pred in _STYLE_FIELDS:
            if getattr(profile.style, pred) is None:
                setattr(profile.style, pred, _value(fact))
        elif fact.fact_kind == "instruction":
            profile.instructions.append(ProfileValue(value=fact.text, fact_ids=[fact.id]))
        elif pred in _DISLIKE_PREDICATES:
            profile.dislikes.append(_value(fact))
        elif fact.fact_kind == "preference":
            profile.interests.append(_value(fact))
        elif fact.fact_kind == "relationship":
            profile.relationships.append(ProfileValue(value=fact.text, fact_ids=[fact.id]))
        elif fact.fact_kind == "plan":
            profile.plans.append(ProfileValue(value=fact.text, fact_ids=[fact.id]))
    return profile

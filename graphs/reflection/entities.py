"""Entity resolution: match a name to an entity the user already has before creating one.

Order of tests, cheapest first: the exact id (names are case- and space-insensitive), an
alias, a normalised form ("my sister Anna's" → "anna"), then embedding similarity of the
names. Without this, "Mel", "Melanie" and "melanie's" would be three nodes of the graph.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from personagraph.memory.embedding import Embedder
from personagraph.memory.models import Entity, entity_key

from .schema import CandidateEntity, CandidateFact

_LEADING = re.compile(r"^(?:my|our|his|her|their|the|a|an)\s+", re.IGNORECASE)
_POSSESSIVE = re.compile(r"(?:'s|’s|')$")
EMBEDDING_MATCH = 0.86  # MiniLM cosine of two names; "NYC"/"New York City" pass, "Anna"/"Hannah" do not


def normalise_name(name: str) -> str:
    text = re.sub(r"[\s\-_]+", " ", name.strip().lower()).strip(" .,!?;:\"")
    while (stripped := _LEADING.sub("", text)) != text:
        text = stripped
    return _POSSESSIVE.sub("", text).strip()


@dataclass
class EntityResolver:
    """Resolves names against one scope's entities; new names become new entities."""

    known: list[Entity]
    embedder: Embedder | None = None
    threshold: float = EMBEDDING_MATCH
    _by_id: dict[str, Entity] = field(init=False)
    _by_form: dict[str, Entity] = field(init=False)
    _vectors: list[list[float]] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._by_id = {e.id: e for e in self.known}
        self._by_form = {}
        for entity in self.known:
            for form in [entity.name, *entity.aliases]:
                self._by_form.setdefault(normalise_name(form), entity)

    def resolve(self, name: str) -> tuple[Entity | None, str]:
        """The known entity a name means (or None) and which test matched."""
        if (hit := self._by_id.get(entity_key(name))) is not None:
            return hit, "exact"
        form = normalise_name(name)
        if (hit := self._by_form.get(form)) is not None:
            return hit, "alias"
        if form and (hit := self._by_id.get(entity_key(form))) is not None:
            return hit, "normalised"
        if self.embedder is not None and self.known and form:
            if self._vectors is None:
                self._vectors = self.embedder.embed_documents([e.name for e in self.known])
            (query,) = self.embedder.embed_documents([form])
            scores = [sum(a * b for a, b in zip(query, v, strict=True)) for v in self._vectors]
            best = max(range(len(scores)), key=scores.__getitem__)
            if scores[best] >= self.threshold:
                return self.known[best], "embedding"
        return None, "new"

    def learn(self, entity: Entity) -> None:
        """Make an entity created in this batch resolvable for the rest of the batch."""
        self.known.append(entity)
        self._by_id[entity.id] = entity
        self._by_form.setdefault(normalise_name(entity.name), entity)
        self._vectors = None


def resolve_entities(
    facts: Sequence[CandidateFact], entities: Sequence[CandidateEntity], resolver: EntityResolver,
    speakers: Sequence[str] = (),
) -> tuple[list[CandidateFact], list[Entity]]:
    """Rewrite fact subjects and objects to canonical entity names; return the entities to write
    (known ones gain the new surface form as an alias and the new sources)."""
    touched: dict[str, Entity] = {}

    def canonical(name: str, entity_type: str, sources: Sequence[str], aliases: Sequence[str] = ()) -> str:
        found, _how = resolver.resolve(name)
        if found is None:
            found = Entity(name=name.strip(), entity_type=entity_type)
            resolver.learn(found)
        found = touched.get(found.id, found)
        new_aliases = [a for a in [name.strip(), *aliases] if normalise_name(a) != normalise_name(found.name)]
        touched[found.id] = found.model_copy(update={
            "sources": sorted(set(found.sources) | set(sources)),
            "aliases": list(dict.fromkeys([*found.aliases, *new_aliases])),
            "entity_type": found.entity_type if entity_type == "thing" else entity_type,
        })
        return found.name

    people = {normalise_name(s) for s in speakers}
    for entity in entities:
        canonical(entity.name, entity.entity_type, entity.sources, entity.aliases)
    resolved = []
    for fact in facts:
        update: dict[str, str] = {}
        if fact.subject and fact.predicate and fact.object:
            for end in ("subject", "object"):
                name = getattr(fact, end)
                update[end] = canonical(name, "person" if normalise_name(name) in people else "thing", fact.sources)
        resolved.append(fact.model_copy(update=update))
    return resolved, list(touched.values())

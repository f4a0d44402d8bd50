"""The memory API surface: every write and read of `Memory`, and calls that name another
user's record ids (which must be refused with a typed error and change nothing)."""

from __future__ import annotations

from random import Random

from hypothesis import strategies as st
from hypothesis.stateful import rule
from personagraph.memory import Entity, Event, Feedback, Relation

from .isolation_base import MachineBase, weighted
from .isolation_world import FACTS, QUERIES, TIMES, USERS, User

MEMORY_OPS = weighted(  # forgetting a whole user stays rare: it rebuilds the index shard (~1 s)
    profile=3, add_events=9, add_fact=6, supersede_fact=3, retract_fact=3, update_fact=3, upsert_entity=3, add_relation=3,
    add_feedback=3, search=6, export=3, graph=3, forget_event=3, forget_user=1, foreign=12,
)
FOREIGN_OPS = ("get_fact", "update_fact", "retract_fact", "supersede_fact", "forget_event", "add_feedback",
               "add_relation", "delete_feedback")
SEARCH_KINDS = (None, ["event"], ["fact"], ["item"], ["event", "fact", "episode"], ["fact", "item"])
ENTITY_NAMES = ("Biscuit {c}", "Maya {c}", "Porto", "Acme {c}", "Kyoto")  # shared names give equal entity ids


class MemoryRules(MachineBase):
    @rule(user=st.sampled_from(USERS), op=st.sampled_from(MEMORY_OPS), rnd=st.randoms(use_true_random=True))
    def memory(self, user: User, op: str, rnd: Random) -> None:
        getattr(self, f"memory_{op}")(user, rnd)

    def memory_add_events(self, user: User, rnd: Random) -> None:
        events = [
            Event(speaker=user.label, text=self.said(rnd, user), time=rnd.choice(TIMES),
                  thread_id=rnd.choice(["default", "t2"]))
            for _ in range(rnd.randint(1, 3))
        ]
        self.call("memory", "add_events", user, lambda: self.world.memory.add_events(user.scope, events), events)

    def memory_add_fact(self, user: User, rnd: Random) -> None:
        fact = self.fact(rnd, user, valid_from=rnd.choice([None, *TIMES]))
        self.call("memory", "add_fact", user, lambda: self.world.memory.add_fact(user.scope, fact), fact)

    def memory_supersede_fact(self, user: User, rnd: Random) -> None:
        old = self.draw_own(rnd, user, "fact", status="active")
        if old is None:
            return self.memory_add_fact(user, rnd)
        new = self.fact(rnd, user)  # valid from now: never before the old one began
        self.call("memory", "supersede_fact", user, lambda: self.world.memory.supersede_fact(user.scope, old, new), old, new)

    def memory_retract_fact(self, user: User, rnd: Random) -> None:
        fact_id = self.draw_own(rnd, user, "fact", status="active")
        expect = "ok" if fact_id else "refuse"  # none active: an id the user never had is refused
        fact_id = fact_id or self.fresh("fct", user)
        self.call("memory", "retract_fact", user, lambda: self.world.memory.retract_fact(user.scope, fact_id), fact_id, expect=expect)

    def memory_update_fact(self, user: User, rnd: Random) -> None:
        fact_id = self.draw_own(rnd, user, "fact")
        if fact_id is None:
            return self.memory_add_fact(user, rnd)
        text = rnd.choice(FACTS)[0].format(c=user.canary)
        self.call("memory", "update_fact", user, lambda: self.world.memory.update_fact(user.scope, fact_id, text=text), fact_id, text)

    def memory_upsert_entity(self, user: User, rnd: Random) -> None:
        name = rnd.choice(ENTITY_NAMES).format(c=user.canary)
        entity = Entity(name=name, entity_type=rnd.choice(["person", "place", "thing"]),
                        sources=self.ids(user, "event")[:1])
        self.call("memory", "upsert_entity", user, lambda: self.world.memory.upsert_entity(user.scope, entity), entity)

    def memory_add_relation(self, user: User, rnd: Random) -> None:
        entities = self.ids(user, "entity")
        if len(entities) < 2:
            return self.memory_upsert_entity(user, rnd)
        ends = rnd.sample(entities, 2)
        relation = Relation(id=self.fresh("rel", user), subject_id=ends[0], predicate="knows", object_id=ends[1])
        self.call("memory", "add_relation", user, lambda: self.world.memory.add_relation(user.scope, relation), relation)

    def memory_add_feedback(self, user: User, rnd: Random) -> None:
        event_id = self.draw_own(rnd, user, "event")
        if event_id is None:
            return self.memory_add_events(user, rnd)
        feedback = Feedback(
            id=self.fresh("fbk", user), feedback_kind="thumbs", query=f"a question {user.canary}",
            response=f"an answer {user.canary}", rating=rnd.choice(["up", "down"]),
            sources=[event_id], memory_ids=self.ids(user, "fact")[:2],
        )
        self.call("memory", "add_feedback", user, lambda: self.world.memory.add_feedback(user.scope, feedback), feedback)

    def memory_search(self, user: User, rnd: Random) -> None:
        query = rnd.choice(QUERIES)
        kinds = rnd.choice(SEARCH_KINDS)
        as_of = rnd.choice([None, None, *TIMES])
        k = rnd.randint(1, 20)
        self.call("memory", "search", user, lambda: self.world.memory.search(user.scope, query, kinds=kinds, k=k, as_of=as_of), query)

    def memory_profile(self, user: User, rnd: Random) -> None:
        self.call("memory", "profile", user, lambda: self.world.memory.profile(user.scope))

    def memory_export(self, user: User, rnd: Random) -> None:
        self.call("memory", "export", user, lambda: self.world.memory.export(user.scope))

    def memory_graph(self, user: User, rnd: Random) -> None:
        self.call("memory", "graph", user, lambda: self.world.memory.graph(user.scope))

    def memory_forget_event(self, user: User, rnd: Random) -> None:
        event_id = self.draw_own(rnd, user, "event")
        expect = "ok" if event_id else "refuse"
        event_id = event_id or self.fresh("evt", user)
        self.call("memory", "forget_event", user, lambda: self.world.memory.forget_event(user.scope, event_id), event_id, expect=expect)

    def memory_forget_user(self, user: User, rnd: Random) -> None:
        self.call("memory", "forget_user", user, lambda: self.world.memory.forget_user(user.scope))

    def memory_foreign(self, user: User, rnd: Random) -> None:
        """A call for `user` that names another user's record id: refused, nothing changes."""
        op = rnd.choice(FOREIGN_OPS)
        kind = {"forget_event": "event", "add_feedback": "event", "add_relation": "entity", "delete_feedback": "feedback"}.get(op, "fact")
        other, their = self.draw_foreign(rnd, user, kind)
        memory, scope = self.world.memory, user.scope
        calls = {
            "get_fact": lambda: memory.get_fact(scope, their),
            "update_fact": lambda: memory.update_fact(scope, their, text=f"overwritten by {user.canary}"),
            "retract_fact": lambda: memory.retract_fact(scope, their),
            "supersede_fact": lambda: memory.supersede_fact(scope, their, self.fact(rnd, user)),
            "forget_event": lambda: memory.forget_event(scope, their),
            "add_feedback": lambda: memory.add_feedback(scope, Feedback(
                id=self.fresh("fbk", user), feedback_kind="thumbs", query="q", response="r", rating="up", sources=[their])),
            "add_relation": lambda: memory.add_relation(scope, Relation(
                id=self.fresh("rel", user), subject_id=their, predicate="knows", object_id=their)),
            "delete_feedback": lambda: memory.delete_feedback(scope, their),
        }
        self.call("memory", f"{op}(foreign)", user, calls[op], their, other.handle, expect="refuse")

"""The LangGraph store surface: `PersonaStore` over the same memory, namespaces
`(tenant, user, ...)`, refusing prefixes that name no user (`allow_unscoped=False`).

A store call names its scope by its namespace, so "another user's" here means: another
user's record ids under this user's namespace (found nowhere, deleted nowhere), facts resting
on another user's events (refused), and prefixes or wildcards that would span users (refused).
"""

from __future__ import annotations

from random import Random

from hypothesis import strategies as st
from hypothesis.stateful import rule

from .isolation_base import MachineBase, weighted
from .isolation_world import QUERIES, STORE_KEYS, STORE_SPACES, TIMES, USERS, User

STORE_OPS = weighted(
    get=1, put=3, search=2, delete=1, list_namespaces=1, put_event=2, put_fact=1, list_records=1, delete_record=1, foreign=4,
)
FOREIGN_OPS = ("get_fact", "get_event", "delete_event", "put_fact_on_their_event", "search_tenant", "search_all",
               "list_wildcard")
COLLECTIONS = ("facts", "events", "episodes", "profile")


def base(user: User) -> tuple[str, str]:
    return (user.scope.tenant, user.label)


class StoreRules(MachineBase):
    @rule(user=st.sampled_from(USERS), op=st.sampled_from(STORE_OPS), rnd=st.randoms(use_true_random=True))
    def store(self, user: User, op: str, rnd: Random) -> None:
        getattr(self, f"store_{op}")(user, rnd)

    def space(self, user: User, rnd: Random) -> tuple[str, ...]:
        return (*base(user), rnd.choice(STORE_SPACES))

    def store_put(self, user: User, rnd: Random) -> None:
        space, key = self.space(user, rnd), rnd.choice(STORE_KEYS)
        value = {"text": self.said(rnd, user), "n": rnd.randint(0, 3)}
        index = rnd.choice([None, False, ["text"]])
        self.call("store", "put", user, lambda: self.world.store.put(space, key, value, index=index), space, key, value)

    def store_get(self, user: User, rnd: Random) -> None:
        space, key = self.space(user, rnd), rnd.choice(STORE_KEYS)
        self.call("store", "get", user, lambda: self.world.store.get(space, key), space, key)

    def store_search(self, user: User, rnd: Random) -> None:
        prefix = rnd.choice([base(user), self.space(user, rnd)])
        query = rnd.choice([None, *QUERIES])
        filter = rnd.choice([None, {"n": 1}])
        limit = rnd.randint(1, 10)
        self.call("store", "search", user, lambda: self.world.store.search(prefix, query=query, filter=filter, limit=limit), prefix, query)

    def store_delete(self, user: User, rnd: Random) -> None:
        space, key = self.space(user, rnd), rnd.choice(STORE_KEYS)
        self.call("store", "delete", user, lambda: self.world.store.delete(space, key), space, key)

    def store_list_namespaces(self, user: User, rnd: Random) -> None:
        self.call("store", "list_namespaces", user, lambda: self.world.store.list_namespaces(prefix=base(user), limit=100), base(user))

    def store_put_event(self, user: User, rnd: Random) -> None:
        value = {"speaker": user.label, "text": self.said(rnd, user), "time": rnd.choice(TIMES).isoformat()}
        event_id, namespace = self.fresh("evt", user), (*base(user), "events")
        self.call("store", "put_event", user, lambda: self.world.store.put(namespace, event_id, value), event_id, value)

    def store_put_fact(self, user: User, rnd: Random) -> None:
        fact = self.fact(rnd, user)
        value = fact.model_dump(mode="json", exclude={"id", "kind", "created_at"})
        namespace = (*base(user), "facts")
        self.call("store", "put_fact", user, lambda: self.world.store.put(namespace, fact.id, value), fact.id, value)

    def store_list_records(self, user: User, rnd: Random) -> None:
        namespace = (*base(user), rnd.choice(COLLECTIONS))
        self.call("store", "list_records", user, lambda: self.world.store.search(namespace, limit=50), namespace)

    def store_delete_record(self, user: User, rnd: Random) -> None:
        collection, kind = rnd.choice([("facts", "fact"), ("events", "event")])
        record_id = self.draw_own(rnd, user, kind) or self.fresh(kind[:3], user)  # deleting nothing is a no-op
        namespace = (*base(user), collection)
        self.call("store", "delete_record", user, lambda: self.world.store.delete(namespace, record_id), namespace, record_id)

    def store_foreign(self, user: User, rnd: Random) -> None:
        """Store calls from `user` that reach for other users: refused, or find and change nothing."""
        op = rnd.choice(FOREIGN_OPS)
        store, name = self.world.store, f"{op}(foreign)"
        other, their = self.draw_foreign(rnd, user, "fact" if op == "get_fact" else "event")
        if op in ("get_fact", "get_event"):
            namespace = (*base(user), "facts" if op == "get_fact" else "events")
            self.call("store", name, user, lambda: store.get(namespace, their), namespace, their, expect="nothing")
        elif op == "delete_event":
            namespace = (*base(user), "events")
            self.call("store", name, user, lambda: store.delete(namespace, their), namespace, their, expect="nothing")
        elif op == "put_fact_on_their_event":
            key, value, namespace = self.fresh("fct", user), {"text": f"stolen {user.canary}", "sources": [their]}, (*base(user), "facts")
            self.call("store", name, user, lambda: store.put(namespace, key, value), key, value, expect="refuse")
        elif op == "search_tenant":  # a prefix that names no user
            tenant = (other.scope.tenant,)
            self.call("store", name, user, lambda: store.search(tenant, query="code word"), tenant, expect="refuse")
        elif op == "search_all":
            self.call("store", name, user, lambda: store.search(()), expect="refuse")
        else:
            prefix = (other.scope.tenant, "*")
            self.call("store", name, user, lambda: store.list_namespaces(prefix=prefix), prefix, expect="refuse")

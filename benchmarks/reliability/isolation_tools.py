"""The memory tools surface: `memory_tools(memory, feedback)` called as ToolNode calls them
(a tool call in, a ToolMessage out) for a run that names the user, by config or by LangGraph
Server's authentication; hostile arguments name other users' ids, names and user fields."""

from __future__ import annotations

from random import Random
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule

from .isolation_audit import Expect
from .isolation_base import MachineBase, weighted
from .isolation_world import FACTS, QUERIES, TIMES, USERS, User

TOOL_OPS = weighted(
    get_profile=1, search_memory=2, remember=3, forget=1, query_graph=1, explain=1, record_feedback=1, foreign=4,
)
FOREIGN_OPS = ("explain", "forget_event", "forget_fact", "replace", "feedback", "extra_user_arg", "graph_of_their_entity",
               "conflicting_run", "profile_with_their_id")


def run_config(user: User, authenticated: bool = False) -> dict[str, Any]:
    """How a run names its user: plain configurable fields, or LangGraph Server's auth."""
    if authenticated:
        return {"configurable": {"langgraph_auth_user_id": user.label, "langgraph_auth_user": {"tenant": user.scope.tenant}}}
    return {"configurable": {"user_id": user.label, "tenant": user.scope.tenant}}


class ToolRules(MachineBase):
    authenticated = False  # this step's run names its user through LangGraph Server's auth

    @rule(user=st.sampled_from(USERS), op=st.sampled_from(TOOL_OPS), authenticated=st.booleans(), rnd=st.randoms(use_true_random=True))
    def tools(self, user: User, op: str, authenticated: bool, rnd: Random) -> None:
        self.authenticated = authenticated
        getattr(self, f"tools_{op}")(user, rnd)

    def tool(self, user: User, name: str, args: dict[str, Any], *, config: dict[str, Any] | None = None,
             expect: Expect = "ok", op: str | None = None) -> None:
        tool = self.world.tools[name]
        call = {"name": name, "args": args, "id": f"call_{next(self.serial)}", "type": "tool_call"}
        config = config or run_config(user, self.authenticated)
        self.call("tools", op or name, user, lambda: tool.invoke(call, config=config), args, config, expect=expect)

    def tools_search_memory(self, user: User, rnd: Random) -> None:
        args: dict[str, Any] = {"query": rnd.choice(QUERIES), "k": rnd.randint(1, 20)}
        if rnd.random() < 0.5:
            args["as_of"] = rnd.choice(TIMES).date().isoformat()
        self.tool(user, "search_memory", args)

    def tools_remember(self, user: User, rnd: Random) -> None:
        _, kind, predicate, obj = rnd.choice(FACTS)
        args = {"text": self.said(rnd, user), "kind": kind}
        if predicate:
            args |= {"predicate": predicate, "object": obj.format(c=user.canary)}
        if rnd.random() < 0.5 and (replaced := self.draw_own(rnd, user, "fact", status="active")):
            args["replaces"] = replaced
        self.tool(user, "remember", args)

    def tools_forget(self, user: User, rnd: Random) -> None:
        self._by_id(user, rnd, "forget", ["event", "fact"])

    def tools_explain(self, user: User, rnd: Random) -> None:
        self._by_id(user, rnd, "explain", ["fact", "episode"])

    def _by_id(self, user: User, rnd: Random, name: str, kinds: list[str]) -> None:
        kind = rnd.choice(kinds)
        own = self.draw_own(rnd, user, kind)
        self.tool(user, name, {"memory_id": own or self.fresh(kind[:3], user)}, expect="ok" if own else "refuse")

    def tools_get_profile(self, user: User, rnd: Random) -> None:
        self.tool(user, "get_profile", {})

    def tools_query_graph(self, user: User, rnd: Random) -> None:
        names = sorted(v["name"] for (k, _), v in self.audit.state.get(user.scope, {}).items() if k == "entity")
        entity = rnd.choice(names) if names else f"Nobody {user.canary}"
        self.tool(user, "query_graph", {"entity": entity, "hops": rnd.randint(1, 3)},
                  expect="ok" if names else "refuse")

    def tools_record_feedback(self, user: User, rnd: Random) -> None:
        reply = self.draw_own(rnd, user, "event", role="assistant")
        args = {"reply_id": reply or self.fresh("evt", user), "rating": rnd.choice(["up", "down"])}
        self.tool(user, "record_feedback", args, expect="ok" if reply else "refuse")

    def tools_foreign(self, user: User, rnd: Random) -> None:
        """Hostile arguments (another user's ids, names, user fields) in a run for `user`."""
        op = rnd.choice(FOREIGN_OPS)
        other, their = self.draw_foreign(rnd, user, "event" if op in ("forget_event", "feedback") else "fact")
        name = f"{op}(foreign)"
        if op == "explain":
            self.tool(user, "explain", {"memory_id": their}, expect="refuse", op=name)
        elif op in ("forget_event", "forget_fact"):
            self.tool(user, "forget", {"memory_id": their}, expect="refuse", op=name)
        elif op == "replace":
            self.tool(user, "remember", {"text": f"mine now {user.canary}", "replaces": their}, expect="refuse", op=name)
        elif op == "feedback":
            self.tool(user, "record_feedback", {"reply_id": their, "rating": "down"}, expect="refuse", op=name)
        elif op == "extra_user_arg":
            args = {"query": "code word", "user_id": other.label, "tenant": other.scope.tenant}
            self.tool(user, "search_memory", args, expect="refuse", op=name)
        elif op == "graph_of_their_entity":
            self.tool(user, "query_graph", {"entity": f"Biscuit {other.canary}"}, expect="refuse", op=name)
        elif op == "conflicting_run":  # authenticated as `user`, asking for the other: refused
            config = run_config(user, authenticated=True)
            config["configurable"] |= {"user_id": other.label, "tenant": other.scope.tenant}
            self.tool(user, "get_profile", {}, config=config, expect="refuse", op=name)
        else:  # a tool without arguments drops the key: the run's user's profile, nobody else's
            self.tool(user, "get_profile", {"user_id": other.label}, op=name)

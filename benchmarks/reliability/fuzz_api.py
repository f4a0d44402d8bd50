"""Fuzzing the public Python API: `Memory`, `PersonaStore` and the memory tools, with junk
arguments. The errors a caller may get (the list this suite holds the API to):

- `Memory`: `PersonagraphError` subclasses only (`InvalidScopeError`, `InvalidRecordError`,
  `RecordNotFoundError`); these are also `ValueError`/`KeyError`, as documented in memory/errors.py.
- `PersonaStore`: the above, and LangGraph's `InvalidNamespaceError` (its store contract).
- the tools (called as a model calls them): pydantic's `ValidationError` for arguments outside
  the tool's schema, `InvalidScopeError` for a run naming no valid user; mistakes a model can fix
  come back as an error `ToolMessage`, not an exception.

Anything else (a TypeError, a RecursionError, a sqlite error...) is an untyped crash. A refused
call must leave the fuzzed user's data exactly as it was (`half_written` counts those that did not).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langgraph.store.base import InvalidNamespaceError
from personagraph.memory import Memory, PersonaStore, Scope
from personagraph.memory.errors import PersonagraphError
from personagraph.tools import memory_tools
from pydantic import ValidationError

from .fuzz_common import FUZZED, T0, Tally, snapshot
from .fuzz_inputs import junk, mutate_dict, short, strings

MEMORY_ERRORS: tuple[type[BaseException], ...] = (PersonagraphError,)
STORE_ERRORS = (PersonagraphError, InvalidNamespaceError)
TOOL_ERRORS = (PersonagraphError, ValidationError)
VALID_EVENT = {"speaker": "fuzzed", "text": "a message", "time": T0.isoformat(), "thread_id": "fuzz", "role": "user"}
VALID_FACT = {"text": "fuzzed likes tea", "fact_kind": "preference", "subject": "fuzzed", "predicate": "likes", "object": "tea"}


@dataclass
class Case:
    call: str  # what is called, for the report
    run: Callable[[], Any]
    args: Any  # the junk, for the repro
    expected: tuple[type[BaseException], ...]


def _memory_case(rng: random.Random, memory: Memory, targets: list[str]) -> Case:
    scope = FUZZED
    if rng.random() < 0.1:  # a bad scope: junk labels, or no Scope at all
        bad = rng.choice((lambda: Scope.model_construct(tenant="default", user_id=strings(rng)), lambda: junk(rng)))
        scope = bad()
    fact_id = rng.choice(targets) if rng.random() < 0.5 else junk(rng)
    op = rng.randrange(9)
    if op == 0:
        event = mutate_dict(rng, VALID_EVENT, ("caption", "metadata")) if rng.random() < 0.8 else junk(rng)
        return Case("add_event", lambda: memory.add_event(scope, event), event, MEMORY_ERRORS)
    if op == 1:  # a batch with one bad event in it: nothing of the batch may land
        batch = [VALID_EVENT | {"text": f"batch {rng.random()}"}, mutate_dict(rng, VALID_EVENT)]
        return Case("add_events", lambda: memory.add_events(scope, batch), batch, MEMORY_ERRORS)
    if op == 2:
        fact = mutate_dict(rng, VALID_FACT, ("valid_from", "valid_to", "confidence", "sources", "status"))
        return Case("add_fact", lambda: memory.add_fact(scope, fact), fact, MEMORY_ERRORS)
    if op == 3:
        changes = {rng.choice(("text", "confidence", "valid_from", "valid_to", "status", "sources", "object", "bogus")): junk(rng)}
        return Case("update_fact", lambda: memory.update_fact(scope, fact_id, **changes), (fact_id, changes), MEMORY_ERRORS)
    if op == 4:
        new = mutate_dict(rng, VALID_FACT) if rng.random() < 0.7 else junk(rng)
        return Case("supersede_fact", lambda: memory.supersede_fact(scope, fact_id, new), (fact_id, new), MEMORY_ERRORS)
    if op == 5:
        bad_id = junk(rng)  # never a real id: a valid retraction is not a fuzz case
        return Case("retract_fact", lambda: memory.retract_fact(scope, bad_id), bad_id, MEMORY_ERRORS)
    if op == 6:
        options = {name: junk(rng) for name in rng.sample(["k", "kinds", "as_of", "token_budget"], rng.randint(1, 4))}
        query = strings(rng) if rng.random() < 0.5 else junk(rng)
        return Case("search", lambda: memory.search(scope, query, **options), (query, options), MEMORY_ERRORS)
    if op == 7:
        bad_id = junk(rng)
        return Case("forget_event", lambda: memory.forget_event(scope, bad_id), bad_id, MEMORY_ERRORS)
    label = strings(rng)
    return Case("Scope", lambda: Scope(tenant=rng.choice(("default", label)), user_id=label), label, MEMORY_ERRORS)


def _store_case(rng: random.Random, store: PersonaStore) -> Case:
    # Namespaces are tuples (the store's type); their labels are junk.
    namespace = ("fuzzed", "fuzz") if rng.random() < 0.4 else rng.choice(((junk(rng),), (strings(rng),), ("fuzzed", junk(rng)), ()))
    key = f"k{rng.randrange(5)}" if rng.random() < 0.5 else junk(rng)
    op = rng.randrange(4)
    if op == 0:
        value = junk(rng) if rng.random() < 0.6 else {"text": strings(rng), "n": junk(rng)}
        extra = {name: junk(rng) for name in rng.sample(["index", "ttl"], rng.randint(0, 2))}
        return Case("PersonaStore.put", lambda: store.put(namespace, key, value, **extra), (namespace, key, value, extra), STORE_ERRORS)
    if op == 1:
        return Case("PersonaStore.get", lambda: store.get(namespace, key), (namespace, key), STORE_ERRORS)
    if op == 2:
        options = {name: junk(rng) for name in rng.sample(["query", "filter", "limit", "offset"], rng.randint(1, 4))}
        return Case("PersonaStore.search", lambda: store.search(namespace, **options), (namespace, options), STORE_ERRORS)
    options = {name: junk(rng) for name in rng.sample(["max_depth", "limit", "offset"], rng.randint(1, 3))}
    options |= {name: (strings(rng), junk(rng)) for name in rng.sample(["prefix", "suffix"], rng.randint(0, 2))}
    return Case("PersonaStore.list_namespaces", lambda: store.list_namespaces(**options), options, STORE_ERRORS)


def _tool_case(rng: random.Random, tools: dict[str, Any], targets: list[str]) -> Case:
    name = rng.choice(sorted(tools))
    fields = {
        "search_memory": {"query": "tea", "k": 3, "kinds": ["fact"], "as_of": "2025-01-01"},
        "remember": {"text": "fuzzed likes green tea", "kind": "preference", "replaces": rng.choice(targets)},
        "forget": {"memory_id": "evt_not_there"},
        "get_profile": {},
        "query_graph": {"entity": "fuzzed", "hops": 2, "as_of": "2025-01-01"},
        "explain": {"memory_id": rng.choice(targets)},
    }[name]
    # A tool call's args are a JSON object (a dict) by LangChain's contract; its values are junk.
    args = mutate_dict(rng, fields, ("user_id", "tenant", "scope"), max_depth=500)
    user = "fuzzed" if rng.random() < 0.85 else junk(rng)
    call = {"name": name, "args": args, "id": "call_fuzz", "type": "tool_call"}
    run = lambda: tools[name].invoke(call, config={"configurable": {"user_id": user}})
    return Case(f"tool {name}", run, (args, user), TOOL_ERRORS)


def fuzz_api(memory: Memory, targets: list[str], cases: int, rng: random.Random) -> Tally:
    """`cases` junk calls spread over the memory API, the store and the tools."""
    tally = Tally("api")
    store = PersonaStore(memory)
    tools = {tool.name: tool for tool in memory_tools(memory)}
    try:
        for n in range(cases):
            which = n % 3
            case = _memory_case(rng, memory, targets) if which == 0 else _store_case(rng, store) if which == 1 else _tool_case(rng, tools, targets)
            before = snapshot(memory, FUZZED)
            try:
                case.run()
            except case.expected as exc:
                tally.typed_error(exc)
                if snapshot(memory, FUZZED) != before:
                    tally.half_written += 1
                    tally.crashes.append({"case": n, "call": case.call, "repro": short(case.args, 600), "error": "refused but wrote"})
            except Exception as exc:  # noqa: BLE001 - the point: anything outside the expected set is a finding
                tally.crash(n, case.call, case.args, exc)
            else:
                tally.ok()
    finally:
        store.close()
    return tally

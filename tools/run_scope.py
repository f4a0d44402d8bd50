"""Whose memory a tool call acts on: read from the run, never from the model's arguments.

A run names its user in one of three places, from most to least trusted:

1. `configurable["langgraph_auth_user_id"]`: set by LangGraph Server from the request's
   authentication (clients cannot set it). The tenant then comes from the authenticated
   user's `tenant` field, if it has one. Identities that are not valid scope labels (emails,
   "user:42") are mapped with `label_for`, as PersonaStore maps namespace labels.
2. The graph's runtime context (`graph.invoke(..., context=...)` with a `context_schema`,
   e.g. langchain's `create_agent`): its `user_id` and `tenant` fields or keys.
3. `configurable["user_id"]` and `configurable["tenant"]`.

Every place that names a user or tenant must name the same one: on LangGraph Server the
context and `configurable` come from the client, so a client authenticated as alice who
asks for bob gets an error, not bob's memory. A run that names no user is an error too,
never a default user.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import get_runtime
from personagraph.memory.errors import InvalidRecordError, InvalidScopeError
from personagraph.memory.scope import Scope, label_for

AUTH_USER_ID = "langgraph_auth_user_id"
AUTH_USER = "langgraph_auth_user"


class ScopeNotConfiguredError(InvalidScopeError, InvalidRecordError):
    """The run names no user. (Also an InvalidRecordError: what the feedback tool raised
    for this before, so callers that caught that still do.)"""


class ScopeConflictError(InvalidScopeError):
    """Two places in the run name different users or tenants."""


def scope_from_run(config: RunnableConfig | None = None, default_tenant: str = "default") -> Scope:
    """The scope a tool call acts for, from the run's config and the graph's runtime context;
    `default_tenant` (the deployment's, e.g. `PERSONAGRAPH_TENANT`) when the run names none."""
    configurable: Mapping[str, Any] = (config or {}).get("configurable") or {}
    context = _graph_context()
    claimed = {
        "runtime context": (_field(context, "user_id"), _field(context, "tenant")),
        "configurable": (_field(configurable, "user_id"), _field(configurable, "tenant")),
    }
    if identity := _field(configurable, AUTH_USER_ID):
        tenant = _field(configurable.get(AUTH_USER), "tenant") or default_tenant
        scope = _authenticated(str(identity), tenant)
        _check_agree(scope, claimed, AUTH_USER_ID)
        return scope
    users = {where: user for where, (user, _) in claimed.items() if user is not None}
    if not users:
        raise ScopeNotConfiguredError(
            "the run names no user: pass context with a user_id (create_agent(..., context_schema=...)) "
            "or config={'configurable': {'user_id': ...}}"
        )
    where, user = next(iter(users.items()))
    tenants = [tenant for _, tenant in claimed.values() if tenant is not None]
    scope = Scope(tenant=tenants[0] if tenants else default_tenant, user_id=user)
    _check_agree(scope, claimed, where)
    return scope


def _authenticated(identity: str, tenant: str) -> Scope:
    return Scope(tenant=tenant, user_id=label_for(identity))


def _check_agree(scope: Scope, claimed: dict[str, tuple[Any, Any]], chosen: str) -> None:
    for where, (user, tenant) in claimed.items():
        if user is not None and label_for(str(user)) != scope.user_id:
            raise ScopeConflictError(f"{where} names user {user!r} but {chosen} names {scope.user_id!r}")
        if tenant is not None and tenant != scope.tenant:
            raise ScopeConflictError(f"{where} names tenant {tenant!r} but the run's scope is in {scope.tenant!r}")


def _graph_context() -> Any:
    """The runtime context of the LangGraph run this call is made in, if any."""
    try:
        runtime = get_runtime()
    except RuntimeError:  # not inside a runnable at all
        return None
    return runtime.context if runtime is not None else None


def _field(source: Any, name: str) -> Any:
    """A field of a dict, dataclass or model; an empty string counts as not given."""
    if source is None:
        return None
    value = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
    return None if value == "" else value

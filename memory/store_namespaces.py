"""How a LangGraph namespace names a personagraph scope, and which namespaces are records.

`NamespaceLayout(user_at=0)` reads the user from the namespace's first label:
`("alice", "notes")` lives in alice's scope. LangMem's habit `("memories", "{user_id}")` is
`user_at=1`. A label that is not a valid scope label (an e-mail, a platform id) is hashed
into one, so raw ids never become labels. Directly below the user label, a few collection
names are personagraph's own records rather than free items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from langgraph.store.base import InvalidNamespaceError

from .errors import InvalidScopeError
from .scope import Scope, label_for, validate_label

NativeCollection = Literal["facts", "events", "episodes", "profile"]
NATIVE_COLLECTIONS: tuple[NativeCollection, ...] = ("facts", "events", "episodes", "profile")


@dataclass(frozen=True)
class NamespaceLayout:
    """Which labels of a namespace name the user (and optionally the tenant)."""

    user_at: int = 0
    tenant_at: int | None = None
    tenant: str = "default"

    def __post_init__(self) -> None:
        if self.user_at < 0 or (self.tenant_at is not None and not 0 <= self.tenant_at < self.user_at):
            raise InvalidScopeError("user_at must be >= 0 and tenant_at, when set, must come before it")
        validate_label(self.tenant, "tenant")

    @property
    def scope_depth(self) -> int:
        """How many labels a namespace prefix needs before it names one scope."""
        return self.user_at + 1

    def pins_scope(self, prefix: tuple[str, ...]) -> bool:
        return len(prefix) >= self.scope_depth

    def scope_of(self, namespace: tuple[str, ...]) -> Scope:
        if not self.pins_scope(namespace):
            raise InvalidNamespaceError(
                f"namespace {namespace} names no user: label {self.user_at} is the user (NamespaceLayout.user_at)"
            )
        tenant = self.tenant if self.tenant_at is None else label_for(namespace[self.tenant_at])
        return Scope(tenant=tenant, user_id=label_for(namespace[self.user_at]))

    def native(self, namespace: tuple[str, ...]) -> NativeCollection | None:
        """The record collection a namespace addresses, if it is one of personagraph's own."""
        if len(namespace) == self.scope_depth + 1 and namespace[-1] in NATIVE_COLLECTIONS:
            return namespace[-1]  # type: ignore[return-value]
        return None


"""Scope: the (tenant, user) pair every record belongs to.

Labels are validated because they become namespace labels in the record store and payload
values in the vector index: a dot, a slash or an empty string there would let one user's
namespace prefix match another's.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from .errors import InvalidScopeError
from .models import is_unicode

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,127}$")


def validate_label(value: str, field: str = "label") -> str:
    """Return `value` if it is a valid scope label, else raise InvalidScopeError."""
    if not isinstance(value, str) or not _LABEL.fullmatch(value):
        raise InvalidScopeError(
            f"invalid {field} {value!r}: use 1-128 characters from A-Z a-z 0-9 _ -, "
            "starting with a letter or digit (map platform ids with Scope.for_platform)"
        )
    return value


class Scope(BaseModel):
    """Whose memory a call reads or writes. Every memory call takes one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant: str = "default"
    user_id: str

    def __init__(self, **data: Any) -> None:
        # Checked here too: pydantic would wrap the validator's error in a ValidationError.
        if "user_id" not in data:
            raise InvalidScopeError("a scope needs a user_id")
        unknown = set(data) - {"tenant", "user_id"}
        if unknown:
            raise InvalidScopeError(f"unknown scope fields {sorted(unknown)}: a scope is (tenant, user_id)")
        for field in ("tenant", "user_id"):
            if field in data:
                validate_label(data[field], field)
        super().__init__(**data)

    @field_validator("tenant", "user_id")
    @classmethod
    def _check_label(cls, value: str, info) -> str:
        return validate_label(value, info.field_name)

    @property
    def key(self) -> str:
        """A single string naming the scope (used as the tenant key in the vector index)."""
        return f"{self.tenant}/{self.user_id}"

    @property
    def log_name(self) -> str:
        """How logs name this scope: a short hash, so an operator's logs hold no user id that
        outlives the user's forget, yet one user's lines can still be told apart."""
        return "u-" + hashlib.sha256(self.key.encode()).hexdigest()[:12]

    @classmethod
    def for_platform(cls, platform: str, *ids: str, tenant: str = "default") -> Scope:
        """Map raw platform ids (Slack team + user, Discord user...) to a valid, stable label.

        Raw ids are never used as labels: they may hold characters a label forbids, and a
        readable prefix plus a hash keeps labels short and collision-free.
        """
        if not ids or any(not isinstance(i, str) or not i for i in (platform, *ids)):
            raise InvalidScopeError("a platform and its ids are non-empty strings")
        if any(not i.isascii() and not is_unicode(i) for i in (platform, *ids)):
            raise InvalidScopeError("platform ids must be valid Unicode (no lone surrogates)")
        digest = hashlib.sha256("\x1f".join((platform, *ids)).encode()).hexdigest()[:24]
        prefix = re.sub(r"[^A-Za-z0-9]", "", platform)[:16] or "p"
        return cls(tenant=tenant, user_id=f"{prefix}-{digest}")


def label_for(raw: str) -> str:
    """A scope label for an identity from elsewhere (a store namespace label, an authenticated
    user): itself when it is a valid label, else a stable hashed one. One mapping everywhere,
    so one identity always reaches the same scope."""
    try:
        return validate_label(raw)
    except InvalidScopeError:
        return Scope.for_platform("id", raw).user_id

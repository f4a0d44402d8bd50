"""Secrets never reach a store: passwords, API keys, card and account numbers are replaced by a
marker before a record is written, indexed, quoted or trained on.

Why here: every write of user text goes through `Memory`, so one redaction step in front of it
covers the records, the index, the graph, feedback, store items and the adapters trained on
them. The respond and chat entry points redact the incoming message too, so the graph state a
checkpointer keeps never holds the secret either.

Detection is deliberately narrow, so ordinary text survives:
- card numbers: 13-19 digits (spaces or dashes allowed) that pass the Luhn check;
- account numbers: IBANs that pass their mod-97 check, and digit runs a label calls an account,
  routing, sort code or social security number;
- API keys: the fixed shapes of well-known providers (OpenAI, Anthropic, AWS, GitHub, GitLab,
  Slack, Google, Stripe, Hugging Face), JWTs, bearer tokens, PEM private keys, and any value a
  label calls a key, token or secret;
- passwords: the value after "password", "passcode", "passphrase", "pin" and the like.
The marker names the kind (`[redacted password]`) so the answer can still say "you gave me a
password, I did not keep it". Redaction is idempotent: a marker is never redacted again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

SecretKind = Literal["password", "api_key", "card_number", "account_number"]
SECRET_KINDS: tuple[SecretKind, ...] = ("password", "api_key", "card_number", "account_number")
MARKER = "[redacted {kind}]"
_MARKER_TEXT = re.compile(r"\[redacted [a-z_]+\]")

# A labelled value: "password: hunter2", "my PIN is 4821", "api_key=abc...". The value is one
# run of non-space characters, optionally quoted; a marker is not a value. After a bare space
# ("my password hunter2") the value must hold a digit or a symbol, so "I forgot my password
# yesterday" keeps its last word.
_SAID = r"\s*(?:[:=]|\bis\b|\bwas\b|\bwill be\b|\bare\b)\s*(?:now\s+)?"
_VALUE = r"(?P<value>(?!\[redacted )[\"'`]?[^\s\"'`]{3,200}[\"'`]?)"
_STRONG_VALUE = r"(?P<value>(?!\[redacted )(?=\S*[\d!@#$%^&*_+=?~-])[^\s\"'`]{3,200})"


def _labelled(labels: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The label followed by "is"/":"/"=" and any value, and by a bare space and a strong value."""
    head = rf"(?i)\b(?:{labels})(?:'s)?"
    return re.compile(head + _SAID + _VALUE), re.compile(head + r"\s+(?:(?:to|now|set to)\s+)?" + _STRONG_VALUE)


_PASSWORD = _labelled(r"pass(?:word|wd|code|phrase)|pwd|pw|pin(?: code| number)?|login code|security code|cvv|cvc")
_LABELLED_KEY = _labelled(r"(?:api|access|secret|private|auth)[ _-]?(?:key|token)|token|secret|client[ _-]?secret")
_KEY_SHAPES = re.compile(
    r"\b(?:"
    r"sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{20,}"  # OpenAI, Anthropic
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}"  # GitHub
    r"|glpat-[A-Za-z0-9_\-]{20,}"  # GitLab
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_\-]{35}"  # Google
    r"|(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}"  # Stripe
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"  # JWT
    r")"
)
_BEARER = re.compile(r"(?i)\bbearer\s+(?P<value>[A-Za-z0-9_\-.=+/]{16,})")
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL)
_CARD = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?!\w)")  # never inside an id or a word
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
_ACCOUNT = re.compile(
    rf"(?i)\b(?:account|acct|a/c|routing|sort code|iban|ssn|social security)(?: number| no\.?| #|#)?(?:{_SAID}|\s+)"
    r"(?P<value>\d[\d -]{4,30}\d)"
)
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


@dataclass(frozen=True)
class _Rule:
    kind: SecretKind
    pattern: re.Pattern[str]
    accept: Callable[[str], bool] = lambda _: True
    group: str | int = 0  # the part of the match that is the secret


_RULES: tuple[_Rule, ...] = (
    _Rule("api_key", _PEM),
    _Rule("api_key", _KEY_SHAPES),
    _Rule("api_key", _BEARER, group="value"),
    *(_Rule("api_key", pattern, group="value") for pattern in _LABELLED_KEY),
    *(_Rule("password", pattern, group="value") for pattern in _PASSWORD),
    _Rule("account_number", _IBAN, _iban_valid),
    _Rule("account_number", _ACCOUNT, group="value"),
    _Rule("account_number", _SSN),
    _Rule("card_number", _CARD, lambda s: _luhn(re.sub(r"\D", "", s))),
)


class Redactor:
    """Replaces the secrets of the enabled kinds (and any extra patterns) by a marker.

    `kinds=()` with no `extra_patterns` turns redaction off. `extra_patterns` maps a name to a
    regular expression of a deployment's own secrets (an employee id, an internal host name);
    a named group `value` limits the marker to that part of the match.
    """

    def __init__(self, kinds: Iterable[str] = SECRET_KINDS, extra_patterns: dict[str, str] | None = None) -> None:
        kinds = tuple(kinds)
        unknown = sorted(set(kinds) - set(SECRET_KINDS))
        if unknown:
            raise ValueError(f"unknown secret kinds {unknown}; known: {list(SECRET_KINDS)}")
        self.kinds = kinds
        self._rules = [r for r in _RULES if r.kind in kinds]
        self._extra: list[tuple[str, re.Pattern[str]]] = []
        for name, pattern in (extra_patterns or {}).items():
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
                raise ValueError(f"a redaction pattern name is lower-case letters, digits and _: {name!r}")
            try:
                self._extra.append((name, re.compile(pattern)))
            except re.error as exc:
                raise ValueError(f"redaction pattern {name!r} is not a valid regular expression: {exc}") from exc

    @property
    def enabled(self) -> bool:
        return bool(self._rules or self._extra)

    def redact(self, text: str) -> tuple[str, list[str]]:
        """The text with every secret replaced, and the kinds found (in order, repeated)."""
        found: list[str] = []
        for rule in self._rules:
            text = _replace(rule.pattern, text, rule.kind, rule.group, rule.accept, found)
        for name, pattern in self._extra:
            text = _replace(pattern, text, name, "value" if "value" in pattern.groupindex else 0, lambda _: True, found)
        return text, found

    def text(self, text: str) -> str:
        return self.redact(text)[0] if self.enabled else text


def _replace(
    pattern: re.Pattern[str], text: str, kind: str, group: str | int,
    accept: Callable[[str], bool], found: list[str],
) -> str:
    def swap(match: re.Match[str]) -> str:
        secret = match.group(group)
        if not secret or _MARKER_TEXT.fullmatch(secret) or not accept(secret):
            return match.group(0)
        found.append(kind)
        start, end = match.start(group) - match.start(), match.end(group) - match.start()
        whole = match.group(0)
        return whole[:start] + MARKER.format(kind=kind) + whole[end:]

    return pattern.sub(swap, text)


NO_REDACTION = Redactor(kinds=())


_SECRET_KEY = re.compile(r"(?i)^(?:.*[_ -])?(?:password|passwd|pwd|passcode|pin|secret|token|api[_ -]?key|private[_ -]?key|card[_ -]?number|iban|account[_ -]?number|cvv|cvc|ssn)$")


def redact_value(redactor: Redactor, value: Any) -> Any:
    """Redact every string inside JSON-like data (a store item's value); a string under a key
    that names a secret (`password`, `api_key`, ...) is replaced whole."""
    if isinstance(value, str):
        return redactor.text(value)
    if isinstance(value, list):
        return [redact_value(redactor, v) for v in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            named = isinstance(key, str) and isinstance(item, str) and bool(_SECRET_KEY.match(key)) and item != ""
            out[key] = _named_secret(key) if named and redactor.enabled else redact_value(redactor, item)
        return out
    return value


def _named_secret(key: str) -> str:
    lowered = key.lower()
    if any(w in lowered for w in ("card", "iban", "account", "ssn")):
        return MARKER.format(kind="account_number" if "card" not in lowered else "card_number")
    if any(w in lowered for w in ("key", "token", "secret")):
        return MARKER.format(kind="api_key")
    return MARKER.format(kind="password")

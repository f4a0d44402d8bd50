"""The chat service both bots use: platform messages in, personalized replies out.

A bot hands over who spoke (`Speaker`: the platform and its ids), where (the conversation's
ids) and what; the service answers through the assistant's respond graph, which keeps the
exchange and hands it to the reflection executor. Platform ids never become labels: a person
is `Scope.for_platform(platform, *ids)` and a conversation a hashed thread label, so a Slack
`thread_ts` or a channel id never names a namespace. Reactions on an answer become feedback,
from the person who asked only. `/memory`-style commands act on the caller's scope only.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from personagraph.assistant import Assistant
from personagraph.memory import ForgetReceipt, Scope
from personagraph.memory.errors import InvalidRecordError
from personagraph.memory.models import Feedback, check_text

MAX_MESSAGE_CHARS = 4000  # longer messages are refused, not cut: nothing is silently lost


@dataclass(frozen=True)
class Speaker:
    """Who wrote a message, as the platform names them (Slack: workspace or enterprise id and
    user id; Discord: user id). `name` is how they are addressed, never an identity."""

    platform: str
    ids: tuple[str, ...]
    name: str | None = None


class BotReply(BaseModel):
    """What a bot posts, and what it needs to connect a later reaction to this answer."""

    text: str
    reply_id: str | None


class ChatService:
    """Platform-neutral: answers, reactions and memory commands, each scoped to one person."""

    def __init__(self, assistant: Assistant, *, tenant: str | None = None, max_tracked: int = 10_000) -> None:
        self.assistant = assistant
        self.tenant = tenant or assistant.settings.tenant
        self._posted: OrderedDict[tuple[str, ...], tuple[Scope, str]] = OrderedDict()  # message ref → (asker, reply id)
        self._max_tracked = max_tracked
        self._lock = threading.Lock()
        self._people: dict[Scope, threading.Lock] = {}  # one person's answers and forgetting never interleave

    # --- identities ------------------------------------------------------------------------
    def scope(self, speaker: Speaker) -> Scope:
        return Scope.for_platform(speaker.platform, *speaker.ids, tenant=self.tenant)

    @staticmethod
    def thread_label(platform: str, *conversation: str) -> str:
        """A conversation's thread label: a hash of the platform's ids (channel, thread ts…)."""
        if not conversation or any(not isinstance(part, str) or not part for part in conversation):
            raise InvalidRecordError("a conversation is named by non-empty platform ids")
        for part in conversation:
            check_text(part, "a conversation id")
        digest = hashlib.sha256("\x1f".join((platform, *conversation)).encode()).hexdigest()[:24]
        return f"thr-{digest}"

    # --- messages --------------------------------------------------------------------------
    def answer(self, speaker: Speaker, text: str, *, conversation: tuple[str, ...]) -> BotReply:
        """Answer one message in the speaker's memory; the exchange is stored and reflected."""
        text = (text or "").strip()
        if not text:
            raise InvalidRecordError("the message is empty")
        if len(text) > MAX_MESSAGE_CHARS:
            raise InvalidRecordError(f"the message is longer than {MAX_MESSAGE_CHARS} characters")
        check_text(text, "the message")  # valid Unicode: it is stored, indexed and tokenized
        if speaker.name:
            check_text(speaker.name, "the speaker's name")
        scope = self.scope(speaker)
        with self._person(scope):  # a forget waits for an answer under way, so nothing is stored after it
            reply = self.assistant.respond(
                scope, text, thread_id=self.thread_label(speaker.platform, *conversation), user_name=speaker.name,
            )
        return BotReply(text=reply.answer.strip() or "…", reply_id=reply.reply_id)

    def posted(self, speaker: Speaker, reply: BotReply, message_ref: tuple[str, ...]) -> None:
        """Remember which platform message carries which answer, for reactions to it."""
        if reply.reply_id is None:
            return
        scope = self.scope(speaker)
        with self._person(scope):
            if self.assistant.memory.records.get(scope, "event", reply.reply_id) is None:
                return  # forgotten while the answer was being posted: nothing of it is kept
            with self._lock:
                self._posted[(speaker.platform, *message_ref)] = (scope, reply.reply_id)
                self._posted.move_to_end((speaker.platform, *message_ref))
                while len(self._posted) > self._max_tracked:
                    self._posted.popitem(last=False)

    def react(self, speaker: Speaker, message_ref: tuple[str, ...], reaction: str) -> Feedback | None:
        """A reaction on one of our answers, by the person who asked, becomes their feedback.
        Anyone else's reaction, a message we did not post, or a non-thumbs emoji is ignored."""
        scope = self.scope(speaker)
        with self._person(scope):  # not while the person's forget runs: no feedback outlives it
            with self._lock:
                tracked = self._posted.get((speaker.platform, *message_ref))
            if tracked is None or tracked[0] != scope:
                return None
            return self.assistant.feedback.reaction(scope, tracked[1], _without_skin_tone(reaction))

    # --- the person's own memory -----------------------------------------------------------
    def show(self, speaker: Speaker, limit: int = 10) -> str:
        """A short text of what is known about the caller: profile fields and latest facts."""
        scope = self.scope(speaker)
        memory = self.assistant.memory
        facts = sorted(memory.facts(scope), key=lambda f: f.created_at, reverse=True)
        profile = memory.profile(scope).model_dump(exclude_defaults=True)
        lines = [f"I remember {len(facts)} facts and {memory.records.count(scope, 'event')} messages of yours."]
        for field, value in profile.items():
            if field != "style":
                lines.append(f"• {field}: {_profile_text(value)}")
        lines += [f"• {fact.text}" for fact in facts[:limit]]
        return "\n".join(lines)

    def export(self, speaker: Speaker) -> dict[str, Any]:
        return self.assistant.memory.export(self.scope(speaker))

    def forget(self, speaker: Speaker) -> ForgetReceipt:
        """Everything of the caller goes, from every store; the receipt proves it."""
        scope = self.scope(speaker)
        with self._person(scope):
            with self._lock:
                for ref in [ref for ref, (owner, _) in self._posted.items() if owner == scope]:
                    del self._posted[ref]
            receipt = self.assistant.forget_user(scope)
        with self._lock:
            self._people.pop(scope, None)
        return receipt


    def _person(self, scope: Scope) -> threading.Lock:
        with self._lock:
            return self._people.setdefault(scope, threading.Lock())


def receipt_text(receipt: ForgetReceipt) -> str:
    """A forget receipt as a bot says it: counts only, nothing personal."""
    kinds = ", ".join(f"{n} {kind}" for kind, n in receipt.records_deleted.items() if n) or "no records"
    done = (
        "Nothing of yours is left in any store." if receipt.complete
        else f"Something is left ({receipt.residue}); please try again or tell the operator."
    )
    return (
        f"Forgotten: {kinds}; {receipt.index_points_deleted} search entries, {receipt.graph_nodes_deleted} graph nodes "
        f"and {receipt.graph_edges_deleted} graph edges. {done}"
    )


def _without_skin_tone(reaction: str) -> str:
    """👍🏽 and Slack's `+1::skin-tone-3` are thumbs too."""
    name = reaction.split("::skin-tone-")[0]
    return "".join(ch for ch in name if not "\U0001f3fb" <= ch <= "\U0001f3ff")


def _profile_text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("value", ""))
    if isinstance(value, list):
        return ", ".join(_profile_text(v) for v in value)
    return str(value)

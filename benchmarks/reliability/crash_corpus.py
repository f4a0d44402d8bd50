"""The conversations the crash trials ingest and reflect: one JSON Lines file per user.

Statements are ones the deterministic extractor turns into facts, entities and relations
("My sister Jo lives in Leeds"), mixed with chit-chat the gate skips and assistant replies,
so a reflection run writes every kind of record a ChangeSet can hold. Ids and times are fixed
in the file, so every re-ingest after a crash names the same events.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from personagraph.memory import Scope

NAMES = ("Jo", "Sam", "Priya", "Mateo", "Lena", "Kofi", "Yuki", "Omar", "Ines", "Tomas", "Aisha", "Bruno")
RELATIVES = ("sister", "brother", "friend", "cousin", "colleague", "neighbour", "aunt", "uncle")
CITIES = ("Leeds", "York", "Bristol", "Lisbon", "Osaka", "Accra", "Lyon", "Porto", "Malmo", "Cork")
JOBS = ("nurse", "chef", "teacher", "engineer", "pilot", "lawyer", "baker", "architect", "dentist")
FOODS = ("peanuts", "shellfish", "kiwi", "sesame", "mushrooms", "olives", "celery", "mustard")
DRINKS = ("tea", "coffee", "cocoa", "juice", "kefir", "matcha")
HOBBIES = ("hiking in the Alps", "bouldering", "sea swimming", "baking sourdough", "birdwatching", "chess")
BANDS = ("Muse", "Portishead", "Bonobo", "Khruangbin", "Radiohead", "Daft Punk")
PLACES = ("the city hospital", "a small bakery", "the airport", "a law firm", "the high school")
CHATTER = ("haha ok", "thanks!", "see you later", "lol that's funny", "ok cool", "good night")
REPLIES = ("Noted, thanks for telling me.", "That sounds lovely!", "Good to know.", "I'll remember that.")


def _statement(rng: random.Random) -> str:
    pick = rng.choice
    templates = (
        lambda: f"I work as a {pick(JOBS)} at {pick(PLACES)}.",
        lambda: f"My {pick(RELATIVES)} {pick(NAMES)} lives in {pick(CITIES)}.",
        lambda: f"My {pick(RELATIVES)} {pick(NAMES)} works as a {pick(JOBS)}.",
        lambda: f"I'm allergic to {pick(FOODS)}.",
        lambda: f"I prefer {pick(DRINKS)} over {pick(DRINKS)} in the morning.",
        lambda: f"I live in {pick(CITIES)}.",
        lambda: f"I moved to {pick(CITIES)} last year.",
        lambda: f"I love {pick(HOBBIES)}.",
        lambda: f"I hate {pick(FOODS)}.",
        lambda: f"My favourite band is {pick(BANDS)}.",
        lambda: f"My dog {pick(NAMES)} is afraid of thunder.",
    )
    return pick(templates)()


@dataclass(frozen=True)
class UserLog:
    """One user's conversation file and how the writer cuts it into `add_events` batches."""

    scope: Scope
    path: Path
    batch_size: int
    size: int

    def event_ids(self) -> list[str]:
        return [json.loads(line)["id"] for line in self.path.read_text(encoding="utf-8").splitlines()]

    def batches(self, upto: int) -> list[list[str]]:
        """The id batches the writer hands to `add_events` for the first `upto` messages."""
        ids = self.event_ids()[:upto]
        return [ids[i:i + self.batch_size] for i in range(0, len(ids), self.batch_size)]


# Two tenants and a user id shared by both: scope keys, not user ids, must keep them apart.
SCOPES = (Scope(tenant="acme", user_id="ana"), Scope(tenant="acme", user_id="ben"), Scope(tenant="globex", user_id="ana"))
BATCH_SIZES = (4, 8, 4)  # a chunk (the messages one ingest trial adds) is a multiple of each


def write_corpus(folder: Path, messages_per_user: int, seed: int) -> list[UserLog]:
    """One file per scope of `messages_per_user` messages in two interleaved threads."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    logs = []
    for n, (scope, batch) in enumerate(zip(SCOPES, BATCH_SIZES, strict=True)):
        speaker = f"{scope.user_id.title()}{n}"
        clock = datetime(2025, 3, 1, 9, 0, tzinfo=UTC) + timedelta(days=n)
        lines = []
        for i in range(messages_per_user):
            clock += timedelta(minutes=rng.randint(1, 90))
            roll = rng.random()
            if roll < 0.6:
                who, role, text = speaker, "user", _statement(rng)
            elif roll < 0.8:
                who, role, text = speaker, "user", rng.choice(CHATTER)
            else:
                who, role, text = "assistant", "assistant", rng.choice(REPLIES)
            lines.append(json.dumps({
                "id": f"{scope.tenant}-{scope.user_id}-{i:04d}", "speaker": who, "role": role, "text": text,
                "time": clock.isoformat(), "thread_id": f"t{rng.randint(0, 1)}",
            }))
        path = folder / f"{scope.tenant}-{scope.user_id}.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        logs.append(UserLog(scope, path, batch, messages_per_user))
    return logs

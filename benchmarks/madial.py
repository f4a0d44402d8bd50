"""MADial-Bench memory recall: `python -m benchmarks.madial --data DIR [--lang en|zh] --out FILE.json`.

The memory archive is one file, but each memory belongs to one of the two users: the zh
file says so in `user-id`, the en file only in the text ("Bart danced…"). So each user gets
a scope holding their own memories (a memory naming neither user goes to both), each
memory an event dated by its `time` and in a thread of its own (archive entries are not
turns of one conversation, so none is a neighbour or context of another), and each
dialogue searches its user's scope. The query is the user's last few utterances before the
first test turn (the turn where the assistant should recall a memory), most recent last.
recall@k = |relevant ids ∩ top k| / |relevant ids|, averaged over dialogues. BM25
tokenises and stems for English, so its zh figures say little.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from rich.progress import track

from personagraph.memory import Event, Memory, MiniLMEmbedder, Scope
from personagraph.memory.ingest import iter_batches

from .common import KS, SYSTEMS, fresh_memory, mean, print_table, recall_at, write_json

USERS = {1: "Bart", 2: "Lisa"}
_UTTERANCE = re.compile(r'^\s*<([^<>]{1,40})>\s*:\s*(.*?)\s*$', re.S)


def find_file(data: Path, lang: str, kind: str) -> Path:
    """`<data>/<lang>/…-<lang>-<kind>.jsonl`, or the same directly under `data`."""
    folder = data / lang if (data / lang).is_dir() else data
    found = sorted(folder.glob(f"*{lang}-{kind}.jsonl"))
    if not found:
        raise SystemExit(f"no *{lang}-{kind}.jsonl in {folder}")
    return found[0]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def owners(memory: dict) -> list[int]:
    """The users a memory belongs to: its `user-id`, else the user its text names, else both."""
    if "user-id" in memory:
        return [int(memory["user-id"])]
    named = [uid for uid, name in USERS.items() if name in memory["event"]]
    return named if len(named) == 1 else list(USERS)


def archives(path: Path, lang: str) -> tuple[dict[int, list[Event]], int]:
    """Each user's memories as events (id `mem-<id>`), and how many went to both users."""
    per_user: dict[int, list[Event]] = defaultdict(list)
    shared = 0
    for line in read_jsonl(path):
        for mem_id, memory in line.items():
            users = owners(memory)
            shared += len(users) > 1
            event = Event(
                id=f"mem-{mem_id}", speaker=USERS[users[0]] if len(users) == 1 else "archive", role="other",
                text=memory["event"], time=datetime.fromisoformat(memory["time"]), thread_id=f"madial-{lang}-{mem_id}",
                metadata={"scene": memory.get("scene", ""), "emotion": memory.get("emotion", "")},
            )
            for uid in users:
                per_user[uid].append(event)
    return per_user, shared


def user_utterances(dialogue: dict) -> list[str]:
    """The user's utterances before the first test turn, quotes stripped; lines without a
    `<Name>:` tag (a few in the data) are skipped."""
    name = USERS[dialogue["user-id"]]
    found = []
    for line in dialogue["dialogue"][: min(dialogue["test-turn"])]:
        match = _UTTERANCE.match(line)
        if match and match.group(1).strip() == name:
            found.append(match.group(2).strip('"“”「」 '))
    return [u for u in found if u]


def scope_of(lang: str, uid: int) -> Scope:
    return Scope(user_id=f"madial-{lang}-{USERS[uid].lower()}")


def evaluate(memory: Memory, data: Path, lang: str, query_turns: int, limit: int | None) -> tuple[dict, dict]:
    """Ingest both archives, search once per dialogue and system: recalls and counts."""
    per_user, shared = archives(find_file(data, lang, "memory"), lang)
    for uid, events in per_user.items():
        for batch in iter_batches(events, 256):
            memory.add_events(scope_of(lang, uid), batch)
    dialogues = read_jsonl(find_file(data, lang, "dialogue"))[:limit]
    recalls: dict[str, dict[int, list[float]]] = {name: defaultdict(list) for name in SYSTEMS}
    skipped = 0
    for dialogue in track(dialogues, description=f"madial {lang}"):
        utterances = user_utterances(dialogue)
        if not utterances:
            skipped += 1
            continue
        query = "\n".join(utterances[-query_turns:])
        gold = {f"mem-{i}" for i in dialogue["relevant-id"]}
        for name, config in SYSTEMS.items():
            items = memory.search(scope_of(lang, dialogue["user-id"]), query, k=max(KS), config=config).items
            for k in KS:
                recalls[name][k].append(recall_at(items, gold, k))
    counts = {
        "n_dialogues": len(dialogues) - skipped, "dialogues_without_user_utterance": skipped,
        "memories_per_user": {USERS[uid]: len(events) for uid, events in sorted(per_user.items())},
        "memories_shared": shared,
    }
    return recalls, counts


def run(data: Path, lang: str, query_turns: int, limit: int | None, out: Path | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="pg-madial-") as root:
        memory = fresh_memory(root, embedder=MiniLMEmbedder())
        try:
            recalls, counts = evaluate(memory, data, lang, query_turns, limit)
        finally:
            memory.close()
    report = {
        "data": str(data), "lang": lang, **counts,
        "query": f"last {query_turns} user utterances before the first test turn",
        "systems": {name: {f"recall@{k}": mean(recalls[name][k]) for k in KS} for name in SYSTEMS},
    }
    print_table(
        f"MADial-Bench {lang} memory recall ({report['n_dialogues']} dialogues)",
        ["system", *(f"R@{k}" for k in KS)],
        [[name, *(report["systems"][name][f"recall@{k}"] for k in KS)] for name in SYSTEMS],
    )
    write_json(out, report)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the MADial-Bench data folder (holding en/ and zh/)")
    parser.add_argument("--lang", choices=["en", "zh"], default="en")
    parser.add_argument("--query-turns", type=int, default=3, help="user utterances in the query (most recent)")
    parser.add_argument("--limit", type=int, help="only the first N dialogues")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    args = parser.parse_args()
    if not args.data.is_dir():
        parser.error(f"{args.data} is not a folder (the data lives in ../shared/data/madial_bench)")
    if args.query_turns < 1:
        parser.error("--query-turns must be 1 or more")
    run(args.data, args.lang, args.query_turns, args.limit, args.out)


if __name__ == "__main__":
    main()

"""PrefEval preference recall: `python -m benchmarks.prefeval --data DIR --inter-turns N --out FILE.json`.

Every (topic, record, form) is one user. Their history, in order: the preference turn(s),
then the first N filler turns of `filtered_inter_turns.json` (all conversations'
messages concatenated; a turn is a user message and the assistant's reply, as in the
SCHEMA, whose 316 available turns are the file's 632 messages), and the record's `question`
is the query.

Gold, per form:
- explicit: the one user message stating the preference;
- implicit_choice: the user's two messages of the choice exchange (the request and the
  selection): the selection is where the preference shows, the request gives it context;
- implicit_persona: every user message of the persona chat: the preference comes out in
  passing in one of them and the data does not say which.
recall@k counts a user as found when any gold message is among the top k (what a reader
needs is one turn that shows the preference); turn_recall@k is the share of gold messages
in the top k. For explicit records the two are the same.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from rich.progress import track

from personagraph.memory import Event, Memory, MiniLMEmbedder, Scope
from personagraph.memory import RetrievedItem
from personagraph.memory.ingest import iter_batches

from .common import SYSTEMS, distinct_sources, fresh_memory, mean, print_table, recall_at, write_json

KS = (1, 5, 10)
FORMS = {
    "explicit": "explicit_preference",
    "implicit_choice": "implicit_preference/choice-based",
    "implicit_persona": "implicit_preference/persona-driven",
}
HISTORY_START = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
Turn = tuple[str, str, bool]  # (role, text, is gold)


@dataclass(frozen=True)
class Case:
    """One user: their preference turns and the question that should bring them back."""

    form: str
    topic: str
    index: int
    turns: list[Turn]
    question: str

    @property
    def scope(self) -> Scope:
        return Scope(user_id=f"{self.form}-{self.topic}-{self.index}")


class MemoEmbedder:
    """The MiniLM embedder with a text → vector memo.

    Every user's history repeats the same filler chats and every form asks the same
    question, and a long message takes about a tenth of a second to embed on this CPU, so
    each distinct text is embedded once and its vector handed out again. Rankings are those
    of the wrapped embedder.
    """

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self.inner = inner
        self.dim = inner.dim
        self._memo: dict[str, np.ndarray] = {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        for text, vector in zip(missing, self.inner.embed_documents(missing), strict=True):
            self._memo[text] = np.asarray(vector, dtype=np.float32)  # the model's own precision
        return [self._memo[t].tolist() for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)


def preference_turns(form: str, record: dict) -> list[Turn]:
    """The turns that carry the preference, in the order they were said."""
    if form == "explicit":
        return [("user", record["preference"], True)]
    conversation = record["conversation"]
    if form == "implicit_choice":
        return [
            ("user", conversation["query"], True),
            ("assistant", conversation["assistant_options"], False),
            ("user", conversation["user_selection"], True),
            ("assistant", conversation["assistant_acknowledgment"], False),
        ]
    turns: list[Turn] = []
    for key in sorted(conversation, key=int):
        turns += [("user", conversation[key]["user"], True), ("assistant", conversation[key]["assistant"], False)]
    return turns


def read_filler(data: Path, inter_turns: int) -> list[Turn]:
    """The first `inter_turns` filler turns (2 × inter_turns messages)."""
    chats = json.loads((data / "filtered_inter_turns.json").read_text())
    messages = [(m["role"], m["content"], False) for chat in chats for m in chat["conversation"]]
    if 2 * inter_turns > len(messages):
        raise SystemExit(f"--inter-turns {inter_turns} needs {2 * inter_turns} messages; the filler has {len(messages)}")
    return messages[: 2 * inter_turns]


def read_cases(data: Path, topics: list[str] | None, limit: int | None) -> list[Case]:
    """Cases of every form for the topics (all topic files when none are named)."""
    names = topics or sorted(p.stem for p in (data / FORMS["explicit"]).glob("*.json"))
    cases = []
    for form, folder in FORMS.items():
        for topic in names:
            path = data / folder / f"{topic}.json"
            if not path.exists():
                raise SystemExit(f"{path} does not exist")
            records = json.loads(path.read_text())[:limit]
            cases += [Case(form, topic, i, preference_turns(form, r), r["question"]) for i, r in enumerate(records)]
    return cases


def history(case: Case, filler: list[Turn]) -> tuple[list[Event], set[str]]:
    """The user's events one minute apart, and the ids of the gold ones.

    Times and speakers do not depend on the user, so a filler message has the same index
    text for everyone (and is embedded once).
    """
    events, gold = [], set()
    for minute, (role, text, is_gold) in enumerate([*case.turns, *filler]):
        when = HISTORY_START + timedelta(minutes=minute)
        event = Event(speaker=role, role=role, text=text, time=when, thread_id="prefeval")
        events.append(event)
        if is_gold:
            gold.add(event.id)
    return events, gold


def found_at(items: list[RetrievedItem], gold: set[str], k: int) -> float:
    """1.0 when any gold message is among the top k distinct source events."""
    return float(bool(gold.intersection(distinct_sources(items, k))))


Scores = dict[str, dict[str, dict[str, list[float]]]]  # form -> system -> metric -> one value per user


def evaluate(memory: Memory, cases: list[Case], filler: list[Turn]) -> tuple[Scores, int]:
    """Ingest each user's history, search it once per system; returns scores and events added."""
    scores: Scores = {form: {name: defaultdict(list) for name in SYSTEMS} for form in FORMS}
    n_events = 0
    for case in track(cases, description="ingest + search"):
        events, gold = history(case, filler)
        for batch in iter_batches(events, 256):
            memory.add_events(case.scope, batch)
        n_events += len(events)
        for name, config in SYSTEMS.items():
            items = memory.search(case.scope, case.question, k=max(KS), config=config).items
            for k in KS:
                scores[case.form][name][f"recall@{k}"].append(found_at(items, gold, k))
                scores[case.form][name][f"turn_recall@{k}"].append(recall_at(items, gold, k))
    return scores, n_events


def run(data: Path, inter_turns: int, topics: list[str] | None, limit: int | None, out: Path | None) -> dict:
    filler = read_filler(data, inter_turns)
    cases = read_cases(data, topics, limit)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pg-prefeval-") as root:
        memory = fresh_memory(root, embedder=MemoEmbedder(MiniLMEmbedder()))
        try:
            scores, n_events = evaluate(memory, cases, filler)
        finally:
            memory.close()
    report = {
        "data": str(data), "inter_turns": inter_turns, "filler_messages": len(filler),
        "n_users": len(cases), "n_events": n_events, "seconds": round(time.perf_counter() - t0, 1),
        "topics": sorted({c.topic for c in cases}),
        "forms": {form: _form_summary(scores[form]) for form in FORMS},
        "overall": {name: _overall(scores, name) for name in SYSTEMS},
    }
    _print(report)
    write_json(out, report)
    return report


def _means(metrics: dict[str, list[float]]) -> dict[str, float]:
    return {metric: mean(values) for metric, values in metrics.items()}


def _overall(scores: Scores, name: str) -> dict[str, float]:
    """One system's metrics over every user of every form."""
    pooled: dict[str, list[float]] = defaultdict(list)
    for form in FORMS:
        for metric, values in scores[form][name].items():
            pooled[metric] += values
    return _means(pooled)


def _form_summary(per_system: dict[str, dict[str, list[float]]]) -> dict:
    """personagraph's recall@k at the top (the issue's keys), every system under `systems`."""
    systems = {name: _means(metrics) for name, metrics in per_system.items()}
    top = {f"recall@{k}": systems["personagraph"][f"recall@{k}"] for k in KS}
    return top | {"n_users": len(per_system["personagraph"]["recall@1"]), "systems": systems}


def _print(report: dict) -> None:
    rows = [
        [form, name, *(report["forms"][form]["systems"][name][f"recall@{k}"] for k in KS),
         report["forms"][form]["systems"][name]["turn_recall@10"]]
        for form in FORMS for name in SYSTEMS
    ]
    rows += [
        ["overall", name, *(report["overall"][name][f"recall@{k}"] for k in KS), report["overall"][name]["turn_recall@10"]]
        for name in SYSTEMS
    ]
    print_table(
        f"PrefEval preference recall ({report['n_users']} users, {report['inter_turns']} filler turns "
        f"= {report['filler_messages']} messages)",
        ["form", "system", *(f"R@{k}" for k in KS), "turn R@10"], rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the PrefEval benchmark_dataset folder")
    parser.add_argument("--inter-turns", type=int, required=True,
                        help="filler turns (a user message and its reply) between preference and question")
    parser.add_argument("--topics", nargs="+", help="topic file names without .json (default: every topic)")
    parser.add_argument("--limit", type=int, help="only the first N records of each topic and form")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    args = parser.parse_args()
    if not (args.data / "filtered_inter_turns.json").exists():
        parser.error(f"{args.data} holds no filtered_inter_turns.json (the data lives in ../shared/data/prefeval)")
    if args.inter_turns < 0:
        parser.error("--inter-turns must be 0 or more")
    run(args.data, args.inter_turns, args.topics, args.limit, args.out)


if __name__ == "__main__":
    main()

"""Fuzzing the `personagraph` command line through typer's CliRunner: malformed arguments,
garbage and missing files, unknown users, bad flags. Every case is built to be wrong, so each
must exit non-zero with an error and no Python traceback; none may change the data dir.

A traceback here is an exception that escaped the command (CliRunner keeps it in
`result.exception`) or the word "Traceback" in the output."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from personagraph.memory import Embedder
from personagraph.memory.scope import _LABEL
from typer.testing import CliRunner

from personagraph import cli

from .fuzz_common import Tally
from .fuzz_inputs import strings

VALID_ROW = {"id": "cli1", "speaker": "fuzzed", "role": "user", "time": "2025-01-05T10:00:00Z", "text": "hello"}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@contextmanager
def shared_embedder(embedder: Embedder) -> Iterator[None]:
    """Every command in this process reuses the one loaded model (as tests/test_cli.py does)."""
    original = cli._embedder
    cli._embedder = lambda model_path: embedder  # type: ignore[assignment]
    try:
        yield
    finally:
        cli._embedder = original


def _arg(rng: random.Random) -> str:
    """A command-line argument cannot hold NUL; everything else may arrive."""
    return strings(rng).replace("\x00", "") or "-"


def _bad_label(rng: random.Random) -> str:
    """A user or tenant label that `validate_label` refuses."""
    label = _arg(rng)
    return label if not _LABEL.fullmatch(label) else f".{label}"


def _garbage_file(rng: random.Random, folder: Path, n: int) -> Path:
    """A file ingest or `graph validate` must refuse: binary, truncated, wrong shape, junk rows."""
    suffix = rng.choice((".jsonl", ".json", ".yaml", ".txt"))
    path = folder / f"garbage{n}{suffix}"
    row = json.dumps(VALID_ROW)
    content: str | bytes = rng.choice([
        bytes(rng.randrange(256) for _ in range(rng.randint(1, 400))),
        row[: rng.randint(1, len(row) - 1)],
        row + "\n" + json.dumps({**VALID_ROW, "text": ""}) + "\n",
        row + "\n" + json.dumps({**VALID_ROW, "time": "yesterday"}) + "\n",
        json.dumps([{"conversation": {"speaker_a": 1}}]),
        json.dumps([{"conversation": "x", "sample_id": None}]),
        json.dumps({"version": 1, "nodes": "x"}),
        "[" * 5000,
        "\ufeff" + row,
        row.replace('"fuzzed"', '"\\ud800"'),
        json.dumps({**VALID_ROW, "text": "x" * 30_000}),
        "version: 1\nnodes: *nope\n",
    ])
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    return path


def _case(rng: random.Random, folder: Path, n: int) -> list[str]:
    """One malformed command line."""
    user = rng.choice(("fuzzed", _bad_label(rng)))
    missing = str(folder / "missing" / "file.jsonl")
    makers: list[Callable[[], list[str]]] = [
        lambda: ["ingest", str(_garbage_file(rng, folder, n)), "--user", user],
        lambda: ["ingest", rng.choice((missing, str(folder))), "--user", "fuzzed"],
        lambda: ["ingest", str(_garbage_file(rng, folder, n)), "--user", "fuzzed", "--format", rng.choice(("locomo", "csv", _arg(rng)))],
        lambda: ["recall", _bad_label(rng), _arg(rng)],
        lambda: ["recall", "fuzzed", "tea", "--k", rng.choice(("0", "-5", "nan", "1e400", "99999999999999999999", _arg(rng)))],
        lambda: ["recall", "fuzzed", "tea", "--budget", rng.choice(("0", "-5", "nan", "1e400", _arg(rng)))],
        lambda: ["recall", "fuzzed", "tea", rng.choice(("--kinds", "--as-of")), _arg(rng).strip() or "entity"],  # blank kinds mean all
        lambda: ["recall", "fuzzed", rng.choice(("", " ", "\t"))],
        lambda: ["forget", "fuzzed", "--event", _arg(rng), "--yes"],
        lambda: ["forget", _bad_label(rng), "--yes"],
        lambda: ["export", _bad_label(rng)],
        lambda: ["export", "fuzzed", "--out", rng.choice((str(folder), missing))],
        lambda: ["reconcile", _bad_label(rng)],
        lambda: ["inspect", _bad_label(rng)],
        lambda: ["reflect", _bad_label(rng), "--model", "none"],
        lambda: ["reflect", "fuzzed", "--batch-size", rng.choice(("0", "41", "-1", _arg(rng)))],
        lambda: ["feedback", "add", "fuzzed", _arg(rng), "--up"],
        lambda: ["feedback", "delete", "fuzzed", _arg(rng)],
        lambda: ["feedback", "list", _bad_label(rng)],
        lambda: ["adapters", "list", _bad_label(rng)],
        lambda: ["adapters", "delete", "fuzzed", "--kind", _arg(rng)],
        lambda: ["graph", "validate", str(_garbage_file(rng, folder, n))],
        lambda: ["graph", "validate", rng.choice((missing, str(folder)))],
        lambda: ["graph", "run", str(_garbage_file(rng, folder, n)), "--user", "fuzzed"],
        lambda: ["graph", "run", str(EXAMPLES / "reflection_only.yaml"), "--user", "fuzzed", "--input", rng.choice(("{", "[]", "null", '{"bogus": 1}'))],
        lambda: [rng.choice(("frobnicate", "recall", "ingest")), rng.choice(("--nope", "--k", "-z"))],
        lambda: ["--tenant", _bad_label(rng), "recall", "fuzzed", "tea"],
    ]
    return rng.choice(makers)()


def fuzz_cli(data_dir: Path, folder: Path, cases: int, rng: random.Random, embedder: Embedder) -> Tally:
    """`cases` malformed command lines against the seeded data dir."""
    tally = Tally("cli")
    runner = CliRunner()
    with shared_embedder(embedder):
        for n in range(cases):
            args = _case(rng, folder, n)
            result = runner.invoke(cli.app, ["--data-dir", str(data_dir), *args])
            escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
            if escaped or "Traceback" in result.output:
                tally.crash(n, "personagraph " + " ".join(args[:2]), args, result.exception or result.output[-600:])  # type: ignore[arg-type]
            elif result.exit_code == 0:
                tally.crash(n, "personagraph " + " ".join(args[:2]), args, f"exit 0 for a malformed command: {result.output[-300:]}")
            else:
                tally.refused(f"exit {result.exit_code}")
    return tally

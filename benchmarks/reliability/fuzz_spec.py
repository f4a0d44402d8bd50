"""Fuzzing graph specs: the example specs mutated (keys dropped or renamed, wrong types, deep
nesting, huge files, YAML anchors and alias bombs, binary junk), read with `load_spec` and, when
that passes, compiled with `compile_spec`. The only error allowed is `SpecError`, naming the file
(and the line, where the text has lines); nothing may run past `CASE_SECONDS`."""

from __future__ import annotations

import copy
import json
import random
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from personagraph.graphs.spec import SpecError, SpecRuntime, compile_spec, load_spec
from personagraph.memory import Memory

from .fuzz_common import Tally
from .fuzz_inputs import nested, strings

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
CASE_SECONDS = 2  # a spec that takes longer to read and compile counts as a hang (the examples take ~0.01 s)


class Hang(Exception):
    """Raised by the alarm inside a case that ran past CASE_SECONDS."""


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """SIGALRM interrupts Python code (the YAML composer is pure Python) past `seconds`."""
    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside a spec's data."""
    out = [prefix]
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        out += _paths(value, (*prefix, key))
    return out


def _mutated_data(rng: random.Random, data: dict[str, Any]) -> Any:
    """The spec's data with one to three structural mutations."""
    data = copy.deepcopy(data)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(_paths(data)[1:])
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        action = rng.randrange(4)
        if action == 0:  # drop
            parent.pop(last)
        elif action == 1 and isinstance(parent, dict):  # rename
            parent[f"{last}_x" if rng.random() < 0.5 else strings(rng)[:40]] = parent.pop(last)
        elif action == 2:  # wrong type (JSON-able junk only: these are files)
            parent[last] = rng.choice([None, True, -1, 3.5, "", "x" * 5000, [], {}, nested(rng.choice((5, 200)))])
        else:  # duplicate an entry
            if isinstance(parent, list):
                parent.append(copy.deepcopy(parent[last]))
            else:
                parent[last] = [parent[last], parent[last]]
    return data


def alias_bomb(levels: int) -> str:
    """The YAML 'billion laughs': each anchor's list aliases the previous one nine times."""
    lines = ["a0: &a0 [lol]"]
    lines += [f"a{n}: &a{n} [{', '.join(f'*a{n - 1}' for _ in range(9))}]" for n in range(1, levels)]
    return "\n".join(lines) + f"\nversion: 1\nnodes: *a{levels - 1}\n"


def _case(rng: random.Random, folder: Path, n: int) -> Path:
    """One mutated spec file, YAML or JSON."""
    source = rng.choice(EXAMPLES)
    text = source.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    pick = rng.randrange(10)
    suffix = ".json" if pick in (1, 2) else ".yaml"
    body: str | bytes
    if pick == 0:
        body = yaml.safe_dump(_mutated_data(rng, data), sort_keys=False)
    elif pick == 1:
        body = json.dumps(_mutated_data(rng, data), indent=rng.choice((None, 2, "\t")))
    elif pick == 2:
        body = rng.choice(("[" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000, json.dumps(data)[: rng.randrange(1, 400)]))
    elif pick == 3:
        body = alias_bomb(rng.randint(4, 12))
    elif pick == 4:
        body = rng.choice(("a: &x [*x]\n", "&a [*a]", "version: &v 1\nnodes: [*v, *v]\nstate: *nope\n", "!!python/object/apply:os.system ['true']\n"))
    elif pick == 5:
        cut = rng.randrange(1, len(text))
        body = text[:cut] + rng.choice(("\x00", "\t", ": :", "- - -", "\ud800", "{{", "\x1b", "%YAML 9.9\n")) + text[cut:]
    elif pick == 6:
        body = bytes(rng.randrange(256) for _ in range(rng.randint(1, 2000)))
    elif pick == 7:
        body = text + "\n# padding\n" * rng.choice((10, 100_000)) + rng.choice(("", "nodes: []\n"))
    elif pick == 8:
        body = "x:\n" + "".join(" " * (i + 1) + "- \n" for i in range(rng.choice((50, 3000))))
    else:
        body = "[" * rng.choice((100, 5_000)) + "]" * rng.choice((0, 100))
    path = folder / f"spec{n}{suffix}"
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body, encoding="utf-8", errors="surrogatepass")
    return path


def fuzz_spec(memory: Memory, folder: Path, cases: int, rng: random.Random) -> tuple[Tally, int]:
    """`cases` mutated specs; returns the tally and how many SpecErrors on text named no line."""
    tally = Tally("spec")
    runtime = SpecRuntime(memory)
    no_line = 0
    for n in range(cases):
        path = _case(rng, folder, n)
        try:
            with time_limit(CASE_SECONDS):
                compile_spec(load_spec(path), runtime)
        except SpecError as exc:
            if not exc.issues or not all(str(issue).startswith(str(path)) for issue in exc.issues):
                tally.crash(n, "load_spec", path.name, f"a SpecError line does not name the file: {str(exc)[:300]}")
                continue
            tally.typed_error(exc)
            # Text has lines; only a file that is not UTF-8 text may be named without one.
            no_line += any(not issue.line and not issue.message.startswith("not UTF-8") for issue in exc.issues)
        except Exception as exc:  # noqa: BLE001 - anything but SpecError (a Hang included) is a finding
            tally.crash(n, "load_spec+compile_spec", {"file": path.name, "head": path.read_bytes()[:200]}, exc)
        else:
            tally.ok()
    return tally, no_line

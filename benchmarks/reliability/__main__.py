"""The reliability and security report: every part of the suite, its figures, and a verdict.

    python -m benchmarks.reliability --out FILE.json                 # the fast profile (CI)
    python -m benchmarks.reliability --profile long --out FILE.json  # the long one
    python -m benchmarks.reliability --only attacks,secrets          # some parts

Exits 1 when a figure promised to be zero is not, so CI fails on it.
"""

from __future__ import annotations

import importlib
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from personagraph.memory import MiniLMEmbedder

from ..common import console, print_table, write_json
from .part import PartResult
from .profile import PROFILES

PARTS = ("isolation", "crash", "concurrency", "deletion", "attacks", "secrets", "fuzz")

# The report's headline rows: (label, part, figure) in the order the issue lists them.
HEADLINE = (
    ("operations run (isolation)", "isolation", "operations"),
    ("leaks across users", "isolation", "leaks"),
    ("writes into another scope", "isolation", "foreign_writes"),
    ("writer processes killed", "crash", "trials"),
    ("records half-written after a crash", "crash", "half_written"),
    ("acknowledged records lost", "crash", "acknowledged_lost"),
    ("index entries without a record", "crash", "orphans_after"),
    ("concurrent operations", "concurrency", "operations"),
    ("lost updates", "concurrency", "lost_updates"),
    ("duplicates", "concurrency", "duplicates"),
    ("users forgotten", "deletion", "users_forgotten"),
    ("residue after forget (files)", "deletion", "residue_files"),
    ("residue after forget (live objects)", "deletion", "residue_in_process"),
    ("attacks tried", "attacks", "attacks_tried"),
    ("attacks succeeded", "attacks", "attacks_succeeded"),
    ("secrets sent", "secrets", "secrets"),
    ("secrets stored", "secrets", "secrets_stored"),
    ("fuzz cases", "fuzz", "fuzz_cases"),
    ("fuzz crashes (untyped errors)", "fuzz", "untyped_crashes"),
    ("data lost to fuzzing", "fuzz", "data_lost"),
)

app = typer.Typer(add_completion=False)


def run_part(name: str, profile_name: str, workdir: Path, embedder: MiniLMEmbedder) -> PartResult:
    module = importlib.import_module(f"benchmarks.reliability.{name}")
    part_dir = workdir / name
    part_dir.mkdir(parents=True, exist_ok=True)
    return module.run(PROFILES[profile_name], part_dir, embedder)


@app.command()
def main(
    out: Annotated[Path | None, typer.Option(help="write the report as JSON here")] = None,
    profile: Annotated[str, typer.Option(help="fast (CI), long, or smoke")] = "fast",
    only: Annotated[str | None, typer.Option(help="comma-separated parts to run: " + ", ".join(PARTS))] = None,
    workdir: Annotated[Path | None, typer.Option(help="scratch folder (default: a temporary one)")] = None,
) -> None:
    if profile not in PROFILES:
        raise typer.BadParameter(f"profiles are {', '.join(PROFILES)}", param_hint="--profile")
    chosen = PARTS if only is None else tuple(p.strip() for p in only.split(","))
    if unknown := sorted(set(chosen) - set(PARTS)):
        raise typer.BadParameter(f"unknown parts {unknown}; parts are {', '.join(PARTS)}", param_hint="--only")
    embedder = MiniLMEmbedder()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pg-reliability-") as scratch:
        root = workdir or Path(scratch)
        results: dict[str, PartResult] = {}
        for name in chosen:
            console.print(f"[bold]{name}[/] ({profile})")
            results[name] = run_part(name, profile, root, embedder)
            console.print(f"  {results[name].figures}  [dim]{results[name].seconds:.0f} s[/]")
    rows = [(label, results[part].figures.get(key, "n/a")) for label, part, key in HEADLINE if part in results]
    print_table(f"personagraph reliability report ({profile} profile)", ["figure", "value"], rows)
    failures = {name: r.failures for name, r in results.items() if not r.ok}
    print_table("parts", ["part", "seconds", "verdict"],
                [(n, f"{r.seconds:.0f}", "ok" if r.ok else f"FAILED {r.failures}") for n, r in results.items()])
    write_json(out, {
        "profile": PROFILES[profile].as_dict(),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
        "seconds": round(time.perf_counter() - started, 1),
        "headline": {label: value for label, value in rows},
        "parts": {
            name: {"figures": r.figures, "must_be_zero": list(r.must_be_zero), "ok": r.ok,
                   "seconds": round(r.seconds, 1), "details": r.details}
            for name, r in results.items()
        },
        "ok": not failures,
    })
    if failures:
        console.print(f"[bold red]promised zeros that are not zero:[/] {failures}")
        raise typer.Exit(1)
    console.print("[bold green]every promised zero is zero[/]")


if __name__ == "__main__":
    app()

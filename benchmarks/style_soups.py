"""What a soup weight does to answers: the local model answers questions the style adapters
never trained on, through soups of one dimension at weights -1, 0 (the base) and +1, and the
answers are measured: words for length, casual markers (contractions, chatty words,
exclamation marks) for tone.

    python -m benchmarks.style_soups --styles DIR --out FILE.json

DIR holds style adapters from `personagraph styles build` (their manifests say which
questions were held out; the last `--questions` of the built-in bank are used here).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from personagraph.agents.adapters.training import load_training_base
from personagraph.agents.alignment.instructions import casualness, word_count
from personagraph.agents.alignment.soups import (
    DIMENSIONS,
    STYLE_QUESTIONS,
    merge_soup,
    neutral_answers,
)
from personagraph.agents.alignment.style_library import style_dirs
from personagraph.agents.alignment.trainer import borrowed_base
from rich.progress import track

from .common import print_table, write_json


def answers_with(base: object, tokenizer: object, adapter: Path | None, questions: list[str], max_new_tokens: int) -> list[str]:
    from peft import PeftModel

    if adapter is None:
        return neutral_answers(base, tokenizer, questions, max_new_tokens=max_new_tokens)
    with borrowed_base(base):
        model = PeftModel.from_pretrained(base, str(adapter))
        model.eval()
        try:
            return neutral_answers(model, tokenizer, questions, max_new_tokens=max_new_tokens)
        finally:
            model.unload()


def run(styles: Path, questions: int, max_new_tokens: int, out: Path | None) -> dict:
    dirs = style_dirs(styles)
    if not dirs:
        raise SystemExit(f"no style adapters in {styles}: run `personagraph styles build` first")
    base, tokenizer = load_training_base()
    asked = list(STYLE_QUESTIONS[-questions:])
    rows = []
    with tempfile.TemporaryDirectory() as work:
        settings = [(name, weight) for name in dirs for weight in (-1.0, 0.0, 1.0)]
        for name, weight in track(settings, description="soups"):
            folder = None
            if weight:
                folder = Path(work) / f"{name}{weight:+.0f}"
                merge_soup(base, dirs, {name: weight}, folder)
            texts = answers_with(base, tokenizer, folder, asked, max_new_tokens)
            rows.append({
                "dimension": name, "weight": weight, "pole": DIMENSIONS[name].positive if weight > 0 else DIMENSIONS[name].negative if weight < 0 else "base",
                "median_words": statistics.median(word_count(t) for t in texts),
                "mean_casual_markers": statistics.fmean(casualness(t) for t in texts),
                "answers": texts,
            })
    report = {"settings": {"styles": str(styles), "questions": asked, "max_new_tokens": max_new_tokens}, "rows": rows}
    print_table(
        f"answers to {len(asked)} questions through one-dimension soups (greedy, {max_new_tokens} new tokens at most)",
        ["dimension", "weight", "towards", "median words", "casual markers per answer"],
        [[r["dimension"], f"{r['weight']:+.0f}", r["pole"], r["median_words"], f"{r['mean_casual_markers']:.2f}"] for r in rows],
    )
    write_json(out, report)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--styles", type=Path, required=True, help="folder of built style adapters")
    parser.add_argument("--questions", type=int, default=6, help="the last N questions of the bank (held out when built)")
    parser.add_argument("--max-new-tokens", type=int, default=80)
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    args = parser.parse_args()
    run(args.styles, args.questions, args.max_new_tokens, args.out)


if __name__ == "__main__":
    main()

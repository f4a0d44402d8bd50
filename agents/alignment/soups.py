"""Adapter soups: one LoRA per style dimension, mixed per user with signed weights.

Each dimension (length: concise ↔ detailed, tone: formal ↔ casual) gets one adapter, trained
once, with DPO on pairs the project makes itself: the local model answers a bank of our own
questions, and each answer is rewritten into the two poles (the first sentence against the
whole answer; contractions and chatty openers against none). The adapter learns to prefer the
first pole; a negative weight pushes the other way (task arithmetic).

A user's weights come from what is known about them: their profile's style, their learned
instructions, and the length and tone of the answers they preferred. peft's weighted merge
with `combination_type="cat"` adds the weighted deltas exactly (ranks concatenate) on top of
the user's own adapter when they have one.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personagraph.memory.errors import InvalidRecordError
from personagraph.memory.models import Fact, Profile

from .instructions import NOTES, casualness, word_count
from .preferences import DPOPair


@dataclass(frozen=True)
class StyleDimension:
    name: str
    positive: str  # the pole the adapter is trained towards (weight +1)
    negative: str  # the pole a negative weight leads to


DIMENSIONS: dict[str, StyleDimension] = {
    "length": StyleDimension("length", positive="concise", negative="detailed"),
    "tone": StyleDimension("tone", positive="formal", negative="casual"),
}

# Our own questions: everyday requests whose answers can be short or long, stiff or chatty.
STYLE_QUESTIONS: tuple[str, ...] = (
    "How do I keep basil alive on a windowsill?",
    "What should I pack for a weekend hiking trip?",
    "How can I get better at remembering names?",
    "What is a good way to start running?",
    "How do I make a simple tomato sauce?",
    "Any tips for a long train journey?",
    "How do I clean a cast iron pan?",
    "What makes a good birthday present for a coworker?",
    "How can I sleep better before an exam?",
    "What is the best way to learn a few words of Italian before a trip?",
    "How should I prepare for a job interview?",
    "How do I keep my phone battery healthy?",
    "What can I cook with rice, eggs and spinach?",
    "How do I choose a board game for a family evening?",
    "What should I look for when renting a flat?",
    "How can I reduce screen time in the evening?",
    "How do I write a polite email asking for a deadline extension?",
    "What are easy houseplants for a dark room?",
    "How do I stay focused when working from home?",
    "What is a fun thing to do on a rainy afternoon?",
    "How do I teach a dog to sit?",
    "How can I save money on groceries?",
    "What should I know before adopting a cat?",
    "How do I plan a picnic for six people?",
)

_EXPAND = {
    "don't": "do not", "doesn't": "does not", "didn't": "did not", "can't": "cannot", "won't": "will not",
    "isn't": "is not", "aren't": "are not", "it's": "it is", "you're": "you are", "you'll": "you will",
    "they're": "they are", "that's": "that is", "there's": "there is", "i'm": "I am", "we're": "we are",
    "let's": "let us", "you've": "you have", "i'd": "I would", "shouldn't": "should not", "wouldn't": "would not",
}
_CONTRACT = {long: short for short, long in _EXPAND.items() if not long.startswith(("I ", "let"))}
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _replace_words(text: str, table: dict[str, str]) -> str:
    pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in sorted(table, key=len, reverse=True)) + r")\b", re.IGNORECASE)

    def swap(match: re.Match[str]) -> str:
        out = table[match.group(0).lower()]
        return out[0].upper() + out[1:] if match.group(0)[0].isupper() else out

    return pattern.sub(swap, text)


def as_concise(answer: str) -> str:
    return _SENTENCE.split(answer.strip())[0]


def as_formal(answer: str) -> str:
    text = _replace_words(answer, _EXPAND).replace("!", ".")
    return re.sub(r"^(hey|hi|so|well|okay|ok)[,!.]?\s+", "", text, flags=re.IGNORECASE).strip()


def as_casual(answer: str) -> str:
    text = _replace_words(as_formal(answer), _CONTRACT)
    return f"Hey! {text} Hope that helps!"


def pole_pairs(question: str, answer: str) -> dict[str, DPOPair]:
    """The two training pairs one answer gives, when its poles differ measurably."""
    prompt = [{"role": "user", "content": question}]
    pairs: dict[str, DPOPair] = {}
    short = as_concise(answer)
    if word_count(answer) >= 15 and word_count(short) <= 0.6 * word_count(answer):
        pairs["length"] = DPOPair(prompt=prompt, chosen=short, rejected=answer.strip(), feedback_id="style:length")
    formal, casual = as_formal(answer), as_casual(answer)
    if casualness(casual) > casualness(formal):
        pairs["tone"] = DPOPair(prompt=prompt, chosen=formal, rejected=casual, feedback_id="style:tone")
    return pairs


def neutral_answers(model: Any, tokenizer: Any, questions: Sequence[str], *, max_new_tokens: int = 80) -> list[str]:
    """Greedy answers of the local model to `questions`: the material the poles are cut from."""
    import torch

    answers = []
    for question in questions:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        text = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        sentences = _SENTENCE.split(text)
        if len(sentences) > 1 and not text.endswith((".", "!", "?")):
            sentences = sentences[:-1]  # cut off by the token limit
        answers.append(" ".join(sentences))
    return answers


def style_pairs(questions: Sequence[str], answers: Sequence[str]) -> dict[str, list[DPOPair]]:
    out: dict[str, list[DPOPair]] = {name: [] for name in DIMENSIONS}
    for question, answer in zip(questions, answers, strict=True):
        for name, pair in pole_pairs(question, answer).items():
            out[name].append(pair)
    return out


# --- per-user weights ---------------------------------------------------------------------------

_PROFILE_CUES = {
    "length": (re.compile(r"\b(short|concise|brief|terse)\b", re.IGNORECASE), re.compile(r"\b(detailed|long|thorough|in depth)\b", re.IGNORECASE)),
    "tone": (re.compile(r"\b(formal|professional|polite)\b", re.IGNORECASE), re.compile(r"\b(casual|informal|relaxed|friendly)\b", re.IGNORECASE)),
}


def _sign(text: str, dimension: str) -> float:
    towards, away = _PROFILE_CUES[dimension]
    return float(bool(towards.search(text))) - float(bool(away.search(text)))


def soup_weights(profile: Profile, instructions: Sequence[Fact], pairs: Sequence[DPOPair]) -> dict[str, float]:
    """A signed weight in [-1, 1] per dimension: the mean of the signals known for the user
    (profile style, learned instructions, the answers they preferred); 0 when nothing is known."""
    weights: dict[str, float] = {}
    for name, dim in DIMENSIONS.items():
        signals: list[float] = []
        style = profile.style.verbosity if name == "length" else profile.style.formality
        if style is not None and (s := _sign(style.value, name)):
            signals.append(s)
        for fact in instructions:
            if fact.object in (dim.positive, dim.negative) and NOTES[fact.object][0] == name:
                signals.append(1.0 if fact.object == dim.positive else -1.0)
        votes = [_pair_vote(p, name) for p in pairs]
        votes = [v for v in votes if v]
        if votes:
            signals.append(sum(votes) / len(votes))
        weights[name] = max(-1.0, min(1.0, sum(signals) / len(signals))) if signals else 0.0
    return weights


def _pair_vote(pair: DPOPair, dimension: str) -> float:
    """+1 when the chosen answer is clearly nearer the positive pole than the rejected one."""
    if dimension == "length":
        chosen, rejected = word_count(pair.chosen), word_count(pair.rejected)
        if chosen <= 0.6 * rejected:
            return 1.0
        return -1.0 if rejected <= 0.6 * chosen else 0.0
    diff = casualness(pair.rejected) - casualness(pair.chosen)
    return 1.0 if diff >= 2 else -1.0 if diff <= -2 else 0.0


# --- merging ------------------------------------------------------------------------------------


def soup_hash(weights: dict[str, float], style_dirs: dict[str, Path], user_adapter: Path | None) -> str:
    """Identifies a soup: the weights, the style adapters' files and the user's adapter."""
    def stamp(folder: Path) -> str:
        f = folder / "adapter_model.safetensors"
        return f"{folder}:{f.stat().st_size}:{f.stat().st_mtime_ns}" if f.exists() else str(folder)

    payload = {"w": {k: round(v, 4) for k, v in sorted(weights.items())},
               "styles": {k: stamp(v) for k, v in sorted(style_dirs.items())},
               "user": stamp(user_adapter) if user_adapter else None}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def merge_soup(
    base: Any, style_dirs: dict[str, Path], weights: dict[str, float], out_dir: Path, *, user_adapter: Path | None = None,
) -> int:
    """Write `user + Σ weight·style` as one LoRA to `out_dir`; returns its rank. `base` is left
    as it was."""
    from peft import PeftModel

    parts = [(name, style_dirs[name], w) for name, w in weights.items() if w != 0.0]
    if user_adapter is not None:
        parts.insert(0, ("user", user_adapter, 1.0))
    if not parts:
        raise InvalidRecordError("nothing to merge: no style weight is set and the user has no adapter")
    missing = [str(path) for _, path, _ in parts if not (path / "adapter_config.json").is_file()]
    if missing:
        raise InvalidRecordError(f"style adapters missing (build them with `personagraph styles build`): {missing}")
    model = PeftModel.from_pretrained(base, str(parts[0][1]), adapter_name=parts[0][0])
    try:
        for name, path, _ in parts[1:]:
            model.load_adapter(str(path), adapter_name=name)
        model.add_weighted_adapter([n for n, _, _ in parts], [w for _, _, w in parts], "soup", combination_type="cat")
        staging = Path(tempfile.mkdtemp(prefix=".soup-", dir=out_dir.parent))
        try:
            model.save_pretrained(str(staging), selected_adapters=["soup"])
            saved = staging / "soup" if (staging / "soup" / "adapter_config.json").is_file() else staging
            shutil.rmtree(out_dir, ignore_errors=True)
            saved.rename(out_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        rank = int(model.peft_config["soup"].r)
    finally:
        model.unload()
    return rank

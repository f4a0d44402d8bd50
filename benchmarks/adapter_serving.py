"""Adapter serving on one base model: `python -m benchmarks.adapter_serving --out FILE.json`.

Measures, on the bf16 serving runtime:
- switch time: a one-request generation naming a different loaded LoRA than the request
  before it, against the same LoRA again (median difference);
- lazy load time of a LoRA from disk into the pool, and of a soft prompt;
- throughput of one batch of `--rows` rows: all base, all one LoRA, four LoRAs + base rows
  (peft's mixed-adapter batch), and the mixed batch with soft-prompt rows. Every row generates
  exactly `--tokens` tokens (end-of-text suppressed), so every layout does the same work and
  the ratio is the cost of mixing, not of rows finishing at different times. Layouts run
  interleaved, `--repeats` rounds, medians reported.

Run alone it serves adapters made here with random weights (serving cost depends on the
adapters' shapes, not on what they learned); `benchmarks.personalization` runs the same
measurement on the adapters it trained.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from .common import console, print_table, write_json

Kind = Literal["lora", "prompt"]


def serving_figures(adapters: list[tuple[str, str, Kind]], *, repeats: int = 5, switch_tokens: int = 4,
                    rows: int = 8, tokens: int = 32) -> dict[str, Any]:
    """`adapters` are (name, folder, kind); names must be peft-safe (see `adapter_handle`)."""
    from personagraph.agents.adapters.serving import AdapterPool
    from personagraph.agents.llm.runtime import ChatRuntime, GenerationRequest
    from personagraph.agents.llm.weights import model_dir

    runtime = ChatRuntime.load(model_dir(), "bfloat16")
    pool = AdapterPool(runtime, max_adapters=len(adapters) + 1)
    loras = [pool.acquire(n, p, k) for n, p, k in adapters if k == "lora"]
    softs = [pool.acquire(n, p, k) for n, p, k in adapters if k == "prompt"]
    load_ms = pool.stats()["load_ms"]
    result: dict[str, Any] = {"lora_load_ms": load_ms[: len(loras)], "soft_prompt_load_ms": load_ms[len(loras):]}
    if len(loras) < 2:
        return {**result, "note": "fewer than two LoRA adapters: nothing to switch between"}
    prompt = list(runtime.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Tell me about your weekend."}], add_generation_prompt=True, tokenize=True, return_dict=True,
    )["input_ids"])

    def one(adapter: str) -> float:
        started = time.perf_counter()
        runtime.generate_batch([GenerationRequest(prompt, adapter=adapter, max_new_tokens=switch_tokens)], min_new_tokens=switch_tokens)
        return (time.perf_counter() - started) * 1000

    a, b = loras[0].name, loras[1].name
    one(a)  # warm up
    same, alternating = [], []
    for _ in range(repeats * 2):  # interleaved, so drift on a shared machine hits both alike
        same.append(one(a))  # follows a request for a: no switch
        alternating.append(one(b))  # a → b
        alternating.append(one(a))  # b → a

    def layout(kinds: list[Any]) -> list[GenerationRequest]:
        out = []
        for i in range(rows):
            pick = kinds[i % len(kinds)]
            if isinstance(pick, str) or pick is None:
                out.append(GenerationRequest(prompt, adapter=pick, max_new_tokens=tokens))
            else:
                out.append(GenerationRequest(prompt, soft_prompt=pick.soft_prompt, max_new_tokens=tokens))
        return out

    mixed: list[Any] = [s.name for s in loras[:4]] + [None]
    layouts = {"all_base": layout([None]), "single_adapter": layout([a]), "mixed_adapters": layout(mixed)}
    if softs:
        layouts["mixed_with_soft_prompts"] = layout([*mixed[:2], softs[0], *mixed[2:], softs[-1]])
    rates: dict[str, list[float]] = {name: [] for name in layouts}
    runtime.generate_batch(layouts["mixed_adapters"], min_new_tokens=tokens)  # warm up
    for _ in range(repeats):
        for name, requests in layouts.items():
            started = time.perf_counter()
            outputs = runtime.generate_batch(requests, min_new_tokens=tokens)
            rates[name].append(sum(len(o) for o in outputs) / (time.perf_counter() - started))
    throughput = {name: statistics.median(values) for name, values in rates.items()}
    return {
        **result,
        "request_ms_same_adapter": statistics.median(same),
        "request_ms_alternating": statistics.median(alternating),
        "switch_ms": statistics.median(alternating) - statistics.median(same),
        "batch_rows": rows, "batch_tokens": tokens, "tokens_per_s": throughput,
        "mixed_overhead": 1.0 - throughput["mixed_adapters"] / throughput["single_adapter"],
        "mixed_overhead_vs_base": 1.0 - throughput["mixed_adapters"] / throughput["all_base"],
    }


def serving_table(figures: dict[str, Any]) -> None:
    if "switch_ms" not in figures:
        console.print(figures.get("note", "no serving figures"))
        return
    print_table("serving on one bf16 base model", ["measure", "value"], [
        ["switch ms (median difference)", figures["switch_ms"]],
        ["request ms, same LoRA / alternating", f"{figures['request_ms_same_adapter']:.1f} / {figures['request_ms_alternating']:.1f}"],
        ["LoRA lazy load ms (median)", statistics.median(figures["lora_load_ms"])],
        ["soft prompt load ms (median)", statistics.median(figures["soft_prompt_load_ms"]) if figures["soft_prompt_load_ms"] else float("nan")],
        *([f"tokens/s {k}", v] for k, v in figures["tokens_per_s"].items()),
        ["mixed-batch overhead vs one LoRA", figures["mixed_overhead"]],
        ["mixed-batch overhead vs base", figures["mixed_overhead_vs_base"]],
    ])


def random_adapters(folder: Path, loras: int, prompts: int) -> list[tuple[str, str, Kind]]:
    """LoRAs (r = 8 on q_proj and v_proj, as trained) and soft prompts (8 tokens) with random weights."""
    import torch
    from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model
    from personagraph.agents.adapters.training import load_training_base

    made: list[tuple[str, str, Kind]] = []
    for n in range(loras + prompts):
        base, _ = load_training_base()
        torch.manual_seed(n)
        if n < loras:
            config: Any = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type=TaskType.CAUSAL_LM)
        else:
            config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=8)
        out = folder / f"a{n}"
        get_peft_model(base, config).save_pretrained(str(out))
        made.append((f"bench_{n}", str(out), "lora" if n < loras else "prompt"))
    return made


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="write the results here as JSON")
    parser.add_argument("--loras", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pg-serving-") as tmp:
        adapters = random_adapters(Path(tmp), args.loras, args.prompts)
        figures = serving_figures(adapters, repeats=args.repeats, rows=args.rows, tokens=args.tokens)
    serving_table(figures)
    write_json(args.out, {"args": vars(args), **figures})


if __name__ == "__main__":
    main()

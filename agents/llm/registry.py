"""One string picks the chat model: "local:smollm2" runs on this machine, "provider:model" anywhere.

Hosted providers go through LangChain's `init_chat_model`; their packages are optional extras
of personagraph, so a missing one is a configuration error that names the extra to install.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from personagraph.memory.errors import ConfigurationError

LOCAL_MODELS = ("smollm2",)
EXTRAS = ("openai", "anthropic", "ollama")  # optional dependencies in pyproject.toml


def parse_spec(spec: str) -> tuple[str, str]:
    """("provider", "model") from "provider:model"; "local" alone means the default local model.

    The model part may hold more colons ("ollama:llama3:8b")."""
    if spec.strip() == "local":
        return "local", LOCAL_MODELS[0]
    provider, sep, model = spec.strip().partition(":")
    if not sep or not provider.strip() or not model.strip():
        raise ConfigurationError(f"chat model {spec!r} is not 'provider:model' (e.g. 'local:smollm2', 'openai:gpt-4o-mini')")
    return provider.strip(), model.strip()


def load_chat_model(spec: str | BaseChatModel, **kwargs: Any) -> BaseChatModel:
    """A chat model from a spec string; a model object passes through unchanged (kwargs unused)."""
    if isinstance(spec, BaseChatModel):
        return spec
    if not isinstance(spec, str):
        raise ConfigurationError(f"a chat model is a 'provider:model' string or a BaseChatModel, not {type(spec).__name__}")
    provider, model = parse_spec(spec)
    if provider == "local":
        if model not in LOCAL_MODELS:
            raise ConfigurationError(f"no local chat model {model!r}; available: {', '.join(LOCAL_MODELS)}")
        from .local import LocalChatModel

        return LocalChatModel(model_name=model, **kwargs)
    from langchain.chat_models import init_chat_model

    try:
        return init_chat_model(model, model_provider=provider, **kwargs)
    except ImportError as exc:
        hint = f"pip install 'personagraph[{provider}]'" if provider in EXTRAS else str(exc)
        raise ConfigurationError(f"chat model {spec!r} needs the {provider} integration: {hint}") from exc
    except ValueError as exc:
        if "Unsupported" not in str(exc):
            raise
        raise ConfigurationError(f"unknown chat model provider {provider!r} in {spec!r}") from exc

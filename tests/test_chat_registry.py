"""`load_chat_model`: one string (or a model object) picks the chat model; mistakes are typed errors."""

from __future__ import annotations

import sys

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from personagraph.agents.llm import LocalChatModel, load_chat_model, parse_spec
from personagraph.memory.errors import ConfigurationError


def test_a_model_object_passes_through() -> None:
    model = FakeListChatModel(responses=["ok"])
    assert load_chat_model(model) is model


@pytest.mark.parametrize("spec", ["local", "local:smollm2", " local:smollm2 "])
def test_local_specs_give_the_local_model_without_loading_it(spec: str) -> None:
    model = load_chat_model(spec, max_new_tokens=7, temperature=0.5)
    assert isinstance(model, LocalChatModel)
    assert (model.model_name, model.max_new_tokens, model.temperature) == ("smollm2", 7, 0.5)


def test_an_unknown_local_model_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="smollm2"):
        load_chat_model("local:gpt2")


@pytest.mark.parametrize("spec", ["", "   ", "gpt-4o", ":gpt-4o", "openai:", "openai: "])
def test_a_malformed_spec_is_a_configuration_error(spec: str) -> None:
    with pytest.raises(ConfigurationError, match="provider:model"):
        load_chat_model(spec)


def test_not_a_string_or_model_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        load_chat_model(42)  # type: ignore[arg-type]


def test_the_model_part_may_hold_colons() -> None:
    assert parse_spec("ollama:llama3:8b") == ("ollama", "llama3:8b")
    assert parse_spec("local") == ("local", "smollm2")


def test_hosted_specs_go_to_init_chat_model_with_the_kwargs(monkeypatch: pytest.MonkeyPatch) -> None:
    import langchain.chat_models

    seen = {}

    def fake_init(model: str, **kwargs: object) -> FakeListChatModel:
        seen.update(model=model, **kwargs)
        return FakeListChatModel(responses=["ok"])

    monkeypatch.setattr(langchain.chat_models, "init_chat_model", fake_init)
    model = load_chat_model("ollama:llama3:8b", temperature=0)
    assert isinstance(model, FakeListChatModel)
    assert seen == {"model": "llama3:8b", "model_provider": "ollama", "temperature": 0}


@pytest.mark.parametrize("provider", ["openai", "anthropic", "ollama"])
def test_a_missing_provider_package_names_the_extra(provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, f"langchain_{provider}", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "langchain_community", None)  # ollama's fallback
    with pytest.raises(ConfigurationError, match=rf"pip install 'personagraph\[{provider}\]'"):
        load_chat_model(f"{provider}:some-model")


def test_a_provider_outside_the_extras_gets_langchains_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain_groq", None)
    with pytest.raises(ConfigurationError, match="pip install langchain-groq"):
        load_chat_model("groq:llama-3.1-8b")


def test_an_unknown_provider_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown chat model provider"):
        load_chat_model("nosuchprovider:model")

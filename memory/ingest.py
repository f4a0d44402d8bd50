"""Read conversations from files into Events: JSON Lines of messages, and LoCoMo samples.

Loaders only parse; writing is the caller's (the CLI, a benchmark). Every problem raises
IngestFormatError naming the file and line, before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .errors import IngestFormatError
from .models import Event, stable_id

LOCOMO_TIME_FORMAT = "%I:%M %p on %d %B, %Y"


def read_jsonl_messages(path: str | Path) -> list[Event]:
    """One JSON object per line with at least `speaker` (or `role`) and `text` (or `content`).

    Optional: `time` (ISO 8601), `thread_id`, `id`, `caption`, `metadata`. Lines without a
    time get one second apart after the previous line, so order is kept.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise IngestFormatError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    events: list[Event] = []
    clock = datetime.now(UTC)
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise IngestFormatError(f"{path}:{line_no}: not JSON ({exc.msg})") from exc
        except RecursionError:
            raise IngestFormatError(f"{path}:{line_no}: nested too deeply to be a message") from None
        if not isinstance(raw, dict):
            raise IngestFormatError(f"{path}:{line_no}: expected an object, got {type(raw).__name__}")
        data = dict(raw)
        if "text" not in data and "content" in data:
            data["text"] = data.pop("content")
        if "speaker" not in data and "role" in data:
            data["speaker"] = data["role"]
        if data.get("role") not in (None, "user", "assistant", "system"):
            data["role"] = "other"
        if "time" not in data:
            # Untimed lines get times from now on, but an id from their place in the file,
            # so ingesting the same file again adds nothing.
            data.setdefault("id", stable_id("evt", path.name, line_no, data.get("speaker"), data.get("text")))
            data["time"] = (clock := clock + timedelta(seconds=1)).isoformat()
        try:
            events.append(Event.model_validate(data))
        except ValidationError as exc:
            fields = ", ".join(".".join(map(str, e["loc"])) or "line" for e in exc.errors())
            raise IngestFormatError(f"{path}:{line_no}: invalid message ({fields}): {exc.errors()[0]['msg']}") from exc
        clock = events[-1].time
    return events


@dataclass
class LocomoSample:
    sample_id: str
    speakers: tuple[str, str]
    events: list[Event]
    qa: list[dict[str, Any]] = field(default_factory=list)


def parse_locomo_time(value: str) -> datetime:
    return datetime.strptime(value.strip(), LOCOMO_TIME_FORMAT).replace(tzinfo=UTC)


def _session_numbers(conversation: dict[str, Any]) -> list[int]:
    """Sessions are the `session_<n>` lists (some files carry dangling date keys)."""
    nums = []
    for key, value in conversation.items():
        parts = key.split("_")
        if len(parts) == 2 and parts[0] == "session" and parts[1].isdigit() and isinstance(value, list):
            nums.append(int(parts[1]))
    return sorted(nums)


def read_locomo(path: str | Path) -> list[LocomoSample]:
    """LoCoMo samples; each turn becomes an Event whose id is `<sample>:<dia_id>`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise IngestFormatError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise IngestFormatError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    except RecursionError:
        raise IngestFormatError(f"{path}: nested too deeply to be a LoCoMo file") from None
    if not isinstance(data, list):
        raise IngestFormatError(f"{path}: a LoCoMo file is a list of samples")
    samples = []
    for n, sample in enumerate(data):
        try:
            samples.append(_locomo_sample(sample))
        except (KeyError, TypeError, ValueError, AttributeError, ValidationError) as exc:
            raise IngestFormatError(f"{path}: sample {n}: {exc}") from exc
    return samples


def _locomo_sample(sample: dict[str, Any]) -> LocomoSample:
    conv = sample["conversation"]
    sample_id = sample["sample_id"]
    events = []
    for session in _session_numbers(conv):
        start = parse_locomo_time(conv[f"session_{session}_date_time"])
        for turn_no, turn in enumerate(conv[f"session_{session}"]):
            events.append(Event(
                id=f"{sample_id}:{turn['dia_id']}",
                speaker=turn["speaker"],
                role="other",
                text=turn["text"],
                time=start + timedelta(seconds=turn_no),  # turns keep their order within a session
                thread_id=f"{sample_id}-s{session}",
                caption=turn.get("blip_caption"),
                metadata={"dia_id": turn["dia_id"], "session": str(session), "sample_id": sample_id},
            ))
    return LocomoSample(sample_id, (conv["speaker_a"], conv["speaker_b"]), events, sample.get("qa", []))


def iter_batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]

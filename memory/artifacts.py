"""Files on disk that belong to records: deleting the record deletes them.

Only adapter weights so far. A folder is removed only when it looks like one that peft saved
(it holds `adapter_config.json`), so a damaged or hand-edited record can never point the
deletion at an unrelated folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from .models import AdapterRecord, Record

WEIGHTS_MARKER = "adapter_config.json"


def remove_weights(records: Iterable[Record]) -> int:
    """Delete the weight folders of the adapter records given; the count of folders removed."""
    removed = 0
    for record in records:
        if not isinstance(record, AdapterRecord) or not record.path:
            continue
        folder = Path(record.path)
        if (folder / WEIGHTS_MARKER).is_file():
            shutil.rmtree(folder)
            removed += 1
    return removed


def weights_left(records: Iterable[Record]) -> int:
    """How many of these adapter records still have a weight folder on disk."""
    return sum(
        1 for r in records if isinstance(r, AdapterRecord) and r.path and Path(r.path).exists()
    )

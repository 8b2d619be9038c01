"""A fingerprint of an item set, so that in-sample scoring is caught.

``surveylm fit`` records the fingerprint of its training items in the model folder
(``model.json``'s ``training_items``); ``surveylm predict`` copies it into the predictions'
Parquet metadata; ``surveylm evaluate`` warns when the items it scores have the same
fingerprint — in-sample fit is not a held-out evaluation (a group marginal scores TV 0.003
on the items it was fitted on, "better" than the noise floor).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from surveylm.items import ItemSet

__all__ = ["items_fingerprint", "read_trained_on", "write_trained_on"]

#: Parquet key-value metadata key of the training items' fingerprint.
PARQUET_KEY = b"surveylm.training_items"


def items_fingerprint(items: ItemSet) -> str:
    """SHA-256 over the items' ids and target distributions (rounded to 1e-9), in order:
    the same items read from the same file give the same fingerprint; held-out
    respondents of the same questions × groups (other targets) do not."""
    h = hashlib.sha256()
    for item_id, target in zip(items.frame["item_id"], items.frame["target"], strict=True):
        h.update(str(item_id).encode())
        if target is not None:
            h.update(np.round(np.asarray(target, dtype=float), 9).tobytes())
    return h.hexdigest()


def write_trained_on(path: str | Path, fingerprint: str | None) -> None:
    """Add ``fingerprint`` to a predictions Parquet file's metadata (rewritten atomically)."""
    if not fingerprint:
        return
    import pyarrow.parquet as pq

    from surveylm.io.atomic import atomic_path

    table = pq.read_table(path)
    meta = {**(table.schema.metadata or {}), PARQUET_KEY: fingerprint.encode()}
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp)


def read_trained_on(path: str | Path) -> str | None:
    """The training items' fingerprint a predictions file carries, if any."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:  # unreadable files are reported by the predictions reader
        return None
    value = meta.get(PARQUET_KEY)
    return value.decode() if value else None

"""`modelbot audit verify` and `modelbot audit export`: read the whole trail in one consistent snapshot (one
request's whole story is bot.usecases.postmortem.request_story)."""

from __future__ import annotations

import csv
import json
from typing import Literal, TextIO

from bot.core.audit import VerifyResult, canonical_json
from bot.store.database import Database

ExportFormat = Literal["jsonl", "csv"]
CSV_COLUMNS = ("seq", "at", "actor", "action", "outcome", "request_id", "model", "detail", "prev_hash", "hash")


def verify(db: Database) -> VerifyResult:
    """Check the whole chain, in seq order, against the recorded head (detects edits, deletions
    anywhere including at the end, and reordering)."""
    with db.uow(readonly=True) as uow:
        return uow.audit.verify()


def export(db: Database, fmt: ExportFormat, out: TextIO) -> int:
    """Write every row in seq order to `out`, as JSON lines or CSV (detail as canonical JSON);
    returns the number of rows. Each row keeps prev_hash and hash, so the export can be verified."""
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown export format {fmt!r} (use jsonl or csv)")
    count = 0
    with db.uow(readonly=True) as uow:
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n") if fmt == "csv" else None
        if writer is not None:
            writer.writeheader()
        for entry in uow.audit.iter_all():
            row = entry.to_dict()
            if writer is None:
                out.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
            else:
                writer.writerow({**row, "detail": canonical_json(row["detail"])})
            count += 1
    return count

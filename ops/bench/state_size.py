"""`python -m ops.bench.state_size`: bytes per credit subject, as stored and as sent to the changelog.

Runs the credit rules over the benchmark's workload (ops/bench/workload.py: 1.5 records per
subject) in batches, as the worker does, with no broker, and writes each batch's changed subjects
through a real `StateTable` (the worker's counts and due index included). It prints, as JSON:

- the mean size of a subject's final document, stored as JSON (the format before) and as stored now;
- the changelog records and bytes (keys plus values, without Kafka's record overhead) per subject,
  for both: before, one JSON document per changed subject per batch; now, what `commit` returns.

.venv/bin/python -m ops.bench.state_size [--subjects N] [--batch N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ops.bench.workload import credit_records
from schemas.events import CreditRecord
from schemas.structs import typed
from services.common.runtime import app as runtime_app
from services.common.runtime.tables import StateTable
from services.credit import rules
from services.credit.state import SUBJECTS, CreditState
from topics.settings import Settings

CITIES = ("320100", "321100", "321000", "320800", "340200", "340500", "341100", "341800")
TODAY = date(2026, 12, 1)
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def decoded(city: str, body: dict[str, Any]) -> CreditRecord:
    """A workload record as the worker sees it once decoded (Avro dates as dates), as its Struct."""
    event = dict(body)
    for field in ("decision_date", "valid_until", "publicity_until"):
        if event.get(field):
            event[field] = date.fromisoformat(event[field])
    at = datetime(2026, 12, 1, tzinfo=UTC)
    event["meta"] = {
        **body["meta"],
        "event_type": "credit.record",
        "source_city": city,
        "source_system": "bench",
        "occurred_at": at,
        "published_at": at,
    }
    return typed(event, CreditRecord)


def subjects_table(data_dir: Path) -> StateTable[CreditState]:
    settings = Settings(data_dir=data_dir, kafka_password="unused")
    app = runtime_app.make_app(SimpleNamespace(settings=settings), "size")  # type: ignore[arg-type]
    raw = app.Table("subjects", default=None, partitions=12, key_type=bytes, value_type=bytes, use_partitioner=True)
    table = StateTable(raw, SUBJECTS)
    table.count_by(lambda state, now: (state.grade,) if state.grade else ())  # as services/credit/app.py
    table.due_by(lambda state, now: rules.next_change(state))
    return table


def measure(subjects: int, batch: int) -> dict[str, Any]:
    records = list(credit_records(int(subjects * 1.5), subjects, CITIES, TODAY))
    before = {"records": 0, "bytes": 0}
    now = {"records": 0, "bytes": 0}
    with tempfile.TemporaryDirectory() as tmp:
        table = subjects_table(Path(tmp))
        for start in range(0, len(records), batch):
            dirty: dict[bytes, CreditState] = {}
            for city, body in records[start : start + batch]:
                event = decoded(city, body)
                key = event.subject.subject_id.encode()
                state = dirty[key] if key in dirty else table.get(key)
                try:
                    new, applied = rules.apply(state, event, UTC)
                except Exception:  # a rejected record (a repair too early): nothing is written
                    continue
                if applied:
                    dirty[key] = new
            for key, state in dirty.items():
                state, _ = rules.evaluate(state, TODAY, bump=False)
                table[key] = state
                before["records"] += 1
                before["bytes"] += len(key) + len(_dumps(SUBJECTS.to_plain(state)).encode())
            for _, _, key, value in table.commit():
                now["records"] += 1
                now["bytes"] += len(key) + len(value or b"")
            table.store({})  # into the store, as once the changelog has taken them
        docs = [(key, doc) for key, doc in table.items() if doc is not None]
        json_bytes = sum(len(_dumps(SUBJECTS.to_plain(doc)).encode()) for _, doc in docs)
        stored_bytes = sum(len(table.table.get(key)) for key, _ in docs)
    n = len(docs)
    return {
        "subjects": n,
        "input_records": len(records),
        "document_bytes_per_subject": {"json": round(json_bytes / n, 1), "stored": round(stored_bytes / n, 1)},
        "changelog_records_per_subject": {
            "json": round(before["records"] / n, 3),
            "stored": round(now["records"] / n, 3),
        },
        "changelog_bytes_per_subject": {"json": round(before["bytes"] / n, 1), "stored": round(now["bytes"] / n, 1)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.state_size", description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2_000, help="records per batch, as the worker's fetch")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.subjects, args.batch)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`tongcheng bench provenance`: the cost of signing and verifying one event, without a broker.

Realistic credit records (ops/bench/workload.py) are encoded as they go on the wire (Confluent
framing, schema id 1 from a stand-in registry), then each is signed and verified one at a time with
the keys of a throwaway data directory. Printed: the median and p99 over --records events of
  sign     Signer.headers(): the Ed25519 signature and the two headers, as the publisher adds them
  verify   Verifier.check(): headers found, key looked up, base64 decoded, signature checked, city
           compared, as a processor or a verifying subscriber does per record
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from ops.bench.report import machine, percentile
from ops.bench.workload import credit_records
from schemas.codec import Codec
from services.common.keys import ensure_keys
from topics import kafka_auth
from topics.acls import principals
from topics.context import build_context
from topics.provenance import Signer
from topics.publisher import Publisher
from topics.settings import Settings

QUICK_RECORDS = 5_000
FULL_RECORDS = 20_000


class OneSchema:
    """A registry stand-in: every subject has schema id 1 (the wire bytes are still realistic)."""

    def register(self, subject: str, schema_text: str) -> int:
        return 1

    def schema_text(self, schema_id: int) -> str:
        raise LookupError(schema_id)


def say(message: str) -> None:
    print(message, flush=True)


def micro(us: list[float]) -> dict[str, float]:
    p99 = percentile(us, 0.99)
    return {"median_us": round(statistics.median(us), 1), "p99_us": round(p99 or 0.0, 1)}


def run(settings: Settings, args: argparse.Namespace) -> int:
    count = int(getattr(args, "records", None) or (QUICK_RECORDS if getattr(args, "quick", False) else FULL_RECORDS))
    with tempfile.TemporaryDirectory(prefix="tongcheng-bench-prov-") as tmp:
        ctx = build_context(settings.with_(data_dir=Path(tmp), roster_keys_file=None, signing_key_file=None))
        ctx.codec = Codec(ctx.schemas, OneSchema())
        ensure_keys(ctx)
        # the publishers only encode here, but a publisher is made with its Kafka credentials
        kafka_auth.secret_store(ctx.settings).ensure(principals(ctx.settings))
        topic = ctx.topics.topic("credit.record")
        publishers = {c: Publisher(ctx, c, "tongcheng-bench", sign=False) for c in ctx.circle.codes}
        signers = {c: Signer.for_city(ctx.settings, ctx.circle, c) for c in ctx.circle.codes}
        records = [
            (city, publishers[city].prepare("credit.record", body).value)
            for city, body in credit_records(count, count, ctx.circle.codes, date(2026, 11, 22), seed=7)
        ]
        say(
            f"bench provenance: {count} credit records ({statistics.mean(len(v) for _, v in records):.0f} bytes "
            f"on average), Ed25519 keys of {len(signers)} cities"
        )
        verifier = ctx.verifier
        clock = time.perf_counter_ns
        sign_us, verify_us, signed = [], [], []
        for city, value in records:
            began = clock()
            headers = signers[city].headers(topic, value)
            sign_us.append((clock() - began) / 1000)
            signed.append((city, value, headers))
        for city, value, headers in signed:
            began = clock()
            verifier.check(topic, value, headers, city)
            verify_us.append((clock() - began) / 1000)
    sign, verify = micro(sign_us), micro(verify_us)
    say(f"sign:    median {sign['median_us']} µs, p99 {sign['p99_us']} µs per event")
    say(f"verify:  median {verify['median_us']} µs, p99 {verify['p99_us']} µs per event")
    out = {"processor": "provenance", "records": count, "sign": sign, "verify": verify}
    say(machine())
    say(json.dumps(out))
    return 0

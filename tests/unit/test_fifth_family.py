"""A fifth event family takes at most 6 files (CONTRIBUTING.md): in a copy of the project, a toy
family (`toy.ping`, owned by a new processor `toy`) is added by writing exactly the files the how-to
names; the generated files are made by `tongcheng k8s generate`, as a contributor would; then, with
the copy on PYTHONPATH, its round trip runs (encoded by the project's codec, checked by the
contract, counted by the toy's rules) and the declarations' readers list the toy: the CLI, `up`,
the Kubernetes manifests, the Prometheus scrape files, the ACLs, the README. Last, the copy's own
checks of its declarations pass with the toy in it (`DECLARATION_CHECKS`): a file the how-to forgot
would fail them (the compose check, the examples' check, the generated files' checks)."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 6
IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", ".mypy_cache", ".ruff_cache", "node_modules"
)

SCHEMA = """{
  "type": "record",
  "name": "ToyPing",
  "namespace": "tongcheng.v1",
  "doc": "A city says how many pings it saw (toy.ping, a test's toy family).",
  "fields": [
    {"name": "meta", "type": "tongcheng.v1.Meta"},
    {"name": "ping_id", "type": "string"},
    {"name": "city", "type": "string"},
    {"name": "count", "type": "int"}
  ]
}
"""
EXAMPLE = '{"ping_id": "PING-1", "city": "320100", "count": 2}\n'
PROCESSOR = '''"""The toy processor: toy.ping -> a running total per ping_id."""

from __future__ import annotations

import faust
import msgspec

from schemas.events import Meta
from schemas.structs import Event
from services.common.runtime import Record, StreamService, Verdict, run_worker
from services.registry import processor
from topics.context import Context
from topics.metrics import Metrics
from topics.settings import Settings

SERVICE = "toy"


class ToyPing(Event, frozen=True, kw_only=True):
    """toy.ping as its Struct (schemas/avro/ToyPing.avsc): the runtime hands the rules this."""

    meta: Meta
    ping_id: str
    city: str
    count: int


class PingTotal(msgspec.Struct, frozen=True, kw_only=True):
    """What the `pings` table keeps per ping_id."""

    ping_id: str
    total: int = 0
    events: list[str] = msgspec.field(default_factory=list)


def apply(state: PingTotal | None, ping: ToyPing) -> tuple[PingTotal, bool]:
    """The rule: a ping adds its count to its ping_id's total, once per event."""
    state = state or PingTotal(ping_id=ping.ping_id)
    if ping.meta.event_id in state.events:
        return state, False
    events = [*state.events, ping.meta.event_id]
    return msgspec.structs.replace(state, total=state.total + ping.count, events=events), True


class ToyService(StreamService):
    SERVICE = SERVICE

    def __init__(self, ctx: Context, metrics: Metrics, app: faust.App | None = None) -> None:
        super().__init__(ctx, metrics, app)
        self.pings = self.proc.table("pings", self.partitions("toy.ping"), PingTotal)
        self.agent("toy.ping", self.each_event("toy.ping", self.count))

    async def count(self, event: Record, ping: ToyPing) -> Verdict:
        key = ping.ping_id.encode()
        state, applied = apply(self.pings.get(key), ping)
        if not applied:
            return "duplicate"
        self.pings[key] = state
        return "applied"


def run(settings: Settings) -> int:
    return run_worker(settings, ToyService, processor(SERVICE).metrics_offset)
'''
SPEC = """    ProcessorSpec(
        "toy",
        "services.toy",
        6,
        "toy pings -> a running total per ping_id",
        tables=("pings",),
        rules="services.toy",
    ),
)

#: name -> its declaration"""
COMPOSE = """  worker-toy:
    <<: *tongcheng
    command: ["tongcheng", "worker", "toy"]
    healthcheck:
      test: ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen(URL, timeout=3)"]
      interval: 15s
      timeout: 5s
      retries: 4
      start_period: 60s

  api:
""".replace("URL", "'http://127.0.0.1:9406/metrics'")

#: what `tongcheng k8s generate` rewrites: never counted, never written by hand
GENERATED = {
    "README.md",
    "ops/prometheus/prometheus.yml",
    "ops/prometheus/compose.yml",
    *(f"ops/k8s/{p.name}" for p in (ROOT / "ops" / "k8s").glob("*.yaml")),
}

ROUND_TRIP = r"""
import json
from datetime import UTC, datetime

from ops import declared, kubernetes
from ops.cli import build_parser
from ops.cli.processes import available_workers
from schemas.catalogue import SchemaCatalogue
from schemas.codec import Codec
from services.registry import processor
from topics import acls
from topics.catalog import EVENT_TYPES, OWNER, Catalog
from topics.circle import load_circle
from topics.clock import ManualClock
from topics.validation import Validator
import importlib

class FixedIds:
    def __init__(self, catalogue): self.catalogue = catalogue
    def register(self, subject, text): return 7
    def schema_text(self, schema_id): return self.catalogue.text("ToyPing")

spec = processor("toy")
assert spec.owns == ("toy.ping",) and spec.reads == ("toy.ping",) and OWNER["toy.ping"] == "toy"
kind = EVENT_TYPES["toy.ping"]
catalogue = SchemaCatalogue()
clock = ManualClock(datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
validator = Validator(load_circle(), catalogue, clock, "salt")
now = int(clock.now().timestamp() * 1000)
body = json.load(open("topics/examples/toy.ping.json"))
body["meta"] = {"event_id": "6f1c2a7e-8d3b-4f0a-9c5e-1b2d3e4f5a6b", "event_type": "toy.ping",
                "source_city": "320100", "source_system": "test", "occurred_at": now, "published_at": now}
event = validator.from_json("toy.ping", body)
codec = Codec(catalogue, FixedIds(catalogue))
topics = Catalog()
wire = codec.encode(topics.topic("toy.ping") + "-value", kind.schema, event)
decoded = codec.decode(wire, kind.schema)
assert decoded == event and kind.key_of(decoded) == "PING-1"
validator.check("toy.ping", decoded)
rules = importlib.import_module(spec.rules)
from schemas.structs import BY_SCHEMA, typed
ping = typed(decoded, BY_SCHEMA[kind.schema])
assert type(ping) is rules.ToyPing
state, applied = rules.apply(None, ping)
assert applied and state.total == 2
again, applied = rules.apply(state, ping)
assert not applied and again == state
other = typed({**decoded, "meta": {**decoded["meta"], "event_id": "e2"}, "count": 3}, rules.ToyPing)
state, applied = rules.apply(state, other)
assert applied and state.total == 5
assert callable(importlib.import_module(spec.module).run)

names = {s.name for s in topics.specs()}
assert {"njmc.toy.ping.v1", "njmc.toy.ping.accepted.v1", "njmc.toy.ping.v1.dlq"} <= names
bindings = acls.bindings("njmc", ["320100"])
assert acls.Binding("User:toy", "TOPIC", "njmc.toy.ping.v1", "LITERAL", "READ") in bindings
assert acls.Binding("User:toy", "TOPIC", "njmc.toy.ping.accepted.v1", "LITERAL", "WRITE") in bindings
assert acls.Binding("User:city-320100", "TOPIC", "njmc.toy.ping.v1", "LITERAL", "WRITE") in bindings
parser = build_parser()
assert parser.parse_args(["worker", "toy"]).service == "toy" and "toy" in available_workers()
help_text = next(a for a in parser._subparsers._group_actions[0].choices["worker"]._actions if a.dest == "service").help
assert "toy" in help_text, help_text
workers = kubernetes.manifests()["workers.yaml"]
assert "name: worker-toy" in workers and "containerPort: 9406" in workers
assert "User:toy" not in kubernetes.manifests()["users.yaml"] and "name: toy" in kubernetes.manifests()["users.yaml"]
assert '"worker-toy:9406"' in declared.scrape_config("compose.yml")
assert "| `toy` |" in declared.processor_table()
print("toy round trip ok")
"""


def add_toy_family(copy: Path) -> set[str]:
    """Write the toy family into `copy` as CONTRIBUTING.md says; the paths written, relative."""
    written: set[str] = set()

    def new(rel: str, text: str) -> None:
        path = copy / rel
        assert not path.exists(), f"{rel} exists already"
        path.write_text(text, encoding="utf-8")
        written.add(rel)

    def edit(rel: str, old: str, replacement: str) -> None:
        path = copy / rel
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{rel}: the anchor {old!r} is not there once"
        path.write_text(text.replace(old, replacement), encoding="utf-8")
        written.add(rel)

    new("schemas/avro/ToyPing.avsc", SCHEMA)
    new("topics/examples/toy.ping.json", EXAMPLE)
    catalog = "topics/catalog.py"
    edit(catalog, "    )\n}\n", '        EventType("toy.ping", "ToyPing", ("ping_id",), 3),\n    )\n}\n')
    milestone = '    "project.milestone": "supervision",\n'
    edit(catalog, milestone, milestone + '    "toy.ping": "toy",\n')
    new("services/toy.py", PROCESSOR)
    edit("services/registry.py", ")\n\n#: name -> its declaration", SPEC)
    edit("docker-compose.yml", "  api:\n", COMPOSE)
    return written


def changed_files(before: Path, after: Path) -> set[str]:
    """The files that differ between two trees (new, changed or removed), relative."""

    def walk(cmp: filecmp.dircmp[str], rel: Path) -> set[str]:
        out = {str(rel / n) for n in (*cmp.left_only, *cmp.right_only, *cmp.diff_files, *cmp.funny_files)}
        for name, sub in cmp.subdirs.items():
            out |= walk(sub, rel / name)
        return out

    return walk(filecmp.dircmp(before, after, ignore=["__pycache__"]), Path("."))


#: the unit tests that check the project against its declarations
DECLARATION_CHECKS = (
    "registry",
    "acls",
    "codec",
    "events",
    "schema_compat",
    "validation",
    "compose",
    "k8s",
    "prometheus_rules",
)


def run(copy: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("TONGCHENG_")}
    return subprocess.run([sys.executable, *argv], cwd=copy, env=env, capture_output=True, text=True, timeout=600)


def test_a_fifth_family_takes_at_most_six_files(tmp_path: Path) -> None:
    pristine, copy = tmp_path / "pristine", tmp_path / "copy"
    shutil.copytree(ROOT, pristine, ignore=IGNORE)
    shutil.copytree(pristine, copy)

    written = add_toy_family(copy)
    assert len(written) <= LIMIT, sorted(written)

    generate = run(copy, "-m", "ops.cli", "k8s", "generate")
    assert generate.returncode == 0, generate.stderr
    changed = changed_files(pristine, copy)
    # nothing else was touched, and the generator rewrote only generated files
    assert changed - GENERATED == written, sorted(changed - GENERATED - written)
    assert {"ops/k8s/workers.yaml", "ops/prometheus/compose.yml", "README.md"} <= changed

    trip = run(copy, "-c", ROUND_TRIP)
    assert trip.returncode == 0 and "toy round trip ok" in trip.stdout, trip.stdout + trip.stderr

    # the project's own checks of its declarations accept the toy: catalogue, schemas, examples,
    # ACLs, ports, compose, Kubernetes, Prometheus
    checks = [f"tests/unit/test_{name}.py" for name in DECLARATION_CHECKS]
    suite = run(copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", *checks)
    assert suite.returncode == 0, suite.stdout[-4000:] + suite.stderr[-2000:]

"""`tongcheng`: the command line (DESIGN.md section 6)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import IO, Any

from kafka.errors import KafkaError

from ops.bus import apply_acls, provision_bus, register_schemas
from schemas.errors import ConfigError, Reason, Rejected, TongchengError
from services import WORKERS
from services.common.shutdown import StopFlag
from topics.circle import CircleFileError
from topics.context import build_context
from topics.settings import ENV, Settings

INSECURE_HELP = "listen with PLAINTEXT, without authentication or ACLs (logs a warning)"


def principal_of(args: argparse.Namespace, settings: Settings) -> str:
    """The Kafka principal a command runs as unless TONGCHENG_KAFKA_USER says otherwise."""
    from topics.kafka_auth import ADMIN, city_principal

    if args.command == "worker":
        return str(args.service)
    if args.command == "api":
        return "api"
    if args.command == "lag-exporter":
        return "lag"
    city = getattr(args, "city", None) or settings.city
    if args.command in ("publish", "inbox") and city:
        return city_principal(city)
    return ADMIN


def say(message: str) -> None:
    print(message, flush=True)


def err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- broker ----------------------------------------------------------------------------------


def insecure(settings: Settings, args: argparse.Namespace) -> Settings:
    """The settings with PLAINTEXT when `--insecure-plaintext` asks for it, and the warning."""
    if getattr(args, "insecure_plaintext", False):
        settings = settings.with_(security_protocol="PLAINTEXT")
    if settings.insecure:
        err(
            "WARNING: insecure mode: the broker listens with PLAINTEXT, without authentication or ACLs "
            f"({ENV['security_protocol']}=PLAINTEXT); never expose it beyond this machine"
        )
    return settings


def cmd_broker(settings: Settings, args: argparse.Namespace) -> int:
    from ops.broker import local

    if args.action == "start":
        if args.nodes:
            settings = settings.with_(broker_nodes=args.nodes)
        local.start(insecure(settings, args), say)
        if settings.broker_nodes > 1:
            say(
                f"cluster  other commands reach it with {ENV['broker_nodes']}={settings.broker_nodes} "
                f"(replication {settings.replication_factor}, min.insync.replicas {settings.min_insync_replicas})"
            )
    elif args.action == "secrets":
        from topics import acls, kafka_auth

        users = acls.principals(settings)
        kafka_auth.secret_store(settings).ensure(users)
        say(f"SCRAM secrets of {len(users)} users in {settings.secrets_file} (existing ones kept)")
    elif args.action == "stop":
        local.stop(settings, say)
    else:
        for name, version, endpoint, state in local.status(settings):
            say(f"{name:9} {version:16} {endpoint:45} {state}")
    return 0


# --- topics and schemas ----------------------------------------------------------------------


def cmd_topics(settings: Settings, args: argparse.Namespace) -> int:
    from topics import provision

    ctx = build_context(settings)
    admin = provision.admin_client(settings)
    try:
        if args.action == "apply":
            from services.common.keys import ensure_keys

            made = ensure_keys(ctx)  # what the services sign and verify with (compose's init runs this)
            if made:
                say(f"keys     made {len(made)} signing key(s) in {settings.keys_dir} (`tongcheng keys list`)")
            report = provision.apply(ctx.topics, admin)
            for line in report.lines():
                say(line)
            if not args.no_acls:
                apply_acls(ctx, admin, say)
            return 3 if report.drift else 0
        for name, actual, declared, policy in provision.list_topics(ctx.topics, admin):
            state = "MISSING" if actual is None else f"{actual} partitions"
            say(f"{name:42} {state:14} declared {declared}, {policy}")
        return 0
    finally:
        admin.close()


def cmd_schemas(settings: Settings, args: argparse.Namespace) -> int:
    from schemas import compat
    from schemas.codec import SchemaCatalogue

    if args.action == "register":
        for subject, schema_id in register_schemas(build_context(settings)):
            say(f"registered {subject:48} id {schema_id}")
        return 0
    current = SchemaCatalogue()
    checked, breaks = compat.check(current, compat.historical_catalogues())
    for b in breaks:
        err(f"BREAK {b}")
    say(
        f"{len(current.event_schemas)} schemas, {checked} earlier versions checked, {len(breaks)} breaking "
        "(FULL_TRANSITIVE)"
    )
    return 1 if breaks else 0


# --- authentication and ACLs ----------------------------------------------------------------


def cmd_acl(settings: Settings, args: argparse.Namespace) -> int:
    from topics import acl_sync, acls, provision

    if settings.insecure:
        err(f"{ENV['security_protocol']}=PLAINTEXT: the insecure broker has no authorizer and no ACLs")
        return 2
    ctx = build_context(settings)
    admin = provision.admin_client(settings)
    try:
        if args.action == "apply":
            apply_acls(ctx, admin, say, verbose=True)
            return 0
        result, _ = acl_sync.diff(admin, ctx.topics.prefix, acls.city_codes(settings))
        for line in result.lines():
            say(line)
        return 0 if result.clean else 1
    finally:
        admin.close()


def cmd_city(settings: Settings, args: argparse.Namespace) -> int:
    from topics import acl_sync, provision

    ctx = build_context(settings)
    if not ctx.circle.is_member(args.city):
        err(f"{args.city} is not a member city of {ctx.circle.code}: {', '.join(ctx.circle.codes)}")
        return 2
    admin = provision.admin_client(settings)
    try:
        user, secret = acl_sync.rotate(admin, settings, args.city)
    finally:
        admin.close()
    say(secret)
    err(
        f"new SCRAM-SHA-512 secret of Kafka user {user} (the previous one no longer works), stored in "
        f"{settings.secrets_file}; it is shown only once"
    )
    return 0


def cmd_certs(settings: Settings, args: argparse.Namespace) -> int:
    from ops import certs

    hosts = list(dict.fromkeys([*certs.DEFAULT_HOSTS, *(args.host or [])]))
    for path in certs.generate(settings.data_dir, hosts, days=args.days, force=args.force):
        say(f"wrote {path}")
    say(f"broker certificate for {', '.join(hosts)}, valid {args.days} days; clients trust {ENV['ssl_cafile']}")
    return 0


# --- publish and tail ------------------------------------------------------------------------


def _read_events(stream: IO[str]) -> Iterator[tuple[int, Any]]:
    """One JSON object, a JSON array, or JSON Lines; yields (line number, object or error)."""
    text = stream.read()
    stripped = text.strip()
    if not stripped:
        return
    try:
        whole = json.loads(stripped)
        if isinstance(whole, list):
            yield from ((i + 1, obj) for i, obj in enumerate(whole))
        else:
            yield 1, whole
        return
    except json.JSONDecodeError:
        pass
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                # keep this line's error and go on with the rest
                yield number, Rejected(Reason.SCHEMA_INVALID, f"not JSON: {exc.msg} at column {exc.colno}")


def cmd_publish(settings: Settings, args: argparse.Namespace) -> int:
    from topics.publisher import Publisher

    city = args.city or settings.city
    if not city:
        err(f"publish needs the publishing city: --city CODE or {ENV['city']}")
        return 2
    stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    sent, refused = 0, Counter[str]()
    with stream, Publisher.for_city(settings, city, args.source_system, sign=not args.unsigned) as pub:
        for line, obj in _read_events(stream):
            if isinstance(obj, Rejected):
                err(f"line {line}: refused: {obj.reason.value}: {obj.detail}")
                refused[obj.reason.value] += 1
                continue
            try:
                event_id = pub.publish(args.type, obj)
            except Rejected as exc:
                err(f"line {line}: refused: {exc.reason.value}: {exc.detail}")
                refused[exc.reason.value] += 1
                continue
            sent += 1
            say(f"line {line}: published {event_id}")
    reasons = ", ".join(f"{r} {n}" for r, n in sorted(refused.items()))
    say(f"published {sent}, refused {sum(refused.values())}" + (f" ({reasons})" if reasons else ""))
    return 1 if refused else 0


def cmd_tail(settings: Settings, args: argparse.Namespace) -> int:
    from topics.subscriber import Subscriber, dumps

    ctx = build_context(settings)
    sub = Subscriber(ctx, [args.topic], from_beginning=args.from_beginning)
    seen = 0
    idle_since = time.monotonic()
    try:
        while args.max is None or seen < args.max:
            batch = sub.poll(timeout_ms=500)
            if not batch:
                if args.idle_timeout and time.monotonic() - idle_since > args.idle_timeout:
                    break
                continue
            idle_since = time.monotonic()
            for delivery in batch:
                print(dumps(delivery), flush=True)
                seen += 1
                if args.max is not None and seen >= args.max:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        sub.close()
    return 0


def cmd_docs(settings: Settings, args: argparse.Namespace) -> int:
    from topics.asyncapi import document

    text = json.dumps(document(build_context(settings)), ensure_ascii=False, indent=2) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)
        err(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_inbox(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from consumers.inbox import TEXT, Inbox

    ctx = build_context(settings)
    lang = args.lang or settings.lang
    t = TEXT[lang]
    inbox = Inbox(ctx, args.city, outcome=args.feedback, group_id=args.group)  # refuses a city not a member
    city = ctx.circle.cities[args.city]

    def city_name(code: str) -> str:
        known = ctx.circle.cities.get(code)
        if known is None:
            return code
        return f"{known.name_zh}（{code}）" if lang == "zh-CN" else f"{known.name} ({code})"

    err(
        t["title"].format(city=city.name_zh if lang == "zh-CN" else city.name, code=args.city)
        + (t["feedback"].format(outcome=args.feedback) if args.feedback else "")
        + (t["once"] if args.once else t["follow"])
    )

    def show(item: Any) -> None:
        if args.json:
            print(json.dumps(item.as_json(), ensure_ascii=False), flush=True)
        else:
            print(item.text(city_name, lang), flush=True)

    stop = StopFlag()
    try:
        shown = inbox.run(show, stop, once=args.once)
    finally:
        inbox.close()
    err(t["shown"].format(n=shown) + (t["undecodable"].format(n=inbox.undecodable) if inbox.undecodable else ""))
    return 0


# --- api and tokens --------------------------------------------------------------------------


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from services.api.tokens import TokenStore

    assert settings.tokens_file is not None
    store = TokenStore(settings.tokens_file)
    now = datetime.now(UTC)
    if args.action == "issue":
        ctx = build_context(settings)
        if not args.target or not ctx.circle.is_member(args.target):
            err(f"token issue needs a member city of {ctx.circle.code}: {', '.join(ctx.circle.codes)}")
            return 2
        scopes = tuple(s for part in args.scope or ["publish,read"] for s in part.split(",") if s)
        try:
            token, clear = store.issue(
                args.target, scopes, timedelta(days=args.ttl_days), args.label or "", args.rate, now
            )
        except ValueError as exc:
            err(f"token issue: {exc}")
            return 2
        say(clear)
        err(
            f"token {token.id} for city {token.city}, scopes {','.join(token.scopes)}, expires "
            f"{token.expires_at.isoformat()}; stored hashed in {settings.tokens_file}; shown only once. "
            "A running API accepts it from its next request on."
        )
        return 0
    if args.action == "revoke":
        if not args.target:
            err("token revoke needs a TOKEN_ID (see `tongcheng token list`)")
            return 2
        try:
            token = store.revoke(args.target, now)
        except KeyError:
            err(f"no token {args.target!r} in {settings.tokens_file}; see `tongcheng token list`")
            return 2
        say(f"token {token.id} ({token.city}) revoked at {token.revoked_at}")
        err("a running API refuses it from its next request on")
        return 0
    rows = [t.public(now) for t in store.tokens()]
    if args.json:
        say(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        say(f"{'id':10} {'city':7} {'state':8} {'scopes':26} {'expires_at':21} label")
        for r in rows:
            joined = ",".join(r["scopes"])
            say(f"{r['id']:10} {r['city']:7} {r['state']:8} {joined:26} {r['expires_at']:21} {r['label']}")
    if store.legacy:
        err(f"{store.legacy} token(s) from before scopes and expiry are never accepted: issue new ones")
    return 0


def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    from services.common.keys import KeyStore

    store = KeyStore(settings)
    if args.action in ("rotate", "retire", "add") and not args.city:
        err(f"keys {args.action} needs a CITY")
        return 2
    if args.action == "init":
        made = store.ensure()
        say(f"made {len(made)} key(s)" + "".join(f"\n  {kid}" for kid in made))
    elif args.action == "rotate":
        say(f"{store.rotate(args.city)}: new signing key of {args.city}; the old one stays valid until retired")
    elif args.action == "retire":
        if not args.kid:
            err("keys retire needs CITY KID")
            return 2
        store.retire(args.city, args.kid)
        say(f"{args.kid} retired: records signed with it are refused from now on")
    elif args.action == "add":
        if not args.kid:
            err("keys add needs CITY PUBLIC_KEY (base64 of the raw 32-byte Ed25519 public key)")
            return 2
        say(f"{store.add(args.city, args.kid)}: in the roster keys file {store.roster_file}")
    else:
        for r in store.rows():
            private = "private key here" if r.private else "public only"
            say(f"{r.kid:26} {r.where:17} {private:16} {r.added_at}")
    return 0


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from services.api.server import build_app

    app = build_app(settings)
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="warning")
    return 0


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    from services.readmodel.db import current_revision, head_revision, make_engine, migrate

    engine = make_engine(settings.database_url)
    where = engine.url.render_as_string(hide_password=True)
    try:
        if args.action == "upgrade":
            say(f"read model at migration {migrate(engine)} (head) on {where}")
            return 0
        current, head = current_revision(engine), head_revision()
        say(f"read model on {where}: migration {current or 'none'}, newest {head}")
        return 0 if current == head else 1
    finally:
        engine.dispose()


# --- up --------------------------------------------------------------------------------------


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from ops.broker import local
    from services.supervisor import Child, Supervisor

    settings = insecure(settings, args)
    if args.cluster:
        settings = settings.with_(broker_nodes=3)
    local.start(settings, say)
    provision_bus(build_context(settings), say)
    cmd_db(settings, argparse.Namespace(action="upgrade"))
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    tongcheng = [sys.executable, "-m", "ops.cli"]
    env = {ENV["security_protocol"]: "PLAINTEXT"} if settings.insecure else {}
    if args.cluster:  # every child on the three nodes, with the cluster's replication
        env[ENV["broker_nodes"]] = str(settings.broker_nodes)
    children = [Child(n, [*tongcheng, "worker", n], logs / f"worker-{n}.log", env=env) for n in available_workers()]
    children += [Child(n, [*tongcheng, n], logs / f"{n}.log", env=env) for n in ("api", "lag-exporter")]
    if args.demo:
        rate, week = f"{args.demo_rate:g}", str(7 * 86400)
        simulate = [*tongcheng, "simulate", "--rate", rate, "--seconds", week]
        children.append(Child("simulate", simulate, logs / "simulate.log", restart="on-failure", env=env))
        say(f"demo     {rate} events/s of simulated traffic from every city, some of it bad")
    say(f"api      http://{settings.api_host}:{settings.api_port} (OpenAPI at /docs, metrics at /metrics)")
    supervisor = Supervisor(children, logs / "up-status.json", say, err)
    stop = StopFlag()
    try:
        supervisor.start()
        say(f"status   http://{settings.api_host}:{settings.api_port}/ (the scoreboard, open emergencies, lists)")
        say(f"status   {logs / 'up-status.json'} (every child: pid, state, uptime, restarts)")
        say("up: a child that dies is restarted; press Ctrl-C to stop everything")
        supervisor.run(stop)
    finally:
        supervisor.stop_all()
        local.stop(settings, say)
    return 0


def available_workers() -> list[str]:
    return list(WORKERS)


def cmd_k8s(settings: Settings, args: argparse.Namespace) -> int:
    from ops import kubernetes

    if args.action == "generate":
        for path in kubernetes.write():
            say(f"wrote {path}")
        return 0
    stale = kubernetes.stale()
    for name in stale:
        err(f"ops/k8s/{name} differs from the declarations: run `tongcheng k8s generate`")
    if not stale:
        say("ops/k8s/ matches the declarations")
    return 1 if stale else 0


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from ops.simulate import Simulation

    ctx = build_context(settings)
    sim = Simulation(ctx, args.rate, args.seconds, args.bad, args.seed, sign=not args.unsigned)
    say(
        f"simulate: {args.rate:g} events/s from {len(ctx.circle.codes)} cities for {args.seconds:g}s, "
        f"{args.bad:.0%} bad input; Ctrl-C stops early"
    )
    summary = sim.run(say, StopFlag())
    say(
        f"sent {sum(summary['sent'].values())} events in {summary['seconds']}s: "
        + ", ".join(f"{k} {v}" for k, v in summary["sent"].items())
    )
    say(
        f"refused by the SDK: {sum(summary['refused'].values())}"
        + "".join(f"\n  {reason}: {n}" for reason, n in summary["refused"].items())
    )
    say(
        f"sent for the processors to refuse (see the DLQs): {sum(summary['sent_for_the_dlq'].values())}"
        + "".join(f"\n  {reason}: {n}" for reason, n in summary["sent_for_the_dlq"].items())
    )
    if summary["failed"]:
        err(f"not acknowledged by the broker: {summary['failed']}")
        return 1
    return 0


def cmd_lag_exporter(settings: Settings, args: argparse.Namespace) -> int:
    from ops import lag_exporter

    return lag_exporter.run(settings, args.port or settings.lag_port)


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    from ops.bench.run import run

    return int(run(settings, args))


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    import importlib

    if args.service not in available_workers():
        err(f"unknown service {args.service!r}; available: {', '.join(available_workers()) or 'none'}")
        return 2
    module = importlib.import_module(f"services.{args.service}.app")
    return int(module.run(settings) or 0)


# --- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tongcheng", description="Tongcheng: the event bus of a metropolitan circle.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("inbox", help="a city's sanction inbox: the measures to apply or lift, with optional feedback")
    p.add_argument("--city", required=True, help="the member city's code, e.g. 320100")
    p.add_argument(
        "--feedback",
        choices=["APPLIED", "HIT", "NOT_APPLICABLE", "OBJECTION"],
        help="report this outcome for every measure of every new listing",
    )
    p.add_argument("--once", action="store_true", help="stop when caught up instead of waiting for more")
    p.add_argument("--json", action="store_true", help="one JSON object per work item")
    p.add_argument(
        "--lang",
        choices=["zh-CN", "en"],
        help="the language of the work items (default: TONGCHENG_LANG, else the locale, LANG; English otherwise)",
    )
    p.add_argument(
        "--group",
        help="consumer group (default <prefix>.city-<city>.inbox; a city may use only groups under "
        "<prefix>.city-<city>.); a new group starts over",
    )
    p.set_defaults(func=cmd_inbox)

    p = sub.add_parser("docs", help="documents generated from the code: asyncapi, the topics as AsyncAPI 3.0 JSON")
    p.add_argument("kind", choices=["asyncapi"])
    p.add_argument("--out", help="write to this file instead of standard output")
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("up", help="start broker, registry, topics, schemas, processors, API; restart what dies")
    p.add_argument("--demo", action="store_true", help="also run `simulate`: traffic from every city, some bad")
    p.add_argument("--demo-rate", type=float, default=20.0, help="events per second with --demo (default 20)")
    p.add_argument("--insecure-plaintext", action="store_true", help=INSECURE_HELP)
    p.add_argument(
        "--cluster",
        action="store_true",
        help="three KRaft nodes on loopback, topics with replication 3 and min.insync.replicas 2 "
        f"(as {ENV['broker_nodes']}=3)",
    )
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("broker", help="the local Kafka broker and Apicurio registry")
    p.add_argument(
        "action",
        choices=["start", "stop", "status", "secrets"],
        help="secrets: only write the secrets file (admin, services, cities), for a broker run elsewhere",
    )
    p.add_argument("--insecure-plaintext", action="store_true", help=INSECURE_HELP)
    p.add_argument(
        "--nodes",
        type=int,
        choices=[1, 3],
        help=f"start: 1 KRaft node, or 3 on loopback (replication 3); default {ENV['broker_nodes']} (1)",
    )
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("topics", help="provision (with the SCRAM users and ACLs) or list the catalogue's topics")
    p.add_argument("action", choices=["apply", "list"])
    p.add_argument("--no-acls", action="store_true", help="topics only, without the users and ACLs of topics/acls.py")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("acl", help="the ACLs of topics/acls.py: show the drift (exit 1 if any), or apply them")
    p.add_argument("action", choices=["diff", "apply"])
    p.set_defaults(func=cmd_acl)

    p = sub.add_parser("city", help="a member city's Kafka credentials")
    p.add_argument("action", choices=["credentials"])
    p.add_argument("city", help="the city code, e.g. 320100")
    p.set_defaults(func=cmd_city)

    p = sub.add_parser("certs", help="generate the CA and broker certificate of the production profile's SASL_SSL")
    p.add_argument("action", choices=["generate"])
    p.add_argument("--host", action="append", help="a host name or address of the broker (repeatable)")
    p.add_argument("--days", type=int, default=825, help="validity in days (default 825)")
    p.add_argument("--force", action="store_true", help="replace existing certificates")
    p.set_defaults(func=cmd_certs)

    p = sub.add_parser("schemas", help="check compatibility with git history, or register the schemas")
    p.add_argument("action", choices=["check", "register"])
    p.set_defaults(func=cmd_schemas)

    p = sub.add_parser("publish", help="publish events from JSON (one object, an array, or JSON Lines) as a city")
    p.add_argument("type", help="event type, e.g. credit.record")
    p.add_argument("file", help="a file, or - for standard input")
    p.add_argument("--city", help=f"the publishing city's code (default: {ENV['city']})")
    p.add_argument("--source-system", help="the publishing system's name")
    p.add_argument("--unsigned", action="store_true", help="no signature headers (the processors refuse them)")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("tail", help="print a topic's events decoded as JSON lines")
    p.add_argument("topic", help="a topic name or an event type, e.g. credit.record or njmc.credit.record.v1.dlq")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--max", type=int, help="stop after N events")
    p.add_argument("--idle-timeout", type=float, help="stop after this many seconds without events")
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser("worker", help="run one processor")
    p.add_argument("service", help=f"one of: {', '.join(WORKERS)}")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "bench", help="benchmark one processor against the raw decode ceiling on the same backlog; last line is JSON"
    )
    p.add_argument(
        "processor",
        choices=["credit", "sanctions", "emergency", "projects", "supervision", "readmodel", "provenance"],
        help="a processor, or provenance: the cost of signing and verifying one event (no broker)",
    )
    p.add_argument("--quick", action="store_true", help="a short run (under 4 minutes, broker start included)")
    p.add_argument("--records", type=int, help="backlog size")
    p.add_argument("--subjects", type=int, help="distinct keys in the backlog")
    p.add_argument("--rate", type=float, help="events/s for the latency phase")
    p.add_argument(
        "--workers", type=int, default=1, help="workers of the processor in one group for the throughput (default 1)"
    )
    p.add_argument("--seconds", type=float, help="length of the latency phase")
    p.add_argument(
        "--signatures",
        choices=["on", "off"],
        default="on",
        help="on: signed inputs, checked by the worker (default); off: unsigned inputs, TONGCHENG_PROVENANCE=off",
    )
    p.add_argument("--store", choices=["memory", "rocksdb"], default="memory", help="the workers' table store")
    p.add_argument(
        "--restarts",
        action="store_true",
        help="credit: after the backlog, peak RSS, changelog size, and kill, clean and empty-disk restarts "
        "instead of the latency phase",
    )
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("keys", help="the cities' signing keys: make missing ones, rotate, retire, enrol, list")
    p.add_argument("action", choices=["init", "rotate", "retire", "add", "list"])
    p.add_argument("city", nargs="?", help="the city code (rotate, retire, add)")
    p.add_argument("kid", nargs="?", help="the key id to retire, or the base64 public key to add")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("api", help="run the HTTP API")
    p.set_defaults(func=cmd_api)

    p = sub.add_parser("simulate", help="realistic traffic from every member city, some of it bad")
    p.add_argument("--rate", type=float, default=50.0, help="events per second (default 50)")
    p.add_argument("--seconds", type=float, default=60.0, help="how long (default 60)")
    p.add_argument("--bad", type=float, default=0.03, help="share of bad input (default 0.03)")
    p.add_argument("--seed", type=int, default=1, help="the same seed gives the same traffic")
    p.add_argument("--unsigned", action="store_true", help="no signatures (the processors refuse the events)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("lag-exporter", help="serve consumer-group lag with kafka_exporter's metric names")
    p.add_argument("--port", type=int, help="default TONGCHENG_LAG_PORT (9308)")
    p.set_defaults(func=cmd_lag_exporter)

    p = sub.add_parser(
        "k8s", help="the Strimzi manifests of ops/k8s/ from the catalogue, the ACLs and the settings: generate or check"
    )
    p.add_argument("action", choices=["generate", "check"])
    p.set_defaults(func=cmd_k8s)

    p = sub.add_parser("db", help="the SQL read model: upgrade to the newest migration, or show where it is")
    p.add_argument("action", choices=["upgrade", "status"])
    p.set_defaults(func=cmd_db)

    p = sub.add_parser(
        "token", aliases=["tokens"], help="the HTTP API's bearer tokens: issue (shown once), list, revoke"
    )
    p.add_argument("action", choices=["issue", "list", "revoke"])
    p.add_argument("target", nargs="?", help="issue: the token's member city; revoke: the token id")
    p.add_argument(
        "--scope",
        action="append",
        help="publish, read, pii (with read), admin; repeat or join with commas (default publish,read)",
    )
    p.add_argument("--ttl-days", type=float, default=90, help="days until it expires (default 90, at most 397)")
    p.add_argument("--rate", type=float, default=20.0, help="requests per second on average, bursts of twice (20)")
    p.add_argument("--label", help="a note stored with the hash, e.g. the system it is for")
    p.add_argument("--json", action="store_true", help="list: as JSON")
    p.set_defaults(func=cmd_token)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if not settings.kafka_user:
            settings = settings.with_(kafka_user=principal_of(args, settings))
    except ConfigError as exc:
        err(f"tongcheng {args.command}: {exc}")
        return 2
    try:
        return int(args.func(settings, args))
    except (TongchengError, ConfigError, CircleFileError) as exc:
        err(f"tongcheng {args.command}: {exc}")
        return 2
    except KafkaError as exc:
        err(
            f"tongcheng {args.command}: cannot use the Kafka broker at {settings.bootstrap}: {exc}; "
            "is it running? (`tongcheng broker status`, or `tongcheng up`)"
        )
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

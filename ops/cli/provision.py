"""`tongcheng` commands that provision and check the bus and its stores: topics, schemas, ACLs, the
Kubernetes manifests and the read model's database."""

from __future__ import annotations

import argparse

from ops.bus import apply_acls, register_schemas
from ops.cli.common import Subparsers, err, say
from topics.context import build_context
from topics.settings import ENV, Settings


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


def add_topics(sub: Subparsers) -> None:
    p = sub.add_parser("topics", help="provision (with the SCRAM users and ACLs) or list the catalogue's topics")
    p.add_argument("action", choices=["apply", "list"])
    p.add_argument("--no-acls", action="store_true", help="topics only, without the users and ACLs of topics/acls.py")
    p.set_defaults(func=cmd_topics)


def cmd_schemas(settings: Settings, args: argparse.Namespace) -> int:
    from schemas import compat
    from schemas.catalogue import SchemaCatalogue

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


def add_schemas(sub: Subparsers) -> None:
    p = sub.add_parser("schemas", help="check compatibility with git history, or register the schemas")
    p.add_argument("action", choices=["check", "register"])
    p.set_defaults(func=cmd_schemas)


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


def add_acl(sub: Subparsers) -> None:
    p = sub.add_parser("acl", help="the ACLs of topics/acls.py: show the drift (exit 1 if any), or apply them")
    p.add_argument("action", choices=["diff", "apply"])
    p.set_defaults(func=cmd_acl)


def cmd_k8s(settings: Settings, args: argparse.Namespace) -> int:
    from ops import declared, kubernetes

    if args.action == "generate":
        for path in [*kubernetes.write(), *declared.write()]:
            say(f"wrote {path}")
        return 0
    stale = [f"ops/k8s/{name}" for name in kubernetes.stale()] + declared.stale()
    for name in stale:
        err(f"{name} differs from the declarations: run `tongcheng k8s generate`")
    if not stale:
        say("ops/k8s/ and the Prometheus scrape files match the declarations")
    return 1 if stale else 0


def add_k8s(sub: Subparsers) -> None:
    p = sub.add_parser(
        "k8s",
        help="the Strimzi manifests of ops/k8s/ (and the workers' Prometheus scrape files) from the catalogue, "
        "the processors' declarations, the ACLs and the settings: generate or check",
    )
    p.add_argument("action", choices=["generate", "check"])
    p.set_defaults(func=cmd_k8s)


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


def add_db(sub: Subparsers) -> None:
    p = sub.add_parser("db", help="the SQL read model: upgrade to the newest migration, or show where it is")
    p.add_argument("action", choices=["upgrade", "status"])
    p.set_defaults(func=cmd_db)

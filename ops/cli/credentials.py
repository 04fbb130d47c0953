"""`tongcheng` commands for credentials: a city's Kafka secret, the broker certificates, the signing
keys and the HTTP API's tokens."""

from __future__ import annotations

import argparse
import json

from ops.cli.common import Subparsers, err, say
from topics.context import build_context
from topics.settings import ENV, Settings


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


def add_city(sub: Subparsers) -> None:
    p = sub.add_parser("city", help="a member city's Kafka credentials")
    p.add_argument("action", choices=["credentials"])
    p.add_argument("city", help="the city code, e.g. 320100")
    p.set_defaults(func=cmd_city)


def cmd_certs(settings: Settings, args: argparse.Namespace) -> int:
    from ops import certs

    hosts = list(dict.fromkeys([*certs.DEFAULT_HOSTS, *(args.host or [])]))
    for path in certs.generate(settings.data_dir, hosts, days=args.days, force=args.force):
        say(f"wrote {path}")
    say(f"broker certificate for {', '.join(hosts)}, valid {args.days} days; clients trust {ENV['ssl_cafile']}")
    return 0


def add_certs(sub: Subparsers) -> None:
    p = sub.add_parser("certs", help="generate the CA and broker certificate of the production profile's SASL_SSL")
    p.add_argument("action", choices=["generate"])
    p.add_argument("--host", action="append", help="a host name or address of the broker (repeatable)")
    p.add_argument("--days", type=int, default=825, help="validity in days (default 825)")
    p.add_argument("--force", action="store_true", help="replace existing certificates")
    p.set_defaults(func=cmd_certs)


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


def add_keys(sub: Subparsers) -> None:
    p = sub.add_parser("keys", help="the cities' signing keys: make missing ones, rotate, retire, enrol, list")
    p.add_argument("action", choices=["init", "rotate", "retire", "add", "list"])
    p.add_argument("city", nargs="?", help="the city code (rotate, retire, add)")
    p.add_argument("kid", nargs="?", help="the key id to retire, or the base64 public key to add")
    p.set_defaults(func=cmd_keys)


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


def add_token(sub: Subparsers) -> None:
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

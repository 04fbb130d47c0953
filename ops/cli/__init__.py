"""`tongcheng`: the command line (DESIGN.md section 6). Each command group is a module of this package
with its commands and their arguments: `processes` (broker, up, worker, api, lag-exporter, bench),
`provision` (topics, schemas, acl, k8s, db), `credentials` (city, certs, keys, token) and `events`
(publish, tail, inbox, docs, simulate)."""

from __future__ import annotations

import argparse

from kafka.errors import KafkaError

from ops.cli import credentials, events, processes, provision
from ops.cli.common import err
from schemas.errors import TongchengError
from topics.circle import CircleFileError
from topics.settings import Settings

#: what a command reports on one line, with exit code 2: a refused input, a bad setting (ConfigError is a
#: TongchengError), or a malformed circle or roster keys file, whether the settings or the command read it
REPORTED = (TongchengError, CircleFileError)

#: the commands, in the order `tongcheng --help` lists them
COMMANDS = (
    events.add_inbox,
    events.add_docs,
    processes.add_up,
    processes.add_broker,
    provision.add_topics,
    provision.add_acl,
    credentials.add_city,
    credentials.add_certs,
    provision.add_schemas,
    events.add_publish,
    events.add_tail,
    processes.add_worker,
    processes.add_bench,
    credentials.add_keys,
    processes.add_api,
    events.add_simulate,
    processes.add_lag_exporter,
    provision.add_k8s,
    provision.add_db,
    credentials.add_token,
)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tongcheng", description="Tongcheng: the event bus of a metropolitan circle.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if not settings.kafka_user:
            settings = settings.with_(kafka_user=principal_of(args, settings))
    except REPORTED as exc:
        err(f"tongcheng {args.command}: {exc}")
        return 2
    try:
        return int(args.func(settings, args))
    except REPORTED as exc:
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

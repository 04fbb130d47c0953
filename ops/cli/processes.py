"""`tongcheng` commands that run the system: the local broker, `up`, a worker, the API, the lag
exporter and the benchmark."""

from __future__ import annotations

import argparse
import sys

from ops.bus import provision_bus
from ops.cli.common import Subparsers, err, say
from ops.cli.provision import cmd_db
from services.common.shutdown import StopFlag
from services.registry import BY_NAME, PROCESSORS, WORKERS
from topics.context import build_context
from topics.settings import ENV, Settings

INSECURE_HELP = "listen with PLAINTEXT, without authentication or ACLs (logs a warning)"


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


def add_broker(sub: Subparsers) -> None:
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


def add_up(sub: Subparsers) -> None:
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


def available_workers() -> list[str]:
    return list(WORKERS)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    if args.service not in available_workers():
        err(f"unknown service {args.service!r}; available: {', '.join(available_workers()) or 'none'}")
        return 2
    return BY_NAME[args.service].run(settings)


def add_worker(sub: Subparsers) -> None:
    p = sub.add_parser("worker", help="run one processor")
    p.add_argument("service", help=f"one of: {', '.join(WORKERS)}")
    p.set_defaults(func=cmd_worker)


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from services.api.server import build_app

    app = build_app(settings)
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="warning")
    return 0


def add_api(sub: Subparsers) -> None:
    p = sub.add_parser("api", help="run the HTTP API")
    p.set_defaults(func=cmd_api)


def cmd_lag_exporter(settings: Settings, args: argparse.Namespace) -> int:
    from ops import lag_exporter

    return lag_exporter.run(settings, args.port or settings.lag_port)


def add_lag_exporter(sub: Subparsers) -> None:
    p = sub.add_parser("lag-exporter", help="serve consumer-group lag with kafka_exporter's metric names")
    p.add_argument("--port", type=int, help="default TONGCHENG_LAG_PORT (9308)")
    p.set_defaults(func=cmd_lag_exporter)


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    from ops.bench.run import run

    return int(run(settings, args))


def add_bench(sub: Subparsers) -> None:
    p = sub.add_parser(
        "bench", help="benchmark one processor against the raw decode ceiling on the same backlog; last line is JSON"
    )
    p.add_argument(
        "processor",
        choices=[*(plan for p in PROCESSORS for plan in p.bench), "provenance"],
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

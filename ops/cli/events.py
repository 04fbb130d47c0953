"""`tongcheng` commands that publish and read events: publish, tail, the inbox, the AsyncAPI document
and the simulated traffic."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import IO, Any

from ops.cli.common import Subparsers, err, say
from schemas.catalogue import FEEDBACK_OUTCOMES
from schemas.errors import Reason, Rejected
from services.common.shutdown import StopFlag
from topics.context import build_context
from topics.settings import ENV, Settings


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


def add_publish(sub: Subparsers) -> None:
    p = sub.add_parser("publish", help="publish events from JSON (one object, an array, or JSON Lines) as a city")
    p.add_argument("type", help="event type, e.g. credit.record")
    p.add_argument("file", help="a file, or - for standard input")
    p.add_argument("--city", help=f"the publishing city's code (default: {ENV['city']})")
    p.add_argument("--source-system", help="the publishing system's name")
    p.add_argument("--unsigned", action="store_true", help="no signature headers (the processors refuse them)")
    p.set_defaults(func=cmd_publish)


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


def add_tail(sub: Subparsers) -> None:
    p = sub.add_parser("tail", help="print a topic's events decoded as JSON lines")
    p.add_argument("topic", help="a topic name or an event type, e.g. credit.record or njmc.credit.record.v1.dlq")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--max", type=int, help="stop after N events")
    p.add_argument("--idle-timeout", type=float, help="stop after this many seconds without events")
    p.set_defaults(func=cmd_tail)


def cmd_inbox(settings: Settings, args: argparse.Namespace) -> int:
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


def add_inbox(sub: Subparsers) -> None:
    p = sub.add_parser("inbox", help="a city's sanction inbox: the measures to apply or lift, with optional feedback")
    p.add_argument("--city", required=True, help="the member city's code, e.g. 320100")
    p.add_argument(
        "--feedback",
        choices=FEEDBACK_OUTCOMES,
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


def add_docs(sub: Subparsers) -> None:
    p = sub.add_parser("docs", help="documents generated from the code: asyncapi, the topics as AsyncAPI 3.0 JSON")
    p.add_argument("kind", choices=["asyncapi"])
    p.add_argument("--out", help="write to this file instead of standard output")
    p.set_defaults(func=cmd_docs)


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


def add_simulate(sub: Subparsers) -> None:
    p = sub.add_parser("simulate", help="realistic traffic from every member city, some of it bad")
    p.add_argument("--rate", type=float, default=50.0, help="events per second (default 50)")
    p.add_argument("--seconds", type=float, default=60.0, help="how long (default 60)")
    p.add_argument("--bad", type=float, default=0.03, help="share of bad input (default 0.03)")
    p.add_argument("--seed", type=int, default=1, help="the same seed gives the same traffic")
    p.add_argument("--unsigned", action="store_true", help="no signatures (the processors refuse the events)")
    p.set_defaults(func=cmd_simulate)

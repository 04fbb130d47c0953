"""A city's sanction inbox: the reference downstream consumer (`tongcheng inbox --city 320100`).

It reads `njmc.sanction.list.v1` in the city's own consumer group, turns each entry whose measures
apply in the city into a work item for its departments (apply these measures, with their legal
basis; or lift them, with the reason), and, when asked, reports back on
`njmc.sanction.feedback.v1` through the publisher SDK, one feedback per measure.

The pattern is the one any downstream service follows:

1. `Subscriber` with a group id: decoded events, or the reason one could not be decoded;
2. handle a poll's deliveries, keeping only the newest revision of each subject;
3. publish what the handling produced and wait for the broker's acknowledgement;
4. commit the offsets only then, so a crash repeats work instead of losing it.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from schemas.catalogue import FEEDBACK_OUTCOMES
from schemas.convert import to_json
from schemas.errors import Rejected, TongchengError
from schemas.events import ListKind, SanctionEntry
from schemas.structs import typed
from topics.acls import city_group_prefix
from topics.context import Context
from topics.language import EN, ZH
from topics.measures import catalogue
from topics.publisher import Publisher
from topics.subscriber import Delivery, Subscriber

log = logging.getLogger("tongcheng.inbox")
#: what the inbox says to a person (`tongcheng inbox --lang`, or the locale)
TEXT: dict[str, dict[str, str]] = {
    ZH: {
        "head": "{action} {list} {subject} {name}（第 {revision} 版，由{city}发起）",
        "APPLY": "执行",
        "LIFT": "解除",
        "RED": "红名单",
        "FOCUS": "重点关注名单",
        "BLACK": "黑名单",
        "lift": "解除全部措施：{reason}",
        "measure": "{code}：{description}〔依据：{basis}〕",
        "sent": "已反馈 {n} 项措施",
        "title": "{city}（{code}）的惩戒收件箱：本市须执行或解除的名单措施",
        "feedback": "；每项措施反馈 {outcome}",
        "once": "；处理完即停止",
        "follow": "；按 Ctrl-C 停止",
        "shown": "共 {n} 项待办",
        "undecodable": "，{n} 条无法解码",
    },
    EN: {
        "head": "{action} {list} {subject} {name} (revision {revision}, initiated by {city})",
        "APPLY": "APPLY",
        "LIFT": "LIFT",
        "RED": "RED",
        "FOCUS": "FOCUS",
        "BLACK": "BLACK",
        "lift": "lift every measure: {reason}",
        "measure": "{code}: {description} [{basis}]",
        "sent": "feedback sent: {n} measure(s)",
        "title": "inbox of {city} ({code}): list entries whose measures apply here",
        "feedback": "; sending {outcome} feedback per measure",
        "once": "; until caught up",
        "follow": "; Ctrl-C stops",
        "shown": "{n} work item(s)",
        "undecodable": ", {n} undecodable",
    },
}


Action = Literal["APPLY", "LIFT"]


class MeasureNote(TypedDict):
    """A measure to apply, as the city's departments read it (topics/data/measures.json)."""

    code: str
    description: str
    legal_basis: str


class FeedbackBody(TypedDict):
    """One sanction.feedback event as the inbox publishes it (the publisher adds the meta)."""

    subject_id: str
    list_revision: int
    city: str
    measure_code: str
    outcome: str
    business_ref: str
    reported_at: str


class WorkItemJson(TypedDict):
    """A work item as `tongcheng inbox --json` prints it."""

    action: Action
    subject_id: str
    name: str
    revision: int
    initiated_by: str
    measures: builtins.list[MeasureNote]
    removal_reason: str | None
    feedback_sent: builtins.list[str]
    list: ListKind


@dataclass
class WorkItem:
    """What one city's departments must do about one list entry."""

    action: Action
    subject_id: str
    name: str
    list_kind: ListKind
    revision: int
    initiated_by: str
    measures: list[MeasureNote] = field(default_factory=list)
    removal_reason: str | None = None
    feedback_sent: list[str] = field(default_factory=list)  # event_ids

    def as_json(self) -> WorkItemJson:
        return {
            "action": self.action,
            "subject_id": self.subject_id,
            "name": self.name,
            "revision": self.revision,
            "initiated_by": self.initiated_by,
            "measures": [MeasureNote(**m) for m in self.measures],
            "removal_reason": self.removal_reason,
            "feedback_sent": list(self.feedback_sent),
            "list": self.list_kind,
        }

    def text(self, city_name: Callable[[str], str], lang: str = EN) -> str:
        """For a person at a terminal, in zh-CN or en (a measure's description is kept in both,
        "中文 / English", in topics/data/measures.json)."""
        t = TEXT[lang]
        head = t["head"].format(
            action=t[self.action],
            list=t[self.list_kind],
            subject=self.subject_id,
            name=self.name,
            revision=self.revision,
            city=city_name(self.initiated_by),
        )
        if self.action == "LIFT":
            return head + "\n    " + t["lift"].format(reason=self.removal_reason)
        lines = [head]
        for m in self.measures:
            zh, _, en = str(m["description"]).partition(" / ")
            described = (zh if lang == ZH else en or zh).strip()
            lines.append("    " + t["measure"].format(code=m["code"], description=described, basis=m["legal_basis"]))
        if self.feedback_sent:
            lines.append("    " + t["sent"].format(n=len(self.feedback_sent)))
        return "\n".join(lines)


def work_item(entry: SanctionEntry, city: str) -> WorkItem | None:
    """The work item for `city` from one entry, or None when no measure of it applies there."""
    mine = [m.code for m in entry.measures if city in m.applies_in]
    if not mine:
        return None
    if entry.status == "REMOVED":
        action: Action = "LIFT"
        measures: list[MeasureNote] = []
    else:
        action = "APPLY"
        known_measures = catalogue()
        measures = []
        for code in mine:
            known = known_measures.get(code)
            measures.append(
                {
                    "code": code,
                    "description": known.description if known else "(not in this catalogue)",
                    "legal_basis": known.legal_basis if known else "",
                }
            )
    return WorkItem(
        action,
        entry.subject_id,
        entry.name,
        entry.list,
        entry.revision,
        entry.initiated_by,
        measures=measures,
        removal_reason=entry.removal_reason if action == "LIFT" else None,
    )


def inbox_group(prefix: str, city: str) -> str:
    """The inbox's consumer group: under `<prefix>.city-<code>.`, the groups a city's principal may
    use (topics/acls.py)."""
    return f"{city_group_prefix(city, prefix)}inbox"


class Inbox:
    def __init__(
        self,
        ctx: Context,
        city: str,
        *,
        outcome: str | None = None,
        group_id: str | None = None,
        publisher: Publisher | None = None,
    ) -> None:
        if not ctx.circle.is_member(city):
            raise TongchengError(f"{city!r} is not a member city of {ctx.circle.code}: {', '.join(ctx.circle.codes)}")
        if outcome is not None and outcome not in FEEDBACK_OUTCOMES:
            raise TongchengError(f"feedback outcome must be one of {', '.join(FEEDBACK_OUTCOMES)}, not {outcome!r}")
        self.ctx = ctx
        self.city = city
        self.outcome = outcome
        self.subscriber = Subscriber(
            ctx, ["sanction.list"], group_id=group_id or inbox_group(ctx.topics.prefix, city), from_beginning=True
        )
        self.publisher = publisher or (Publisher(ctx, city, "sanction-inbox") if outcome else None)
        self.undecodable = 0

    def handle(self, deliveries: list[Delivery]) -> list[WorkItem]:
        newest: dict[str, SanctionEntry] = {}
        for d in deliveries:
            if d.event is None:  # a derived topic should not carry these; say so and go on
                self.undecodable += 1
                log.warning("%s[%d]@%d undecodable: %s", d.topic, d.partition, d.offset, d.error)
                continue
            entry = typed(d.event, SanctionEntry)
            prev = newest.get(entry.subject_id)
            if prev is None or entry.revision > prev.revision:
                newest[entry.subject_id] = entry
        items = [item for entry in newest.values() if (item := work_item(entry, self.city)) is not None]
        if self.outcome and self.publisher is not None:
            self.send_feedback(items)
        return items

    def send_feedback(self, items: list[WorkItem]) -> None:
        assert self.outcome is not None and self.publisher is not None
        outcome, now = self.outcome, self.ctx.clock.now()
        bodies: list[FeedbackBody] = []
        owners: list[WorkItem] = []
        for item in items:
            if item.action != "APPLY":
                continue
            for m in item.measures:
                bodies.append(
                    {
                        "subject_id": item.subject_id,
                        "list_revision": item.revision,
                        "city": self.city,
                        "measure_code": m["code"],
                        "outcome": outcome,
                        "business_ref": f"inbox-{self.city}-{item.subject_id}-r{item.revision}-{m['code']}",
                        "reported_at": to_json(now),
                    }
                )
                owners.append(item)
        for sent in self.publisher.publish_many("sanction.feedback", bodies):
            if sent.error is not None:  # e.g. the broker is unreachable: stop before committing
                if isinstance(sent.error, Rejected):
                    raise TongchengError(f"feedback refused: {sent.error}")
                raise sent.error
            owners[sent.index].feedback_sent.append(str(sent.event_id))

    def run(self, show: Callable[[WorkItem], None], stop: Callable[[], bool], once: bool = False) -> int:
        """Poll, handle, show, commit until `stop()`; with `once`, until caught up. Returns items shown."""
        shown = 0
        while not stop():
            deliveries = self.subscriber.poll(timeout_ms=500, max_records=500)
            for item in self.handle(deliveries):
                show(item)
                shown += 1
            if deliveries:
                self.subscriber.commit()
            elif once and self.subscriber.caught_up():
                break
        return shown

    def close(self) -> None:
        self.subscriber.close()
        if self.publisher is not None:
            self.publisher.close()

"""The circle's calendar: every date rule reads a local calendar date in the circle's time zone.

Legal dates (decision dates, `publicity_until`, planned dates) are dates on the calendar of the
circle's cities, not of UTC: a rule that took `instant.date()` of a UTC instant would be a day
behind between local midnight and the zone's offset (00:00-08:00 in China Standard Time).
Deadlines in minutes stay instants and are compared as instants.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: the zone of a circle file that names none (the Nanjing circle's, and every circle's in China)
DEFAULT_TIMEZONE = "Asia/Shanghai"


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; ValueError naming it when there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as {DEFAULT_TIMEZONE!r})") from exc


#: the default circle's zone, for tools that run without a circle file
CIRCLE_TZ = zone(DEFAULT_TIMEZONE)


def local_date(instant: datetime, tz: tzinfo) -> date:
    """The calendar date of `instant` in `tz`. A naive instant is refused: it names no moment."""
    if instant.tzinfo is None:
        raise ValueError(f"{instant.isoformat()} has no UTC offset; an instant needs one")
    return instant.astimezone(tz).date()


def day_start(day: date, tz: tzinfo) -> datetime:
    """The instant (in UTC) at which local calendar day `day` begins in `tz`."""
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def day_after_end(day: date, tz: tzinfo) -> datetime:
    """The instant (in UTC) at which local day `day` has ended: local midnight after it."""
    return day_start(day + timedelta(days=1), tz)

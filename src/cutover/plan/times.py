"""Plan times: `YYYY-MM-DD HH:MM` in the plan's timezone; `24:00` is the end of that day
(the notice's 24时 style)."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from zoneinfo import ZoneInfo

_RX = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2})\s*$")


def parse_time(text: str, tz: ZoneInfo) -> dt.datetime:
    """Parse a plan time or raise ValueError with a message an operator can act on."""
    match = _RX.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a time; write it as YYYY-MM-DD HH:MM, e.g. 2023-11-20 18:00")
    year, month, day, hour, minute = (int(group) for group in match.groups())
    if not 1 <= month <= 12:
        raise ValueError(f"{text}: there is no month {month}")
    days = calendar.monthrange(year, month)[1]
    if not 1 <= day <= days:
        raise ValueError(
            f"{text}: {year}-{month:02d}-{day:02d} does not exist "
            f"({calendar.month_name[month]} {year} has {days} days)"
        )
    if hour == 24 and minute == 0:
        return dt.datetime(year, month, day, tzinfo=tz) + dt.timedelta(days=1)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValueError(f"{text}: {hour:02d}:{minute:02d} is not a time of day (24:00 means end of day)")
    return dt.datetime(year, month, day, hour, minute, tzinfo=tz)


def fmt(moment: dt.datetime | None, tz: ZoneInfo | None = None) -> str:
    if moment is None:
        return "—"
    if tz is not None:
        moment = moment.astimezone(tz)
    return moment.strftime("%Y-%m-%d %H:%M")

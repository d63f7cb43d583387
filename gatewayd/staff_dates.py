"""Dates as staff read them on the close slip and the status page.

One rule, here only: ``2026年12月2日(水)`` — year, month and day without zero padding (staff
read 12月2日 more easily than 12月02日), the weekday in brackets where a day is meant. Logs,
files, JSON and ref_numbers keep ISO dates; this is for what people read.
"""

from __future__ import annotations

from datetime import date, datetime

WEEKDAYS = "月火水木金土日"


def staff_date(day: date, *, weekday: bool = True) -> str:
    """``2026年12月2日(水)``; ``weekday=False`` leaves out ``(水)``."""
    text = f"{day.year}年{day.month}月{day.day}日"
    return f"{text}({WEEKDAYS[day.weekday()]})" if weekday else text


def staff_datetime(moment: datetime) -> str:
    """``2026年12月2日 18:05`` (the time as given: convert to local time first)."""
    return f"{staff_date(moment.date(), weekday=False)} {moment:%H:%M}"

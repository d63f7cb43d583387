"""The one date form staff read on slips and pages: 2026年12月2日(水), never 12月02日."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from gatewayd.drivers.slip import SlipContent, SlipStatus, render_slip
from gatewayd.escpos_text import decode
from gatewayd.staff_dates import WEEKDAYS, staff_date, staff_datetime

pytestmark = pytest.mark.dates


@pytest.mark.parametrize(("day", "text"), [
    (date(2026, 12, 2), "2026年12月2日(水)"),
    (date(2026, 1, 1), "2026年1月1日(木)"),
    (date(2025, 12, 31), "2025年12月31日(水)"),
    (date(2026, 10, 10), "2026年10月10日(土)"),
])
def test_no_zero_padding_and_the_weekday(day: date, text: str) -> None:
    assert staff_date(day) == text
    assert staff_date(day, weekday=False) == text[: text.index("(")]


def test_date_time_form() -> None:
    assert staff_datetime(datetime(2026, 3, 5, 7, 4)) == "2026年3月5日 07:04"


def _slip(day: date) -> str:
    content = SlipContent(store_name="渋谷店", store_code="0001", terminal="01",
                          business_date=day, method_totals={}, class_totals={}, gross=0,
                          tax=0, status=SlipStatus.SENT,
                          made_at=datetime.combine(day + timedelta(days=1), datetime.min.time()))
    return decode(render_slip(content)).text


def test_slips_around_today_print_the_staff_form(today: date) -> None:
    """Days around the suite's "today" (calendar edges under scripts/test.sh)."""
    for day in (today - timedelta(days=1), today, today + timedelta(days=1)):
        text = _slip(day)
        assert f"営業日　{day.year}年{day.month}月{day.day}日({WEEKDAYS[day.weekday()]})" in text
        assert f"{day.month:02d}月" not in text or day.month >= 10
        assert f"月{day.day:02d}日" not in text or day.day >= 10
        made = day + timedelta(days=1)
        assert f"作成　{made.year}年{made.month}月{made.day}日 00:00" in text

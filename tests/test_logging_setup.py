"""Logging set-up: readable stderr with structured fields, journald when available."""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gatewayd import logging_setup
from gatewayd.errors import ConfigError


@pytest.fixture(autouse=True)
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def test_stderr_format_carries_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    out = io.StringIO()
    logging_setup.setup_logging("info", stream=out)
    log = logging.getLogger("gatewayd.sync")
    log.info("day closed", extra=logging_setup.fields(
        register="0001-01", business_date=dt.date(2025, 1, 10), ref_number="R-1"))
    log.debug("hidden at info")
    text = out.getvalue()
    assert "INFO gatewayd.sync: day closed [register=0001-01 date=2025-01-10 ref_number=R-1]" \
        in text
    assert "hidden" not in text
    assert text[:4].isdigit()  # a timestamp when not writing to the journal


def test_setup_twice_keeps_one_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = io.StringIO()
    logging_setup.setup_logging("info", journald=False, stream=out)
    logging_setup.setup_logging("debug", journald=False, stream=out)
    logging.getLogger("x").debug("once")
    assert out.getvalue().count("once") == 1


def test_journal_stream_gets_priority_prefix_and_no_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "stream.txt"
    with path.open("w") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        logging_setup.setup_logging("info", journald=False, stream=stream)
        logging.getLogger("gatewayd.x").error("bad\nsecond line")
    assert path.read_text().splitlines() == ["<3>ERROR gatewayd.x: bad", "<3>second line"]


def test_bad_level_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"logging\.level"):
        logging_setup.setup_logging("loud")


def test_journald_handler_used_when_systemd_python_present(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[dict[str, Any]] = []

    class FakeJournalHandler(logging.Handler):
        def __init__(self, **kw: Any) -> None:
            super().__init__()
            self.kw = kw

        def emit(self, record: logging.LogRecord) -> None:  # like python-systemd 235
            sent.append({k: v for k, v in record.__dict__.items() if k.isupper()})

    fake_journal = types.ModuleType("systemd.journal")
    fake_journal.JournalHandler = FakeJournalHandler  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "systemd.journal", fake_journal)
    handler = logging_setup.setup_logging("info", journald=True)
    assert isinstance(handler, FakeJournalHandler)
    assert handler.kw == {"SYSLOG_IDENTIFIER": "gatewayd"}
    logging.getLogger("gatewayd.sync").info("x", extra=logging_setup.fields(ref_number="R-9"))
    assert sent == [{"REF_NUMBER": "R-9"}]


def test_journald_forced_without_systemd_python_falls_back(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "systemd.journal", None)  # import fails
    out = io.StringIO()
    handler = logging_setup.setup_logging("info", journald=True, stream=out)
    assert isinstance(handler, logging.StreamHandler)
    assert "systemd-python is not installed" in out.getvalue()


def test_real_journal_handler_sends_structured_fields() -> None:
    journal = pytest.importorskip("systemd.journal", reason="systemd-python not installed")
    handler = logging_setup.setup_logging("info", journald=True)
    assert isinstance(handler, journal.JournalHandler)
    sent: list[dict[str, Any]] = []

    def fake_send(MESSAGE: str, **kw: Any) -> None:  # the signature of systemd.journal.send
        sent.append({"MESSAGE": MESSAGE, **kw})

    handler.send = fake_send
    logging.getLogger("gatewayd.sync").warning("posting refused", extra=logging_setup.fields(
        register="0001-01", business_date=dt.date(2025, 1, 10), ref_number="R-1"))
    (fields,) = sent
    assert fields["MESSAGE"] == "posting refused"
    assert fields["SYSLOG_IDENTIFIER"] == "gatewayd"
    assert (fields["REGISTER"], fields["BUSINESS_DATE"], fields["REF_NUMBER"]) == \
        ("0001-01", "2025-01-10", "R-1")
    assert fields["PRIORITY"] == "4"

"""Logging: to journald with structured fields under systemd, else readable lines on stderr.

Every part of gatewayd logs through ``logging.getLogger(__name__)``. Messages about one
register, business day or posting carry the keys as journal fields, so the installer can ask
``journalctl -u gatewayd REGISTER=0001-01 BUSINESS_DATE=2025-01-10``::

    log.info("day closed", extra=fields(register="0001-01", business_date=day))
    log.warning("posting refused", extra=fields(ref_number="0001-20250110-01-Z42"))

``fields()`` builds that ``extra=`` dict (upper-case names are journal field names); passing
``extra={"REGISTER": ...}`` by hand works the same.

With systemd-python installed and the process started by systemd, records go through
``systemd.journal.JournalHandler`` (python-systemd 235 sends every upper-case record attribute
as a journal field). Otherwise they go to stderr as
``2025-01-10 21:03:04 WARNING gatewayd.sync: posting refused [ref_number=...]``; under
systemd without systemd-python the time is left out (journald adds it) and each line starts
with a ``<N>`` priority prefix, which journald turns into the entry's priority.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from typing import TextIO

from gatewayd.errors import ConfigError

# Journal field name -> short label in the stderr format.
STRUCTURED_FIELDS: dict[str, str] = {
    "REGISTER": "register",
    "BUSINESS_DATE": "date",
    "REF_NUMBER": "ref_number",
}
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}
# Libraries that log every request at INFO (with URLs): only their warnings, unless debugging.
CHATTY_LOGGERS = ("httpx", "httpcore", "uvicorn.access", "urllib3", "usb")

_MARK = "_gatewayd_handler"


def fields(
    *,
    register: str | None = None,
    business_date: dt.date | str | None = None,
    ref_number: str | None = None,
) -> dict[str, str]:
    """The ``extra=`` dict for a log call about a register, a business day or a posting."""
    out: dict[str, str] = {}
    if register is not None:
        out["REGISTER"] = str(register)
    if business_date is not None:
        out["BUSINESS_DATE"] = (business_date.isoformat()
                                if isinstance(business_date, dt.date) else str(business_date))
    if ref_number is not None:
        out["REF_NUMBER"] = str(ref_number)
    return out


def lift_fields(record: logging.LogRecord) -> bool:
    """Handler filter: ``extra={"register": …}`` (lower case, as loggers and adapters pass
    it) also becomes the journal field ``REGISTER`` (and BUSINESS_DATE, REF_NUMBER)."""
    for upper, lower in (("REGISTER", "register"), ("BUSINESS_DATE", "business_date"),
                         ("REF_NUMBER", "ref_number")):
        value = getattr(record, lower, None)
        if value not in (None, "") and getattr(record, upper, None) in (None, ""):
            setattr(record, upper, str(value))
    return True


def _syslog_priority(levelno: int) -> int:
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class ReadableFormatter(logging.Formatter):
    """``time LEVEL logger: message [register=… date=… ref_number=…]`` plus any traceback."""

    def __init__(self, *, journal_prefix: bool = False) -> None:
        fmt = "%(levelname)s %(name)s: %(message)s"
        if not journal_prefix:
            fmt = "%(asctime)s " + fmt
        super().__init__(fmt, datefmt="%Y-%m-%d %H:%M:%S")
        self.journal_prefix = journal_prefix

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        tags = [f"{label}={getattr(record, name)}" for name, label in STRUCTURED_FIELDS.items()
                if getattr(record, name, None) not in (None, "")]
        if tags:
            first, sep, rest = text.partition("\n")
            text = f"{first} [{' '.join(tags)}]{sep}{rest}"
        if self.journal_prefix:
            prefix = f"<{_syslog_priority(record.levelno)}>"
            text = "\n".join(prefix + line for line in text.split("\n"))
        return text


def _journal_handler() -> logging.Handler | None:
    try:
        from systemd.journal import JournalHandler
    except ImportError:
        return None
    handler: logging.Handler = JournalHandler(SYSLOG_IDENTIFIER="gatewayd")
    return handler


def under_systemd() -> bool:
    """True when systemd started this process (it sets these for every service)."""
    return bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))


def stream_is_journal(stream: TextIO) -> bool:
    """True when ``stream`` is the journald stream systemd named in ``$JOURNAL_STREAM``."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def parse_level(level: str) -> int:
    try:
        return LEVELS[level.lower()]
    except KeyError:
        raise ConfigError("unknown log level", key="logging.level", value=level,
                          expected="one of " + ", ".join(LEVELS)) from None


def setup_logging(
    level: str,
    *,
    journald: bool | None = None,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Configure the root logger once (calling again replaces gatewayd's handler).

    ``journald``: True forces journald (falls back to stderr with a warning when
    systemd-python is missing), False forces stderr, None picks journald when running under
    systemd and systemd-python is importable. Returns the installed handler.
    """
    levelno = parse_level(level)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
        old.close()

    handler: logging.Handler | None = None
    missing_journal = False
    if journald or (journald is None and under_systemd()):
        handler = _journal_handler()
        missing_journal = handler is None and bool(journald)
    if handler is None:
        out = stream if stream is not None else sys.stderr
        handler = logging.StreamHandler(out)
        handler.setFormatter(ReadableFormatter(journal_prefix=stream_is_journal(out)))
    setattr(handler, _MARK, True)
    handler.addFilter(lift_fields)
    root.addHandler(handler)
    root.setLevel(levelno)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(levelno if levelno <= logging.DEBUG
                                         else max(levelno, logging.WARNING))
    logging.captureWarnings(True)
    if missing_journal:
        logging.getLogger(__name__).warning(
            "journald logging asked for but systemd-python is not installed; logging to stderr")
    return handler

"""Log calls that pass ``extra={"register": …}`` get the structured journal fields too."""

from __future__ import annotations

import io
import logging

from gatewayd.logging_setup import setup_logging


def test_lower_case_extras_become_structured_fields() -> None:
    out = io.StringIO()
    handler = setup_logging("info", journald=False, stream=out)
    try:
        log = logging.getLogger("gatewayd.test")
        log.warning("day held", extra={"register": "0001-01", "business_date": "2025-01-10"})
        adapter = logging.LoggerAdapter(log, {"register": "0001-02"})
        adapter.info("link down")
        log.info("posted", extra={"ref_number": "POS-0001-01-20250110-S-CASH"})
    finally:
        logging.getLogger().removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("[register=0001-01 date=2025-01-10]")
    assert lines[1].endswith("[register=0001-02]")
    assert lines[2].endswith("[ref_number=POS-0001-01-20250110-S-CASH]")

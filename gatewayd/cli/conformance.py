"""``gatewayd freee conformance --test-company NAME_OR_ID``: the field check of issue 15.

Runs the probes of ``gatewayd.sync.conformance_probes`` against the linked freee company —
refused unless ``--test-company`` names it (id, name or display name) — prints the table
(fact, what the box assumes, what freee answered, agree/disagree) and writes every exchange,
secrets removed, to a JSON file. Exit 0: no disagreement; 1: at least one; 2: refused or
failed before the probes; 130: interrupted (the probes made so far are deleted first; a
SIGKILLed run's probes are deleted by the next run). docs/freee-field-check.md.
"""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from types import FrameType
from typing import Any

from gatewayd.config import DEFAULT_CONFIG_PATH, load_settings
from gatewayd.errors import GatewayError
from gatewayd.sync.conformance import ProbeApi, Recorder, Verdict, table, write_document
from gatewayd.sync.conformance_probes import ConformanceReport, ConformanceRun
from gatewayd.sync.freee_client import make_http
from gatewayd.sync.freee_settings import freee_from_settings
from gatewayd.sync.mapping_settings import mapping_from_settings
from gatewayd.sync.tokens import TokenManager, utcnow

JST = timezone(timedelta(hours=9), "JST")  # freee's day


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH,
                        help="configuration file (default: %(default)s)")
    parser.add_argument("--test-company", required=True, metavar="NAME_OR_ID",
                        help="the freee test company (テスト事業所) the box is linked to: its "
                             "id, name or display name; any other company is refused")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file of the raw answers, secrets removed "
                             "(default: ./freee-conformance-<time>.json)")
    parser.add_argument("--pace", type=float, default=1.0, metavar="SECONDS",
                        help="at least this long between two API calls (default 1)")
    parser.add_argument("--date", type=_date, default=None, dest="probe_date", metavar="YYYY-MM-DD",
                        help="today's date for choosing the probes' date (default: today in "
                             "Japan); probes go on it when it may be booked")


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the run's finally deletes its probes


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    freee = freee_from_settings(settings)
    mapping = mapping_from_settings(settings)
    http = make_http(freee)
    tokens = TokenManager(freee, settings.state_dir, http)
    recorder = Recorder()
    recorder.add_secret(freee.client_secret)
    api = ProbeApi(freee, tokens, http, recorder, pace=args.pace)
    today = args.probe_date or datetime.now(JST).date()
    started = datetime.now(UTC)
    out = args.out or Path(f"freee-conformance-{started:%Y%m%dT%H%M%SZ}.json")
    conformance = ConformanceRun(api, tokens, freee, mapping, settings.state_dir,
                                 test_company=args.test_company, today=today, clock=utcnow)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    report: ConformanceReport | None = None
    try:
        report = conformance.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if conformance.company is not None:
            meta: dict[str, Any] = {
                "started": started.isoformat(timespec="seconds"),
                "company_id": conformance.company.id,
                "company_name": conformance.company.name,
                "probe_date": conformance.company.day.isoformat(),
                "api_base_url": freee.api_base_url,
                "api_calls": api.calls,
                "complete": report is not None,
            }
            if report is not None:
                meta.update(cleaned_at_start=report.cleaned_at_start,
                            cleaned_at_end=report.cleaned_at_end, problems=report.problems)
            write_document(out, recorder.document(meta, report.results if report else []))
        http.close()
    return _print(report, out, api.calls)


def _print(report: ConformanceReport, out: Path, calls: int) -> int:
    print(f"freee conformance: company {report.company_id} {report.company_name}, "
          f"probes dated {report.probe_date}")
    print(table(report.results))
    counts = {v: sum(1 for r in report.results if r.verdict is v) for v in Verdict}
    print(f"agree {counts[Verdict.AGREE]}, disagree {counts[Verdict.DISAGREE]}, "
          f"not checked {counts[Verdict.NOT_CHECKED]}; {calls} API calls; "
          f"probes left by an earlier run deleted: {report.cleaned_at_start}")
    for r in report.disagreements:
        print(f"  DISAGREE {r.fact}: {r.advice or 'see docs/freee-field-check.md'}")
    for problem in report.problems:
        print(f"  cleanup problem (run again to finish): {problem}", file=sys.stderr)
    print(f"raw answers (secrets removed): {out}")
    if report.problems:
        raise GatewayError(
            "some probes could not be deleted; run the command again",
            staff_message="確認用の取引を削除できませんでした。もう一度実行してください。",
        )
    return 1 if report.disagreements else 0

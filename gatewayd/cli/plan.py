"""``gatewayd plan JOURNAL``: print what a journal file's days will post to freee, as JSON.

freee-mapping.md section 8. Offline and read-only: the file's records are split into days and
checked (``gatewayd.protocol.days``), each closed business date gets one plan — ready, or held
with the reason of register-link.md section 6 — and the array is printed. An installer or an
accountant can thus see a day's postings before anything is sent.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from gatewayd.config import CODE_PATTERN, Settings, parse_settings
from gatewayd.errors import ConfigError, GatewayError
from gatewayd.protocol import days as days_mod
from gatewayd.protocol.journal_parser import split_records
from gatewayd.protocol.records import METHOD_ORDER, TAX_CLASS_ORDER, Close
from gatewayd.settings_reader import TableReader
from gatewayd.sync.mapping import RECORDS_NOT_IN_FILE, close_totals, held_plan, plan_day
from gatewayd.sync.mapping_settings import MappingSettings, mapping_from_table, parse_mapping
from gatewayd.sync.plan import DayPlan, DayTotals
from gatewayd.tap.plan_option import add_capture_arguments, plan_capture_file


class PlanUsageError(GatewayError):
    """The command line or its files do not allow a plan (no store/terminal, unreadable file)."""

    staff_message = "gatewayd plan の指定に誤りがあります。"


# ---------------------------------------------------------------------------------------------
# pure part: a journal's records → plans


def _totals(t: days_mod.DayTotals) -> DayTotals:
    return DayTotals(
        gross=t.gross,
        tax=t.tax,
        by_class={c: t.by_class.get(c, 0) for c in TAX_CLASS_ORDER},
        by_method={m: t.by_method.get(m, 0) for m in METHOD_ORDER},
    )


@dataclass(slots=True)
class _DateSeen:
    """What the file holds for one business date, in the order of its first close."""

    first: days_mod.DayResult | Close | None  # the first close: a day's, or a Z alone
    close_no: int = 1
    figures: Close | None = None  # a well-formed Z of the date (for records not in the file)


def _z_entries(
    analysis: days_mod.JournalAnalysis,
) -> Iterable[tuple[int, date | None, int | None, Close | None]]:
    """(record number, business date, close_no, Close or None) of every Z, in record order."""
    for e in analysis.entries:
        if e.record_type != "Z" or e.number is None:
            continue
        if isinstance(e.record, Close):
            yield e.number, e.record.business_date, e.record.close_no, e.record
        elif e.malformed is not None:
            yield e.number, e.malformed.business_date, e.malformed.close_no, None


def plan_journal(
    lines: Sequence[bytes | str],
    store_code: str,
    terminal_no: str,
    settings: MappingSettings,
) -> list[DayPlan]:
    """One plan per business date whose close the lines contain, in order of first close.

    A date first closed by its day's Z (close_no 1) gets that day's plan (ready, or held with
    the section 6 reason); a date whose day is not in the lines (a re-close, or a close of a
    day that began before them) is held with ``records not in this file`` and the Z's figures.
    close_no is the highest close seen for the date.
    """
    analysis = days_mod.analyze_journal(lines)
    day_by_close = {d.close_record_no: d for d in analysis.days if d.close_record_no is not None}
    seen: dict[date, _DateSeen] = {}
    for number, zdate, close_no, close in _z_entries(analysis):
        day = day_by_close.get(number)
        bdate = day.business_date if day is not None else zdate
        if bdate is None:
            continue
        entry = seen.get(bdate)
        if entry is None:
            entry = seen[bdate] = _DateSeen(day if day is not None else close)
        if close_no is not None:
            entry.close_no = max(entry.close_no, close_no)
        if entry.figures is None and close is not None:
            entry.figures = close
    return [_plan_for(d, s, store_code, terminal_no, settings) for d, s in seen.items()]


def _plan_for(
    bdate: date,
    seen: _DateSeen,
    store_code: str,
    terminal_no: str,
    settings: MappingSettings,
) -> DayPlan:
    first = seen.first
    if isinstance(first, days_mod.DayResult):
        if first.status == "accepted" and first.day is not None:
            plan = plan_day(first.day, store_code, terminal_no, settings)
            return replace(plan, close_no=seen.close_no)
        return held_plan(
            store_code,
            terminal_no,
            bdate,
            seen.close_no,
            first.reason or "check 1: day not accepted",
            _totals(first.totals),
            settings,
        )
    figures = seen.figures
    totals = (
        close_totals(figures)
        if figures is not None
        else DayTotals(0, None, dict.fromkeys(TAX_CLASS_ORDER, 0), dict.fromkeys(METHOD_ORDER, 0))
    )
    return held_plan(
        store_code, terminal_no, bdate, seen.close_no, RECORDS_NOT_IN_FILE, totals, settings
    )


# ---------------------------------------------------------------------------------------------
# settings: --config is the gateway's configuration or a file with only [mapping]


@dataclass(frozen=True, slots=True)
class PlanConfig:
    mapping: MappingSettings
    settings: Settings | None  # None: defaults, or a [mapping]-only file


def load_plan_config(path: Path | None) -> PlanConfig:
    if path is None:
        return PlanConfig(MappingSettings(), None)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", key=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror}", key=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", key=str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", key=str(path)) from None
    if set(data) <= {"mapping"}:
        top = TableReader(data, "")
        mapping = parse_mapping(top.table("mapping"))
        top.finish()
        return PlanConfig(mapping, None)
    settings = parse_settings(data, source=path.resolve())
    return PlanConfig(mapping_from_table(settings.extra.get("mapping")), settings)


def resolve_register(
    config: PlanConfig, store: str | None, terminal: str | None
) -> tuple[str, str, MappingSettings]:
    """store_code, terminal_no and the register's mapping (its overrides applied)."""
    if (store is None) != (terminal is None):
        raise PlanUsageError(
            "--store and --terminal go together: give both or neither",
            staff_message="--store と --terminal は両方指定するか、両方省略してください。",
        )
    registers = config.settings.registers if config.settings is not None else ()
    if store is None or terminal is None:
        if len(registers) != 1:
            where = (
                f"the configuration has {len(registers)} registers"
                if config.settings is not None
                else "no gateway configuration with one register was given"
            )
            raise PlanUsageError(
                f"which register? {where}; give --store CODE --terminal NO",
                staff_message="店舗コードと端末番号を --store と --terminal で指定してください。",
            )
        reg = registers[0]
        return reg.store_code, reg.terminal_no, config.mapping.for_register(reg)
    for name, value in (("--store", store), ("--terminal", terminal)):
        if re.fullmatch(CODE_PATTERN, value) is None:
            raise PlanUsageError(
                f"{name}: {value!r} is not 1 to 8 ASCII letters or digits",
                staff_message=f"{name} は半角英数字1〜8文字で指定してください。",
            )
    for reg in registers:
        if (reg.store_code, reg.terminal_no) == (store, terminal):
            return store, terminal, config.mapping.for_register(reg)
    return store, terminal, config.mapping


# ---------------------------------------------------------------------------------------------
# command


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print, as a JSON array, what each business day closed in a journal file will post "
        "to freee (freee-mapping.md section 8). Nothing is sent."
    )
    parser.add_argument("journal", metavar="JOURNAL", type=Path, help="journal records (CP932)")
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="the gateway configuration, or a file with only a [mapping] table",
    )
    parser.add_argument("--store", metavar="CODE", help="store_code (with --terminal)")
    parser.add_argument("--terminal", metavar="NO", help="terminal_no (with --store)")
    add_capture_arguments(parser)


def read_journal(path: Path) -> list[bytes]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PlanUsageError(
            f"cannot read the journal {path}: {exc.strerror}",
            staff_message="ジャーナルファイルを読めません。",
        ) from None
    return split_records(data)


def plans_json(plans: Iterable[DayPlan]) -> list[dict[str, Any]]:
    return [p.to_json() for p in plans]


def run(args: argparse.Namespace) -> int:
    config = load_plan_config(args.config)
    store, terminal, mapping = resolve_register(config, args.store, args.terminal)
    if args.template is not None:
        plans = plan_capture_file(args.journal, args.template, store, terminal, mapping)
    else:
        plans = plan_journal(read_journal(args.journal), store, terminal, mapping)
    json.dump(plans_json(plans), sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    return 0

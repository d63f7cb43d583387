"""Fuzzing the journal record parser and the day checks with arbitrary and mutated journals.

Only typed outcomes are allowed: ``read_record`` returns a record or a ``Malformed`` (never
raises), ``parse_record`` raises nothing but ``RecordFormatError``, and ``analyze_journal``
always returns — on random bytes, on generated journals with fields replaced by hostile
tokens, and with lines deleted, doubled, swapped, cut or garbled. Beyond "no crash":
- a line the parser accepts is canonical: formatting the record gives back the same bytes
  (two spellings of one value would make two different raw journals post the same money);
- every day is accepted, held with a reason that starts with its check's name
  (register-link.md section 6), or still open; nothing else;
- every stored record is accounted for: in a day, a re-close, a stray or the leading
  fragment (numbered by position, as the store keeps them).
"""

from __future__ import annotations

from datetime import date

from fuzz_fixtures import FUZZ, FUZZ_SMALL, no_hang
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewayd.errors import RecordFormatError
from gatewayd.protocol.days import JournalAnalysis, analyze_journal
from gatewayd.protocol.journal_parser import Malformed, encode_record, parse_record, read_record
from gatewayd.sim.journal_gen import generate_journal

CHECKS = ("format", "check 1", "check 2", "check 3")

TOKENS = [
    "", "-", "0", "-0", "00", "01", "1", "-1", "1.5", "-0.0", "0.", ".5", "1e3", "+1",
    "999999999999999", "1000000000000000", "99999999999999999999999", "20250230", "20251301",
    "20250110", "20250110250000", "20250110235960", "IN", "OUT", "SALE", "VOID", "RETURN",
    "TRAINING", "CASH", "10", "8R", "EX", "10=1;8R=0;0=0;EX=0", "CASH=0", "IN=0;OUT=0;X=1",
    "おにぎり", "\u3000", "A\x7fB", "ＺＺ", "Z", "O", "\\t",
]

_JOURNALS: dict[int, list[bytes]] = {}


def journal(seed: int) -> list[bytes]:
    """A small generated journal (two days), cached: generation is not what is tested."""
    if seed not in _JOURNALS:
        lines = generate_journal(seed, 2, date(2025, 2, 3), receipts_per_day=6)
        _JOURNALS[seed] = [line.encode("cp932") for line in lines]
    return _JOURNALS[seed]


@st.composite
def mutated_journals(draw: st.DrawFn) -> list[bytes]:
    lines = list(journal(draw(st.integers(0, 7))))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(
            ["field", "field", "field", "delete", "double", "swap", "cut", "bytes", "insert"]))
        i = draw(st.integers(0, len(lines) - 1))
        if op == "field":
            fields = lines[i].split(b"\t")
            j = draw(st.integers(0, len(fields) - 1))
            token = draw(st.sampled_from(TOKENS) | st.text(max_size=6))
            fields[j] = token.encode("cp932", "replace")
            lines[i] = b"\t".join(fields)
        elif op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "double":
            lines.insert(i, lines[i])
        elif op == "swap" and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        elif op == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif op == "bytes":
            raw = bytearray(lines[i])
            if raw:
                raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
            lines[i] = bytes(raw)
        elif op == "insert":
            lines.insert(i, draw(st.binary(max_size=60)))
    return lines


def check_one(line: bytes) -> None:
    result = read_record(line)
    assert isinstance(result, Malformed) or encode_record(result) == line.rstrip(b"\n") + b"\n", (
        f"accepted a non-canonical line {line!r}: formats as {encode_record(result)!r}"
    )
    if isinstance(result, Malformed):
        assert result.message
        try:
            parse_record(line)
        except RecordFormatError:
            return
        raise AssertionError("parse_record accepted what read_record refused")
    assert parse_record(line) == result


@FUZZ
@given(st.binary(max_size=5000))
def test_any_bytes_parse_to_a_record_or_malformed(line: bytes) -> None:
    with no_hang():
        check_one(line)


@FUZZ
@given(st.data())
def test_mutated_records_parse_canonically_or_not_at_all(data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(journal(data.draw(st.integers(0, 7)))))
    fields = source.split(b"\t")
    for _ in range(data.draw(st.integers(1, 3))):
        j = data.draw(st.integers(0, len(fields) - 1))
        fields[j] = data.draw(st.sampled_from(TOKENS)).encode("cp932", "replace")
    with no_hang():
        check_one(b"\t".join(fields))
        check_one(b"\t".join(fields) + b"\n")


def check_analysis(lines: list[bytes]) -> None:
    """As the daemon sees them (numbered by position, as the store keeps them), and as a file
    (numbered by field 1, as ``gatewayd decode`` and ``gatewayd plan`` see them)."""
    with no_hang(10):
        check_days(analyze_journal(lines, after_record_no=None), placed_check=False)
        check_days(analyze_journal(list(enumerate(lines, start=1)), after_record_no=0))


def check_days(analysis: JournalAnalysis, *, placed_check: bool = True) -> None:
    for day in analysis.days:
        assert day.status in ("accepted", "held", "open")
        if day.status == "held":
            assert day.failures, "held without a reason"
            for failure in day.failures:
                assert failure.check in CHECKS and failure.message.startswith(failure.check), (
                    f"held with a reason that names no check: {failure.message!r}"
                )
                # "; " joins failures: one failure's own words never contain it (quoted
                # record values may: the register's text is shown as it is)
                assert "; " not in failure.message or "'" in failure.message, failure.message
            assert day.reason == "; ".join(f.message for f in day.failures)
        if day.status == "accepted":
            assert day.day is not None and not day.failures
            assert day.totals.gross == day.day.close.gross_total
    for reclose in analysis.recloses:
        assert reclose.status in ("same", "held", "unmatched")
    if not placed_check:
        return
    # every record is somewhere: in a day, a re-close, a stray or the leading fragment
    placed: set[int] = set(analysis.strays)
    for day in analysis.days:
        placed.update(range(day.first_record_no, day.last_record_no + 1))
    placed.update(r.number for r in analysis.recloses)
    if analysis.head is not None:
        placed.update(range(analysis.head[0], analysis.head[1] + 1))
    numbers = {e.number for e in analysis.entries if e.number is not None}
    assert numbers <= placed, f"records in no day: {sorted(numbers - placed)[:10]}"


@settings(FUZZ_SMALL, deadline=None)
@given(mutated_journals())
def test_mutated_journals_are_accepted_or_held_with_a_reason(lines: list[bytes]) -> None:
    check_analysis(lines)


@settings(FUZZ_SMALL, deadline=None)
@given(st.lists(st.binary(max_size=120), max_size=40))
def test_random_lines_never_break_the_day_checks(lines: list[bytes]) -> None:
    check_analysis(lines)


def test_the_unmutated_journals_are_accepted() -> None:
    """The fuzz starts from journals the checks accept (else it would test nothing)."""
    for seed in range(8):
        days = analyze_journal(journal(seed), after_record_no=0).days
        assert [d.status for d in days] == ["accepted", "accepted"]

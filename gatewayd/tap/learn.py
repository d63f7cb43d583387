"""Drafting a template from one captured Z report (``gatewayd tap learn``).

Pure. Each line is split at runs of spaces into tokens; a token that is not an amount followed
by one that is makes a (label, amount) pair, so two-column layouts give two pairs per line. A
label is mapped to a field by the words installers see on Japanese reports (現金, クレジット,
10%対象, 8%対象, 消費税, 合計, 返品, 取消, 入金, 出金, 過不足 …). The draft is TOML text in the
format of ``gatewayd.tap.template`` (docs/tap.md), with a comment per field naming the line it
came from; the installer reviews it and checks it against other captures.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gatewayd.tap.amounts import parse_amount
from gatewayd.tap.escpos import Line

_DATE = re.compile(
    r"(?P<year>\d{4})(?P<s1>[/年.-])(?P<month>\d{1,2})(?P<s2>[/月.-])(?P<day>\d{1,2})(?P<s3>日?)"
)
_COUNTER = re.compile(r"(?P<label>No\.|NO\.|№|#|回数|連番)\s*(?P<value>\d+)")
_COUNT_LABELS = ("客数", "件数", "人数")

# (words the label contains, field); first match wins, so the specific come first
_LABELS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("過不足",), "cash_difference"),
    (("入金",), "cash_in"),
    (("出金",), "cash_out"),
    (("返品",), "returns"),
    (("戻",), "returns"),
    (("取消",), "voids"),
    (("訂正",), "voids"),
    (("クレ",), "method.CREDIT"),
    (("カード",), "method.CREDIT"),
    (("電子マネー",), "method.EMONEY"),
    (("電子",), "method.EMONEY"),
    (("QR",), "method.QR"),
    (("コード",), "method.QR"),
    (("商品券",), "method.GIFT"),
    (("ポイント",), "method.POINT"),
    (("現金",), "method.CASH"),
    (("現計",), "method.CASH"),
)
_GROSS_WORDS = ("総売上", "純売上", "売上合計", "合計", "売上", "総計")


def _rate(label: str) -> str | None:
    if "10" in label or "標準" in label:
        return "10"
    if "8" in label or "軽減" in label:
        return "8R"
    if "非課税" in label:
        return "0"
    if "不課税" in label or "対象外" in label:
        return "EX"
    return None


def field_for_label(label: str) -> str | None:
    """The template field a printed label names, or None."""
    rate = _rate(label)
    if rate is not None and ("対象" in label or label.startswith("課税") or "非課税" in label
                             or "不課税" in label):
        return f"base.{rate}"
    if rate is not None and "税" in label:
        return f"tax.{rate}"
    for words, name in _LABELS:
        if any(w in label for w in words):
            return name
    if any(w in label for w in _COUNT_LABELS):
        return "receipt_count"
    if any(label == w or label.endswith(w) for w in _GROSS_WORDS) and "税" not in label:
        return "gross"
    return None


@dataclass(frozen=True, slots=True)
class Proposal:
    """One field's draft pattern and the line it was drawn from."""

    field: str
    pattern: str
    line: Line


def _pairs(text: str) -> list[tuple[str, str, bool]]:
    """(label, amount text, label starts the line) pairs of one line."""
    tokens = re.split(r"\s+", text.strip())
    out = []
    for i in range(len(tokens) - 1):
        label, value = tokens[i], tokens[i + 1]
        count = any(w in label for w in _COUNT_LABELS) and re.fullmatch(r"\d+[人件名客]?", value)
        if parse_amount(label) is None and (parse_amount(value) is not None or count):
            out.append((label, value, i == 0))
    return out


def propose_fields(lines: Sequence[Line]) -> list[Proposal]:
    """Draft patterns for every field recognised in a Z report's lines (first line wins)."""
    found: dict[str, Proposal] = {}
    for ln in lines:
        m = _DATE.search(ln.text)
        if m and "business_date" not in found:
            prefix = ln.text[: m.start()].strip()
            pattern = (
                (re.escape(prefix) + r"\s*" if prefix else r"^\s*")
                + r"(?P<year>\d{4})" + re.escape(m.group("s1")) + r"(?P<month>\d{1,2})"
                + re.escape(m.group("s2")) + r"(?P<day>\d{1,2})"
            )
            found["business_date"] = Proposal("business_date", pattern, ln)
        c = _COUNTER.search(ln.text)
        if c and "z_counter" not in found:
            pattern = re.escape(c.group("label")) + r"\s*(?P<value>\d+)"
            found["z_counter"] = Proposal("z_counter", pattern, ln)
        for label, _value, first in _pairs(ln.text):
            name = field_for_label(label)
            if name is None or name in found:
                continue
            start = r"^\s*" if first else r"(?:^|\s)"
            group = "value" if name == "receipt_count" else "amount"
            body = r"(?P<value>\d+)" if group == "value" else r"(?P<amount>\S+)"
            found[name] = Proposal(name, start + re.escape(label) + r"\s+" + body, ln)
    return list(found.values())


def _heading(lines: Sequence[Line]) -> Line | None:
    for ln in lines:
        text = ln.text.strip()
        if "精算" in text or re.match(r"^[ZＺ]\b", text) or "【Z】" in text:
            return ln
    return None


def _toml_str(text: str) -> str:
    """A TOML literal string (no escapes), or a basic string when it holds a quote."""
    if "'" not in text and "\n" not in text:
        return f"'{text}'"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def draft_template(
    name: str, lines: Sequence[Line], *, always_kanji: bool, tax_included: bool
) -> str:
    """The TOML text of a draft template for the report ``lines``."""
    heading = _heading(lines)
    z_marker = r"^\s*" + re.escape(heading.text.strip()) if heading else "精算"
    out = [
        "# Drafted by `gatewayd tap learn` from one capture: review, then check it against",
        "# other captures of the same register (gatewayd tap learn --template FILE CAPTURE...).",
        f'name = "{name}"',
        f"always_kanji = {'true' if always_kanji else 'false'}",
        f"tax_included = {'true' if tax_included else 'false'}",
        "",
        "[match]",
        f"z_report = [{_toml_str(z_marker)}]",
        "x_report = ['点検', '^\\s*X']",
        "reprint = ['再発行', '再印字', 'リプリント']",
        "training = ['トレーニング', '練習']",
        "reclose = ['再精算']",
        "",
        "[fields]",
    ]
    for p in propose_fields(lines):
        out.append(f"# line {p.line.number}: {p.line.text.strip()}")
        key = p.field if "." not in p.field else f'"{p.field}"'
        out.append(f"{key} = {_toml_str(p.pattern)}")
    return "\n".join(out) + "\n"


def guess_tax_included(lines: Sequence[Line]) -> bool:
    """True when the 対象額 lines sum to the gross (tax-included), False when base + tax do."""
    values: dict[str, int] = {}
    for ln in lines:
        for label, value, _first in _pairs(ln.text):
            name = field_for_label(label)
            amount = parse_amount(value)
            if name not in (None, "receipt_count") and amount is not None and name not in values:
                values[name] = amount
    gross = values.get("gross")
    bases = sum(v for k, v in values.items() if k.startswith("base."))
    taxes = sum(v for k, v in values.items() if k.startswith("tax."))
    return not (gross is not None and bases != gross and bases + taxes == gross)

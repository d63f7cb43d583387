"""Amounts as registers print them: ¥1,234 / 1,234円 / -1,234 / △1,234 / ▲1,234 / (1,234).

Pure. Full-width digits and signs are folded first (NFKC), so ￥１，２３４ reads too.
"""

from __future__ import annotations

import re
import unicodedata

_AMOUNT = re.compile(
    r"^(?P<neg>[-−△▲▼])?\s*[¥\\]?\s*(?P<neg2>[-−△▲▼])?\s*(?P<digits>\d{1,3}(?:,\d{3})+|\d+)"
    r"\s*(?:円)?(?P<neg3>-)?$"
)
_PAREN = re.compile(r"^\((?P<inner>.*)\)$")

# A regex fragment for templates: matches any amount form above (use inside a named group).
AMOUNT_PATTERN = r"[-−△▲▼]?\s*[¥\\￥]?\s*[-−△▲▼]?\s*[\d０-９][\d０-９,，]*\s*円?"


def normalize(text: str) -> str:
    """NFKC, with the yen sign kept as ¥ (NFKC leaves ￥ → ¥)."""
    return unicodedata.normalize("NFKC", text)


def parse_amount(text: str) -> int | None:
    """Integer yen, or None when ``text`` is not an amount. Negative by any usual mark."""
    raw = normalize(text).strip().replace(" ", "")
    neg = False
    paren = _PAREN.match(raw)
    if paren:
        raw, neg = paren.group("inner"), True
    m = _AMOUNT.match(raw)
    if m is None:
        return None
    value = int(m.group("digits").replace(",", ""))
    if m.group("neg") or m.group("neg2") or m.group("neg3"):
        neg = True
    return -value if neg else value

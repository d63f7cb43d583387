"""The freee facts no document settles, as named switches of the emulator (issue 15).

Each rule says what the emulator does about one fact that the gateway depends on and that
``gatewayd freee conformance`` checks against a real freee test company. Every rule is
"assumed, not yet confirmed" until a field run confirms it; a field result then changes one
default here (and its line in docs/freee-emulator.md). Tests switch rules both ways
(``PATCH /_emulator/facts``) to see the conformance table flip.

A rule is on (``True``) or off; ``default`` is what the emulator does out of the box.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class FactRule:
    """One switchable fact: what the emulator does when it is on, and when it is off."""

    name: str
    default: bool
    on: str
    off: str
    source: str
    confirmed: bool = False  # set by a field run (docs/freee-field-check.md)


REF_NUMBER_LIMIT = 20  # the only documented ref_number limit (manual journals)

RULES: tuple[FactRule, ...] = (
    FactRule(
        "deal_ref_number_unlimited", True,
        "a deal's ref_number of any length is stored whole",
        f"a deal's ref_number longer than {REF_NUMBER_LIMIT} characters is refused (400)",
        "schema: no maxLength on deals; 20 is documented for manual journals only",
    ),
    FactRule(
        "income_negative_payment", True,
        "an income deal with a negative total may be settled by a negative payment",
        "a payment below 0 is refused (400)",
        "schema: payments[].amount has no minimum (the payment endpoints' amount has ≥ 1)",
    ),
    FactRule(
        "income_minus_lines", True,
        "an income deal with a positive total may carry negative (控除・マイナス) lines",
        "a negative line on an income deal with a positive total is refused (400)",
        "schema: details[].amount < 0 registers a 控除・マイナス行",
    ),
    FactRule(
        "zero_amount_line_vat", False,
        "a line of amount 0 may carry vat ±1 (rounding left over by the allocation)",
        "a line's vat larger than its amount (0 with vat ±1) is refused (400)",
        "undocumented; the emulator refused it before this rule existed",
    ),
    FactRule(
        "zero_total_deal", True,
        "a deal whose lines net to 0 (sales and returns) is stored",
        "a deal of total 0 is refused (400)",
        "undocumented",
    ),
    FactRule(
        "deal_outside_fiscal_years_refused", True,
        "a deal dated outside every fiscal year is refused with 400 (validation)",
        "a deal dated outside every fiscal year is accepted",
        "undocumented status and message; freee keeps books per fiscal year",
    ),
    FactRule(
        "deals_list_filters", True,
        "GET /api/1/deals filters by issue date and type; meta.total_count counts the "
        "filtered deals; offset/limit page them",
        "the type filter is ignored",
        "schema parameters; the look-up after an ambiguous send rests on them",
    ),
    FactRule(
        "transfer_row_description", True,
        "a transfer's to_walletables[].description is stored and read back",
        "a to_walletables row's description is dropped",
        "schema: to_walletables[].description 備考",
    ),
    FactRule(
        "transfer_rows_with_description_refused", True,
        "to_walletables together with the top-level description is refused (400)",
        "they are accepted together (the emulator's old divergence)",
        "schema: description cannot be given together with to_walletables",
    ),
    FactRule(
        "transfer_duplicate_destination_refused", True,
        "two to_walletables rows to the same walletable are refused (400)",
        "they are accepted (the emulator's old divergence)",
        "schema: 複数行で同一の振替先口座は指定できません",
    ),
    FactRule(
        "oauth_oob_redirect", True,
        "the authorize endpoint accepts redirect_uri urn:ietf:wg:oauth:2.0:oob with PKCE S256",
        "the out-of-band redirect is refused (error page)",
        "freee start guide (testing aid); PKCE seen in freee's own client",
    ),
    FactRule(
        "oauth_refresh_rotates", True,
        "a refresh issues a new refresh token (the presented one is used up)",
        "a refresh returns the same refresh token again",
        "freee docs token_lifetime: single use, rotating",
    ),
)

RULES_BY_NAME: dict[str, FactRule] = {r.name: r for r in RULES}

# Messages (freee's wording is unknown; these are the emulator's).
MSG_REF_TOO_LONG = f"ref_number は{REF_NUMBER_LIMIT}文字以内で入力してください。"
MSG_NEGATIVE_PAYMENT = "payments の amount は1以上の金額を指定してください。"
MSG_MINUS_LINE = "収入取引にマイナスの明細行は登録できません。"
MSG_ZERO_TOTAL = "取引金額が0円の取引は登録できません。"
MSG_DUPLICATE_DESTINATION = "複数行で同一の振替先口座は指定できません。"
MSG_ROWS_WITH_DESCRIPTION = (
    "to_walletables と description (単一振替先の備考) は同時に指定できません。"
)


class FactSwitches:
    """The current value of every rule; thread-safe; ``reset`` restores the defaults."""

    def __init__(self, overrides: Mapping[str, bool] | None = None) -> None:
        self._lock = threading.Lock()
        self._values = {r.name: r.default for r in RULES}
        if overrides:
            self.update(overrides)

    def __getitem__(self, name: str) -> bool:
        with self._lock:
            return self._values[name]

    def update(self, values: Mapping[str, Any]) -> dict[str, bool]:
        unknown = [k for k in values if k not in RULES_BY_NAME]
        if unknown:
            raise KeyError(f"unknown fact rule(s) {', '.join(unknown)}; known: "
                           + ", ".join(RULES_BY_NAME))
        bad = [k for k, v in values.items() if not isinstance(v, bool)]
        if bad:
            raise TypeError(f"fact rule values must be true or false: {', '.join(bad)}")
        with self._lock:
            self._values.update({k: bool(v) for k, v in values.items()})
            return dict(self._values)

    def reset(self) -> None:
        with self._lock:
            self._values = {r.name: r.default for r in RULES}

    def snapshot(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._values)

    def describe(self) -> dict[str, dict[str, Any]]:
        values = self.snapshot()
        return {
            r.name: {
                "value": values[r.name],
                "default": r.default,
                "on": r.on,
                "off": r.off,
                "source": r.source,
                "status": "confirmed" if r.confirmed else "assumed, not yet confirmed",
            }
            for r in RULES
        }


def parse_fact_spec(spec: str) -> tuple[str, bool]:
    """``NAME=on|off`` (the CLI's ``--fact``)."""
    name, sep, value = spec.partition("=")
    words = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}
    if not sep or name not in RULES_BY_NAME or value.lower() not in words:
        raise ValueError(f"expected NAME=on|off with NAME one of {', '.join(RULES_BY_NAME)}")
    return name, words[value.lower()]


# -- the checks the rules add (accounting.py calls these) ---------------------------------


def deal_messages(
    facts: FactSwitches, body: Row, details: list[Row], payments: list[Row], amount: int
) -> list[str]:
    """Refusals of a deal body that the switched-off rules add."""
    messages: list[str] = []
    ref = body.get("ref_number")
    if (
        not facts["deal_ref_number_unlimited"]
        and isinstance(ref, str)
        and len(ref) > REF_NUMBER_LIMIT
    ):
        messages.append(MSG_REF_TOO_LONG)
    income = body.get("type") == "income"
    if income and not facts["income_negative_payment"] and any(
        p["amount"] < 0 for p in payments
    ):
        messages.append(MSG_NEGATIVE_PAYMENT)
    if income and not facts["income_minus_lines"] and amount > 0 and any(
        d["amount"] < 0 for d in details
    ):
        messages.append(MSG_MINUS_LINE)
    if details and amount == 0 and not facts["zero_total_deal"]:
        messages.append(MSG_ZERO_TOTAL)
    return messages


def vat_allowed_over_amount(facts: FactSwitches, amount: int, vat: int) -> bool:
    """A vat larger than its line's amount is refused, except 0 with ±1 when the rule says so."""
    return facts["zero_amount_line_vat"] and amount == 0 and abs(vat) <= 1


def transfer_messages(facts: FactSwitches, body: Row) -> list[str]:
    """Refusals of a transfer body that the schema states and the rules switch."""
    messages: list[str] = []
    rows = body.get("to_walletables")
    if (
        rows is not None
        and body.get("description") is not None
        and facts["transfer_rows_with_description_refused"]
    ):
        messages.append(MSG_ROWS_WITH_DESCRIPTION)
    if rows and facts["transfer_duplicate_destination_refused"]:
        seen = [(r.get("type"), r.get("id")) for r in rows]
        if len(set(seen)) != len(seen):
            messages.append(MSG_DUPLICATE_DESTINATION)
    return messages

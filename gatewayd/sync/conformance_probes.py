"""The probes of ``gatewayd freee conformance``: one per fact, each with its verdict.

Every fact names what the box assumes (what its code relies on), the emulator rule that
encodes it (``gatewayd/sim/freee/facts.py``) and what to do when freee disagrees
(docs/freee-field-check.md has the long version). A probe creates, reads back and (at the
end, with all the others) deletes its deal or transfer; conformance.py keeps the plumbing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from authlib.oauth2.rfc7636 import create_s256_code_challenge

from gatewayd.errors import ConfigError, FreeeError
from gatewayd.protocol.records import Direction, TaxClass
from gatewayd.sync.conformance import (
    PROBE_MARK,
    PROBE_TAG,
    Answer,
    Cleaner,
    Company,
    FactResult,
    Journal,
    ProbeApi,
    Verdict,
    outside_date,
    probe_date,
)
from gatewayd.sync.freee_settings import OOB_REDIRECT, FreeeSettings
from gatewayd.sync.mapping_settings import MappingSettings
from gatewayd.sync.masters import Masters, Walletable
from gatewayd.sync.refs import SHORT_MAX
from gatewayd.sync.tokens import TokenManager

LONG_REF = 44  # the box's longest full ref_number (8-character store and terminal codes)


@dataclass
class Ids:
    """The masters the probes use, resolved by the gateway's own names."""

    sales: int
    short: int
    expense: int
    tax10: int
    tax_ex: int
    cash: Walletable
    other: Walletable | None


@dataclass
class ConformanceReport:
    company_id: int
    company_name: str
    probe_date: date
    results: list[FactResult] = field(default_factory=list)
    cleaned_at_start: int = 0
    cleaned_at_end: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def disagreements(self) -> list[FactResult]:
        return [r for r in self.results if r.verdict is Verdict.DISAGREE]


def _matches_company(wanted: str, company_id: int, company: dict[str, Any]) -> bool:
    names = {str(company_id), str(company.get("name") or ""),
             str(company.get("display_name") or "")}
    return wanted.strip() in names - {""}


class ConformanceRun:
    """One run against the linked company (see conformance.py)."""

    def __init__(
        self,
        api: ProbeApi,
        tokens: TokenManager,
        freee: FreeeSettings,
        mapping: MappingSettings,
        state_dir: Path,
        *,
        test_company: str,
        today: date,
        clock: Callable[[], datetime],
    ) -> None:
        self.api = api
        self.tokens = tokens
        self.freee = freee
        self.mapping = mapping
        self.state_dir = state_dir
        self.test_company = test_company
        self.today = today
        self.clock = clock
        self.created: list[tuple[str, int]] = []
        self.deal_meta: dict[int, tuple[str, str]] = {}  # probe deal id → (issue date, type)
        self.company: Company | None = None
        self.journal: Journal | None = None
        self.ids: Ids | None = None

    # -- setup --------------------------------------------------------------------------------

    def _require(self, answer: Answer, what: str) -> dict[str, Any]:
        if not answer.ok or not isinstance(answer.body, dict):
            raise ConformanceSetupError(f"{what}: {answer.summary()}")
        return answer.body

    def open(self) -> Company:
        """Check the test company (before any write), read its masters, find the probe tag."""
        company_id = self.tokens.company_id()
        if company_id is None or not self.tokens.usable():
            raise ConfigError(
                "freee is not linked: run `gatewayd link` with the test company first",
                key="freee",
                staff_message="freee会計と連携していません。テスト事業所で連携してください。",
            )
        body = self._require(
            self.api.call("setup", "GET", f"/api/1/companies/{company_id}",
                          params={"details": "true"}),
            "GET /api/1/companies/{id}",
        )
        raw = dict(body["company"])
        name = str(raw.get("display_name") or raw.get("name") or company_id)
        if not _matches_company(self.test_company, company_id, raw):
            raise ConfigError(
                f"refused: the linked company {company_id} ({name}) is not the one named "
                f"as a test company ({self.test_company!r}); the run writes and deletes deals",
                key="--test-company",
                value=self.test_company,
                expected=f"{company_id} or {name!r}, and only for a freee test company",
                staff_message="連携中の事業所がテスト事業所として指定されたものと一致しないため、"
                "実行しません。",
            )
        taxes = self._require(
            self.api.call("setup", "GET", f"/api/1/taxes/companies/{company_id}"),
            "GET /api/1/taxes/companies/{id}",
        )
        masters = Masters(raw, list(taxes.get("taxes") or []), self.clock())
        day = probe_date(masters, self.today)
        tag_id = masters.tags.get(PROBE_TAG)
        if tag_id is None:
            created = self._require(
                self.api.call("setup", "POST", "/api/1/tags",
                              json={"company_id": company_id, "name": PROBE_TAG}),
                f"POST /api/1/tags ({PROBE_TAG})",
            )
            tag_id = int(created["tag"]["id"])
        self.company = Company(company_id, name, masters, day, tag_id)
        self.journal = Journal(self.state_dir, company_id)
        self.ids = self._ids(masters)
        return self.company

    def _ids(self, m: Masters) -> Ids:
        def account(name: str) -> int:
            if name not in m.account_items:
                raise ConformanceSetupError(f"勘定科目「{name}」 not found in the test company")
            return m.account_items[name]

        def tax(name: str) -> int:
            if name not in m.taxes:
                raise ConformanceSetupError(f"税区分「{name}」 not found in the test company")
            return m.taxes[name].code

        cash = m.walletables.get(self.mapping.cash_walletable)
        if cash is None:
            raise ConformanceSetupError(
                f"口座「{self.mapping.cash_walletable}」 not found in the test company")
        other = next((w for w in m.walletables.values() if w.id != cash.id), None)
        out_rule = self.mapping.movement_defaults[Direction.OUT]
        return Ids(
            sales=account(self.mapping.sales_account),
            short=account(self.mapping.cash_short_account),
            expense=account(out_rule.account or "仮払金"),
            tax10=tax(self.mapping.tax_names[TaxClass.STANDARD]),
            tax_ex=tax(self.mapping.ex_tax_name),
            cash=cash,
            other=other,
        )

    def cleanup(self) -> tuple[int, list[str]]:
        assert self.company is not None and self.journal is not None
        days = self.journal.dates() | {self.company.day}
        deleted, problems = Cleaner(self.api, self.company).sweep(days)
        if not problems:
            self.journal.clear()
        return deleted, problems

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> ConformanceReport:
        company = self.open()
        report = ConformanceReport(company.id, company.name, company.day)
        report.cleaned_at_start, problems = self.cleanup()
        report.problems += problems
        try:
            for probe in self.probes():
                report.results.append(self._guarded(probe))
            self._delete_created(report)
        finally:
            deleted, problems = self.cleanup()
            report.cleaned_at_end = deleted
            report.problems += problems
        return report

    def probes(self) -> list[Callable[[], FactResult]]:
        return [
            self.ref_number,
            self.negative_payment,
            self.minus_lines,
            self.zero_amount_vat,
            self.zero_total,
            self.outside_fiscal_years,
            self.deals_list,
            self.transfer_description,
            self.transfer_rows_with_description,
            self.transfer_duplicate_destination,
            self.oob_redirect,
            self.refresh_rotation,
            self.rate_limit,
            self.permission,
        ]

    def _guarded(self, probe: Callable[[], FactResult]) -> FactResult:
        try:
            return probe()
        except FreeeError as exc:
            name = probe.__name__
            return FactResult(name, name, "-", f"probe failed: {exc}", Verdict.NOT_CHECKED)

    def _delete_created(self, report: ConformanceReport) -> None:
        assert self.company is not None
        for kind, ident in reversed(self.created):
            answer = self.api.call(
                "delete", "DELETE", f"/api/1/{kind}/{ident}",
                params={"company_id": self.company.id},
            )
            if not answer.ok and answer.status != 404:
                report.problems.append(f"DELETE /api/1/{kind}/{ident}: {answer.summary()}")
        self.created.clear()

    # -- helpers ------------------------------------------------------------------------------

    def _line(self, fact: str, account: int, tax: int, amount: int,
              vat: int | None = None) -> dict[str, Any]:
        assert self.company is not None
        line: dict[str, Any] = {
            "account_item_id": account,
            "tax_code": tax,
            "amount": amount,
            "tag_ids": [self.company.tag_id],
            "description": f"{PROBE_MARK}: {fact} (自動で削除されます)",
        }
        if vat is not None:
            line["vat"] = vat
        return line

    def _deal(self, fact: str, lines: list[dict[str, Any]], *, ref: str | None = None,
              kind: str = "income", day: date | None = None,
              paid: int | None = None) -> dict[str, Any]:
        assert self.company is not None and self.ids is not None
        issue = (day or self.company.day).isoformat()
        body: dict[str, Any] = {
            "company_id": self.company.id,
            "issue_date": issue,
            "type": kind,
            "ref_number": ref or f"PROBE-{fact[:14]}",
            "details": lines,
        }
        if paid is not None:
            body["payments"] = [{"date": issue, "from_walletable_type": self.ids.cash.type,
                                 "from_walletable_id": self.ids.cash.id, "amount": paid}]
        return body

    def _post(self, fact: str, kind: str, body: dict[str, Any],
              day: date) -> tuple[Answer, dict[str, Any] | None]:
        """POST (the date noted first), then read the object back."""
        assert self.company is not None and self.journal is not None
        self.journal.note(day)
        answer = self.api.call(fact, "POST", f"/api/1/{kind}s", json=body)
        if not answer.ok or not isinstance(answer.body, dict):
            return answer, None
        obj = dict(answer.body.get(kind) or {})
        if "id" not in obj:
            return answer, None
        self.created.append((f"{kind}s", int(obj["id"])))
        if kind == "deal":
            self.deal_meta[int(obj["id"])] = (str(body["issue_date"]), str(body["type"]))
        back = self.api.call(fact, "GET", f"/api/1/{kind}s/{obj['id']}",
                             params={"company_id": self.company.id})
        if back.ok and isinstance(back.body, dict) and isinstance(back.body.get(kind), dict):
            obj = dict(back.body[kind])
        return answer, obj

    def _deal_probe(self, fact: str, body: dict[str, Any]) -> tuple[Answer, dict[str, Any] | None]:
        return self._post(fact, "deal", body, date.fromisoformat(body["issue_date"]))

    # -- deals --------------------------------------------------------------------------------

    def ref_number(self) -> FactResult:
        fact = "deal_ref_number_unlimited"
        assert self.company is not None and self.ids is not None
        long_ref = f"PROBE-{'X' * 8}-{'Y' * 8}-{self.company.day:%Y%m%d}-S-EMONEY-99"
        short = "PROBE-" + "S" * (SHORT_MAX - 6)
        kept: dict[str, str] = {}
        for ref in (long_ref, short):
            body = self._deal(fact, [self._line(fact, self.ids.sales, self.ids.tax10, 1100)],
                              ref=ref)
            answer, deal = self._deal_probe(fact, body)
            if deal is None:
                kept[ref] = f"refused {answer.summary()}"
            elif deal.get("ref_number") == ref:
                kept[ref] = "stored whole"
            else:
                kept[ref] = f"stored as {deal.get('ref_number')!r}"
        whole = all(v == "stored whole" for v in kept.values())
        answered = (f"{len(long_ref)} characters: {kept[long_ref]}; "
                    f"{len(short)} characters: {kept[short]}")
        advice = ""
        if not whole:
            advice = ('set ref_number_form = "short" in [freee]'
                      if kept[short] == "stored whole" else "report it: even 20 characters fail")
        return FactResult(
            fact, "ref_number length",
            f"a deal's ref_number of {LONG_REF} characters is stored whole "
            f"(ref_number_form = \"{self.freee.ref_number_form}\"; the short form is ≤ 20)",
            answered, Verdict.AGREE if whole else Verdict.DISAGREE, fact, advice,
        )

    def negative_payment(self) -> FactResult:
        fact = "income_negative_payment"
        assert self.ids is not None
        body = self._deal(fact, [self._line(fact, self.ids.sales, self.ids.tax10, -1100)],
                          paid=-1100)
        answer, deal = self._deal_probe(fact, body)
        if deal is None:
            answered, ok = f"refused {answer.summary()}", False
        else:
            pays = [p.get("amount") for p in deal.get("payments") or []]
            answered = (f"{answer.status}: amount {deal.get('amount')}, payments {pays}, "
                        f"status {deal.get('status')}, due_amount {deal.get('due_amount')}")
            ok = deal.get("amount") == -1100 and pays == [-1100] and deal.get("due_amount") == 0
        return FactResult(
            fact, "negative payment (refund from the drawer)",
            "an income deal of -1,100 settled by a payment of -1,100 is stored as settled",
            answered, Verdict.AGREE if ok else Verdict.DISAGREE, fact,
            "" if ok else "refund-only days of settled methods will be refused: see the docs",
        )

    def minus_lines(self) -> FactResult:
        fact = "income_minus_lines"
        assert self.ids is not None
        lines = [self._line(fact, self.ids.sales, self.ids.tax10, 2200),
                 self._line(fact, self.ids.short, self.ids.tax_ex, -330)]
        answer, deal = self._deal_probe(fact, self._deal(fact, lines, paid=1870))
        if deal is None:
            answered, ok = f"refused {answer.summary()}", False
        else:
            amounts = sorted(int(d.get("amount") or 0) for d in deal.get("details") or [])
            answered = f"{answer.status}: amount {deal.get('amount')}, line amounts {amounts}"
            ok = deal.get("amount") == 1870 and amounts == [-330, 2200]
        return FactResult(
            fact, "minus lines on income deals",
            "an income deal of 2,200 with a minus line of -330 (cash short, day fold) is "
            "stored with total 1,870",
            answered, Verdict.AGREE if ok else Verdict.DISAGREE, fact,
            "" if ok else "do not use granularity = \"day\" until fixed: see the docs",
        )

    def zero_amount_vat(self) -> FactResult:
        fact = "zero_amount_line_vat"
        assert self.ids is not None
        lines = [self._line(fact, self.ids.sales, self.ids.tax10, 1100, 100),
                 self._line(fact, self.ids.sales, self.ids.tax10, 0, 1),
                 self._line(fact, self.ids.sales, self.ids.tax10, 0, -1)]
        answer, deal = self._deal_probe(fact, self._deal(fact, lines))
        if deal is None:
            answered, ok = f"refused {answer.summary()}", False
        else:
            pairs = sorted((int(d.get("amount") or 0), d.get("vat"))
                           for d in deal.get("details") or [])
            answered = f"{answer.status}: lines (amount, vat) {pairs}"
            ok = pairs == [(0, -1), (0, 1), (1100, 100)]
        return FactResult(
            fact, "amount 0 with vat ±1",
            "lines of amount 0 with vat 1 and -1 (allocation rounding) are stored as sent",
            answered, Verdict.AGREE if ok else Verdict.DISAGREE, fact,
            "" if ok else "days with such lines will be held as refused: see the docs",
        )

    def zero_total(self) -> FactResult:
        fact = "zero_total_deal"
        assert self.ids is not None
        lines = [self._line(fact, self.ids.sales, self.ids.tax10, 1100),
                 self._line(fact, self.ids.sales, self.ids.tax10, -1100)]
        answer, deal = self._deal_probe(fact, self._deal(fact, lines))
        if deal is None:
            answered, ok = f"refused {answer.summary()}", False
        else:
            answered = f"{answer.status}: amount {deal.get('amount')}, status {deal.get('status')}"
            ok = deal.get("amount") == 0
        return FactResult(
            fact, "0-yen deal",
            "a deal whose lines net to 0 (sales and returns) is stored",
            answered, Verdict.AGREE if ok else Verdict.DISAGREE, fact,
            "" if ok else "days netting to 0 per method will be held as refused: see the docs",
        )

    def outside_fiscal_years(self) -> FactResult:
        fact = "deal_outside_fiscal_years_refused"
        assert self.company is not None and self.ids is not None
        day = outside_date(self.company.masters)
        assumes = "a deal dated outside every fiscal year is refused with 400 (validation)"
        if day is None:
            return FactResult(fact, "date outside every fiscal year", assumes,
                              "the company lists no fiscal year", Verdict.NOT_CHECKED, fact)
        body = self._deal(fact, [self._line(fact, self.ids.sales, self.ids.tax_ex, 1100)],
                          day=day)
        answer, deal = self._deal_probe(fact, body)
        ok = answer.status == 400 and bool(answer.messages())
        answered = f"{day}: " + ("accepted (201)" if deal is not None else answer.summary())
        return FactResult(
            fact, "date outside every fiscal year", assumes, answered,
            Verdict.AGREE if ok else Verdict.DISAGREE, fact,
            "" if ok else "report it: the box classifies this answer (see the docs)",
        )

    def deals_list(self) -> FactResult:
        fact = "deals_list_filters"
        assert self.company is not None and self.ids is not None
        expense = self._deal(fact, [self._line(fact, self.ids.expense, self.ids.tax_ex, 110)],
                             kind="expense")
        _answer, expense_deal = self._deal_probe(fact, expense)
        expense_id = None if expense_deal is None else int(expense_deal["id"])
        day = self.company.day.isoformat()
        income_ours = {i for i, meta in self.deal_meta.items() if meta == (day, "income")}
        params = {"company_id": self.company.id, "start_issue_date": day,
                  "end_issue_date": day, "type": "income"}
        seen: list[dict[str, Any]] = []
        totals: set[int] = set()
        offset, limit = 0, 2
        for _ in range(30):
            answer = self.api.call(fact, "GET", "/api/1/deals",
                                   params={**params, "offset": offset, "limit": limit})
            if not answer.ok or not isinstance(answer.body, dict):
                return FactResult(fact, "deals list (look-up)", "-", answer.summary(),
                                  Verdict.NOT_CHECKED, fact)
            page = list(answer.body.get("deals") or [])
            total = int((answer.body.get("meta") or {}).get("total_count", -1))
            totals.add(total)
            seen += page
            offset += len(page)
            if not page or offset >= total:
                break
            if total > 10:
                limit = 100
        ids = [int(d["id"]) for d in seen]
        wrong = [d for d in seen if d.get("issue_date") != day or d.get("type") != "income"]
        missing = income_ours - set(ids)
        ok = (not wrong and not missing and len(ids) == len(set(ids))
              and totals == {len(ids)} and (expense_id is None or expense_id not in ids))
        answered = (f"{len(ids)} deals over pages of 2, total_count {sorted(totals)}; "
                    f"other dates or types listed: {len(wrong)}; "
                    f"our income probes missing: {len(missing)}; "
                    f"repeated: {len(ids) - len(set(ids))}")
        return FactResult(
            fact, "deals list (look-up)",
            "GET /api/1/deals by issue date and type, paged by offset/limit, meta.total_count "
            "counting the filtered deals",
            answered, Verdict.AGREE if ok else Verdict.DISAGREE, fact,
            "" if ok else "report it at once: exactly-once delivery rests on this look-up",
        )

    # -- transfers ----------------------------------------------------------------------------

    def _transfer(self, fact: str, rows: list[dict[str, Any]],
                  **extra: Any) -> dict[str, Any]:
        assert self.company is not None and self.ids is not None
        body: dict[str, Any] = {
            "company_id": self.company.id,
            "date": self.company.day.isoformat(),
            "from_walletable_type": self.ids.cash.type,
            "from_walletable_id": self.ids.cash.id,
            "to_walletables": rows,
        }
        body.update(extra)
        return body

    def _row(self, fact: str, amount: int) -> dict[str, Any]:
        assert self.ids is not None and self.ids.other is not None
        return {"type": self.ids.other.type, "id": self.ids.other.id, "amount": amount,
                "description": f"{PROBE_MARK}: {fact}"}

    def _no_second_wallet(self, fact: str, title: str, assumes: str) -> FactResult | None:
        assert self.ids is not None
        if self.ids.other is None:
            return FactResult(fact, title, assumes,
                              "the company has one 口座 only: a transfer needs two",
                              Verdict.NOT_CHECKED, fact)
        return None

    def transfer_description(self) -> FactResult:
        fact = "transfer_row_description"
        title = "transfer row description"
        assumes = ("a transfer's to_walletables[0].description is stored and listed by date "
                   "(the look-up matches the ref_number at its end)")
        skipped = self._no_second_wallet(fact, title, assumes)
        if skipped is not None:
            return skipped
        assert self.company is not None
        row = self._row(fact, 1)
        answer, transfer = self._post(fact, "transfer", self._transfer(fact, [row]),
                                      self.company.day)
        if transfer is None:
            return FactResult(fact, title, assumes, f"refused {answer.summary()}",
                              Verdict.DISAGREE, fact, "report it: cash movements use transfers")
        stored = [r.get("description") for r in transfer.get("to_walletables") or []]
        day = self.company.day.isoformat()
        listed = self.api.call(fact, "GET", "/api/1/transfers",
                               params={"company_id": self.company.id, "start_date": day,
                                       "end_date": day, "limit": 100})
        found = [t for t in (listed.body or {}).get("transfers") or []
                 if t.get("id") == transfer.get("id")] if isinstance(listed.body, dict) else []
        listed_ok = bool(found) and [r.get("description")
                                     for r in found[0].get("to_walletables") or []] == stored
        ok = stored == [row["description"]] and listed_ok
        answered = (f"{answer.status}: read back {stored}; "
                    f"listed by date: {'yes' if listed_ok else 'no'}")
        return FactResult(fact, title, assumes, answered,
                          Verdict.AGREE if ok else Verdict.DISAGREE, fact,
                          "" if ok else "report it: the transfer look-up needs the description")

    def _expect_refused(self, fact: str, title: str, assumes: str,
                        body: dict[str, Any]) -> FactResult:
        assert self.company is not None
        skipped = self._no_second_wallet(fact, title, assumes)
        if skipped is not None:
            return skipped
        answer, transfer = self._post(fact, "transfer", body, self.company.day)
        ok = answer.status == 400
        answered = "accepted (201)" if transfer is not None else answer.summary()
        return FactResult(fact, title, assumes, answered,
                          Verdict.AGREE if ok else Verdict.DISAGREE, fact,
                          "" if ok else "the box never sends this; update the emulator rule")

    def transfer_rows_with_description(self) -> FactResult:
        fact = "transfer_rows_with_description_refused"
        if self.ids is None or self.ids.other is None:
            return self._expect_refused(fact, "transfer rows + description", "-", {})
        return self._expect_refused(
            fact, "transfer rows + description",
            "to_walletables with a top-level description is refused (400, schema)",
            self._transfer(fact, [self._row(fact, 1)], description=f"{PROBE_MARK}: {fact}"),
        )

    def transfer_duplicate_destination(self) -> FactResult:
        fact = "transfer_duplicate_destination_refused"
        if self.ids is None or self.ids.other is None:
            return self._expect_refused(fact, "transfer to one 口座 twice", "-", {})
        return self._expect_refused(
            fact, "transfer to one 口座 twice",
            "two to_walletables rows to the same walletable are refused (400, schema)",
            self._transfer(fact, [self._row(fact, 1), self._row(fact, 2)]),
        )

    # -- OAuth --------------------------------------------------------------------------------

    def oob_redirect(self) -> FactResult:
        fact = "oauth_oob_redirect"
        verifier = secrets.token_urlsafe(48)
        params = {
            "response_type": "code",
            "client_id": self.freee.require_client_id(),
            "redirect_uri": OOB_REDIRECT,
            "state": secrets.token_urlsafe(12),
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
            "prompt": "select_company",
        }
        answer = self.api.get_page(fact, self.freee.authorize_url, params)
        location = answer.headers.get("location", "")
        refused = answer.status == 0 or answer.status >= 400 or "error=" in location
        where = f" → {location.split('?')[0]}" if location else ""
        answered = f"authorize: {answer.status}{where}" + (f" ({answer.error})" if answer.error
                                                          else "")
        return FactResult(
            fact, "OAuth: oob redirect + PKCE",
            "the authorize URL with redirect_uri urn:ietf:wg:oauth:2.0:oob and PKCE S256 (as "
            "`gatewayd link` sends it) is not refused; the link itself is the full proof",
            answered, Verdict.DISAGREE if refused else Verdict.AGREE, fact,
            "use `gatewayd link --loopback`" if refused else "",
        )

    def refresh_rotation(self) -> FactResult:
        fact = "oauth_refresh_rotates"
        before = self.tokens.load()
        assert before is not None
        self.api.recorder.add_secret(before.refresh_token, before.access_token)
        # forced (as after a 401 of this access token): an age test against another clock
        # could skip it, and the fact is whether freee rotates, not when the box refreshes
        after = self.tokens.refresh(rejected_access=before.access_token)
        self.api.recorder.add_secret(after.refresh_token, after.access_token)
        self.api.recorder.record({"fact": fact, "token refresh": {
            "refresh_token_changed": after.refresh_token != before.refresh_token,
            "access_token_changed": after.access_token != before.access_token}})
        works = self.api.call(fact, "GET", "/api/1/companies").ok
        rotated = after.refresh_token != before.refresh_token
        answered = (("a new refresh token" if rotated else "the same refresh token again")
                    + f"; the new access token {'works' if works else 'is refused'}")
        ok = rotated and works
        return FactResult(
            fact, "OAuth: refresh rotation",
            "each refresh returns a new refresh token (single use), stored before use",
            answered, Verdict.AGREE if ok else Verdict.DISAGREE, fact,
            "" if ok else "harmless if not rotated; report it",
        )

    # -- not probed ---------------------------------------------------------------------------

    def rate_limit(self) -> FactResult:
        seen = self.api.headers_seen
        answered = ("rate-limit headers on ordinary answers: "
                    + (", ".join(f"{k}: {v}" for k, v in sorted(seen.items())) or "none"))
        return FactResult(
            "rate_limit_answer", "rate-limit answer",
            "over the limit: 403 whose body speaks of the limit (about 10 min), or 429 with "
            "x-ratelimit-reset / Retry-After",
            answered + " (the run stays far inside the limit and never provokes it)",
            Verdict.NOT_CHECKED,
        )

    def permission(self) -> FactResult:
        return FactResult(
            "permission_answer", "refused-permission answer",
            "401 user_do_not_have_permission, or 403 for an app without the right",
            "not provoked: it needs a user or app without the right (see the docs)",
            Verdict.NOT_CHECKED,
        )


class ConformanceSetupError(FreeeError):
    """The test company lacks what the probes need, or freee refused a setup read."""

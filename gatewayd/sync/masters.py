"""freee masters by name: cached on disk, resolved into request bodies.

freee-mapping.md section 5. One ``GET /api/1/companies/{id}?details=true`` holds every master
(勘定科目, 品目, 部門, メモタグ, 取引先, 口座) and the fiscal years; ``GET
/api/1/taxes/companies/{id}`` holds the 税区分 with ``available`` and ``display_category``.
Both answers are kept in ``freee-masters.json`` (replaced atomically) and read again only when
a name is missing or a send fails on an id; when only 品目 are missing, only the item list is
read again (``GET /api/1/items``, one call), and a 品目 the gateway creates goes into the
cache from freee's answer. Resolving is pure: a posting of the plan (names)
becomes the JSON body freee takes (ids), or the list of names that are missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from gatewayd.sync.plan import Posting, PostingKind
from gatewayd.sync.refs import FULL, with_form
from gatewayd.sync.tokens import write_private_file

MASTERS_FILE = "freee-masters.json"

# kind → Japanese label (status page, held reasons)
KIND_LABELS = {
    "account_items": "勘定科目",
    "taxes": "税区分",
    "items": "品目",
    "sections": "部門",
    "tags": "メモタグ",
    "partners": "取引先",
    "walletables": "口座",
}


@dataclass(frozen=True, slots=True)
class TaxInfo:
    code: int
    name: str
    name_ja: str
    display_category: str | None
    available: bool

    @property
    def takes_vat(self) -> bool:
        """freee refuses ``vat`` on a 税区分 without a rate (display_category null)."""
        return self.display_category is not None


@dataclass(frozen=True, slots=True)
class Walletable:
    id: int
    type: str
    name: str


@dataclass(frozen=True, slots=True)
class FiscalYear:
    start_date: date
    end_date: date
    is_closed: bool
    month_end_date: date | None


@dataclass(frozen=True, slots=True)
class MissingName:
    kind: str  # a key of KIND_LABELS
    name: str
    note: str | None = None

    def label(self) -> str:
        text = f"{KIND_LABELS.get(self.kind, self.kind)}「{self.name}」"
        return text + (f"（{self.note}）" if self.note else "")


def _opt_date(value: object) -> date | None:
    if not value:
        return None
    return date.fromisoformat(str(value)[:10])


def _by_name(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        name = row.get("name")
        if isinstance(name, str) and name not in out and row.get("available", True) is not False:
            out[name] = int(row["id"])
    return out


class Masters:
    """The company's masters, indexed by name; built from the two cached answers."""

    def __init__(
        self,
        company: Mapping[str, Any],
        taxes: Sequence[Mapping[str, Any]],
        fetched_at: datetime,
        items_fetched_at: datetime | None = None,
    ) -> None:
        self.ref_form = FULL  # the ref_number form sent (refs.py); set by MasterCache
        self.raw_company = dict(company)
        self.raw_taxes = list(taxes)
        self.fetched_at = fetched_at  # the last full read (company details and taxes)
        # the last read of the 品目 list (a full read, or the narrow GET /api/1/items)
        self.items_fetched_at = max(fetched_at, items_fetched_at or fetched_at)
        self.company_id = int(company["id"])
        self.company_name: str | None = company.get("display_name") or company.get("name")
        self.account_items = _by_name(company.get("account_items") or [])
        self.items = _by_name(company.get("items") or [])
        self.sections = _by_name(company.get("sections") or [])
        self.tags = _by_name(company.get("tags") or [])
        self.partners = _by_name(company.get("partners") or [])
        self.walletables: dict[str, Walletable] = {}
        for w in company.get("walletables") or []:
            self.walletables.setdefault(
                str(w["name"]), Walletable(int(w["id"]), str(w["type"]), str(w["name"]))
            )
        self.taxes: dict[str, TaxInfo] = {}
        self.unavailable_taxes: set[str] = set()
        for t in taxes:
            info = TaxInfo(
                code=int(t["code"]),
                name=str(t.get("name") or ""),
                name_ja=str(t.get("name_ja") or ""),
                display_category=t.get("display_category"),
                available=bool(t.get("available", True)),
            )
            for key in (info.name_ja, info.name):
                if not key:
                    continue
                if info.available:
                    self.taxes.setdefault(key, info)
                else:
                    self.unavailable_taxes.add(key)
        self.fiscal_years = tuple(
            FiscalYear(
                start_date=date.fromisoformat(str(fy["start_date"])[:10]),
                end_date=date.fromisoformat(str(fy["end_date"])[:10]),
                is_closed=bool(fy.get("is_closed")),
                month_end_date=_opt_date(fy.get("month_end_date")),
            )
            for fy in company.get("fiscal_years") or []
        )

    # -- reverse lookups (status page: show ids as names) -----------------------------------

    def name_of(self, kind: str, ident: int | None) -> str | None:
        if ident is None:
            return None
        table: Mapping[str, int]
        if kind == "walletables":
            table = {w.name: w.id for w in self.walletables.values()}
        elif kind == "taxes":
            table = {name: t.code for name, t in self.taxes.items() if name == t.name_ja}
        else:
            table = getattr(self, kind)
        for name, value in table.items():
            if value == ident:
                return name
        return None

    def fingerprint(self) -> str:
        blob = json.dumps([self.raw_company, self.raw_taxes], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    # -- fiscal years (section 4) -----------------------------------------------------------

    def fiscal_problem(self, day: date) -> str | None:
        """Why ``day`` may not be posted (Japanese, for the status page), or None."""
        for fy in self.fiscal_years:
            if fy.start_date <= day <= fy.end_date:
                if fy.is_closed:
                    return f"会計年度（{fy.start_date}〜{fy.end_date}）は年度締め済みです"
                if fy.month_end_date is not None and day <= fy.month_end_date:
                    return f"{fy.month_end_date} まで本締め済みです"
                return None
        return f"{day} を含む会計年度が freee会計にありません"

    def after_known_years(self, day: date) -> bool:
        """The date lies past every known year: a new year may have been opened since."""
        return all(day > fy.end_date for fy in self.fiscal_years)

    # -- resolving --------------------------------------------------------------------------

    def _tax(self, name: str, missing: list[MissingName]) -> TaxInfo | None:
        info = self.taxes.get(name)
        if info is None:
            note = "利用できない税区分です" if name in self.unavailable_taxes else None
            missing.append(MissingName("taxes", name, note))
        return info

    def _id(self, kind: str, name: str | None, missing: list[MissingName]) -> int | None:
        if name is None:
            return None
        table: Mapping[str, int] = getattr(self, kind)
        ident = table.get(name)
        if ident is None:
            missing.append(MissingName(kind, name))
        return ident

    def _wallet(self, name: str, missing: list[MissingName]) -> Walletable | None:
        w = self.walletables.get(name)
        if w is None:
            missing.append(MissingName("walletables", name))
        return w

    def missing_names(self, postings: Iterable[Posting]) -> list[MissingName]:
        """Every name of these postings the company lacks (deduplicated, in order)."""
        seen: dict[tuple[str, str], MissingName] = {}
        for p in postings:
            _, missing = self.resolve(p, company_id=self.company_id)
            for m in missing:
                seen.setdefault((m.kind, m.name), m)
        return list(seen.values())

    def resolve(
        self, posting: Posting, *, company_id: int
    ) -> tuple[dict[str, Any] | None, list[MissingName]]:
        """The request body for ``posting`` (POST deals or transfers), or what is missing."""
        missing: list[MissingName] = []
        if posting.kind is PostingKind.TRANSFER:
            body = self._transfer_body(posting, company_id, missing)
        else:
            body = self._deal_body(posting, company_id, missing)
        if missing:
            return None, missing
        return with_form(body, posting.ref_number, self.ref_form), []

    def _deal_body(self, p: Posting, company_id: int, missing: list[MissingName]) -> dict[str, Any]:
        assert p.type is not None
        details: list[dict[str, Any]] = []
        for line in p.details:
            tax = self._tax(line.tax, missing)
            detail: dict[str, Any] = {
                "tax_code": tax.code if tax else 0,
                "account_item_id": self._id("account_items", line.account_item, missing) or 1,
                "amount": line.amount,
            }
            if tax is not None and tax.takes_vat and line.vat is not None:
                detail["vat"] = line.vat
            item = self._id("items", line.item, missing)
            if item is not None:
                detail["item_id"] = item
            section = self._id("sections", line.section, missing)
            if section is not None:
                detail["section_id"] = section
            tag_ids = [t for t in (self._id("tags", n, missing) for n in line.tags) if t]
            if tag_ids:
                detail["tag_ids"] = tag_ids
            if line.description:
                detail["description"] = line.description
            details.append(detail)
        body: dict[str, Any] = {
            "company_id": company_id,
            "issue_date": p.issue_date.isoformat(),
            "type": p.type.value,
            "ref_number": p.ref_number,
            "details": details,
        }
        if p.due_date is not None:
            body["due_date"] = p.due_date.isoformat()
        partner = self._id("partners", p.partner, missing)
        if partner is not None:
            body["partner_id"] = partner
        if p.payments:
            payments = []
            for pay in p.payments:
                w = self._wallet(pay.walletable, missing)
                payments.append(
                    {
                        "date": pay.date.isoformat(),
                        "from_walletable_type": w.type if w else "wallet",
                        "from_walletable_id": w.id if w else 1,
                        "amount": pay.amount,
                    }
                )
            body["payments"] = payments
        return body

    def _transfer_body(
        self, p: Posting, company_id: int, missing: list[MissingName]
    ) -> dict[str, Any]:
        t = p.transfer
        assert t is not None
        src = self._wallet(t.from_walletable, missing)
        dst = self._wallet(t.to_walletable, missing)
        return {
            "company_id": company_id,
            "date": t.date.isoformat(),
            "from_walletable_type": src.type if src else "wallet",
            "from_walletable_id": src.id if src else 1,
            "to_walletables": [
                {
                    "type": dst.type if dst else "wallet",
                    "id": dst.id if dst else 1,
                    "amount": t.amount,
                    "description": t.description,
                }
            ],
        }


class MasterCache:
    """``freee-masters.json``: the last answers, and when they were fetched."""

    def __init__(self, state_dir: Path, *, ref_form: str = FULL) -> None:
        self.path = state_dir / MASTERS_FILE
        self.ref_form = ref_form
        self._masters: Masters | None = None
        self._loaded = False

    def get(self, company_id: int | None) -> Masters | None:
        if not self._loaded:
            self._loaded = True
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                items_at = data.get("items_fetched_at")
                self._masters = Masters(
                    data["company"],
                    data["taxes"],
                    datetime.fromisoformat(data["fetched_at"]),
                    None if items_at is None else datetime.fromisoformat(items_at),
                )
                self._masters.ref_form = self.ref_form
            except (OSError, ValueError, KeyError, TypeError):
                self._masters = None
        m = self._masters
        if m is None or (company_id is not None and m.company_id != company_id):
            return None
        return m

    def put(
        self,
        company: Mapping[str, Any],
        taxes: Sequence[Mapping[str, Any]],
        fetched_at: datetime,
        items_fetched_at: datetime | None = None,
    ) -> Masters:
        masters = Masters(company, taxes, fetched_at, items_fetched_at)
        masters.ref_form = self.ref_form
        payload = {
            "fetched_at": fetched_at.isoformat(),
            "items_fetched_at": masters.items_fetched_at.isoformat(),
            "company": dict(company),
            "taxes": [dict(t) for t in taxes],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private_file(self.path, json.dumps(payload, ensure_ascii=False).encode())
        self._masters = masters
        self._loaded = True
        return masters

    def with_items(
        self, company_id: int, items: Sequence[Mapping[str, Any]], fetched_at: datetime
    ) -> Masters | None:
        """The cached masters with a freshly read 品目 list (None: nothing cached)."""
        m = self.get(company_id)
        if m is None:
            return None
        company = dict(m.raw_company)
        company["items"] = [dict(i) for i in items]
        return self.put(company, m.raw_taxes, m.fetched_at, fetched_at)

    def add_item(self, company_id: int, item: Mapping[str, Any]) -> Masters | None:
        """The cached masters with one 品目 freee just created (its POST answer)."""
        m = self.get(company_id)
        if m is None:
            return None
        company = dict(m.raw_company)
        company["items"] = [*(company.get("items") or []), dict(item)]
        return self.put(company, m.raw_taxes, m.fetched_at, m.items_fetched_at)

    def forget(self) -> None:
        self._masters = None
        self._loaded = True
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

"""A fake ``GatewayBackend`` for the status page tests: a small shop with two registers.

Not a stub: it keeps real section-8 plans (``gatewayd.sync.plan``), an outbox per day, a
tiny "freee" holding what was posted (so a deal deleted or edited in freee shows up as a
totals mismatch or an edited day), an attempt history, devices and an OAuth link that goes
through the freee emulator's consent page and token endpoint (PKCE and client secret, as
the gateway does) or, offline, through codes from ``consent_code``. Its secrets (tokens,
client secret) are the kind the page must never show; ``SECRETS`` lists them for the
scans, and a few are planted where a careless backend might leak them (an error message,
an attempt message).

Timeline (Asia/Tokyo, "now" = 2025-01-15 23:10):

    register 0001-01 渋谷店 レジ1          register 0001-02 渋谷店 レジ2
    01-15 送信済                           01-15 未閉局
    01-14 送信済                           01-14 送信中 (freee 503, retrying)
    01-13 保留: edited in freee            01-13 保留: missing master (取引先)
    01-12 送信済, but S-EMONEY deleted     01-12 送信済
          in freee (totals differ)
    01-11 送信済
    01-10 保留: check 2
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import httpx

from gatewayd.errors import FreeeRelink, GatewayError, PrinterUnavailable
from gatewayd.protocol.records import METHOD_ORDER, TAX_CLASS_ORDER, Method, TaxClass
from gatewayd.sim.freee import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, pkce_pair
from gatewayd.sim.freee.server import authorize_url as emulator_authorize_url
from gatewayd.sync.plan import (
    DayPlan,
    DayTotals,
    DealType,
    DetailLine,
    Granularity,
    PaymentLine,
    PlanStatus,
    Posting,
    PostingKind,
    ref_number,
)
from gatewayd.web.model import (
    Attempt,
    AttemptOutcome,
    DayDetail,
    DayStatus,
    DaySummary,
    Devices,
    DrawerStatus,
    EditedPosting,
    ErrorEntry,
    ErrorSource,
    FreeeLink,
    Health,
    HeldCause,
    HeldReason,
    LinkState,
    MetricsSnapshot,
    Overview,
    PaperState,
    PostingRecord,
    PostingState,
    PrinterStatus,
    QueueStatus,
    RegisterLinkStatus,
    RegisterOverview,
    ResolveChoice,
)

JST = timezone(timedelta(hours=9), "JST")
NOW = datetime(2025, 1, 15, 23, 10, tzinfo=JST)
TODAY = NOW.date()
CLIENT_ID = "gatewayd-test-client-512"
COMPANY = "株式会社サンプル商店"
COMPANY_ID = 1_234_567

# Token-like secrets the page must never show (scanned for in every response).
ACCESS_TOKEN = "fk_acc_" + "Q3x9LmZp7TvW2cYb8NdR4sHe6JgKa1Uo"
REFRESH_TOKEN = "fk_ref_" + "Vb5Nc2Xz8LqWe4RtY7uIo1PaS3dFg6Hj"
CLIENT_SECRET = "fk_sec_" + "Mn7Bv4Cx1Za9Qw2Er5Ty8Ui3Op6As0Df"
METRICS_TOKEN = "metrics-" + "T0k3n-For-Prometheus-9f8e7d6c"
SECRETS = (ACCESS_TOKEN, REFRESH_TOKEN, CLIENT_SECRET, METRICS_TOKEN)

_CODE_KEY = b"fake-consent-code-key"


def consent_code(state: str) -> str:
    """The code the fake consent page issues for ``state`` (the backend checks it)."""
    return "code-" + hmac.new(_CODE_KEY, state.encode(), hashlib.sha256).hexdigest()[:20]


# ---- plans -------------------------------------------------------------------------------

VAT_RATE = {TaxClass.STANDARD: (10, 110), TaxClass.REDUCED: (8, 108)}
TAX_NAME = {
    TaxClass.STANDARD: "課税売上10%",
    TaxClass.REDUCED: "課税売上8%（軽）",
    TaxClass.EXEMPT: "非課税売上",
    TaxClass.OUT_OF_SCOPE: "対象外",
}
LABEL = {
    Method.CASH: "現金",
    Method.CREDIT: "クレジット",
    Method.EMONEY: "電子マネー",
    Method.QR: "QRコード決済",
    Method.GIFT: "商品券",
    Method.POINT: "ポイント",
    Method.OTHER: "その他",
}


def _vat(cls: TaxClass, gross: int) -> int:
    if cls not in VAT_RATE:
        return 0
    num, den = VAT_RATE[cls]
    return gross * num // den


def summary_plan(
    register_id: str,
    day: date,
    sales: dict[Method, dict[TaxClass, int]],
    *,
    close_no: int = 1,
    store_name: str = "渋谷店",
) -> DayPlan:
    """A ``summary`` plan as freee-mapping.md §3.2 shapes it (one deal per method)."""
    store_code, terminal_no = register_id.split("-")
    postings = []
    for method in METHOD_ORDER:
        by_class = sales.get(method)
        if not by_class:
            continue
        lines = tuple(
            DetailLine(
                account_item="売上高",
                tax=TAX_NAME[cls],
                amount=by_class[cls],
                vat=_vat(cls, by_class[cls]),
                item="【POS Regi】" + LABEL[method],
                section=store_name,
                tags=("POS",),
                description=f"{store_name} {day.isoformat()} {LABEL[method]}",
            )
            for cls in TAX_CLASS_ORDER
            if by_class.get(cls)
        )
        total = sum(line.amount for line in lines)
        payments = (PaymentLine(day, "現金", total),) if method is Method.CASH else ()
        postings.append(
            Posting(
                ref_number=ref_number(store_code, terminal_no, day, f"S-{method.value}"),
                kind=PostingKind.DEAL,
                type=DealType.INCOME,
                issue_date=day,
                due_date=None,
                partner="カード会社" if method is Method.CREDIT else None,
                details=lines,
                payments=payments,
                transfer=None,
            )
        )
    by_class_total = {c: sum(s.get(c, 0) for s in sales.values()) for c in TAX_CLASS_ORDER}
    by_method_total = {m: sum(sales.get(m, {}).values()) for m in METHOD_ORDER}
    gross = sum(by_class_total.values())
    tax = sum(_vat(c, v) for c, v in by_class_total.items())
    return DayPlan(
        store_code=store_code,
        terminal_no=terminal_no,
        business_date=day,
        close_no=close_no,
        status=PlanStatus.READY,
        reason=None,
        granularity=Granularity.SUMMARY,
        totals=DayTotals(gross=gross, tax=tax, by_class=by_class_total, by_method=by_method_total),
        postings=tuple(postings),
    )


def _sales(
    cash: int, credit: int, emoney: int, reduced_share: float = 0.1
) -> dict[Method, dict[TaxClass, int]]:
    def split(total: int) -> dict[TaxClass, int]:
        reduced = int(total * reduced_share)
        return {TaxClass.STANDARD: total - reduced, TaxClass.REDUCED: reduced}

    out = {Method.CASH: split(cash), Method.CREDIT: split(credit)}
    if emoney:
        out[Method.EMONEY] = split(emoney)
    return out


def _is_sales(ref: str) -> bool:
    return "-S-" in ref or ref.endswith("-S")


def _amount(posting_json: dict[str, Any]) -> int:
    if posting_json.get("transfer"):
        return int(posting_json["transfer"]["amount"])
    return sum(int(d["amount"]) for d in posting_json.get("details", []))


# ---- state -------------------------------------------------------------------------------


@dataclass
class OutboxEntry:
    state: PostingState
    freee_id: int | None = None
    updated_at: datetime | None = None
    auto: bool = False  # queued by an action: the fake "delivers" it on the next read


@dataclass
class FakeDay:
    register_id: str
    business_date: date
    plan: DayPlan | None  # None: not closed yet
    receipt_count: int | None = None
    closed_at: datetime | None = None
    held: HeldReason | None = None
    outbox: dict[str, OutboxEntry] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    edited: list[EditedPosting] = field(default_factory=list)
    next_attempt_at: datetime | None = None
    z_gross: int | None = None  # the Z's figure of a day whose records do not add up


@dataclass
class Register:
    register_id: str
    store_name: str
    days: dict[date, FakeDay] = field(default_factory=dict)
    link: Health = Health.OK
    last_contact_at: datetime | None = None
    link_errors: int = 0


class FakeBackend:
    """The shop above; thread-safe; ``calls`` records every action for assertions."""

    def __init__(self, *, freee_base_url: str | None = None) -> None:
        """``freee_base_url``: link through the freee emulator there (real OAuth: consent
        page, code, PKCE, token exchange); None: an offline link whose codes come from
        ``consent_code``."""
        self._lock = threading.RLock()
        self._minutes = 0
        self.freee_base_url = freee_base_url
        self.calls: list[tuple[Any, ...]] = []
        self.freee: dict[str, tuple[int, dict[str, Any]]] = {}  # ref → (id, posting JSON)
        self._next_id = 880_000_001
        self._pending_states: dict[str, tuple[str, str]] = {}  # state → (redirect, verifier)
        self.access_token = ACCESS_TOKEN
        self.refresh_token = REFRESH_TOKEN
        self.client_secret = CLIENT_SECRET if freee_base_url is None else DEFAULT_CLIENT_SECRET
        self.link = FreeeLink(
            state=LinkState.LINKED,
            company_name=COMPANY,
            company_id=COMPANY_ID,
            refreshed_at=NOW - timedelta(hours=2, minutes=5),
            expires_at=NOW + timedelta(days=9, hours=3),
        )
        self.printer = PrinterStatus(
            configured=True,
            online=True,
            paper=PaperState.NEAR_END,
            cover_open=False,
            checked_at=NOW - timedelta(seconds=20),
        )
        self.drawer = DrawerStatus(
            configured=True, open=False, last_kick_at=NOW - timedelta(hours=1)
        )
        self.test_slips = 0
        self.freee_errors: dict[str, int] = {"FreeeRetryLater": 3, "FreeeRefused": 1}
        self.errors: list[ErrorEntry] = []
        self.registers: dict[str, Register] = {}
        self._build()

    # ---- the shop ----------------------------------------------------------------------

    def now(self) -> datetime:
        return NOW + timedelta(minutes=self._minutes)

    def _tick(self) -> datetime:
        self._minutes += 1
        return self.now()

    def _post(self, day: FakeDay, ref: str, at: datetime) -> None:
        assert day.plan is not None
        posting = day.plan.posting(ref)
        assert posting is not None
        fid = self._next_id
        self._next_id += 1
        self.freee[ref] = (fid, posting.to_json())
        day.outbox[ref] = OutboxEntry(PostingState.DONE, fid, at)
        day.attempts.append(Attempt(at, ref, "POST /api/1/deals", AttemptOutcome.SENT, 201))

    def _closed_day(
        self,
        reg: Register,
        d: date,
        sales: dict[Method, dict[TaxClass, int]],
        receipts: int,
        *,
        sent: bool = True,
    ) -> FakeDay:
        closed = datetime.combine(d, datetime.min.time(), JST) + timedelta(hours=22, minutes=35)
        plan = summary_plan(reg.register_id, d, sales, store_name=reg.store_name.split()[0])
        day = FakeDay(reg.register_id, d, plan, receipt_count=receipts, closed_at=closed)
        for i, p in enumerate(plan.postings):
            if sent:
                self._post(day, p.ref_number, closed + timedelta(minutes=1, seconds=i * 2))
            else:
                day.outbox[p.ref_number] = OutboxEntry(PostingState.PENDING)
        reg.days[d] = day
        return day

    def _build(self) -> None:
        r1 = Register("0001-01", "渋谷店 レジ1", last_contact_at=NOW - timedelta(seconds=1))
        r2 = Register("0001-02", "渋谷店 レジ2", last_contact_at=NOW - timedelta(seconds=2))
        r2.link_errors = 4
        self.registers = {r.register_id: r for r in (r1, r2)}
        d = TODAY
        day = timedelta(days=1)

        self._closed_day(r1, d, _sales(182_400, 151_200, 58_900), 214)
        self._closed_day(r1, d - day, _sales(167_300, 139_800, 44_100), 198)

        # 01-13: someone changed the CREDIT deal in freee after it was sent
        edited = self._closed_day(r1, d - 2 * day, _sales(171_000, 120_500, 39_600), 201)
        ref = ref_number("0001", "01", d - 2 * day, "S-CREDIT")
        fid, ours = self.freee[ref]
        theirs = {**ours, "details": [dict(x) for x in ours["details"]]}
        theirs["details"][0]["amount"] = ours["details"][0]["amount"] - 5_000
        theirs["details"][0]["description"] = "カード売上（手修正）"
        theirs["partner"] = "三井住友カード"
        self.freee[ref] = (fid, theirs)
        edited_at = datetime.combine(d - day, datetime.min.time(), JST) + timedelta(hours=10)
        edited.held = HeldReason(
            HeldCause.EDITED_IN_FREEE,
            f"{ref}: freee deal {fid} was edited after it was sent (details, partner)",
        )
        edited.edited.append(EditedPosting(ref, fid, ours, theirs, edited_at))
        edited.attempts.append(
            Attempt(
                NOW - timedelta(minutes=40),
                ref,
                f"GET /api/1/deals/{fid} (re-sync)",
                AttemptOutcome.REFUSED,
                200,
                "freee's deal differs from what was sent: not updated",
            )
        )

        # 01-12: sent, then the EMONEY deal was deleted in freee (the gateway cannot know)
        self._closed_day(r1, d - 3 * day, _sales(159_900, 130_100, 40_700), 190)
        del self.freee[ref_number("0001", "01", d - 3 * day, "S-EMONEY")]

        self._closed_day(r1, d - 4 * day, _sales(140_250, 98_400, 31_000), 176)

        # 01-10: the register's data does not add up
        broken = FakeDay(
            r1.register_id,
            d - 5 * day,
            replace(
                summary_plan(r1.register_id, d - 5 * day, {}),
                status=PlanStatus.HELD,
                reason="check 2: receipt 123 payments 1500 ≠ total 1600 (records 4411, 4418)",
            ),
            receipt_count=187,
            z_gross=301_800,
            closed_at=datetime.combine(d - 5 * day, datetime.min.time(), JST)
            + timedelta(hours=22, minutes=31),
            held=HeldReason(
                HeldCause.DAY_CHECK,
                "check 2: receipt 123 payments 1500 ≠ total 1600 (records 4411, 4418)",
            ),
        )
        r1.days[broken.business_date] = broken

        # register 2: today still open
        r2.days[d] = FakeDay(r2.register_id, d, None)
        # 01-14: closed late; freee answered 503, retrying
        sending = self._closed_day(r2, d - day, _sales(88_800, 61_300, 12_000), 97, sent=False)
        first = next(iter(sending.outbox))
        sending.attempts.append(
            Attempt(
                NOW - timedelta(minutes=5),
                first,
                "POST /api/1/deals",
                AttemptOutcome.RETRY,
                503,
                "Service Unavailable; request Authorization: Bearer " + ACCESS_TOKEN,
            )
        )
        sending.next_attempt_at = NOW + timedelta(minutes=5)
        # 01-13: the CREDIT partner of the settings does not exist in this company
        missing = self._closed_day(r2, d - 2 * day, _sales(91_200, 70_000, 0), 102, sent=False)
        for entry in missing.outbox.values():
            entry.state = PostingState.HELD
        missing.held = HeldReason(
            HeldCause.MISSING_MASTER,
            "mapping.methods.CREDIT.partner: 取引先 'カード会社' does not exist in the company",
            freee_message="指定された取引先が見つかりません。",
        )
        self._closed_day(r2, d - 3 * day, _sales(79_000, 55_500, 9_900), 88)

        self.errors = [
            ErrorEntry(
                NOW - timedelta(minutes=5),
                ErrorSource.FREEE,
                "POST /api/1/deals: 503 Service Unavailable",
                "freee会計に接続できません。自動で再送します。",
                "0001-02",
                d - day,
            ),
            ErrorEntry(
                NOW - timedelta(minutes=21),
                ErrorSource.DEVICE,
                "printer: paper near end (DLE EOT 4 = 0x1e)",
                "レシート用紙が残りわずかです。交換してください。",
            ),
            ErrorEntry(
                NOW - timedelta(days=6, hours=3),
                ErrorSource.FREEE,
                f"token refresh failed: invalid_grant (refresh_token={REFRESH_TOKEN}, "
                f"client_secret={CLIENT_SECRET})",
                "freee会計との連携が切れています。ステータス画面から再連携してください。",
            ),
        ]

    # ---- views ---------------------------------------------------------------------------

    def _deliver(self) -> None:
        """The 'delivery worker': postings queued by actions reach freee."""
        for reg in self.registers.values():
            for day in reg.days.values():
                for ref, entry in list(day.outbox.items()):
                    if entry.auto and entry.state is PostingState.PENDING:
                        self._post(day, ref, self._tick())

    def _status(self, day: FakeDay) -> DayStatus:
        if day.plan is None:
            return DayStatus.OPEN
        if day.held is not None:
            return DayStatus.HELD
        if any(e.state is not PostingState.DONE for e in day.outbox.values()):
            return DayStatus.SENDING
        return DayStatus.SYNCED

    def _summary(self, day: FakeDay) -> DaySummary:
        plan = day.plan
        if plan is None:
            return DaySummary(day.register_id, day.business_date, DayStatus.OPEN, None, None)
        in_freee = [
            _amount(self.freee[p.ref_number][1])
            for p in plan.postings
            if _is_sales(p.ref_number) and p.ref_number in self.freee
        ]
        return DaySummary(
            register_id=day.register_id,
            business_date=day.business_date,
            status=self._status(day),
            register_total=plan.totals.gross if day.z_gross is None else day.z_gross,
            freee_total=sum(in_freee) if in_freee else None,
            postings=len(plan.postings),
            postings_done=sum(1 for e in day.outbox.values() if e.state is PostingState.DONE),
            receipt_count=day.receipt_count,
            close_no=plan.close_no,
            closed_at=day.closed_at,
            held=day.held,
            last_attempt_at=day.attempts[-1].at if day.attempts else None,
            next_attempt_at=day.next_attempt_at,
        )

    def overview(self) -> Overview:
        with self._lock:
            self.calls.append(("overview",))
            self._deliver()
            regs = []
            for reg in self.registers.values():
                days = sorted(reg.days.values(), key=lambda x: x.business_date, reverse=True)
                regs.append(
                    RegisterOverview(
                        register_id=reg.register_id,
                        store_code=reg.register_id.split("-")[0],
                        terminal_no=reg.register_id.split("-")[1],
                        store_name=reg.store_name,
                        today=self._summary(days[0]),
                        recent=tuple(self._summary(x) for x in days[1:]),
                    )
                )
            return Overview(
                generated_at=self.now(),
                registers=tuple(regs),
                link=self.link,
                devices=self._devices(),
                queue=self._queue(),
                errors=tuple(self.errors),
                last_sync_at=self._last_sync(),
                version="0.1.0",
            )

    def _devices(self) -> Devices:
        return Devices(
            registers=tuple(
                RegisterLinkStatus(r.register_id, r.link, r.last_contact_at)
                for r in self.registers.values()
            ),
            printer=self.printer,
            drawer=self.drawer,
        )

    def _entries(self) -> Iterator[OutboxEntry]:
        for reg in self.registers.values():
            for day in reg.days.values():
                yield from day.outbox.values()

    def _queue(self) -> QueueStatus:
        waiting = [
            e for e in self._entries() if e.state in (PostingState.PENDING, PostingState.SENDING)
        ]
        held = sum(1 for e in self._entries() if e.state is PostingState.HELD)
        nexts = [
            d.next_attempt_at
            for r in self.registers.values()
            for d in r.days.values()
            if d.next_attempt_at is not None and self._status(d) is DayStatus.SENDING
        ]
        return QueueStatus(
            waiting=len(waiting),
            held=held,
            next_attempt_at=min(nexts) if nexts else None,
            oldest_waiting_since=NOW - timedelta(minutes=28) if waiting else None,
        )

    def _last_sync(self) -> datetime | None:
        times = [e.updated_at for e in self._entries() if e.updated_at is not None]
        return max(times) if times else None

    def day(self, register_id: str, business_date: date) -> DayDetail | None:
        with self._lock:
            self.calls.append(("day", register_id, business_date))
            self._deliver()
            reg = self.registers.get(register_id)
            day = reg.days.get(business_date) if reg else None
            if reg is None or day is None:
                return None
            plan = day.plan
            postings = ()
            if plan is not None and plan.status is PlanStatus.READY:
                postings = tuple(
                    PostingRecord(
                        p.ref_number,
                        p.kind.value,
                        p.amount,
                        day.outbox[p.ref_number].state,
                        day.outbox[p.ref_number].freee_id,
                        day.outbox[p.ref_number].updated_at,
                    )
                    for p in plan.postings
                )
            return DayDetail(
                summary=self._summary(day),
                store_name=reg.store_name,
                plan=plan.to_json() if plan is not None else None,
                postings=postings,
                attempts=tuple(day.attempts),
                edited=tuple(day.edited),
            )

    # ---- actions -------------------------------------------------------------------------

    def resend(self, register_id: str, start: date, end: date) -> int:
        with self._lock:
            self.calls.append(("resend", register_id, start, end))
            reg = self.registers.get(register_id)
            if reg is None:
                raise GatewayError(f"no register {register_id}", staff_message="レジがありません。")
            count = 0
            for day in reg.days.values():
                if not start <= day.business_date <= end or day.plan is None:
                    continue
                count += 1
                cause = day.held.cause if day.held else None
                if cause in (HeldCause.DAY_CHECK, HeldCause.EDITED_IN_FREEE):
                    continue  # a resend cannot fix these (§7: edited postings are never touched)
                if cause is not None:
                    day.held = None  # the installer fixed the setting: try again
                for p in day.plan.postings:
                    at = self._tick()
                    held_in_freee = self.freee.get(p.ref_number)
                    if held_in_freee is not None and held_in_freee[1] == p.to_json():
                        day.attempts.append(
                            Attempt(
                                at,
                                p.ref_number,
                                "GET /api/1/deals (re-sync)",
                                AttemptOutcome.UNCHANGED,
                                200,
                            )
                        )
                        continue
                    day.attempts.append(
                        Attempt(
                            at,
                            p.ref_number,
                            "GET /api/1/deals (look-up)",
                            AttemptOutcome.NOT_FOUND,
                            200,
                        )
                    )
                    day.outbox[p.ref_number] = OutboxEntry(PostingState.PENDING, auto=True)
                day.next_attempt_at = None
            return count

    def resolve_edited(self, register_id: str, business_date: date, choice: ResolveChoice) -> None:
        with self._lock:
            self.calls.append(("resolve_edited", register_id, business_date, choice))
            reg = self.registers.get(register_id)
            day = reg.days.get(business_date) if reg else None
            if day is None or day.held is None or day.held.cause is not HeldCause.EDITED_IN_FREEE:
                raise GatewayError(
                    "day is not held for an edit in freee",
                    staff_message="この日は「freeeで編集」による保留ではありません。",
                )
            for e in day.edited:
                at = self._tick()
                if choice == "post_ours":
                    fid = e.freee_id or self._next_id
                    self.freee[e.ref_number] = (fid, dict(e.ours))
                    day.attempts.append(
                        Attempt(
                            at, e.ref_number, f"PUT /api/1/deals/{fid}", AttemptOutcome.SENT, 200
                        )
                    )
                else:
                    day.attempts.append(
                        Attempt(
                            at,
                            e.ref_number,
                            "(kept freee's version)",
                            AttemptOutcome.UNCHANGED,
                            None,
                            "staff chose freee's version",
                        )
                    )
                day.outbox[e.ref_number].updated_at = at
            day.held = None
            day.edited = []

    def print_test_slip(self) -> None:
        with self._lock:
            self.calls.append(("print_test_slip",))
            if self.printer.paper is PaperState.OUT or not self.printer.online:
                raise PrinterUnavailable("printer: paper out")
            self.test_slips += 1

    def kick_drawer(self) -> None:
        with self._lock:
            self.calls.append(("kick_drawer",))
            self.drawer = replace(self.drawer, open=True, last_kick_at=self._tick())

    def link_start(self, redirect_uri: str) -> str:
        with self._lock:
            self.calls.append(("link_start", redirect_uri))
            state = secrets.token_urlsafe(16)
            if self.freee_base_url is not None:
                verifier, challenge = pkce_pair()
                self._pending_states[state] = (redirect_uri, verifier)
                return emulator_authorize_url(
                    self.freee_base_url,
                    client_id=DEFAULT_CLIENT_ID,
                    redirect_uri=redirect_uri,
                    state=state,
                    code_challenge=challenge,
                )
            self._pending_states[state] = (redirect_uri, "")
            query = urlencode(
                {
                    "response_type": "code",
                    "client_id": CLIENT_ID,
                    "redirect_uri": redirect_uri,
                    "state": state,
                    "prompt": "select_company",
                }
            )
            return f"http://127.0.0.1:9/public_api/authorize?{query}"

    def _exchange(self, code: str, redirect_uri: str, verifier: str) -> tuple[int, str]:
        """The token request to the emulator; returns (company id, company name)."""
        assert self.freee_base_url is not None
        with httpx.Client(base_url=self.freee_base_url, timeout=10) as http:
            resp = http.post(
                "/public_api/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "client_id": DEFAULT_CLIENT_ID,
                    "client_secret": self.client_secret,
                    "code_verifier": verifier,
                },
            )
            if resp.status_code != 200:
                raise FreeeRelink(
                    f"token exchange refused: {resp.status_code} {resp.json().get('error')}",
                    staff_message="freee会計との連携に失敗しました。もう一度やり直してください。",
                )
            tokens = resp.json()
            self.access_token = tokens["access_token"]
            self.refresh_token = tokens["refresh_token"]
            company_id = int(tokens["company_id"])
            company = http.get(
                f"/api/1/companies/{company_id}",
                headers={"authorization": f"Bearer {self.access_token}"},
            )
            company.raise_for_status()
            body = company.json()["company"]
            return company_id, body.get("display_name") or body["name"]

    def link_finish(self, code: str, state: str) -> FreeeLink:
        with self._lock:
            self.calls.append(("link_finish", state))
            pending = self._pending_states.pop(state, None)
            if pending is None:
                raise FreeeRelink(
                    "unknown OAuth state",
                    staff_message="freee会計との連携に失敗しました。もう一度やり直してください。",
                )
            if self.freee_base_url is not None:
                company_id, company_name = self._exchange(code, *pending)
            elif hmac.compare_digest(code, consent_code(state)):
                company_id, company_name = COMPANY_ID, COMPANY
                self.access_token = "fk_acc_" + secrets.token_urlsafe(24)
                self.refresh_token = "fk_ref_" + secrets.token_urlsafe(24)
            else:
                raise FreeeRelink(
                    "token exchange refused: invalid_grant",
                    staff_message="freee会計との連携に失敗しました。もう一度やり直してください。",
                )
            at = self._tick()
            self.link = FreeeLink(
                state=LinkState.LINKED,
                company_name=company_name,
                company_id=company_id,
                refreshed_at=at,
                expires_at=at + timedelta(days=90),
            )
            for reg in self.registers.values():
                for day in reg.days.values():
                    if day.held is not None and day.held.cause is HeldCause.LINK:
                        day.held = None
            return self.link

    def metrics(self) -> MetricsSnapshot:
        with self._lock:
            days: dict[DayStatus, int] = {}
            for reg in self.registers.values():
                for day in reg.days.values():
                    s = self._status(day)
                    days[s] = days.get(s, 0) + 1
            postings: dict[PostingState, int] = {}
            for e in self._entries():
                postings[e.state] = postings.get(e.state, 0) + 1
            queue = self._queue()
            return MetricsSnapshot(
                days_by_status=days,
                postings_by_state=postings,
                link=self.link,
                devices=self._devices(),
                last_sync_at=self._last_sync(),
                next_attempt_at=queue.next_attempt_at,
                register_link_errors={
                    r.register_id: r.link_errors for r in self.registers.values()
                },
                freee_errors=dict(self.freee_errors),
            )


# ---- servers and clients for the tests ------------------------------------------------------

PASSWORD = "kanjou-Sanpo-2025"  # the test shop's status page password


def fast_hash(password: str) -> str:
    """An argon2id hash with small parameters: verify reads them from the hash, so tests
    log in in milliseconds while ``gatewayd passwd`` keeps the strong defaults."""
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(password)


class FakeClock:
    """A monotonic clock the tests move by hand (sessions, login window, link states)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def running_server(
    state_dir: Any,
    backend: FakeBackend | None = None,
    *,
    password: str | None = PASSWORD,
    clock: FakeClock | None = None,
    **settings: Any,
) -> Iterator[Any]:
    """A real ``WebServer`` on 127.0.0.1 (free port) over the fake backend."""
    from gatewayd.web.password import password_path, write_password
    from gatewayd.web.server import WebServer
    from gatewayd.web.settings import Secret, WebSettings

    if password is not None:
        write_password(password_path(state_dir), fast_hash(password))
    settings.setdefault("port", 0)
    settings.setdefault("metrics_token", Secret(METRICS_TOKEN))
    server = WebServer(
        WebSettings(**settings),
        backend or FakeBackend(),
        state_dir=state_dir,
        clock=clock or FakeClock(),
        timezone=JST,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def csrf_of(page: str) -> str:
    import re

    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF field in the page"
    return match.group(1)


def login(client: Any, password: str = PASSWORD) -> str:
    """Log ``client`` (an httpx.Client on the server's URL) in; returns the CSRF token."""
    page = client.get("/login")
    assert page.status_code == 200
    resp = client.post(
        "/login", data={"csrf": csrf_of(page.text), "password": password, "next": "/"}
    )
    assert resp.status_code == 303, resp.text
    home = client.get("/")
    assert home.status_code == 200
    return csrf_of(home.text)

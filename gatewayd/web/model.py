"""The boundary between the status page and the rest of the gateway.

The page only ever sees these frozen values and calls ``GatewayBackend``; the daemon
implements the protocol from the real parts (journal store, outbox, token store, devices).
Nothing here carries a token or a secret: the page cannot show what it is never given.

Conventions: money is integer yen (tax included, as the register's Z reports it); times are
timezone-aware ``datetime`` (UTC is fine: the page converts to the box's local time); a
register is named by its ``register_id`` = ``{store_code}-{terminal_no}``. Free text from
the gateway (``detail``, ``message``) is English for installers; ``staff_message`` is the
Japanese text of ``GatewayError.staff_message``. The page redacts token-like strings in free
text anyway (defence in depth), but a backend must not put secrets there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

from gatewayd.errors import (
    ConfigError,
    DeviceError,
    FreeeError,
    GatewayError,
    ProtocolError,
    StorageError,
)

JsonObject = Mapping[str, Any]
ResolveChoice = Literal["keep_freee", "post_ours"]
RESOLVE_CHOICES: tuple[ResolveChoice, ...] = ("keep_freee", "post_ours")


class DayStatus(StrEnum):
    """Where one register's business day stands (the four words staff see)."""

    SYNCED = "synced"  # 送信済: freee holds every posting of the plan (or there is none)
    SENDING = "sending"  # 送信中: postings waiting in the outbox or in flight
    HELD = "held"  # 保留: nothing more is sent until the cause is gone (see HeldReason)
    OPEN = "open"  # 未閉局: the register has not closed this day yet


class HeldCause(StrEnum):
    """Why a day is held, grouped by the step that fixes it (freee-mapping.md §4, §6, §7)."""

    DAY_CHECK = "day_check"  # register-link.md §6: format / check 1 / check 2 / check 3
    FISCAL_YEAR = "fiscal_year"  # no fiscal year in freee, or it is closed / month-end locked
    MISSING_MASTER = "missing_master"  # a setting names a master that freee does not have
    LINK = "link"  # the freee link is missing, expired or lacks permission
    EDITED_IN_FREEE = "edited_in_freee"  # someone edited a posting in freee after it was sent
    REFUSED = "refused"  # freee refused a posting (4xx); freee's message is kept
    NEEDS_REVIEW = "needs_review"  # the look-up found the ref_number twice in freee

    @classmethod
    def for_day_check(cls, reason: str) -> HeldCause | None:
        """DAY_CHECK when ``reason`` starts with a register-link.md §6 check name."""
        if reason.startswith(("format", "check 1", "check 2", "check 3")):
            return cls.DAY_CHECK
        return None


@dataclass(frozen=True, slots=True)
class HeldReason:
    """A held day's cause and its technical detail; the page adds the step that fixes it."""

    cause: HeldCause
    detail: str  # e.g. "check 2: receipt 123 payments 1500 ≠ total 1600 (records 4411, 4418)"
    freee_message: str | None = None  # freee's own words, for REFUSED / MISSING_MASTER


@dataclass(frozen=True, slots=True)
class DaySummary:
    """One register's business day as a row of the overview."""

    register_id: str
    business_date: date
    status: DayStatus
    register_total: int | None  # the Z's gross_total; None while the day is open
    freee_total: int | None  # sum of the day's sales postings as freee holds them now; None: none
    postings: int = 0  # postings in the day's plan
    postings_done: int = 0  # of those, confirmed in freee (with an id)
    receipt_count: int | None = None
    close_no: int | None = None
    closed_at: datetime | None = None
    held: HeldReason | None = None
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None

    @property
    def totals_match(self) -> bool | None:
        """Whether freee's sales equal the register's; None when one side is unknown."""
        if self.register_total is None or self.freee_total is None:
            return None
        return self.register_total == self.freee_total


@dataclass(frozen=True, slots=True)
class RegisterOverview:
    """A register (terminal) with its current business day and the days before it."""

    register_id: str
    store_code: str
    terminal_no: str
    store_name: str | None
    today: DaySummary  # the current business day: OPEN until closed, then its sync status
    recent: tuple[DaySummary, ...] = ()  # earlier days, newest first


class LinkState(StrEnum):
    """The freee会計 link (values match ``gatewayd.sync.tokens.LinkState`` where shared)."""

    LINKED = "linked"
    MISSING = "missing"  # never linked
    EXPIRED = "expired"  # refresh refused (invalid_grant): link again
    NO_PERMISSION = "no_permission"  # the linked user lacks rights in the company
    FAILING = "failing"  # refreshes fail for now (network, freee down); retried by itself


@dataclass(frozen=True, slots=True)
class FreeeLink:
    """The link to freee会計 as the page shows it; never a token."""

    state: LinkState
    company_name: str | None = None
    company_id: int | None = None
    refreshed_at: datetime | None = None  # last successful token refresh (or link)
    expires_at: datetime | None = None  # when the link lapses without a refresh (90-day token)
    last_error: str | None = None  # English detail of the last link failure


class Health(StrEnum):
    OK = "ok"
    WARNING = "warning"  # works, but needs attention soon (paper near end, link flaky)
    ERROR = "error"  # does not work
    UNKNOWN = "unknown"  # checked, but the state cannot be known (drawer without a sensor)
    CHECKING = "checking"  # not polled yet since the start (確認中): never a fault
    NOT_CONFIGURED = "not_configured"


@dataclass(frozen=True, slots=True)
class RegisterLinkStatus:
    """The REGLINK/1 line to one register."""

    register_id: str
    health: Health
    last_contact_at: datetime | None = None
    detail: str | None = None  # e.g. "no answer after 3 resends"


class PaperState(StrEnum):
    OK = "ok"
    NEAR_END = "near_end"
    OUT = "out"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """The receipt printer (close slips)."""

    configured: bool
    online: bool | None = None  # None: not queried yet
    paper: PaperState = PaperState.UNKNOWN
    cover_open: bool | None = None
    checked_at: datetime | None = None
    detail: str | None = None

    @property
    def health(self) -> Health:
        if not self.configured:
            return Health.NOT_CONFIGURED
        if self.online is None:
            return Health.CHECKING
        if not self.online or self.cover_open or self.paper is PaperState.OUT:
            return Health.ERROR
        if self.paper is PaperState.NEAR_END:
            return Health.WARNING
        return Health.OK


@dataclass(frozen=True, slots=True)
class DrawerStatus:
    """The cash drawer (kicked through the printer)."""

    configured: bool
    open: bool | None = None  # None: the sensor is not wired, or not read yet
    last_kick_at: datetime | None = None
    detail: str | None = None
    checked: bool = True  # False until the printer (which reads the sensor) was polled

    @property
    def health(self) -> Health:
        if not self.configured:
            return Health.NOT_CONFIGURED
        if self.open is None:
            return Health.UNKNOWN if self.checked else Health.CHECKING
        return Health.OK


@dataclass(frozen=True, slots=True)
class Devices:
    registers: tuple[RegisterLinkStatus, ...]
    printer: PrinterStatus
    drawer: DrawerStatus


class PostingState(StrEnum):
    """Outbox states (freee-mapping.md §6)."""

    PENDING = "pending"
    SENDING = "sending"
    DONE = "done"
    HELD = "held"


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """The outbox: what still has to reach freee."""

    waiting: int  # postings pending or sending
    held: int = 0
    next_attempt_at: datetime | None = None
    oldest_waiting_since: datetime | None = None
    paused_until: datetime | None = None  # freee's rate limit: nothing is sent before this


class ErrorSource(StrEnum):
    REGISTER = "register"
    FREEE = "freee"
    DEVICE = "device"
    STORAGE = "storage"
    CONFIG = "config"
    GATEWAY = "gateway"

    @classmethod
    def of(cls, exc: GatewayError) -> ErrorSource:
        """The source that the error tree already implies."""
        if isinstance(exc, ProtocolError):
            return cls.REGISTER
        if isinstance(exc, FreeeError):
            return cls.FREEE
        if isinstance(exc, DeviceError):
            return cls.DEVICE
        if isinstance(exc, StorageError):
            return cls.STORAGE
        if isinstance(exc, ConfigError):
            return cls.CONFIG
        return cls.GATEWAY


@dataclass(frozen=True, slots=True)
class ErrorEntry:
    """One recent error, newest first in ``Overview.errors``."""

    at: datetime
    source: ErrorSource
    message: str  # English, for installers
    staff_message: str  # Japanese, for staff
    register_id: str | None = None
    business_date: date | None = None

    @classmethod
    def from_error(
        cls,
        exc: GatewayError,
        at: datetime,
        *,
        register_id: str | None = None,
        business_date: date | None = None,
    ) -> ErrorEntry:
        return cls(
            at=at,
            source=ErrorSource.of(exc),
            message=str(exc),
            staff_message=exc.staff_message,
            register_id=register_id,
            business_date=business_date,
        )


@dataclass(frozen=True, slots=True)
class TapOverview:
    """A print tap (docs/tap.md): the last Z report it captured, as printed, and its fate."""

    tap_id: str
    store_name: str | None
    transport: str
    business_date: date | None = None
    z_counter: int | None = None
    verdict: str | None = None  # accepted / held / ignored; None before the first report
    reason: str | None = None
    text: str = ""
    captured_at: str | None = None
    day: DaySummary | None = None  # the day's sync status when it reached the outbox


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything the overview page shows, read in one call."""

    generated_at: datetime
    registers: tuple[RegisterOverview, ...]
    link: FreeeLink
    devices: Devices
    queue: QueueStatus
    errors: tuple[ErrorEntry, ...] = ()
    last_sync_at: datetime | None = None  # last posting freee confirmed
    version: str = ""
    taps: tuple[TapOverview, ...] = ()

    def register(self, register_id: str) -> RegisterOverview | None:
        for reg in self.registers:
            if reg.register_id == register_id:
                return reg
        return None


class AttemptOutcome(StrEnum):
    """What one request to freee did for one posting."""

    SENT = "sent"  # POST/PUT answered 2xx: freee holds it (id recorded)
    FOUND = "found"  # look-up matched: freee already had it
    NOT_FOUND = "not_found"  # look-up did not match: it will be sent
    UNCHANGED = "unchanged"  # re-sync: freee equals what was sent, nothing to do
    DELETED = "deleted"  # re-sync removed a posting the plan no longer holds
    RETRY = "retry"  # transient failure (5xx, timeout, rate limit): retried later
    AMBIGUOUS = "ambiguous"  # may or may not have reached freee: look-up next
    REFUSED = "refused"  # 4xx: the day is held with freee's message


@dataclass(frozen=True, slots=True)
class Attempt:
    """One entry of a day's delivery history."""

    at: datetime
    ref_number: str
    action: str  # "POST /api/1/deals", "GET /api/1/deals (look-up)", "PUT …", "DELETE …"
    outcome: AttemptOutcome
    http_status: int | None = None
    message: str | None = None  # English detail, or freee's own message


@dataclass(frozen=True, slots=True)
class PostingRecord:
    """One posting of the day as the outbox holds it."""

    ref_number: str
    kind: str  # "deal" | "transfer"
    amount: int
    state: PostingState
    freee_id: int | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EditedPosting:
    """A posting someone edited in freee: what the gateway sent beside what freee holds now.

    Both are JSON objects of the same shape (the plan's posting JSON of freee-mapping.md §8),
    so the page can put them side by side and mark the fields that differ.
    """

    ref_number: str
    freee_id: int | None
    ours: JsonObject
    theirs: JsonObject | None  # None: deleted in freee
    edited_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DayDetail:
    """The day page: the plan, what freee holds, and how it got there."""

    summary: DaySummary
    store_name: str | None = None
    plan: JsonObject | None = None  # freee-mapping.md §8 JSON; None while the day is open
    postings: tuple[PostingRecord, ...] = ()
    attempts: tuple[Attempt, ...] = ()  # oldest first
    edited: tuple[EditedPosting, ...] = ()  # non-empty when held by EDITED_IN_FREEE


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """What /metrics exports, read in one call (cheap: counts, not rows)."""

    days_by_status: Mapping[DayStatus, int]
    postings_by_state: Mapping[PostingState, int]
    link: FreeeLink
    devices: Devices
    last_sync_at: datetime | None = None
    next_attempt_at: datetime | None = None
    register_link_errors: Mapping[str, int] = field(default_factory=dict)  # register_id → total
    freee_errors: Mapping[str, int] = field(default_factory=dict)  # error class name → total
    # a fleet's dashboard and alerts (contrib/, docs/fleet.md)
    today: tuple[DaySummary, ...] = ()  # per register: the current day (open, or last closed)
    oldest_unsynced_close_at: datetime | None = None  # a closed day not yet all in freee
    disk_free_bytes: int | None = None  # the state directory's file system
    disk_size_bytes: int | None = None
    clock: datetime | None = None  # the box's own clock when the snapshot was taken


class GatewayBackend(Protocol):
    """What the page reads and asks. The daemon implements it; tests use a fake.

    Methods are called from worker threads, possibly at the same time. Actions raise a
    ``GatewayError`` (its ``staff_message`` is shown to staff); anything else is a bug and
    the page shows a generic error.
    """

    def overview(self) -> Overview:
        """Today and recent days per register, the freee link, devices, queue, errors."""
        ...

    def day(self, register_id: str, business_date: date) -> DayDetail | None:
        """One day's detail, None when the box holds no such day."""
        ...

    def resend(self, register_id: str, start: date, end: date) -> int:
        """Re-sync the days start..end (inclusive) with freee (§7); returns the days queued."""
        ...

    def resolve_edited(self, register_id: str, business_date: date, choice: ResolveChoice) -> None:
        """Release a day held by EDITED_IN_FREEE: keep freee's version, or post ours again."""
        ...

    def print_test_slip(self) -> None:
        """Print a short test slip on the receipt printer."""
        ...

    def kick_drawer(self) -> None:
        """Open the cash drawer."""
        ...

    def link_start(self, redirect_uri: str) -> str:
        """Begin an OAuth link; returns freee's authorize URL (it carries a fresh ``state``).

        ``redirect_uri`` is ``urn:ietf:wg:oauth:2.0:oob`` or the page's own
        ``…/link/callback`` URL.
        """
        ...

    def link_finish(self, code: str, state: str) -> FreeeLink:
        """Exchange the code of the consent page for tokens; returns the new link."""
        ...

    def metrics(self) -> MetricsSnapshot:
        """Counts and states for /metrics."""
        ...

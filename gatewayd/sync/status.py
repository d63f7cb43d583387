"""The sync side's status, typed for the status page, ``/metrics`` and systemd ``STATUS=``.

Built from the outbox and the token file only (no call to freee), so it is cheap and safe to
read from any thread. Values use the status page's vocabulary (``gatewayd.web.model``):
days are 送信済 / 送信中 / 保留 with a cause and the step that fixes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from gatewayd.web.model import (
    DaySummary,
    ErrorEntry,
    FreeeLink,
    HeldCause,
    QueueStatus,
)

STATUS_JA = {"synced": "送信済", "sending": "送信中", "held": "保留", "open": "未閉局"}

FIX_JA: Mapping[HeldCause, str] = {
    HeldCause.DAY_CHECK: "レジの記録に不整合があります。レジで再精算（再閉局）してください。",
    HeldCause.FISCAL_YEAR: (
        "freee会計でこの日を含む会計年度を作成するか、締めを解除してください。"
        "解消すると自動で送信します。"
    ),
    HeldCause.MISSING_MASTER: (
        "freee会計に表示された名前の勘定科目・税区分・口座などを作成するか、"
        "設定の名前を直してください。解消すると自動で送信します。"
    ),
    HeldCause.LINK: "ステータス画面または `gatewayd link` で freee会計と連携し直してください。",
    HeldCause.EDITED_IN_FREEE: (
        "freee会計で編集された取引があります。日の画面で「freeeの内容を残す」か"
        "「ゲートウェイの内容で送り直す」を選んでください。"
    ),
    HeldCause.REFUSED: (
        "freee会計のメッセージを確認し、設定または freee側のマスタを直してください。"
        "直すと自動で再送します。"
    ),
    HeldCause.NEEDS_REVIEW: (
        "freee会計に同じ管理番号の取引が複数あるか内容が異なります。"
        "freee会計で重複を確認・削除してから再送してください。"
    ),
}

FIX_EN: Mapping[HeldCause, str] = {
    HeldCause.DAY_CHECK: "The register's records do not add up: close the day again on it.",
    HeldCause.FISCAL_YEAR: "Open a fiscal year for this date in freee (or unlock it).",
    HeldCause.MISSING_MASTER: "Create the named masters in freee, or fix the names in [mapping].",
    HeldCause.LINK: "Link freee again (status page or `gatewayd link`).",
    HeldCause.EDITED_IN_FREEE: "Choose keep freee's or post ours on the day page.",
    HeldCause.REFUSED: "Read freee's message; fix the setting or master; it is resent by itself.",
    HeldCause.NEEDS_REVIEW: "Remove the duplicate in freee, then resend the day.",
}


@dataclass(frozen=True, slots=True)
class TokenTimes:
    """When the tokens were refreshed and when they lapse (never the tokens)."""

    refreshed_at: datetime | None
    access_expires_at: datetime | None
    refresh_expires_at: datetime | None
    next_refresh_at: datetime | None


@dataclass(frozen=True, slots=True)
class SyncSnapshot:
    """Everything the sync side reports, read in one call."""

    generated_at: datetime
    link: FreeeLink
    tokens: TokenTimes
    days: tuple[DaySummary, ...]  # newest first
    queue: QueueStatus
    errors: tuple[ErrorEntry, ...]
    last_sync_at: datetime | None
    postings_by_state: Mapping[str, int]
    api_calls: Mapping[str, int]
    worker: str  # active | standby (another gatewayd process delivers) | stopped
    notes: tuple[str, ...] = field(default_factory=tuple)

    def day(self, register_id: str, business_date: date) -> DaySummary | None:
        for d in self.days:
            if d.register_id == register_id and d.business_date == business_date:
                return d
        return None

    def status_line(self) -> str:
        """A one-line summary for systemd's ``STATUS=``."""
        held = sum(1 for d in self.days if d.status.value == "held")
        parts = [f"freee {self.link.state.value}", f"queue {self.queue.waiting}"]
        if held:
            parts.append(f"held days {held}")
        if self.queue.paused_until is not None:
            parts.append(f"paused until {self.queue.paused_until:%H:%M}")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """Plain data for the daemon's status file and ``/api/status``."""

        def iso(value: datetime | date | None) -> str | None:
            return None if value is None else value.isoformat()

        sync_days: dict[str, dict[str, Any]] = {}
        for d in self.days:
            cause = d.held.cause if d.held is not None else None
            sync_days.setdefault(d.register_id, {})[d.business_date.isoformat()] = {
                "state": d.status.value,
                "state_ja": STATUS_JA.get(d.status.value, d.status.value),
                "reason": None if d.held is None else d.held.detail,
                "cause": None if cause is None else cause.value,
                "freee_message": None if d.held is None else d.held.freee_message,
                "fix": None if cause is None else FIX_JA.get(cause),
                "postings": d.postings,
                "postings_done": d.postings_done,
                "register_total": d.register_total,
                "freee_total": d.freee_total,
                "close_no": d.close_no,
                "next_attempt_at": iso(d.next_attempt_at),
            }
        return {
            "freee": {
                "state": self.link.state.value,
                "company": self.link.company_name or self.link.company_id,
                "company_id": self.link.company_id,
                "refreshed_at": iso(self.tokens.refreshed_at),
                "access_expires_at": iso(self.tokens.access_expires_at),
                "refresh_expires_at": iso(self.tokens.refresh_expires_at),
                "next_refresh_at": iso(self.tokens.next_refresh_at),
                "last_error": self.link.last_error,
                "worker": self.worker,
            },
            "queue": {
                "waiting": self.queue.waiting,
                "held": self.queue.held,
                "next_attempt_at": iso(self.queue.next_attempt_at),
                "oldest_waiting_since": iso(self.queue.oldest_waiting_since),
                "paused_until": iso(self.queue.paused_until),
            },
            "sync_days": sync_days,
            "postings_by_state": dict(self.postings_by_state),
            "api_calls": dict(self.api_calls),
            "last_sync_at": iso(self.last_sync_at),
            "errors": [
                {"at": iso(e.at), "message": e.message, "staff_message": e.staff_message}
                for e in self.errors
            ],
        }

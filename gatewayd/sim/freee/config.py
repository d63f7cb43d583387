"""Runtime settings of the emulator and its clock (which tests may move forward)."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar

DEFAULT_CLIENT_ID = "gatewayd-emulator-client"
DEFAULT_CLIENT_SECRET = "gatewayd-emulator-secret"
DEFAULT_CLIENT_NAME = "gatewayd（POSレジ連携）"
DEFAULT_ACCESS_TOKEN_TTL = 21_600  # 6 h (freee since July 2022)
DEFAULT_REFRESH_TOKEN_TTL = 90 * 86_400  # 90 days (freee since Dec 2023)
DEFAULT_DAILY_QUOTA = 3_000  # per company and app, standard plans
AUTH_CODE_TTL = 600  # 10 minutes

JST = timezone(timedelta(hours=9), "JST")


@dataclass
class EmulatorConfig:
    """Settings that a control endpoint may change while the emulator runs."""

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    client_scopes: str = "read write"
    auto_approve: bool = False
    access_token_ttl: int = DEFAULT_ACCESS_TOKEN_TTL
    refresh_token_ttl: int = DEFAULT_REFRESH_TOKEN_TTL
    daily_quota: int = DEFAULT_DAILY_QUOTA
    rate_per_second: int | None = None

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("client_secret")
        return data

    # Settings a control request may change, with their types.
    MUTABLE: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "auto_approve": bool,
        "access_token_ttl": int,
        "refresh_token_ttl": int,
        "daily_quota": int,
        "rate_per_second": (int, type(None)),
    }


class Clock:
    """Wall time plus an offset that tests may advance (token expiry, quota days)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._offset += seconds
            return self._offset

    @property
    def offset(self) -> float:
        return self._offset

    def jst(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC).astimezone(JST)

    def today(self) -> str:
        """Today's date in Japan (freee's update_date and quota day)."""
        return self.jst().date().isoformat()

    def iso(self, timestamp: float | None = None) -> str:
        moment = self.now() if timestamp is None else timestamp
        return datetime.fromtimestamp(moment, UTC).astimezone(JST).isoformat(timespec="seconds")

    def next_jst_midnight(self) -> str:
        now = self.jst()
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight.isoformat(timespec="seconds")

"""Sessions, CSRF tokens and the login rate limit of the status page (OWASP ASVS 5.0 L1).

- Sessions live only in this process (a dict): a logout or an expiry deletes them, so a
  copied cookie is worthless afterwards (7.4.1). Ids are 256-bit ``secrets`` values; a
  login always gets a fresh id (no fixation). A session also ends when the password file
  changes, and after ``ABSOLUTE_LIFETIME`` however busy it is (the overview refreshes itself).
- Every session, even before login, has its own CSRF token (synchroniser token, 3.5.1).
- Login attempts are limited per client and globally (6.1.1, 6.3.1); see ``LoginLimiter``.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]

ABSOLUTE_LIFETIME = 12 * 3600.0  # seconds, whatever the activity
ANONYMOUS_LIFETIME = 15 * 60.0  # a login form's session (holds only a CSRF token)
MAX_SESSIONS = 200  # oldest dropped first: an unauthenticated flood cannot grow memory


@dataclass(slots=True)
class Session:
    id: str
    csrf: str
    created: float
    last_seen: float
    user: bool = False  # logged in
    password_stamp: str | None = None
    flash: list[tuple[str, str]] = field(default_factory=list)  # (level, message key/text)
    link_states: dict[str, float] = field(default_factory=dict)  # OAuth state → issued at

    def check_csrf(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf, token)


class SessionStore:
    """Server-side sessions; thread-safe."""

    def __init__(self, lifetime: float, *, clock: Clock = time.monotonic) -> None:
        self._lifetime = lifetime
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    @property
    def lifetime(self) -> float:
        return self._lifetime

    def _expired(self, s: Session, now: float) -> bool:
        idle = self._lifetime if s.user else ANONYMOUS_LIFETIME
        return now - s.last_seen > idle or now - s.created > ABSOLUTE_LIFETIME

    def create(self, *, user: bool = False, password_stamp: str | None = None) -> Session:
        now = self._clock()
        s = Session(
            id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            created=now,
            last_seen=now,
            user=user,
            password_stamp=password_stamp,
        )
        with self._lock:
            self._sessions[s.id] = s
            while len(self._sessions) > MAX_SESSIONS:
                self._drop_one()
        return s

    def _drop_one(self) -> None:
        # anonymous sessions go first, then the least recently used
        for sid, s in self._sessions.items():
            if not s.user:
                del self._sessions[sid]
                return
        self._sessions.popitem(last=False)

    def get(self, sid: str | None, *, touch: bool = True) -> Session | None:
        """The live session of this id, None when unknown or expired (then deleted)."""
        if not sid:
            return None
        now = self._clock()
        with self._lock:
            s = self._sessions.get(sid)
            if s is None:
                return None
            if self._expired(s, now):
                del self._sessions[sid]
                return None
            if touch:
                s.last_seen = now
                self._sessions.move_to_end(sid)
            return s

    def delete(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def delete_users(self) -> None:
        """End every logged-in session (password changed)."""
        with self._lock:
            for sid in [k for k, s in self._sessions.items() if s.user]:
                del self._sessions[sid]

    def __len__(self) -> int:
        return len(self._sessions)


class LoginLimiter:
    """Failed logins in a sliding window, per client address and in total.

    - per client: after ``per_client`` failures in ``window`` seconds that client waits
      until its oldest failure leaves the window;
    - globally: after ``global_limit`` failures (any clients — an attacker with many
      addresses) every *remote* client waits likewise. Loopback clients are exempt from the
      global limit, so an attacker on the shop network cannot lock the installer out: the
      installer can always log in on the box itself (ssh tunnel) — ASVS 6.1.1.
    A success clears that client's failures. Attempts are counted before the slow argon2
    check, so a blocked client costs the box nothing.
    """

    def __init__(
        self,
        *,
        per_client: int = 5,
        global_limit: int = 30,
        window: float = 15 * 60.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.per_client = per_client
        self.global_limit = global_limit
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._clients: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def _trim(self, q: deque[float], now: float) -> None:
        while q and now - q[0] >= self.window:
            q.popleft()

    def retry_after(self, client: str, *, loopback: bool = False) -> float | None:
        """Seconds this client must wait before it may try, None when it may try now."""
        now = self._clock()
        with self._lock:
            wait = 0.0
            q = self._clients.get(client)
            if q is not None:
                self._trim(q, now)
                if not q:
                    del self._clients[client]
                elif len(q) >= self.per_client:
                    wait = max(wait, q[0] + self.window - now)
            self._trim(self._all, now)
            if not loopback and len(self._all) >= self.global_limit:
                wait = max(wait, self._all[0] + self.window - now)
            return wait if wait > 0 else None

    def failure(self, client: str) -> None:
        now = self._clock()
        with self._lock:
            self._clients.setdefault(client, deque()).append(now)
            self._all.append(now)
            if len(self._clients) > 10_000:  # bounded memory under a spray of addresses
                self._clients.pop(next(iter(self._clients)))

    def success(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())

"""Sessions, CSRF tokens and the login rate limit of the status page (OWASP ASVS 5.0 L1).

- Sessions live only in this process (a dict): a logout or an expiry deletes them, so a
  copied cookie is worthless afterwards (7.4.1). Ids are 256-bit ``secrets`` values; a
  login always gets a fresh id (no fixation). A session also ends when the password file
  changes, and after ``ABSOLUTE_LIFETIME`` however busy it is (the overview refreshes itself).
- Every logged-in session has its own CSRF token (synchroniser token, 3.5.1); the login
  form has a stateless signed one (``LoginTokens``), so anonymous requests store nothing.
- Login attempts are limited per client with backoff (6.1.1, 6.3.1); see ``LoginLimiter``.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
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


@dataclass(slots=True)
class _Attempts:
    count: int = 0
    last: float = 0.0
    until: float = 0.0  # locked out until then


class LoginLimiter:
    """Login attempts per client, with backoff; no client can lock out another.

    - An attempt is counted *before* the password is checked (``acquire``), in the same
      lock as the check of the limit: parallel requests cannot slip through together.
    - ``free`` attempts per client; from then on each attempt locks the client out for
      ``base`` × 2^(attempts − free) seconds, at most ``max_wait``. A success clears it; a
      client is forgotten ``forget`` seconds after its last attempt.
    - A client is an address, or an IPv6 /64 (``guard.client_key``): SLAAC gives one
      attacker many addresses but one prefix.
    - Loopback (the installer on the box, through an ssh tunnel) is a client of its own
      that never waits longer than ``loopback_max_wait``: whatever happens on the shop
      network, the installer gets in (ASVS 6.1.1).
    - There is no global lockout (an attacker would lock every member of staff out); the
      total rate is bounded by the page letting one argon2 check run at a time.
    """

    def __init__(
        self,
        *,
        free: int = 5,
        base: float = 60.0,
        max_wait: float = 3600.0,
        forget: float = 24 * 3600.0,
        loopback_max_wait: float = 30.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.free = free
        self.base = base
        self.max_wait = max_wait
        self.forget = forget
        self.loopback_max_wait = loopback_max_wait
        self._clock = clock
        self._lock = threading.Lock()
        self._clients: OrderedDict[str, _Attempts] = OrderedDict()

    def _record(self, client: str, now: float) -> _Attempts:
        rec = self._clients.get(client)
        if rec is None or now - rec.last >= self.forget:
            rec = _Attempts()
            self._clients[client] = rec
        self._clients.move_to_end(client)
        while len(self._clients) > 10_000:  # bounded memory under a spray of addresses
            self._clients.popitem(last=False)
        return rec

    def retry_after(self, client: str) -> float | None:
        """Seconds this client must still wait, None when it may try now."""
        now = self._clock()
        with self._lock:
            rec = self._clients.get(client)
            if rec is None or now >= rec.until:
                return None
            return rec.until - now

    def acquire(self, client: str, *, loopback: bool = False) -> float | None:
        """Count one attempt and return None, or (locked out) the seconds left, uncounted."""
        now = self._clock()
        with self._lock:
            rec = self._record(client, now)
            if now < rec.until:
                return rec.until - now
            rec.count += 1
            rec.last = now
            if rec.count >= self.free:
                wait = min(self.max_wait, self.base * 2 ** (rec.count - self.free))
                if loopback:
                    wait = min(wait, self.loopback_max_wait)
                rec.until = now + wait
            return None

    def attempts(self, client: str) -> int:
        with self._lock:
            rec = self._clients.get(client)
            return 0 if rec is None else rec.count

    def refund(self, client: str) -> None:
        """Take back an attempt that was never checked (the check was too busy)."""
        with self._lock:
            rec = self._clients.get(client)
            if rec is not None and rec.count > 0:
                rec.count -= 1
                if rec.count < self.free:
                    rec.until = 0.0

    def success(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)


class LoginTokens:
    """Stateless anti-forgery tokens for the login form (a GET /login stores nothing).

    The form's token is ``issued.HMAC(key, nonce.issued)`` where ``nonce`` is a random value
    in the browser's login cookie (signed double submit); the key lives in this process only.
    Anonymous visitors cannot fill a bounded table and push out a waiting form.
    """

    def __init__(self, *, lifetime: float = 4 * 3600.0, clock: Clock = time.monotonic) -> None:
        self.lifetime = lifetime
        self._clock = clock
        self._key = secrets.token_bytes(32)

    def _mac(self, nonce: str, issued: str) -> str:
        return hmac.new(self._key, f"{nonce}.{issued}".encode(), "sha256").hexdigest()

    def issue(self, nonce: str) -> str:
        issued = repr(float(self._clock()))
        return f"{issued}.{self._mac(nonce, issued)}"

    def check(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token or len(token) > 200 or "." not in token:
            return False
        issued, _, mac = token.rpartition(".")
        try:
            at = float(issued)
        except ValueError:
            return False
        if not 0 <= self._clock() - at <= self.lifetime:
            return False
        return hmac.compare_digest(mac, self._mac(nonce, issued))


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())

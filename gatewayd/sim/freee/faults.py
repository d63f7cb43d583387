"""Faults the emulator injects on request: latency, 500/503, dropped connections, tokens.

A rule matches requests by method and path (exact path, operation template such as
``/api/1/deals/{id}``, or a glob such as ``/api/1/*``); without a path it matches freee's
API paths (``/api/1/...``), except ``revoke_refresh_token`` which defaults to the token
endpoint. ``skip`` lets that many matching requests pass first, ``times`` bounds how often
it fires (then it is removed), ``probability`` fires it at random (seeded).

Kinds, by when they act:
- before processing: ``latency`` (sleep ``ms``), ``http_500``, ``http_503``,
  ``drop_before`` (close the connection, nothing processed), ``expire_access_token``
  (the presented access token expires now, so the request gets 401),
  ``revoke_refresh_token`` (every live refresh token of the app is revoked, so a refresh
  gets invalid_grant);
- after processing, only when it succeeded (2xx): ``latency_after``, ``drop_after``
  (the change is stored, the connection closes without an answer: the client cannot
  know), ``http_500_after`` (stored, then answered 500);
- instead of processing, later: ``commit_late`` (no answer; the connection is held until
  the client gives up — its read timeout — and the request is processed ``ms`` after
  that), ``drop_commit_late`` (the connection is closed at once without an answer and the
  request is processed ``ms`` later). A slow freee that finishes a request its client
  abandoned: the deal appears in the books only after the client gave up.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import dataclass, field
from typing import Any

BEFORE_KINDS = ("latency", "http_500", "http_503", "drop_before", "expire_access_token",
                "revoke_refresh_token")
AFTER_KINDS = ("latency_after", "drop_after", "http_500_after")
LATE_KINDS = ("commit_late", "drop_commit_late")  # decided before processing, like BEFORE_KINDS
KINDS = BEFORE_KINDS + LATE_KINDS + AFTER_KINDS
# Kinds that end the request; the first one that fires wins, later ones are not consumed.
TERMINAL_KINDS = frozenset({"http_500", "http_503", "drop_before", "drop_after", "http_500_after",
                            *LATE_KINDS})

TOKEN_PATH = "/public_api/token"


@dataclass
class FaultRule:
    kind: str
    method: str | None = None
    path: str | None = None
    times: int | None = None
    skip: int = 0
    probability: float = 1.0
    ms: int = 0
    id: int = 0
    fired: int = field(default=0)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"unknown fault kind {self.kind!r}; expected one of {', '.join(KINDS)}"
            )
        if self.method is not None:
            self.method = self.method.upper()
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1 (omit it for always)")
        if self.skip < 0 or self.ms < 0:
            raise ValueError("skip and ms must not be negative")
        if self.kind in {"latency", "latency_after"} and self.ms == 0:
            raise ValueError(f"{self.kind} needs ms > 0")

    def matches(self, method: str, path: str, template: str | None) -> bool:
        if self.method is not None and self.method != method.upper():
            return False
        pattern = self.path
        if pattern is None:
            pattern = TOKEN_PATH if self.kind == "revoke_refresh_token" else "/api/1/*"
        return pattern in {path, template} or fnmatch.fnmatchcase(path, pattern)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "method": self.method, "path": self.path,
            "times": self.times, "skip": self.skip, "probability": self.probability,
            "ms": self.ms, "fired": self.fired,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        allowed = {"kind", "method", "path", "times", "skip", "probability", "ms"}
        unknown = set(data) - allowed - {"id", "fired"}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        if "kind" not in data:
            raise ValueError("a fault needs a kind")
        values = {k: data[k] for k in allowed if k in data}
        for key in ("times", "skip", "ms"):
            if key in values and values[key] is not None and not isinstance(values[key], int):
                raise ValueError(f"{key} must be an integer")
        if "probability" in values and not isinstance(values["probability"], (int, float)):
            raise ValueError("probability must be a number")
        return cls(**values)


def parse_spec(text: str) -> FaultRule:
    """``KIND[:key=value,...]``, e.g. ``drop_after:method=POST,path=/api/1/deals,times=1``."""
    kind, _, rest = text.partition(":")
    data: dict[str, Any] = {"kind": kind.strip()}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"fault option {part!r} is not key=value")
        key = key.strip()
        if key in {"times", "skip", "ms"}:
            data[key] = int(value)
        elif key == "probability":
            data[key] = float(value)
        else:
            data[key] = value.strip()
    return FaultRule.from_json(data)


class FaultPlan:
    """The active rules; thread-safe, deterministic for a given seed."""

    def __init__(self, rules: list[FaultRule] | None = None, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next_id = 1
        self._random = random.Random(seed)
        for rule in rules or []:
            self.add(rule)

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            rule.id = self._next_id
            self._next_id += 1
            self._rules.append(rule)
            return rule

    def replace(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules = []
        for rule in rules:
            self.add(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_json() for r in self._rules]

    def fire(
        self, kinds: tuple[str, ...], method: str, path: str, template: str | None
    ) -> list[FaultRule]:
        """The rules of ``kinds`` that fire for this request (each consumed once)."""
        fired: list[FaultRule] = []
        terminal = False
        with self._lock:
            for rule in list(self._rules):
                if rule.kind not in kinds or not rule.matches(method, path, template):
                    continue
                if terminal and rule.kind in TERMINAL_KINDS:
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                rule.fired += 1
                fired.append(rule)
                terminal = terminal or rule.kind in TERMINAL_KINDS
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times == 0:
                        self._rules.remove(rule)
        return fired

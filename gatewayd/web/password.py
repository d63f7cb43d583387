"""The status page's password: one argon2id hash in the state directory, mode 0600.

Written by ``gatewayd passwd`` (another process), read by the daemon at each login; a
change of the file ends every session (the session remembers which hash it logged in with).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gatewayd.errors import StorageError

PASSWORD_FILE = "web-password"
MIN_LENGTH = 8
MAX_LENGTH = 128

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile defaults; thread-safe


def password_path(state_dir: Path) -> Path:
    return state_dir / PASSWORD_FILE


def policy_problem(password: str) -> str | None:
    """Japanese reason why ``password`` is not acceptable, or None (ASVS 6.2.1, 6.2.9)."""
    if len(password) < MIN_LENGTH:
        return f"パスワードは{MIN_LENGTH}文字以上にしてください。"
    if len(password) > MAX_LENGTH:
        return f"パスワードは{MAX_LENGTH}文字以下にしてください。"
    if len(set(password)) < 3:
        return "同じ文字の繰り返しは使えません。"
    return None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Constant-time argon2 check; a damaged hash counts as a mismatch."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class StoredPassword:
    hash: str

    @property
    def stamp(self) -> str:
        """A short fingerprint of the hash: sessions made with another hash are void."""
        return hashlib.sha256(self.hash.encode()).hexdigest()[:16]


def read_password(path: Path) -> StoredPassword | None:
    """The stored hash, None when no password is set."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StorageError(f"cannot read the password file {path}: {exc}") from None
    if not text.startswith("$argon2"):
        return None
    return StoredPassword(text)


def write_password(path: Path, password_hash: str) -> None:
    """Replace the file atomically: temp file 0600 → fsync → rename → fsync the directory."""
    directory = path.parent
    tmp = directory / f".{path.name}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (password_hash + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        st = directory.stat()
        if os.geteuid() == 0 and st.st_uid != 0:
            # run by root for a daemon user: the daemon must be able to read it
            os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, path)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StorageError(f"cannot write the password file {path}: {exc}") from None

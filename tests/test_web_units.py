"""Pure parts of the status page: [web] settings, password file, gatewayd passwd, redaction,
the side-by-side diff and the word table."""

from __future__ import annotations

import io
import re
import stat
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import pytest
from web_fixtures import ACCESS_TOKEN, CLIENT_SECRET, REFRESH_TOKEN, fast_hash

from gatewayd.cli import main
from gatewayd.errors import ConfigError
from gatewayd.settings_reader import TableReader
from gatewayd.web import i18n
from gatewayd.web.model import (
    AttemptOutcome,
    DayStatus,
    ErrorEntry,
    ErrorSource,
    Health,
    HeldCause,
    LinkState,
    PaperState,
    PostingState,
)
from gatewayd.web.password import (
    password_path,
    policy_problem,
    read_password,
    verify_password,
    write_password,
)
from gatewayd.web.settings import Secret, WebSettings, day_url, is_loopback, parse_web
from gatewayd.web.views import REDACTED, diff_rows, redact

# ---- [web] settings ------------------------------------------------------------------------


def web(data: dict[str, object]) -> WebSettings:
    return parse_web(TableReader(data, "web"))


def test_defaults() -> None:
    s = web({})
    assert s == WebSettings()
    assert (s.address, s.port, s.session_lifetime_minutes) == ("127.0.0.1", 8080, 30)
    assert s.metrics_token is None and s.public_url is None
    assert s.loopback_only


def test_every_key() -> None:
    s = web(
        {
            "address": "192.168.1.20",
            "port": 8443,
            "metrics_token": "abcdefghijklmnopqrstuvwxyz012345",
            "session_lifetime_minutes": 60,
            "public_url": "http://192.168.1.20:8443/",
            "hostnames": ["Gateway.local"],
        }
    )
    assert s.address == "192.168.1.20" and not s.loopback_only
    assert s.metrics_token == Secret("abcdefghijklmnopqrstuvwxyz012345")
    assert s.public_url == "http://192.168.1.20:8443"
    assert s.hostnames == ("gateway.local",)
    assert "abcdefghijklmnopqrstuvwxyz012345" not in repr(s)


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        ({"address": "gateway.local"}, "web.address", "an IP address"),
        ({"port": 70000}, "web.port", "≤ 65535"),
        ({"port": "8080"}, "web.port", "an integer"),
        ({"metrics_token": "short"}, "web.metrics_token", "matching"),
        ({"metrics_token": "has spaces in it and is long enough"}, "web.metrics_token", ""),
        ({"session_lifetime_minutes": 1}, "web.session_lifetime_minutes", "≥ 5"),
        ({"public_url": "ftp://box"}, "web.public_url", "http(s) URL"),
        ({"public_url": "http://u:p@box"}, "web.public_url", "no query, no user"),
        ({"public_url": "http://box/?a=1"}, "web.public_url", ""),
        ({"hostnames": ["bad name"]}, "web.hostnames", "host names"),
        ({"adress": "127.0.0.1"}, "web.adress", "documented keys"),
    ],
)
def test_wrong_values_name_key_value_and_expectation(
    data: dict[str, object], key: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as err:
        web(data)
    assert err.value.key == key
    assert expected in str(err.value)


def test_localhost_means_loopback() -> None:
    assert web({"address": "localhost"}).address == "127.0.0.1"
    assert is_loopback("::1") and is_loopback("127.0.0.5") and not is_loopback("0.0.0.0")


def test_day_url_for_the_slip_qr() -> None:
    from datetime import date

    url = day_url("http://192.168.1.20:8080/", "0001-01", date(2025, 1, 13))
    assert url == "http://192.168.1.20:8080/day/0001-01/2025-01-13"


def test_the_example_configuration_parses() -> None:
    """etc/gatewayd.toml's [web] table (if any) is valid."""
    import tomllib

    example = Path(__file__).parent.parent / "etc" / "gatewayd.toml"
    data = tomllib.loads(example.read_text(encoding="utf-8"))
    web(data.get("web", {}))


# ---- password file and gatewayd passwd ---------------------------------------------------


def test_password_file_is_0600_and_verifies(tmp_path: Path) -> None:
    path = password_path(tmp_path)
    assert read_password(path) is None
    write_password(path, fast_hash("correct horse battery"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = read_password(path)
    assert stored is not None
    assert verify_password(stored.hash, "correct horse battery")
    assert not verify_password(stored.hash, "correct horse batterY")
    assert not verify_password("$argon2id$garbage", "x")
    assert "correct horse" not in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


def test_password_policy() -> None:
    assert policy_problem("short") is not None
    assert policy_problem("aaaaaaaaaa") is not None
    assert policy_problem("x" * 200) is not None
    assert policy_problem("レジの合言葉2025") is None


def _config(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "gatewayd.toml"
    config.write_text(
        f'state_dir = "{state}"\n[[registers]]\nstore_code = "0001"\nterminal_no = "01"\n'
        'port = "loop://"\n',
        encoding="utf-8",
    )
    return config


def test_gatewayd_passwd_from_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("shop-password-2025\n"))
    assert main(["passwd", "--config", str(config), "--stdin"]) == 0
    assert "パスワードを設定しました" in capsys.readouterr().out
    stored = read_password(password_path(tmp_path / "state"))
    assert stored is not None and stored.hash.startswith("$argon2id$")
    assert "m=65536" in stored.hash  # the strong defaults, not the tests' fast hash
    assert verify_password(stored.hash, "shop-password-2025")


def test_gatewayd_passwd_refuses_a_weak_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("1234\n"))
    assert main(["passwd", "--config", str(config), "--stdin"]) == 1
    assert "8文字以上" in capsys.readouterr().err
    assert read_password(password_path(tmp_path / "state")) is None


def test_gatewayd_passwd_asks_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    answers = iter(["first-password-1", "other-password-2"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["passwd", "--config", str(config)]) == 1
    assert "一致しません" in capsys.readouterr().err
    assert read_password(password_path(tmp_path / "state")) is None


def test_gatewayd_passwd_needs_the_state_directory(tmp_path: Path) -> None:
    config = tmp_path / "gatewayd.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "missing"}"\n[[registers]]\nstore_code = "1"\n'
        'terminal_no = "1"\nport = "loop://"\n',
        encoding="utf-8",
    )
    assert main(["passwd", "--config", str(config), "--stdin"]) == 2


# ---- redaction and the diff --------------------------------------------------------------


@pytest.mark.parametrize(
    "leak",
    [
        f"refresh failed (refresh_token={REFRESH_TOKEN})",
        f'{{"access_token": "{ACCESS_TOKEN}", "expires_in": 21600}}',
        f"Authorization: Bearer {ACCESS_TOKEN}",
        f"client_secret: {CLIENT_SECRET}",
        f"token exchange with code={REFRESH_TOKEN}&state=x",
        f"opaque {ACCESS_TOKEN[7:]} in the middle",
    ],
)
def test_redact_masks_token_like_text(leak: str) -> None:
    masked = redact(leak)
    assert masked is not None and REDACTED in masked
    for secret in (ACCESS_TOKEN, REFRESH_TOKEN, CLIENT_SECRET, ACCESS_TOKEN[7:]):
        assert secret not in masked


@pytest.mark.parametrize(
    "plain",
    [
        "check 2: receipt 123 payments 1500 ≠ total 1600 (records 4411, 4418)",
        "POS-ABCDEFGH-ABCDEFGH-20250110-S-EMONEY-12: freee deal 880000008 was edited",
        "mapping.methods.CREDIT.partner: 取引先 'カード会社' does not exist",
        "POST /api/1/deals: 503 Service Unavailable",
        "reason_code R01 store_code 0001",
    ],
)
def test_redact_leaves_ordinary_text_alone(plain: str) -> None:
    assert redact(plain) == plain


def test_diff_rows_mark_what_differs() -> None:
    ours = {"partner": "A", "details": [{"amount": 100, "tags": []}], "due_date": None}
    theirs = {"partner": "B", "details": [{"amount": 100, "tags": ["x"]}], "memo": "m"}
    rows = {r.field: r for r in diff_rows(ours, theirs)}
    assert rows["partner"].differs and (rows["partner"].ours, rows["partner"].theirs) == ("A", "B")
    assert not rows["details[0].amount"].differs
    assert rows["details[0].tags"].differs and rows["details[0].tags[0]"].ours == "—"
    assert rows["due_date"].differs and rows["due_date"].theirs == "—"
    assert rows["memo"].differs and rows["memo"].ours == "—"
    deleted = diff_rows(ours, None)
    assert all(not r.differs and r.theirs == "—" for r in deleted)


def test_error_entry_from_the_error_tree() -> None:
    from datetime import UTC, datetime

    from gatewayd.errors import FreeeRateLimited, LinkDown

    at = datetime(2025, 1, 15, tzinfo=UTC)
    e = ErrorEntry.from_error(LinkDown("no answer after 3 resends"), at, register_id="0001-01")
    assert e.source is ErrorSource.DEVICE  # the register's cable: LinkDown is a DeviceError
    assert e.staff_message == LinkDown.staff_message
    assert ErrorEntry.from_error(FreeeRateLimited("429"), at).source is ErrorSource.FREEE
    assert HeldCause.for_day_check("check 3: Z gross_total 1000 ≠ 900") is HeldCause.DAY_CHECK
    assert HeldCause.for_day_check("fiscal year closed") is None


# ---- the word table ----------------------------------------------------------------------


def _template_keys() -> set[str]:
    keys: set[str] = set()
    folder = resources.files("gatewayd.web").joinpath("templates")
    for entry in folder.iterdir():
        source = entry.read_text(encoding="utf-8")
        keys |= set(re.findall(r'(?<![\w.])t\("([a-z_.]+)"', source))
        keys |= set(re.findall(r'"([a-z_]+\.[a-z_.]+)" if', source))
    app = (Path(__file__).parent.parent / "gatewayd" / "web" / "app.py").read_text("utf-8")
    keys |= set(re.findall(r'(?<![\w.])t\("([a-z_]+\.[a-z_.]+)"', app))
    return {k for k in keys if not k.endswith(".")}  # prefixes: see test_every_state_has_words


def test_every_word_the_templates_use_exists_in_both_languages() -> None:
    keys = _template_keys()
    assert len(keys) > 80
    missing = sorted(k for k in keys if k not in i18n.MESSAGES)
    assert missing == []
    for key, (ja, en) in i18n.MESSAGES.items():
        assert ja.strip() and en.strip(), key
        assert set(re.findall(r"{(\w+)}", ja)) == set(re.findall(r"{(\w+)}", en)), key


@pytest.mark.parametrize(
    ("prefix", "values"),
    [
        ("status.", DayStatus),
        ("status_help.", DayStatus),
        ("held.", HeldCause),
        ("fix.", HeldCause),
        ("link_state.", LinkState),
        ("health.", Health),
        ("paper.", PaperState),
        ("posting_state.", PostingState),
        ("outcome.", AttemptOutcome),
        ("source.", ErrorSource),
        ("resolved.", ("keep_freee", "post_ours")),
    ],
)
def test_every_state_has_words(prefix: str, values: Iterable[object]) -> None:
    for value in values:
        assert prefix + str(getattr(value, "value", value)) in i18n.MESSAGES

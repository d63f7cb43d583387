"""First-boot import from a scratch boot directory."""

from __future__ import annotations

import argparse
import datetime as dt
import stat
import sys
import types
from pathlib import Path

import pytest

from gatewayd import firstboot
from gatewayd.cli import build_parser
from gatewayd.cli import firstboot as firstboot_cli
from gatewayd.config import load_settings

SECRET = "s3cr3t-ABCDEFGHIJKLMNOP"
VALID = """\
state_dir = "/var/lib/gatewayd"

[logging]
level = "info"

[[registers]]
store_code = "0001"
terminal_no = "01"
port = "/dev/gatewayd/register"

[freee]
client_id = "1234"
client_secret = "{secret}"   # from the freee app page
"""
INVALID = VALID.replace('terminal_no = "01"', 'terminal_no = "01"\nbaudrate = 12345')
NOW = dt.datetime(2025, 1, 10, 9, 0, tzinfo=dt.UTC)


def _dirs(tmp_path: Path) -> tuple[Path, Path, Path]:
    boot, etc, cred = tmp_path / "boot", tmp_path / "etc/gatewayd", tmp_path / "etc/credstore"
    boot.mkdir()
    return boot, etc, cred


def _import(boot: Path, etc: Path, cred: Path) -> firstboot.ImportResult:
    return firstboot.import_from_boot(boot, etc, cred, group=None, now=lambda: NOW)


def _no_secret_anywhere(boot: Path) -> None:
    for path in boot.rglob("*"):
        assert SECRET.encode() not in path.read_bytes(), f"secret left in {path}"


def test_valid_file_is_moved_and_secret_stored(tmp_path: Path) -> None:
    boot, etc, cred = _dirs(tmp_path)
    (boot / "gatewayd.toml").write_text(VALID.format(secret=SECRET))
    result = _import(boot, etc, cred)

    assert result.status == "imported" and result.ok
    assert not (boot / "gatewayd.toml").exists()
    assert not (boot / "gatewayd.toml.error.txt").exists()
    assert "imported" in (boot / "gatewayd.toml.imported.txt").read_text()
    _no_secret_anywhere(boot)

    installed = etc / "gatewayd.toml"
    text = installed.read_text()
    assert SECRET not in text
    assert 'client_id = "1234"' in text
    assert "# client_secret: moved to the credential store" in text
    assert stat.S_IMODE(installed.stat().st_mode) == 0o640
    assert result.settings is not None and result.settings.registers[0].terminal_no == "01"

    stored = cred / "gatewayd.freee-client-secret"
    assert stored.read_text() == SECRET
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(cred.stat().st_mode) == 0o700


def test_secret_file_alone_is_stored_and_scrubbed(tmp_path: Path) -> None:
    boot, etc, cred = _dirs(tmp_path)
    (boot / "gatewayd-freee.txt").write_text(f'client_secret = "{SECRET}"\n')
    result = _import(boot, etc, cred)
    assert result.status == "secret-only" and result.ok
    assert not (boot / "gatewayd-freee.txt").exists()
    assert (cred / "gatewayd.freee-client-secret").read_text() == SECRET
    assert not (etc / "gatewayd.toml").exists()
    _no_secret_anywhere(boot)


def test_invalid_file_stays_with_error_beside_it(tmp_path: Path) -> None:
    boot, etc, cred = _dirs(tmp_path)
    (boot / "gatewayd.toml").write_text(INVALID.format(secret=SECRET))
    (etc).mkdir(parents=True)
    (etc / "gatewayd.toml").write_text("# the running configuration\n")
    result = _import(boot, etc, cred)

    assert result.status == "invalid" and not result.ok
    left = (boot / "gatewayd.toml").read_text()
    assert "baudrate = 12345" in left  # the installer's file, to fix on the laptop
    error = (boot / "gatewayd.toml.error.txt").read_text()
    assert "registers[0].baudrate" in error and "12345" in error
    assert "取り込まれませんでした" in error
    # The secret left the card anyway, and went to the credential store.
    _no_secret_anywhere(boot)
    assert (cred / "gatewayd.freee-client-secret").read_text() == SECRET
    # The running configuration is untouched, and no temp file is left behind.
    assert (etc / "gatewayd.toml").read_text() == "# the running configuration\n"
    assert sorted(p.name for p in etc.iterdir()) == ["gatewayd.toml"]


def test_not_toml_at_all_stays_with_error(tmp_path: Path) -> None:
    boot, etc, cred = _dirs(tmp_path)
    (boot / "gatewayd.toml").write_text("this is [not toml\n")
    result = _import(boot, etc, cred)
    assert result.status == "invalid"
    assert (boot / "gatewayd.toml").read_text() == "this is [not toml\n"
    error = (boot / "gatewayd.toml.error.txt").read_text()
    assert "not valid TOML" in error and ".new" not in error


def test_fixed_file_replaces_error_and_keeps_previous(tmp_path: Path) -> None:
    boot, etc, cred = _dirs(tmp_path)
    (boot / "gatewayd.toml").write_text(INVALID.format(secret=SECRET))
    _import(boot, etc, cred)
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "gatewayd.toml").write_text("# old\n")
    (boot / "gatewayd.toml").write_text(VALID.format(secret=SECRET))  # fixed on the laptop
    result = _import(boot, etc, cred)
    assert result.status == "imported"
    assert not (boot / "gatewayd.toml.error.txt").exists()
    assert (etc / "gatewayd.toml.previous").read_text() == "# old\n"


def test_inline_table_secret_leaves_the_card(tmp_path: Path) -> None:
    boot, etc, cred = _dirs(tmp_path)
    text = VALID.format(secret="x").split("[freee]")[0]
    text = text.replace('state_dir', f'freee = {{ client_secret = "{SECRET}" }}\nstate_dir')
    (boot / "gatewayd.toml").write_text(text)
    result = _import(boot, etc, cred)
    assert result.status == "invalid"
    assert not (boot / "gatewayd.toml").exists()
    assert "inline table" in (boot / "gatewayd.toml.error.txt").read_text()
    _no_secret_anywhere(boot)


def test_nothing_to_do(tmp_path: Path) -> None:
    boot, etc, cred = _dirs(tmp_path)
    assert _import(boot, etc, cred).status == "nothing"
    assert list(boot.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{SECRET}\n", SECRET),
        (f"# freee\nclient_secret={SECRET}\n", SECRET),
        (f"client_secret = '{SECRET}'\n", SECRET),
        ("client_id = 1\nsomething = 2\n", None),
        ("", None),
    ],
)
def test_parse_secret_file(text: str, expected: str | None) -> None:
    assert firstboot.parse_secret_file(text) == expected


def test_strip_secrets_dotted_key_and_other_tables() -> None:
    text = (f'freee.client_secret = "{SECRET}"\n[web]\nclient_secret = "keep: not freee"\n'
            f'[freee]\n"client_secret" = "{SECRET}"\n')
    new, found = firstboot.strip_secrets(text)
    assert [f.value for f in found] == [SECRET, SECRET]
    assert SECRET not in new and 'client_secret = "keep: not freee"' in new


def test_slip_hook_receives_the_page_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boot, etc, cred = _dirs(tmp_path)
    (boot / "gatewayd.toml").write_text(
        VALID.format(secret=SECRET) + '\n[slip]\nstatus_url = "http://shop-gw.local:8080/"\n')
    printed: list[tuple[firstboot.SetupSlip, object]] = []
    hook = types.ModuleType("fake_slip_hook")
    hook.print_setup_slip = lambda slip, settings: printed.append((slip, settings))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_slip_hook", hook)
    monkeypatch.setattr(firstboot, "SLIP_HOOK", "fake_slip_hook:print_setup_slip")

    parser = build_parser(["firstboot"])
    args = parser.parse_args(["firstboot", "--boot-dir", str(boot), "--etc-dir", str(etc),
                              "--credentials-dir", str(cred)])
    assert firstboot_cli.run(args) == 0
    (slip, settings), = printed
    assert slip.ok and slip.page_urls == ("http://shop-gw.local:8080/",)
    assert "http://shop-gw.local:8080/" in slip.text()
    assert settings is not None


def test_missing_slip_integration_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    slip = firstboot.SetupSlip(ok=True, title="t", lines=())
    assert firstboot.print_status_slip(slip, None, hook="gatewayd.no_such_module:f") is False
    assert "no slip printer integration" in caplog.text


def test_invalid_run_exits_1(tmp_path: Path) -> None:
    boot, etc, cred = _dirs(tmp_path)
    (boot / "gatewayd.toml").write_text(INVALID.format(secret=SECRET))
    args = argparse.Namespace(boot_dir=boot, etc_dir=etc, credentials_dir=cred, no_slip=True)
    assert firstboot_cli.run(args) == 1


def test_page_urls_from_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "g.toml"
    base = VALID.format(secret="x").split("[freee]")[0]
    cfg.write_text(base + '\n[web]\npublic_url = "http://192.168.1.20:8080"\n')
    assert firstboot.page_urls(load_settings(cfg)) == ("http://192.168.1.20:8080",)
    cfg.write_text(base + "\n[web]\nport = 8181\n")
    urls = firstboot.page_urls(load_settings(cfg), address="10.0.0.5")
    assert urls[0].endswith(".local:8181/") and urls[1] == "http://10.0.0.5:8181/"


# ---- issue 12 (10): an invalid file keeps no secret field on the card ---------------------

METRICS = "m3tr1cs-" + "QwErTy0123456789AbCdEfGhIjKlMnOp"
PAGE_PASSWORD = "hunter2-" + "ZXCVBNM"


def test_invalid_file_left_on_the_card_keeps_no_secret_field(tmp_path: Path) -> None:
    """metrics_token and any other secret key leave the card, not only client_secret."""
    boot, etc, cred = _dirs(tmp_path)
    text = INVALID.format(secret=SECRET) + (
        f'\n[web]\naddress = "0.0.0.0"\nmetrics_token = "{METRICS}"   # for Prometheus\n'
        f'\n[notify]\nsmtp_password = \'{PAGE_PASSWORD}\'\nclient_secret_file = "/etc/x"\n')
    (boot / "gatewayd.toml").write_text(text)
    result = _import(boot, etc, cred)
    assert result.status == "invalid"
    left = (boot / "gatewayd.toml").read_text()
    assert "baudrate = 12345" in left and 'address = "0.0.0.0"' in left  # still to fix
    assert 'client_secret_file = "/etc/x"' in left  # a path, not a secret
    for secret in (SECRET, METRICS, PAGE_PASSWORD):
        for path in boot.rglob("*"):
            assert secret.encode() not in path.read_bytes(), f"{secret} left in {path}"
    assert "metrics_token: removed from the card" in left
    rejected = list((etc / "rejected").iterdir())
    assert len(rejected) == 1 and METRICS in rejected[0].read_text()  # nothing lost
    assert stat.S_IMODE(rejected[0].stat().st_mode) == 0o600


def test_a_bad_secret_value_is_blanked_in_the_error_file(tmp_path: Path) -> None:
    boot, etc, cred = _dirs(tmp_path)
    short = "short-but-secret-9"
    (boot / "gatewayd.toml").write_text(
        VALID.format(secret=SECRET) + f'\n[web]\nmetrics_token = "{short}"\n')
    result = _import(boot, etc, cred)
    assert result.status == "invalid"
    error = (boot / "gatewayd.toml.error.txt").read_text()
    assert "web.metrics_token" in error and short not in error
    assert all(short.encode() not in p.read_bytes() for p in boot.rglob("*"))


def test_inline_secret_field_takes_the_whole_file_off_the_card(tmp_path: Path) -> None:
    boot, etc, cred = _dirs(tmp_path)
    (boot / "gatewayd.toml").write_text(
        INVALID.format(secret=SECRET) + f'\nweb = {{ metrics_token = "{METRICS}" }}\n')
    assert _import(boot, etc, cred).status == "invalid"
    assert not (boot / "gatewayd.toml").exists()
    assert all(METRICS.encode() not in p.read_bytes() for p in boot.rglob("*"))

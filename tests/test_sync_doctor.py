"""``gatewayd doctor``'s freee checks against the emulator: link and masters, with fixes."""

from __future__ import annotations

from pathlib import Path

from sync_fixtures import CLIENT_ID, CLIENT_SECRET, Harness, link

from gatewayd.config import RegisterSettings, Settings
from gatewayd.doctor import DoctorContext
from gatewayd.sync.doctor import check_link, check_masters

pytest_plugins = ["sync_fixtures"]


def context(harness: Harness, mapping: dict[str, object]) -> DoctorContext:
    base = harness.emulator.base_url
    settings = Settings(
        state_dir=harness.state_dir,
        registers=(RegisterSettings("0001", "01", "loop://", section="池袋店"),),
        extra={
            "freee": {
                "api_base_url": base,
                "auth_base_url": base,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
            "mapping": mapping,
        },
    )
    return DoctorContext(Path("/dev/null"), settings, None, harness.state_dir)


def test_doctor_reports_link_and_missing_masters_with_fixes(harness: Harness) -> None:
    ctx = context(harness, {"tax_names": {"0": "非課売上"}, "cash_over_account": "現金過不足"})
    before = check_link(ctx)
    assert before.status == "fail" and "gatewayd link" in before.fix_en
    assert check_masters(ctx).status == "skip"
    svc = harness.service()
    link(svc)
    requests = len(harness.transport.requests)
    result = check_link(ctx)
    assert result.status == "ok" and "3100001" in result.message
    masters = check_masters(ctx)
    assert masters.status == "fail"
    assert "部門「池袋店」" in masters.message and "勘定科目「現金過不足」" in masters.message
    assert "[mapping]" in masters.fix_ja
    # prefix items: never missing (created at link time here, so not listed either)
    assert "品目" not in masters.message and not any("品目" in d for d in masters.details)
    assert len(harness.transport.requests) == requests  # doctor never went through the gateway
    token = (harness.state_dir / "freee-token.json").read_text()
    check_link(ctx)
    assert (harness.state_dir / "freee-token.json").read_text() == token  # nothing changed


def test_doctor_is_ok_when_everything_exists(harness: Harness) -> None:
    ctx = context(harness, {"tax_names": {"0": "非課売上"}})
    assert ctx.settings is not None
    ctx.settings = Settings(
        state_dir=harness.state_dir,
        registers=(RegisterSettings("0001", "01", "loop://", section="渋谷店"),),
        extra=ctx.settings.extra,
    )
    link(harness.service())
    result = check_masters(ctx)
    # warn only if today's date lies outside the seed's fiscal years
    assert result.status == "ok" or (result.status == "warn" and "会計年度" in result.message)

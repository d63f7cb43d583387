"""contrib/prometheus: the shipped rules pass `promtool check rules` and their unit tests
(`promtool test rules`: every alert quiet, then firing, with its Japanese and English
summaries and actions), and every alert carries both languages and an action."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

CONTRIB = Path(__file__).resolve().parents[1] / "contrib" / "prometheus"
RULES = CONTRIB / "gatewayd.rules.yml"
RULE_TESTS = CONTRIB / "gatewayd.rules.test.yml"
ANNOTATIONS = {"summary", "summary_en", "action", "action_en"}


def promtool() -> str:
    """promtool's path. Debian's `prometheus` package ships it and scripts/setup.sh installs
    it; only a machine without it skips, and says why (CI must have it: CI=true fails)."""
    path = shutil.which("promtool")
    if path is None:
        why = "promtool not found: install Debian's `prometheus` package (scripts/setup.sh does)"
        if os.environ.get("CI"):
            pytest.fail(why)
        print(why)
        pytest.skip(why)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=CONTRIB, capture_output=True, text=True, timeout=60, check=False
    )


def alerts() -> list[dict[str, object]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [r for g in data["groups"] for r in g["rules"] if "alert" in r]


def test_rules_are_valid() -> None:
    result = run("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_pass() -> None:
    result = run("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    fired = {
        t["alertname"]
        for group in tests
        for t in group.get("alert_rule_test", [])
        if t["exp_alerts"]
    }
    quiet = {
        t["alertname"]
        for group in tests
        for t in group.get("alert_rule_test", [])
        if not t["exp_alerts"]
    }
    names = {str(a["alert"]) for a in alerts()}
    assert fired == names and quiet == names


def test_every_alert_speaks_japanese_and_english_and_says_what_to_do() -> None:
    expected = {
        "GatewaydDayHeld",
        "GatewaydDayNotSynced",
        "GatewaydFreeeLinkExpired",
        "GatewaydFreeeLinkExpiring",
        "GatewaydPrinterPaperOut",
        "GatewaydPrinterOffline",
        "GatewaydDrawerOpenTooLong",
        "GatewaydRegisterLinkDown",
        "GatewaydDiskFilling",
        "GatewaydClockOff",
        "GatewaydNotScraped",
    }
    assert {str(a["alert"]) for a in alerts()} == expected
    for alert in alerts():
        notes = alert["annotations"]
        assert isinstance(notes, dict) and set(notes) == ANNOTATIONS, alert["alert"]
        assert any("\u3040" <= ch <= "\u30ff" for ch in notes["summary"] + notes["action"])
        assert notes["summary_en"].isascii() and notes["action_en"].isascii()


def test_a_broken_rule_fails_its_unit_test(tmp_path: Path) -> None:
    """The unit tests can fail: a threshold moved from 30 to 60 minutes is caught."""
    text = RULES.read_text(encoding="utf-8")
    old = "oldest_unsynced_close_timestamp_seconds > 1800"
    broken = text.replace(old, old.replace("1800", "3600"))
    assert broken != text
    (tmp_path / RULES.name).write_text(broken, encoding="utf-8")
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    result = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0 and "GatewaydDayNotSynced" in result.stdout + result.stderr

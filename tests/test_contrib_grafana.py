"""contrib/grafana/gatewayd-fleet.json: valid dashboard JSON whose every query (and every
query of the shipped Prometheus rules) names metrics a running daemon exports on /metrics."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gatewayd.cli.demo import DemoOptions, DemoRig

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "contrib" / "grafana" / "gatewayd-fleet.json"
RULES = ROOT / "contrib" / "prometheus" / "gatewayd.rules.yml"
PROMETHEUS_OWN = {"up"}  # Prometheus's own series about the scrape
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (selectors, not functions or labels)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        after = text[match.end() :].lstrip()
        if after.startswith("(") or word.lower() in KEYWORDS:
            continue  # a function, or a keyword
        if match.start() > 0 and text[match.start() - 1].isdigit():
            continue  # a duration or a number's exponent
        names.add(word)
    return names


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def queries(dash: dict[str, Any]) -> Iterator[str]:
    for panel in dash["panels"]:
        for target in panel["targets"]:
            yield target["expr"]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            found = re.fullmatch(r"label_values\((\w+),\s*\w+\)", var["definition"])
            assert found, var["definition"]
            yield found.group(1)


def rule_queries() -> Iterator[str]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in data["groups"]:
        for rule in group["rules"]:
            yield str(rule["expr"])


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        'sum by (instance, kind) (increase(gatewayd_freee_errors_total{instance=~"$i"}[1h]))'
        ' / on (instance) gatewayd_x - time() > 5e3 or vector(0)'
    )
    assert metric_names(expr) == {"gatewayd_freee_errors_total", "gatewayd_x"}


def test_dashboard_is_one_view_of_many_boxes() -> None:
    dash = dashboard()
    assert dash["uid"] == "gatewayd-fleet" and dash["title"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    names = {v["name"] for v in dash["templating"]["list"]}
    assert names == {"datasource", "instance"}
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"} and panel["targets"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'instance=~"$instance"' in target["expr"], target["expr"]
    titles = " ".join(p["title"] for p in dash["panels"])
    for topic in ("today", "gross", "freee", "queue", "Devices"):
        assert topic.lower() in titles.lower() or topic in json.dumps(dash), topic


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Metric names (families and samples) of a running daemon's /metrics: the demo rig
    (register and printer simulators, freee emulator) after its days reached freee."""
    opts = DemoOptions(
        directory=tmp_path_factory.mktemp("demo") / "demo",
        days=2,
        receipts=8,
        day_interval=0.5,
        web_port=0,
        seed=3,
    )
    with DemoRig(opts) as rig:
        assert rig.wait_finished(90), rig.day_states()
        assert rig.gateway is not None and rig.gateway.web is not None
        with httpx.Client(base_url=rig.gateway.web.url, timeout=10) as http:
            response = http.get("/metrics")
    assert response.status_code == 200
    names: set[str] = set()
    samples: set[str] = set()
    for family in text_string_to_metric_families(response.text):
        names.add(family.name)
        if family.type == "counter":  # its series is NAME_total (even before a sample)
            names.add(family.name + "_total")
        for sample in family.samples:
            samples.add(sample.name)
    # the per-store series the dashboard is built on carry values on a live box
    assert {"gatewayd_register_day_status", "gatewayd_register_day_gross_yen"} <= samples
    assert {"gatewayd_time_seconds", "gatewayd_state_disk_free_bytes"} <= samples
    return names | samples


def test_every_dashboard_query_names_exported_metrics(exported: set[str]) -> None:
    for expr in queries(dashboard()):
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, (expr, names - exported)


def test_every_rule_names_exported_metrics_or_recorded_ones(exported: set[str]) -> None:
    recorded = {
        str(rule["record"])
        for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    for expr in rule_queries():
        unknown = metric_names(expr) - exported - recorded - PROMETHEUS_OWN
        assert not unknown, (expr, unknown)

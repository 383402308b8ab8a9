"""The shipped monitoring files: alerting rules, their promtool tests, the Grafana dashboard, the PromQL.

``promtool check rules`` and ``promtool test rules`` run the alerting rules; every PromQL query
of the dashboard and of docs/metrics.rst is parsed by promtool too (as a recording rule), and
may name only metrics of the catalogue.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _signals import require_tool

from speakerembed import metrics as m
from speakerembed.serve.app import SERVICE_METRICS

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "docs" / "monitoring"
RULES = MONITORING / "speakerembed-alerts.yml"
RULES_TEST = MONITORING / "speakerembed-alerts.test.yml"
DASHBOARD = MONITORING / "speakerembed-dashboard.json"
DOC = ROOT / "docs" / "metrics.rst"

# Names a query may use: the catalogue's and the service's (speakerembed.serve.app, which needs
# no extra to import), and a histogram's _bucket, _sum and _count.
SERVICE = dict(SERVICE_METRICS)
KNOWN = (
    {spec.name for spec in m.CATALOGUE}
    | {
        spec.name + suffix
        for spec in m.CATALOGUE
        if spec.type == "histogram"
        for suffix in ("_bucket", "_sum", "_count")
    }
    | set(SERVICE)
    | {
        name + suffix
        for name, kind in SERVICE.items()
        if kind == "histogram"
        for suffix in ("_bucket", "_sum", "_count")
    }
)


def promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bspeakerembed_[a-z_]+", expr))


def dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for panel in dash["panels"] for t in panel["targets"]]


def doc_queries() -> list[str]:
    """Every line of the ``.. code-block:: promql`` blocks in docs/metrics.rst."""
    out: list[str] = []
    lines = DOC.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.strip() == ".. code-block:: promql":
            for body in lines[i + 2 :]:
                if body and not body.startswith("   "):
                    break
                if body.strip():
                    out.append(body.strip())
    return out


def check_promql(exprs: list[str], tmp_path: Path) -> None:
    """Parse each expression with promtool, as recording rules."""
    rules = {
        "groups": [{"name": "q", "rules": [{"record": f"q:{i}", "expr": e} for i, e in enumerate(exprs)]}]
    }
    path = tmp_path / "queries.yml"
    path.write_text(json.dumps(rules), encoding="utf-8")  # JSON is YAML
    out = promtool("check", "rules", str(path), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in out.stdout


def test_alert_rules_are_valid() -> None:
    out = promtool("check", "rules", RULES.name)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 4 rules found" in out.stdout


def test_alert_rules_pass_their_tests() -> None:
    out = promtool("test", "rules", RULES_TEST.name)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_is_exercised_and_guarded() -> None:
    rules = RULES.read_text(encoding="utf-8")
    tests = RULES_TEST.read_text(encoding="utf-8")
    alerts = re.findall(r"^\s*- alert: (\w+)", rules, flags=re.MULTILINE)
    assert sorted(alerts) == [
        "SpeakerembedHighErrorRatio",
        "SpeakerembedHighLatencyP95",
        "SpeakerembedServeHighLatencyP99",
        "SpeakerembedServeOverloaded",
    ]
    for alert in alerts:
        # Each alert is tested firing (a non-empty exp_alerts) and staying quiet (an empty one).
        end = r"(?=\n\s+- eval_time|\n\s+promql_expr_test|\n\s+- interval|\Z)"
        blocks = re.findall(rf"alertname: {alert}\n\s+exp_alerts:(.*?){end}", tests, flags=re.DOTALL)
        assert any(b.strip() == "[]" for b in blocks), alert
        assert any("exp_labels" in b for b in blocks), alert
    # The idle-instance guard: each rule asks for at least one request a minute.
    assert rules.count("* 60 >= 1") == len(alerts)
    assert metric_names(rules) <= KNOWN


def test_dashboard_queries_are_valid_promql_on_the_catalogue(tmp_path: Path) -> None:
    exprs = dashboard_queries()
    assert len(exprs) >= 10
    for expr in exprs:
        assert metric_names(expr), expr
        assert metric_names(expr) <= KNOWN, expr
    # Grafana's variables, as Grafana would fill them in.
    filled = [
        e.replace("$__rate_interval", "1m").replace("$job", ".*").replace("$instance", ".*") for e in exprs
    ]
    check_promql(filled, tmp_path)


def test_dashboard_covers_the_documented_views() -> None:
    dash: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = "\n".join(dashboard_queries())
    for phi in ("0.5", "0.95", "0.99"):
        stage_quantile = f"histogram_quantile({phi}, sum by (le, stage, device) (rate(speakerembed_stage_"
        assert stage_quantile in exprs
    assert 'rate(speakerembed_utterances_total{job=~"$job",instance=~"$instance",outcome="success"}' in exprs
    assert (
        'outcome="error"}[$__rate_interval])) / sum by (instance) (rate(speakerembed_utterances_total'
        in exprs
    )
    # The service's p99 per endpoint and its 503 rate.
    assert (
        "histogram_quantile(0.99, sum by (le, endpoint) (rate(speakerembed_serve_request_duration_" in exprs
    )
    assert (
        'speakerembed_serve_request_duration_seconds_count{job=~"$job",instance=~"$instance",status="503"}'
        in exprs
    )
    names = {v["name"] for v in dash["templating"]["list"]}
    assert names == {"datasource", "job", "instance"}
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_doc_queries_are_valid_promql_on_the_catalogue(tmp_path: Path) -> None:
    exprs = doc_queries()
    assert len(exprs) >= 10
    for expr in exprs:
        assert metric_names(expr) <= KNOWN, expr
    check_promql(exprs, tmp_path)


def test_doc_links_the_monitoring_files() -> None:
    page = DOC.read_text(encoding="utf-8")
    for path in (RULES, RULES_TEST, DASHBOARD):
        assert f"<monitoring/{path.name}>" in page
        assert path.is_file()


@pytest.mark.parametrize("path", [RULES, RULES_TEST], ids=lambda p: p.name)
def test_rule_files_are_plain_ascii_yaml(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "\t" not in text
    assert text.isascii()

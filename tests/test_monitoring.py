"""The monitoring recipe: the alerts (deploy/prometheus/hotline-bot.rules.yml) and their unit tests, the example
Prometheus configuration and the Grafana dashboard (deploy/grafana/hotline-bot.json), checked with Debian's
promtool (``/usr/bin/promtool``, package prometheus, installed by ``make test``; without it those checks are skipped,
and fail in CI). Every metric the rules and the dashboard name must be one the bot exposes at ``GET /metrics``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.hotline.conftest import Client

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "hotline-bot.rules.yml"
RULE_TESTS = PROMETHEUS / "hotline-bot.rules.test.yml"
CONFIG = PROMETHEUS / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "hotline-bot.json"
SITE = ROOT / "deploy" / "nginx" / "hotline-bot.conf"
PROMTOOL = "/usr/bin/promtool"
TOKEN_FILE = "/etc/prometheus/hotline-metrics-token"

ALERTS = {
    "HotlineBotDown",
    "HotlineDatabaseDown",
    "HotlineOutboxStuck",
    "HotlineDeadLetters",
    "HotlineSendErrors",
    "HotlineDeadlineEngineNotTicking",
    "HotlineNoDeadlineLeader",
    "HotlineTwoDeadlineLeaders",
    "HotlineLongConnectionDown",
    "HotlineInboxBacklog",
    "HotlineCalendarFallbackAhead",
    "HotlineCallbackRefusals",
}

# what the bot exposes at /metrics (docs/operations.md), besides `up`, which Prometheus itself records per target
EXPOSED = {
    "hotline_build_info",
    "hotline_http_requests_total",
    "hotline_http_request_seconds",
    "hotline_tickets_ingested_total",
    "hotline_ingest_rejected_total",
    "hotline_callback_refusals_total",
    "hotline_outbox_messages",
    "hotline_outbox_oldest_pending_age_seconds",
    "hotline_outbox_sent_total",
    "hotline_outbox_send_errors_total",
    "hotline_outbox_unsure_total",
    "hotline_inbox_pending",
    "hotline_inbox_oldest_pending_age_seconds",
    "hotline_leader",
    "hotline_deadline_engine_last_tick_timestamp_seconds",
    "hotline_deadline_engine_ticks_total",
    "hotline_wecom_long_connection_up",
    "hotline_calendar_fallback_days",
    "hotline_database_up",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "python_gc_collections_total",
}
FROM_PROMETHEUS = {"up"}
# names a scrape of a process may lack, and why (the scrape in this file is of one process, without the long connection)
ALLOWED_ABSENT = {
    "hotline_wecom_long_connection_up": "only in the process leading the WeCom robot's long connection, when configured",
}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}


def promtool() -> str:
    """Debian's promtool. Without it, a test fails in CI and is skipped elsewhere, saying how to install it."""
    if shutil.which(PROMTOOL) is None:
        message = f"promtool is not installed at {PROMTOOL} (make test installs it: apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return PROMTOOL


def run_promtool(*args: str, cwd: Path) -> str:
    done = subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def rules() -> list[dict[str, Any]]:
    [group] = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    assert group["name"] == "hotline-bot"
    return list(group["rules"])


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text(encoding="utf-8")))


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in all_panels(dashboard()["panels"]) for t in p.get("targets", []) if t.get("expr")]


def grafana_to_promql(expr: str) -> str:
    """A dashboard's query as Prometheus would get it: Grafana's variables given values."""
    return (
        expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$job", "hotline-bot")
        .replace("$instance", ".*")
    )


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label matchers, ranges, grouping
    labels and Grafana's variables are taken out, less the functions (a name before a parenthesis) and keywords."""
    text = re.sub(r"\$\{?\w+\}?", "", expr)
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = {m.group(1) for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", text)}
    return {n for n in names if n.lower() not in KEYWORDS | {"inf", "nan"}}


def variable_metric_names() -> set[str]:
    queries = [v.get("definition", "") for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    return {m for q in queries for m in re.findall(r"label_values\(\s*([a-zA-Z_:][\w:]*)", q)}


def used_metric_names() -> dict[str, set[str]]:
    """Each metric name the rules and the dashboard select, with where."""
    used: dict[str, set[str]] = {}
    for rule in rules():
        for name in metric_names(rule["expr"]):
            used.setdefault(name, set()).add(f"rule {rule['alert']}")
    for expr in dashboard_exprs():
        for name in metric_names(expr):
            used.setdefault(name, set()).add("dashboard")
    for name in variable_metric_names():
        used.setdefault(name, set()).add("dashboard variable")
    return used


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(hotline_http_request_seconds_bucket{job="$job", '
        'instance=~"$instance"}[$__rate_interval]))) or time() - max(x_seconds offset 5m > 0) '
        'and on (job) absent(y{role="a b"}) unless 1e3 * z'
    )
    assert metric_names(expr) == {"hotline_http_request_seconds_bucket", "x_seconds", "y", "z"}


# ---------------------------------------------------------------- the files, as text


def test_every_alert_is_there_with_a_severity_and_its_annotations() -> None:
    found = {rule["alert"]: rule for rule in rules()}
    assert set(found) == ALERTS
    for name, rule in found.items():
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name
        assert rule["annotations"]["runbook_url"].startswith("docs/operations.md#"), name
        assert "for" in rule, f"{name} fires on a single evaluation"
    assert found["HotlineOutboxStuck"]["labels"]["severity"] == "page"
    assert found["HotlineDeadLetters"]["labels"]["severity"] == "ticket"
    assert found["HotlineCalendarFallbackAhead"]["labels"]["severity"] == "ticket"
    assert found["HotlineCalendarFallbackAhead"]["for"] == "1h"


def test_the_database_wide_gauges_are_taken_with_max_not_sum() -> None:
    """Every process reports the same outbox and inbox: a sum would count one backlog once per process."""
    shared = ("hotline_outbox_messages", "hotline_outbox_oldest_pending_age_seconds", "hotline_inbox_pending",
              "hotline_inbox_oldest_pending_age_seconds", "hotline_calendar_fallback_days")  # fmt: skip
    exprs = [rule["expr"] for rule in rules()] + dashboard_exprs()
    for expr in exprs:
        for name in shared:
            if name in expr:
                assert re.search(rf"max(?: by \([^)]*\))? ?\({name}\b", expr), expr


def test_each_alert_is_tested_firing_and_silent() -> None:
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
             for case in test.get("alert_rule_test", [])]  # fmt: skip
    firing = {c["alertname"] for c in cases if c["exp_alerts"]}
    silent = {c["alertname"] for c in cases if not c["exp_alerts"]}
    assert firing == ALERTS
    assert silent == ALERTS


def test_the_scrape_config_lists_the_recipe_processes_with_the_token_file() -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert config["rule_files"] == [RULES.name]
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "hotline-bot"]
    assert job["authorization"]["credentials_file"] == TOKEN_FILE
    targets = [t for static in job["static_configs"] for t in static["targets"]]
    upstreams = re.findall(r"server (127\.0\.0\.1:\d+)", SITE.read_text(encoding="utf-8"))
    assert sorted(targets) == sorted(upstreams)
    for rule in rules():  # the job the rules select is the one scraped
        for job_name in re.findall(r'job="([^"]+)"', rule["expr"]):
            assert job_name == job["job_name"]


def test_the_dashboard_uses_the_datasource_input_and_an_instance_variable() -> None:
    board = dashboard()
    assert 38 <= board["schemaVersion"] <= 41
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["instance"]["type"] == "query"
    panels = [p for p in all_panels(board["panels"]) if p["type"] != "row"]
    assert len({p["id"] for p in all_panels(board["panels"])}) == len(list(all_panels(board["panels"])))
    for panel in panels:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    titles = " / ".join(p["title"].lower() for p in panels)
    for topic in ("requests", "p95", "tickets", "outbox pending", "oldest pending", "send errors", "dead letters",
                  "inbox", "leader", "last tick", "long connection", "calendar fallback", "memory", "cpu"):  # fmt: skip
        assert topic in titles, f"no panel on {topic}"


def test_the_rules_and_the_dashboard_name_only_metrics_the_bot_documents() -> None:
    unknown = {name: where for name, where in used_metric_names().items() if name not in EXPOSED | FROM_PROMETHEUS}
    unknown = {n: w for n, w in unknown.items() if base_name(n) not in EXPOSED}
    assert not unknown, f"metrics the bot does not expose: {unknown}"


def base_name(name: str) -> str:
    """A histogram's or a counter's series name as the metric is named (..._bucket -> ...)."""
    for suffix in ("_bucket", "_sum", "_count", "_created"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


# ---------------------------------------------------------------- the bot's own /metrics


def exposed_names(text: str) -> set[str]:
    """The series names a scrape holds: those sampled, and for each family its type's names (a labelled metric with
    no series yet still says `# TYPE`)."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names.add(name)
            stem = name.removesuffix("_total") if kind == "counter" else name
            names.update(stem + suffix for suffix in SUFFIXES.get(kind, ()))
        elif line and not line.startswith("#"):
            match = re.match(r"[a-zA-Z_:][\w:]*", line)
            assert match is not None, line
            names.add(match.group())
    return names


async def test_every_metric_the_rules_and_the_dashboard_use_is_exposed(leading_client: Client) -> None:
    client = leading_client
    response = await client.get("/metrics")
    assert response.status == 200
    exposed = exposed_names(await response.text())
    used = used_metric_names()
    missing = {
        name: sorted(where)
        for name, where in used.items()
        if name not in exposed and name not in FROM_PROMETHEUS and name not in ALLOWED_ABSENT
    }
    assert not missing, f"named by the rules or the dashboard, but not at /metrics: {missing}"


# ---------------------------------------------------------------- promtool


def test_promtool_checks_the_rules() -> None:
    output = run_promtool("check", "rules", RULES.name, cwd=PROMETHEUS)
    assert f"SUCCESS: {len(ALERTS)} rules found" in output


def test_the_rules_pass_their_unit_tests() -> None:
    output = run_promtool("test", "rules", RULE_TESTS.name, cwd=PROMETHEUS)
    assert "SUCCESS" in output


def test_promtool_checks_the_example_config(tmp_path: Path) -> None:
    """promtool checks that the token file exists: the test's own stands in for /etc/prometheus's. The rules file is
    found beside the config, as on the server."""
    token = tmp_path / "hotline-metrics-token"
    token.write_text("a-token\n", encoding="utf-8")
    text = CONFIG.read_text(encoding="utf-8")
    assert TOKEN_FILE in text
    (tmp_path / CONFIG.name).write_text(text.replace(TOKEN_FILE, str(token)), encoding="utf-8")
    shutil.copy(RULES, tmp_path / RULES.name)
    output = run_promtool("check", "config", CONFIG.name, cwd=tmp_path)
    assert "SUCCESS: 1 rule files found" in output
    assert f"SUCCESS: {len(ALERTS)} rules found" in output


def test_the_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each panel's query, its Grafana variables given values, as a recording rule that promtool parses."""
    exprs = [grafana_to_promql(expr) for expr in dashboard_exprs()]
    assert not [e for e in exprs if "$" in e], "a Grafana variable this test does not know"
    records = [{"record": f"hotline:dashboard_query_{i}", "expr": expr} for i, expr in enumerate(exprs)]
    (tmp_path / "dashboard.rules.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}), encoding="utf-8"
    )
    output = run_promtool("check", "rules", "dashboard.rules.yml", cwd=tmp_path)
    assert f"SUCCESS: {len(records)} rules found" in output

"""deploy/kubernetes: the ServiceMonitor reaches the metrics Service, and the PrometheusRule holds the alerts that
deploy/README.md lists, with the same expressions, on metrics the worker exports. ``promtool check rules`` and
``promtool test rules`` (tests/deploy/prometheus/alerts-test.yaml) run when promtool is installed (Debian's
``prometheus`` package; .ci/run installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.manifests import DEPLOY, JsonObject, kubernetes_objects

ALERTS_TEST = Path(__file__).with_name("prometheus") / "alerts-test.yaml"
API = "monitoring.coreos.com/v1"
#: Series suffixes Prometheus adds to a histogram's name.
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def rule() -> JsonObject:
    return kubernetes_objects()["PrometheusRule"]


def alerts() -> dict[str, str]:
    """Alert name -> expression, from the PrometheusRule."""
    found: dict[str, str] = {}
    for group in rule()["spec"]["groups"]:
        for item in group["rules"]:
            assert item["alert"] not in found, f"two alerts named {item['alert']}"
            found[item["alert"]] = item["expr"]
    return found


def readme_table(header: str) -> list[list[str]]:
    """The rows of the table in deploy/README.md whose header row starts with ``header``."""
    lines = (DEPLOY / "README.md").read_text().splitlines()
    (start,) = [index for index, line in enumerate(lines) if line.startswith(f"| {header} |")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def unquote(cell: str) -> str:
    match = re.fullmatch(r"`(.+)`", cell)
    assert match, f"not one code span: {cell!r}"
    return match[1]


def test_prometheus_operator_objects_have_the_api_and_known_fields() -> None:
    for kind in ("ServiceMonitor", "PrometheusRule"):
        document = kubernetes_objects()[kind]
        assert document["apiVersion"] == API, kind
        assert set(document) == {"apiVersion", "kind", "metadata", "spec"}, kind
        assert document["metadata"]["namespace"] == kubernetes_objects()["Deployment"]["metadata"]["namespace"]


def test_service_monitor_scrapes_the_metrics_service() -> None:
    monitor = kubernetes_objects()["ServiceMonitor"]["spec"]
    service = kubernetes_objects()["Service"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout"}


def test_the_rule_holds_exactly_the_alerts_the_readme_lists() -> None:
    listed = {unquote(row[0]): unquote(row[1]) for row in readme_table("alert")}
    assert listed == alerts()


def test_alerts_use_only_metrics_the_worker_exports() -> None:
    exported = {unquote(row[0]).split("{")[0] for row in readme_table("metric")}
    assert exported, "the README's metric table is empty"
    for name, expression in alerts().items():
        used = set(re.findall(r"\bcallback_worker_\w+", expression))
        assert used, name
        for metric in used:
            base = next(
                (metric.removesuffix(suffix) for suffix in HISTOGRAM_SUFFIXES if metric.endswith(suffix)), metric
            )
            assert base in exported, f"{name}: {metric} is not a metric of the worker"


def test_every_alert_has_a_severity_and_a_summary() -> None:
    for group in rule()["spec"]["groups"]:
        for item in group["rules"]:
            assert item["labels"]["severity"] in ("warning", "critical"), item["alert"]
            assert {"summary", "description"} <= item["annotations"].keys(), item["alert"]


# ---- promtool -------------------------------------------------------------------------------------------------


@pytest.fixture
def rules_directory(tmp_path: Path) -> Path:
    """The PrometheusRule's ``spec`` as a Prometheus rules file, beside a copy of the rule unit tests."""
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian's prometheus package; .ci/run installs it)")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule()["spec"], sort_keys=False))
    shutil.copy(ALERTS_TEST, tmp_path / ALERTS_TEST.name)
    return tmp_path


def promtool(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=directory, capture_output=True, text=True, timeout=120, check=False)


def test_promtool_check_rules(rules_directory: Path) -> None:
    result = promtool(rules_directory, "check", "rules", "rules.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_promtool_test_rules(rules_directory: Path) -> None:
    result = promtool(rules_directory, "test", "rules", ALERTS_TEST.name)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", ALERTS_TEST.read_text()))
    assert tested == set(alerts()), f"alerts without a unit test: {sorted(set(alerts()) - tested)}"


def test_promtool_test_rules_fails_when_an_alert_does_not_fire(rules_directory: Path) -> None:
    rules = rules_directory / "rules.yaml"
    rules.write_text(rules.read_text().replace("> 120", "> 100000"))
    result = promtool(rules_directory, "test", "rules", ALERTS_TEST.name)
    assert result.returncode == 1
    assert "CallbackWorkerNotPolling" in result.stdout + result.stderr

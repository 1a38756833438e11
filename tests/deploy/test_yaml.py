"""yamllint --strict on every YAML file under deploy/, with deploy/.yamllint.yaml."""

from __future__ import annotations

from tests.deploy.manifests import DEPLOY, REPO, YAMLLINT_CONFIG, run_tool


def test_yamllint_strict_finds_nothing() -> None:
    result = run_tool("yamllint", "--strict", "--format", "parsable", "--config-file", str(YAMLLINT_CONFIG), "deploy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_yamllint_covers_every_yaml_file() -> None:
    result = run_tool("yamllint", "--list-files", "--config-file", str(YAMLLINT_CONFIG), "deploy")
    assert result.returncode == 0, result.stderr
    linted = {(REPO / line).resolve() for line in result.stdout.split()}
    expected = {path.resolve() for pattern in ("*.yaml", "*.yml", ".*.yaml") for path in DEPLOY.rglob(pattern)}
    assert expected, "no YAML under deploy/"
    assert expected <= linted, f"not linted: {sorted(map(str, expected - linted))}"

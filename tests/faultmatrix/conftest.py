"""The fault matrix's summary at the end of the run: how many cells ran, of how many, and how they fared.

Printed in pytest's terminal summary and written to ``build/fault-matrix.json`` (with every case's outcome and, for a
failing one, the first line of its explanation) whenever ``test_matrix.py`` ran.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.faultmatrix.harness import NOTES

_MATRIX_TEST = "tests/faultmatrix/test_matrix.py::test_cell["
_RESULTS: dict[str, dict[str, Any]] = {}
REPORT = Path("build/fault-matrix.json")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not report.nodeid.startswith(_MATRIX_TEST):
        return
    case = report.nodeid[len(_MATRIX_TEST) : -1]
    if report.when == "call" or report.outcome != "passed":
        entry = _RESULTS.setdefault(case, {"outcome": "passed", "seconds": 0.0})
        if report.outcome != "passed":
            entry["outcome"] = report.outcome
            text = str(report.longrepr)
            entry["problem"] = next((line for line in text.splitlines() if line.startswith("  - ")), text[:300])
        entry["seconds"] = round(entry["seconds"] + report.duration, 3)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if NOTES:
        terminalreporter.write_sep("-", "fault matrix: documented windows met")
        for note in NOTES:
            terminalreporter.write_line(note)
    if not _RESULTS:
        return
    from tests.faultmatrix.test_matrix import MATRIX  # noqa: PLC0415 - only once the matrix has run

    passed = sum(entry["outcome"] == "passed" for entry in _RESULTS.values())
    failed = len(_RESULTS) - passed
    run = f"{len(_RESULTS)} cells run of {MATRIX['of']} ({MATRIX['mode']})"
    headline = f"fault matrix: {run}: {passed} passed, {failed} failed"
    terminalreporter.write_sep("-", "fault matrix")
    terminalreporter.write_line(headline)
    for case, entry in sorted(_RESULTS.items()):
        if entry["outcome"] != "passed":
            terminalreporter.write_line(f"  FAILED {case}: {entry.get('problem', '').strip()}")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({"summary": headline, **MATRIX, "results": _RESULTS}, indent=2, sort_keys=True) + "\n")

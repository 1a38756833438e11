"""The documents name modules by the one import namespace: ``callback_worker.worker.message``, never the bare
``worker.message`` a reader could not import. File paths (``worker/app.py``, ``emulator.tar``) are not module names;
docs/architecture.md names modules relative to their folders on purpose and is left out."""

from __future__ import annotations

import re

from tests.unit.test_architecture import FOLDERS, ROOT

DOCUMENTS = [
    ROOT / name for name in ("README.md", "SECURITY.md", "RELIABILITY.md", "BENCHMARKS.md", "deploy/README.md")
] + sorted((ROOT / "examples").rglob("*.md"))
#: A folder's name followed by a dotted name, not itself part of a longer dotted name or a path.
BARE = re.compile(rf"(?<![\w./-])(?:{'|'.join(FOLDERS)})\.[A-Za-z_][\w.]*")
FILE = re.compile(r"\.(?:py|md|ya?ml|json|toml|tar|txt|sh)$")


def bare_module_names(text: str) -> list[str]:
    return [match.group() for match in BARE.finditer(text) if not FILE.search(match.group().rstrip("."))]


def test_the_pattern_tells_module_names_from_file_names() -> None:
    text = "a `worker.CallbackContext`, (`emulator.stubs`), `callback_worker.worker.app`, worker/app.py, emulator.tar"
    assert bare_module_names(text) == ["worker.CallbackContext", "emulator.stubs"]


def test_no_document_names_a_module_outside_the_callback_worker_namespace() -> None:
    found = {
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, text.index(name)) + 1}": name
        for path in DOCUMENTS
        for text in [path.read_text(encoding="utf-8")]
        for name in bare_module_names(text)
    }
    assert found == {}

"""Build a real (unpacked) handler-plugin distribution on disk, for discovery through ``importlib.metadata``.

Put ``root`` on ``sys.path`` (``monkeypatch.syspath_prepend(root)``) or on a subprocess's ``PYTHONPATH`` and the
plugin's entry points appear in the ``callback_worker.handlers`` group, with its distribution name and version.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

from callback_worker.worker.registry import ENTRY_POINT_GROUP


def module_name(dist: str) -> str:
    """The name of the module :func:`make_plugin` writes for distribution ``dist``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", dist).lower()


def make_plugin(
    root: Path,
    dist: str,
    handlers: dict[str, str],
    module_source: str,
    *,
    version: str = "1.0",
    module: str | None = None,
) -> Path:
    """Write distribution ``dist`` (``version``) under ``root``: one module and its ``.dist-info``.

    ``handlers`` maps a handler name to an entry-point object reference: an attribute of the plugin's module
    (``"Handler"``) or a full reference (``"package.module:attr"``). The module, named ``module`` (default:
    :func:`module_name` of ``dist``), holds ``module_source``. Returns the ``.dist-info`` directory.

    A module of the same name imported earlier in this process is forgotten, so the new source is what loads.
    """
    module = module or module_name(dist)
    (root / f"{module}.py").write_text(module_source, encoding="utf-8")
    info = root / f"{re.sub(r'[-_.]+', '_', dist)}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    lines = [f"[{ENTRY_POINT_GROUP}]"]
    lines += [f"{name} = {target if ':' in target else f'{module}:{target}'}" for name, target in handlers.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    sys.modules.pop(module, None)
    importlib.invalidate_caches()
    return info

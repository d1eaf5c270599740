"""The import contracts cover the whole package: a new module is named in one or fails here."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = frozenset({"discover.cli", "discover.app", "discover.__main__", "discover"})


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _modules() -> set[str]:
    """Every module of the package outside discover/local/, as a dotted name."""
    found = set()
    for path in (ROOT / "discover").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[1:2] == ("local",):
            continue
        name = ".".join(p for p in parts if p != "__init__")
        found.add(name)
    return found


def test_every_product_module_is_kept_from_the_local_sandbox() -> None:
    """The "no discover.local" contract names each product module (entry points excepted)."""
    (contract,) = [c for c in _contracts() if c.get("forbidden_modules") == ["discover.local"]]
    sources = contract["source_modules"]
    assert isinstance(sources, list)
    missing = _modules() - ENTRY_POINTS - set(sources)
    assert not missing, f"add to [tool.importlinter] source_modules: {sorted(missing)}"
    assert not set(sources) - _modules(), "a listed module no longer exists"

"""A fresh store per test, on every backend (the `database` fixture of tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from c2c_ari.store import Store, open_store


@pytest.fixture
async def store(database: str, tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(database or str(tmp_path / "c2c.sqlite3"))
    yield opened
    await opened.close()

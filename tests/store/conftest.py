"""A fresh store per test, on every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from c2c_ari.store import Store, open_store


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(str(tmp_path / "c2c.sqlite3"))
    yield opened
    await opened.close()

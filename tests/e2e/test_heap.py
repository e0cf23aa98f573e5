"""A serving process settles its heap once started (``api.heap``); an app built by tests
does not (they build many apps in one process, whose objects must stay collectable)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.helpers import services_for


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()  # whatever the test froze goes back to the collector


@pytest.mark.usefixtures("unfrozen")
@pytest.mark.parametrize("settle", [True, False])
def test_the_startup_heap_is_frozen_only_when_serving(sqlite_url: str, settle: bool) -> None:
    with services_for(sqlite_url, load_demo=False) as services:
        app = create_app(services=services, settle=settle)
        with TestClient(app, base_url="https://testserver") as client:
            frozen = gc.get_freeze_count()
            assert client.get("/session").status_code == 200
    if settle:
        assert frozen > 10_000  # the modules, the app and the services, at least
    else:
        assert frozen == 0

"""Shared test set-up: Tessera's settings go to a temporary folder, never the user's config dir."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _tessera_config_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_CONFIG_DIR", str(tmp_path_factory.mktemp("tessera_config")))

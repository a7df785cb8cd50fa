"""The Dagster UI shows the medallion asset graph: bronze, silver and gold.

What is real here: the real ``dagster-webserver`` (started as a subprocess on a free loopback
port, loading the ``onering_assets.definitions`` code location) and Debian's Chromium (installed
by apt, driven headless through the ``playwright`` Python package; ``playwright install`` is never
used). Nothing is materialized: loading the definitions touches no store, so the state folder and
``DAGSTER_HOME`` are empty pytest temporary folders.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect, sync_playwright

from airflow_bridge.processes import free_port
from onering_assets.devserver import serving

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENSURE_CHROMIUM = PROJECT_ROOT / "ops" / "scripts" / "ensure-chromium.sh"
STARTUP_TIMEOUT_S = 90.0
UI_TIMEOUT_MS = 30_000
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Dagster shows a "Join the Dagster community" dialog on localhost until it is dismissed; the
# dismissal lives in the browser's localStorage under this key, so a fresh profile pre-sets it.
DISMISS_COMMUNITY_DIALOG = "window.localStorage.setItem('communityNux', JSON.stringify('1'));"
GROUP_ASSETS = {
    "bronze": "flights",
    "silver": "flights",
    "gold": "carrier_monthly_performance",
}


@pytest.fixture(scope="module")
def chromium_path() -> str:
    """Debian's chromium binary, installed once via apt if missing, else the test is skipped."""
    path = shutil.which("chromium")
    if path is None and ENSURE_CHROMIUM.exists():
        subprocess.run(["bash", str(ENSURE_CHROMIUM)], check=False, timeout=600)
        path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start the real dagster-webserver on a free loopback port; yield its base URL."""
    state_dir = tmp_path_factory.mktemp("onering_state")
    log_path = tmp_path_factory.mktemp("webserver_log") / "dagster-webserver.log"
    env = {**os.environ, "ONERING_PROFILE": "local"}
    with serving(
        state_dir, free_port(), log_path, daemon=False, env=env, timeout_s=STARTUP_TIMEOUT_S
    ) as url:
        yield url


def _graph_node(page: Page, name: str) -> Locator:
    """A node of the asset graph canvas (an SVG ``foreignObject``) whose text contains ``name``."""
    return page.locator("svg foreignObject").filter(has_text=name)


@pytest.mark.browser
def test_asset_graph_shows_medallion_groups(
    dagster_ui: str, chromium_path: str, tmp_path: Path
) -> None:
    """The global asset lineage shows bronze, silver and gold, and their assets once expanded."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 1200})
            context.add_init_script(DISMISS_COMMUNITY_DIALOG)
            page = context.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)  # actions; expect() takes its own
            page.goto(f"{dagster_ui}/asset-groups", wait_until="domcontentloaded")

            # Collapsed, the lineage graph has one node per group.
            graph = page.locator("svg:has(foreignObject)")
            for group in GROUP_ASSETS:
                expect(_graph_node(page, group).first).to_be_visible(timeout=UI_TIMEOUT_MS)
            page.screenshot(path=tmp_path / "asset-groups.png")

            # Expand every group (the UI's own shortcut) and wait for the asset nodes.
            page.keyboard.press("Alt+e")
            for group, asset in GROUP_ASSETS.items():
                expect(
                    page.locator(f'svg foreignObject [data-tooltip="{asset}"]').first
                ).to_be_visible(timeout=UI_TIMEOUT_MS)
                expect(graph).to_contain_text(group, timeout=UI_TIMEOUT_MS)
            expect(page.locator('svg foreignObject [data-tooltip="flights"]')).to_have_count(
                2, timeout=UI_TIMEOUT_MS
            )
            page.screenshot(path=tmp_path / "asset-groups-expanded.png")

            body = page.locator("body").inner_text()
            for group, asset in GROUP_ASSETS.items():
                assert group in body
                assert asset in body
        finally:
            browser.close()

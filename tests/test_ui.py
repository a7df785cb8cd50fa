"""The Dagster UI as a user first sees it: the medallion graph, column lineage, CLI runs.

What is real here: the `onering` CLI (one real run of ``bronze/airlines``, so the Runs page has
a CLI run), the real ``dagster-webserver`` (a subprocess on a free loopback port, loading the
``onering_assets.definitions`` code location, on the instance under the state folder) and
Debian's Chromium (installed by apt, driven headless through the ``playwright`` Python package;
``playwright install`` is never used). The browser profile is fresh: nothing is dismissed for it.

Screenshots go to a temporary folder, or with ``ONERING_SCREENSHOTS=1`` to ``docs/img/``
(``asset-graph.png`` is the README's picture of the asset graph).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from airflow_bridge.processes import free_port
from onering_assets.devserver import serving

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENSURE_CHROMIUM = PROJECT_ROOT / "ops" / "scripts" / "ensure-chromium.sh"
DOCS_IMG = PROJECT_ROOT / "docs" / "img"
STARTUP_TIMEOUT_S = 90.0
UI_TIMEOUT_MS = 30_000
# The community dialog appears one second after the page asks whether to show it.
DIALOG_DELAY_MS = 2_500
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# An asset of each group whose name is short enough to be drawn whole when every group is
# expanded (the graph then zooms out and long names are shortened, e.g. "carri…_performance").
GROUP_ASSETS = {
    "bronze": "flights",
    "silver": "flights",
    "gold": "route_performance",
    "features": "carrier_stats",
    "ml": "training_set",
    "drift": "drift_report",
}
CLI_RUN_ASSET = "bronze/airlines"

pytestmark = pytest.mark.browser


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
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("ONERING_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        return DOCS_IMG
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onering_state")


@pytest.fixture(scope="module")
def cli_run_id(state_dir: Path) -> str:
    """One real `onering materialize` run on the state folder; its run id."""
    env = {**os.environ, "ONERING_STATE_DIR": str(state_dir), "ONERING_PROFILE": "local"}
    env.pop("DAGSTER_HOME", None)
    select = f'key:"{CLI_RUN_ASSET}"'
    proc = subprocess.run(
        [sys.executable, "-m", "onering_assets.cli", "materialize", "--json", "--select", select],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)["run_id"]


@pytest.fixture(scope="module")
def dagster_ui(
    tmp_path_factory: pytest.TempPathFactory, state_dir: Path, cli_run_id: str
) -> Iterator[str]:
    """Start the real dagster-webserver on a free loopback port; yield its base URL."""
    log_path = tmp_path_factory.mktemp("webserver_log") / "dagster-webserver.log"
    env = {**os.environ, "ONERING_PROFILE": "local"}
    with serving(
        state_dir, free_port(), log_path, daemon=False, env=env, timeout_s=STARTUP_TIMEOUT_S
    ) as url:
        yield url


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh browser profile (nothing in localStorage)."""
    context = browser.new_context(viewport={"width": 1600, "height": 1100})
    try:
        opened = context.new_page()
        opened.set_default_timeout(UI_TIMEOUT_MS)  # actions; expect() takes its own
        yield opened
    finally:
        context.close()


def _graph_node(page: Page, name: str) -> Locator:
    """A node of the asset graph canvas (an SVG ``foreignObject``) whose text contains ``name``."""
    return page.locator("svg foreignObject").filter(has_text=name)


def _asset_node(page: Page, name: str) -> Locator:
    """An asset node of the expanded graph, by its name drawn whole."""
    return page.locator("svg foreignObject").get_by_text(name, exact=True)


def _wait_until_still(node: Locator, timeout_s: float = 10.0) -> None:
    """Wait for the graph's zoom-to-fit animation: ``node`` stays put for half a second."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        box = node.first.bounding_box()
        if box is not None and box == last:
            return
        last = box
        time.sleep(0.5)


def test_first_screen_is_the_asset_graph_with_no_dialog_over_it(
    dagster_ui: str, page: Page, screenshots: Path
) -> None:
    """A first visit shows the graph, no "Join the Dagster community" dialog; then its groups."""
    page.goto(f"{dagster_ui}/asset-groups", wait_until="domcontentloaded")

    # Collapsed, the lineage graph has one node per group.
    graph = page.locator("svg:has(foreignObject)")
    for group in GROUP_ASSETS:
        expect(_graph_node(page, group).first).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.wait_for_timeout(DIALOG_DELAY_MS)
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_text("Join the Dagster community")).to_have_count(0)
    page.screenshot(path=screenshots / "asset-groups.png")

    # Expand every group (the UI's own shortcut) and wait for the asset nodes.
    page.keyboard.press("Alt+e")
    for group, asset in GROUP_ASSETS.items():
        expect(_asset_node(page, asset).first).to_be_visible(timeout=UI_TIMEOUT_MS)
        expect(graph).to_contain_text(group, timeout=UI_TIMEOUT_MS)
    expect(_asset_node(page, "flights")).to_have_count(2, timeout=UI_TIMEOUT_MS)
    _wait_until_still(_asset_node(page, "route_performance"))
    page.screenshot(path=screenshots / "asset-graph.png")
    body = page.locator("body").inner_text()
    for group, asset in GROUP_ASSETS.items():
        assert group in body
        assert asset in body


def test_a_gold_column_shows_what_it_is_computed_from(
    dagster_ui: str, page: Page, screenshots: Path
) -> None:
    """The asset page's Columns list each column's sources (the OSS UI draws no lineage)."""
    page.goto(f"{dagster_ui}/assets/gold/carrier_monthly_performance", wait_until="load")
    row = page.locator("tr").filter(has=page.get_by_text("avg_dep_delay", exact=True))
    expect(row).to_contain_text("Mean departure delay", timeout=UI_TIMEOUT_MS)
    expect(row).to_contain_text("← silver.flights.dep_delay", timeout=UI_TIMEOUT_MS)
    carrier_name = page.locator("tr").filter(has=page.get_by_text("carrier_name", exact=True))
    expect(carrier_name).to_contain_text("← silver.airlines.name")
    expect(page.get_by_role("dialog")).to_have_count(0)
    page.get_by_text("Columns", exact=True).first.scroll_into_view_if_needed()
    page.screenshot(path=screenshots / "column-lineage.png")


def test_the_runs_page_shows_what_a_cli_run_targeted(
    dagster_ui: str, cli_run_id: str, page: Page, screenshots: Path
) -> None:
    """A run of `onering materialize` lists its asset in the Runs page's Target column."""
    page.goto(f"{dagster_ui}/runs", wait_until="load")
    expect(page.get_by_text("Target", exact=True)).to_be_visible(timeout=UI_TIMEOUT_MS)
    # The runs feed is a grid of divs (no table rows): the row that links to the run.
    run_link = page.locator(f'a[href^="/runs/{cli_run_id}"]')
    row = page.locator("div[class*='rowGrid']").filter(has=run_link)
    expect(row).to_have_count(1, timeout=UI_TIMEOUT_MS)
    # Its Target cell (after the checkbox and the run id); the UI writes "bronze / airlines".
    target = re.compile(r"\s*/\s*".join(map(re.escape, CLI_RUN_ASSET.split("/"))))
    expect(row.locator(":scope > *").nth(2)).to_have_text(target, timeout=UI_TIMEOUT_MS)
    page.screenshot(path=screenshots / "runs.png")

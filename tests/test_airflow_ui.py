"""The Airflow UI as a user sees the exported DAGs: the DAG list and the Gold DAG's graph.

What is real here: ``onering airflow up`` (the four Airflow 3 components on a free loopback
port, on a fresh state folder: no data is needed for the DAGs to be listed and drawn),
Airflow's simple auth manager login (``up`` configures one ``admin`` user and generates its
password; it is not "all admins"), and Debian's Chromium driven headless through
``playwright`` with the helpers of ``tests/test_ui.py``. ``onering airflow down`` stops
Airflow whatever happens, and the test checks that no process of it is left.

Screenshots go to a temporary folder, or with ``ONERING_SCREENSHOTS=1`` to ``docs/img/``
(``airflow-dags.png``, ``airflow-graph.png``: the README's pictures of the Airflow side).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, ViewportSize, expect

from airflow_bridge.local import USER, LocalAirflow, exported_plans
from airflow_bridge.processes import free_port
from onering_assets.cli.airflow import DAGS_DIR
from tests.airflow_bridge.test_local import onering

# Fixtures shared with the Dagster UI test: Debian's chromium (or a skip naming what is
# missing), the launched browser, and where screenshots go.
from tests.test_ui import (  # noqa: F401 (pytest fixtures, used by name)
    PROJECT_ROOT,
    UI_TIMEOUT_MS,
    browser,
    chromium_path,
    screenshots,
)

DAG_IDS = sorted(
    [
        "onering_airbyte",
        "onering_bronze",
        "onering_drift",
        "onering_features",
        "onering_gold",
        "onering_ml",
        "onering_silver",
        "onering_stream",
    ]
)
GRAPH_DAG = "onering_gold"
VIEWPORT: ViewportSize = {"width": 1600, "height": 900}
UP_TIMEOUT_S = 300

pytestmark = pytest.mark.browser


def _onering(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return onering(env, *args, timeout=UP_TIMEOUT_S)


def _group_members(groups: set[int]) -> list[str]:
    """Live processes (not zombies) in any of the process ``groups``: "pid command"."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rpartition(")")[2].split()
        if fields[0] != "Z" and int(fields[2]) in groups:
            found.append(f"{stat.parent.name} {text.partition(' ')[2].partition(')')[0]})")
    return found


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``onering airflow up`` on a fresh state folder; yield its URL and the admin password."""
    state = tmp_path_factory.mktemp("onering_state")
    env = {
        **os.environ,
        "ONERING_STATE_DIR": str(state),
        "ONERING_PROFILE": "local",
        "COLUMNS": "200",
    }
    env.pop("DAGSTER_HOME", None)
    local = LocalAirflow(home=state / "airflow", dags_folder=DAGS_DIR, port=free_port())
    try:
        up = _onering(env, "airflow", "up", "--port", str(local.port))
        assert up.returncode == 0, up.stdout + up.stderr
        yield local.url, json.loads(local.passwords_file.read_text())[USER]
    finally:
        groups = set(local.running().values())
        down = _onering(env, "airflow", "down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert _group_members(groups) == [], "Airflow processes left after `onering airflow down`"


@pytest.fixture(scope="module")
def signed_in(airflow: tuple[str, str], browser: Browser) -> Iterator[BrowserContext]:  # noqa: F811
    """A fresh browser profile signed into Airflow through its login form."""
    url, password = airflow
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(f"{url}/", wait_until="load")
        # The simple auth manager has no anonymous access here: the SPA sends us to sign in.
        expect(page).to_have_url(re.compile(r"/auth/login\?next="), timeout=UI_TIMEOUT_MS)
        page.get_by_label("Username").fill(USER)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{url}/", timeout=UI_TIMEOUT_MS)
        page.close()
        yield context
    finally:
        context.close()


@pytest.fixture
def page(signed_in: BrowserContext) -> Iterator[Page]:
    opened = signed_in.new_page()
    opened.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield opened
    finally:
        opened.close()


def _assert_no_error_shown(page: Page) -> None:
    """No error banner, alert or toast, and none of the UI's error texts."""
    for selector in (".chakra-alert__root", "[role=alert]", ".chakra-toast__root"):
        expect(page.locator(selector)).to_have_count(0)
    body = page.locator("body").inner_text()
    for text in ("Import Error", "Not Found", "Unauthorized", "Forbidden", "went wrong"):
        assert text not in body, f"{text!r} shown on {page.url}"


def _wait_until_still(nodes: Locator, timeout_s: float = 10.0) -> None:
    """Wait for the graph's layout and zoom to settle: the nodes stay put for half a second."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        boxes = [n.bounding_box() for n in nodes.all()]
        if boxes == last:
            return
        last = boxes
        time.sleep(0.5)


def test_the_dag_list_shows_the_three_exported_dags(
    airflow: tuple[str, str],
    page: Page,
    screenshots: Path,  # noqa: F811
) -> None:
    assert sorted(exported_plans(DAGS_DIR)) == DAG_IDS
    url, _ = airflow
    page.goto(f"{url}/dags", wait_until="load")
    expect(page.get_by_text(f"{len(DAG_IDS)} Dags", exact=True)).to_be_visible()
    for dag_id in DAG_IDS:
        expect(page.locator(f'a[href="/dags/{dag_id}"]', has_text=dag_id)).to_be_visible()
    listed = page.locator('a[href^="/dags/"]').all_inner_texts()
    assert sorted(t.strip() for t in listed if t.strip()) == DAG_IDS
    _assert_no_error_shown(page)
    page.screenshot(path=screenshots / "airflow-dags.png")


def test_the_gold_graph_shows_a_task_per_asset_between_the_medallion_dags(
    airflow: tuple[str, str],
    page: Page,
    screenshots: Path,  # noqa: F811
) -> None:
    """The graph with every DAG dependency: Bronze and Silver (DAG nodes) produce the assets
    the Gold DAG is scheduled on; inside it, one task per Gold asset, each producing it, and
    the publish_lineage teardown."""
    url, _ = airflow
    tasks = exported_plans(DAGS_DIR)[GRAPH_DAG]["tasks"]
    page.goto(f"{url}/dags/{GRAPH_DAG}", wait_until="load")
    page.get_by_label("Collapse Details Panel").click()
    page.get_by_role("button", name="Show Graph").click()
    page.get_by_label("Options").click()
    page.get_by_role("combobox").filter(has_text="Only tasks").click()
    page.get_by_role("option", name="All Dag Dependencies").click()
    page.keyboard.press("Escape")

    for task in tasks:
        # The task is named after its one asset: gold/route_performance -> gold__route_performance.
        (asset,) = task["asset_keys"]
        assert task["task_id"] == asset.replace("/", "__")
        node = page.locator(f'.react-flow__node-task[data-id="{task["task_id"]}"]')
        expect(node).to_contain_text(task["task_id"])
        expect(
            page.locator(".react-flow__node-asset", has_text=f"onering://{asset}")
        ).to_have_count(1)
    # ... and the publish_lineage teardown that carries the run's status to the catalog.
    expect(page.locator('.react-flow__node-task[data-id="publish_lineage"]')).to_contain_text(
        "publish_lineage"
    )
    expect(page.locator(".react-flow__node-task")).to_have_count(len(tasks) + 1)
    # The medallion's DAGs: the ML DAGs run on their own schedules, not on Gold's assets.
    for dag_id in ("onering_bronze", "onering_silver", "onering_gold"):
        expect(page.locator(f'.react-flow__node-dag[data-id="dag:{dag_id}"]')).to_contain_text(
            dag_id
        )
    _wait_until_still(page.locator(".react-flow__node"))
    page.locator(".react-flow__controls-fitview").click()
    _wait_until_still(page.locator(".react-flow__node"))
    _assert_no_error_shown(page)
    page.screenshot(path=screenshots / "airflow-graph.png")

"""The HTML dashboard in headless Chromium: incidents, a timeline and charts.

Chromium and its driver come from Debian (`make browser` installs them);
selenium drives them by path, so nothing is downloaded at run time.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from analytics_events import TIMEOUT_S, Planned, config, create
from harness import Worker, WorkerFactory, wait_for
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from schemas.records import Severity

# Hours 0, 1 and 3 open one incident each; hour 2 opens none.
PLAN = [
    Planned("disk_full", "storage", Severity.HIGH, 5, 10, 12, 30),
    Planned("queue_stuck", "billing", Severity.CRITICAL, 70, 75),
    Planned("model_drift", "ranking", Severity.MEDIUM, 190, 200),
]
OPEN = [PLAN[1], PLAN[2]]
SCREENSHOT_ENV = "TOCSIN_DASHBOARD_SCREENSHOT"


def browser_paths() -> tuple[str, str]:
    """Return Chromium's and chromedriver's paths; skip, or fail in CI, if absent."""
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    reason = (
        "chromium or chromedriver not found on PATH: run `make browser` as root "
        "(apt-get install chromium chromium-driver)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    chromium, driver_path = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--no-proxy-server",
        "--window-size=1280,1700",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def worker_with_incidents(workers: WorkerFactory) -> Worker:
    worker = workers.start(workers.write_config(config()))
    create(worker, PLAN)

    def counted() -> bool:
        overall = worker.get("/api/metrics/hourly/all")["rows"]
        if [row["opened"] for row in overall] != [1, 1, 1]:
            return False
        if overall[0]["sla"]["ttr"] is None:
            return False
        storage = worker.get("/api/metrics/hourly/service:storage")["rows"]
        return bool(storage) and storage[0]["mttr_s"] is not None

    wait_for(counted, TIMEOUT_S, "hourly metrics of the three incidents")
    return worker


def test_dashboard_shows_incidents_and_charts(
    workers: WorkerFactory, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    worker = worker_with_incidents(workers)

    browser.get(f"{worker.url}/dashboard?window=hourly")
    WebDriverWait(browser, TIMEOUT_S).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready")
    )

    status = browser.find_element(By.ID, "status").text
    assert "failed" not in status, status
    open_rows = browser.find_elements(By.CSS_SELECTOR, "#open-incidents tbody tr")
    open_ids = {row.get_attribute("data-incident-id") for row in open_rows}
    assert open_ids == {p.incident_id for p in OPEN}
    recent = browser.find_elements(By.CSS_SELECTOR, "#incidents tbody tr")
    assert len(recent) == len(PLAN)

    # Hour 2 opened nothing: the volume chart shows it as zero.
    volume = browser.find_elements(By.CSS_SELECTOR, "#chart-volume circle.point")
    assert len(volume) == 4
    titles = [point.get_attribute("textContent") for point in volume]
    assert sum(1 for title in titles if title.endswith(": 0")) == 1
    volume_lines = browser.find_elements(By.CSS_SELECTOR, "#chart-volume path.line")
    assert len(volume_lines) == 1
    # Only the storage incident was acknowledged and resolved.
    mtta = browser.find_elements(By.CSS_SELECTOR, "#chart-mtta circle.point")
    assert len(mtta) == 1
    assert mtta[0].get_attribute("data-series") == "storage"
    sla = browser.find_elements(By.CSS_SELECTOR, "#chart-sla circle.point")
    assert len(sla) == 2

    open_rows[0].click()
    WebDriverWait(browser, TIMEOUT_S).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline li.event")
    )
    events = browser.find_elements(By.CSS_SELECTOR, "#timeline li.event")
    assert "opened" in events[0].text
    shown_id = browser.find_element(By.ID, "timeline-id").text
    assert shown_id == open_rows[0].get_attribute("data-incident-id")

    screenshot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 0
    copy_to = os.environ.get(SCREENSHOT_ENV)
    if copy_to:
        shutil.copyfile(screenshot, copy_to)

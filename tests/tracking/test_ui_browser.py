"""The MLflow UI in a real browser after a tracked sweep, as a person would see it (slow).

Headless Chromium (Debian's ``chromium`` and ``chromium-driver``, installed by
``.ci/chromium-up``; no browser download at run time) driven by selenium opens the link
``ablate ui sweeps/<sweep>.yaml`` prints and checks: the experiment opens in the training view
(not MLflow's GenAI mode), the children are listed by row label with their test accuracy, a
child's page shows its params and its accuracy artifact, the parent's page shows the report table
with a working link to each child. A screenshot of each page is saved under
``$ABLATE_ARTIFACTS_DIR/browser`` (default ``test-artifacts/browser`` in the repository).
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from mlflow import MlflowClient
from tracking_env import OutputLines, labelled_sweep, run_tracked, start_ablate_ui, tracked_runs

from ablate.report.sweep_summary import summarize_sweep
from ablate.tracking.mlflow_tracker import MlflowTracker

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
TRAINING = "workflowType=machine_learning"

pytestmark = pytest.mark.slow


def screenshots_dir() -> Path:
    """Where the screenshots go (kept as CI artifacts)."""
    root = os.environ.get("ABLATE_ARTIFACTS_DIR") or str(REPO / "test-artifacts")
    folder = Path(root) / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser():
    """Headless Chromium through chromedriver (skips without them: run .ci/chromium-up)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.skip("no chromium / chromedriver: run .ci/chromium-up (Debian packages)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1600,1000")
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def ui_link(tmp_path, store, sqlite_uri):
    """A tracked sweep, then ``ablate ui lab.yaml``; yields (deep link, experiment id)."""
    sweep = labelled_sweep(tmp_path)
    run_tracked(sweep, store, MlflowTracker(store.root, sqlite_uri, summarize=summarize_sweep))
    ui = start_ablate_ui(sweep.path, sqlite_uri, tmp_path)
    lines = OutputLines(ui)
    try:
        link = lines.wait_for("sweep lab: http://", 300).split()[2]
        yield link, MlflowClient(tracking_uri=sqlite_uri)
    finally:
        ui.send_signal(signal.SIGTERM)
        ui.wait(60)


def wait_for(driver, condition, timeout_s=90):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=0.5).until(lambda d: condition(d))


def body_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def cells(driver, column: str) -> dict[str, str]:
    """MLflow run id -> the text of its cell in a runs-table column (``col-id``)."""
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, f'[role="gridcell"][col-id="{column}"]')
    return {c.find_element(By.XPATH, "..").get_attribute("row-id"): c.text for c in found}


def test_the_ui_opens_on_the_sweeps_runs_with_their_accuracy(browser, ui_link):
    from selenium.webdriver.common.by import By

    link, client = ui_link
    shots = screenshots_dir()
    _, [parent], children = tracked_runs(client, "lab")
    ui_root = link.split("/#/")[0]
    experiment = children[0].info.experiment_id

    # the runs page: training view, every child by its label with its test accuracy
    browser.get(link)
    wait_for(browser, lambda d: len(cells(d, "metrics.`test/Avg`")) == 5)
    browser.save_screenshot(str(shots / "1-runs.png"))
    text = body_text(browser)
    assert "/runs" in browser.current_url and TRAINING in browser.current_url
    assert "Models" in text and "Sessions" not in text and "Evaluation runs" not in text
    names, accuracy = cells(browser, "attributes.`Run Name`"), cells(browser, "metrics.`test/Avg`")
    for child in children:
        run_id = child.info.run_id
        assert child.info.run_name in names[run_id]  # the row label
        assert float(accuracy[run_id]) == pytest.approx(child.data.metrics["test/Avg"], abs=0.01)
    assert set(cells(browser, "params.`fit.steps`").values()) >= {"3", "5"}
    assert "Sweep lab" in text  # the experiment's description

    # a child's page: its params, then its accuracy table
    child = children[0]
    page = f"{ui_root}/#/experiments/{experiment}/runs/{child.info.run_id}"
    browser.get(f"{page}?{TRAINING}")
    wait_for(browser, lambda d: "fit.steps" in body_text(d))
    browser.save_screenshot(str(shots / "2-child.png"))
    assert "Parameters" in body_text(browser)
    browser.get(f"{page}/artifacts/accuracy.md?{TRAINING}")
    wait_for(browser, lambda d: "unparseable" in body_text(d))
    browser.save_screenshot(str(shots / "3-child-accuracy.png"))
    assert f"{child.data.metrics['test/Avg']:.2f}" in body_text(browser)

    # the parent's page: the report table, with a link to each child that opens it
    page = f"{ui_root}/#/experiments/{experiment}/runs/{parent.info.run_id}"
    browser.get(f"{page}?{TRAINING}")
    wait_for(browser, lambda d: "lab: test accuracy" in body_text(d))
    for more in browser.find_elements(By.XPATH, "//*[normalize-space(text())='Show more']"):
        more.click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "table"))
    browser.save_screenshot(str(shots / "4-parent.png"))
    text = body_text(browser)
    assert "runs: 4 succeeded, 0 failed, 0 not run" in text and "ours (mean ± std)" in text
    target = children[-1]
    [anchor] = browser.find_elements(
        By.CSS_SELECTOR, f'a[href*="/runs/{target.info.run_id}?workflowType"]'
    )
    browser.get(anchor.get_attribute("href"))  # the UI's markdown opens links in a new tab
    wait_for(browser, lambda d: target.data.tags["ablate.run_id"] in body_text(d))
    assert target.info.run_name in body_text(browser)
    browser.get(f"{page}/artifacts/report/lab.html?{TRAINING}")
    frame = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "iframe"))[0]
    browser.save_screenshot(str(shots / "5-parent-report.png"))
    browser.switch_to.frame(frame)
    wait_for(browser, lambda d: "lab: test accuracy" in body_text(d))
    assert "short" in body_text(browser) and "long" in body_text(browser)

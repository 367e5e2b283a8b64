"""A real headless Chromium rates three samples with clicks and keys, marks hallucinated words, reloads, and
the ratings are on disk (scripts/setup_browser.sh installs chromium, chromium-driver and selenium)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from validation.server import make_server, start_in_thread

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = Path("/tmp/s2cap_validation_rating_page.png")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
]


def _have() -> tuple[str | None, str | None, bool]:
    importlib.invalidate_caches()
    return (
        shutil.which("chromium"),
        shutil.which("chromedriver"),
        importlib.util.find_spec("selenium") is not None,
    )


def _browser() -> tuple[str, str]:
    chromium, driver, selenium = _have()
    if not (chromium and driver and selenium):
        subprocess.run(["bash", str(ROOT / "scripts" / "setup_browser.sh")], capture_output=True, timeout=300)
        chromium, driver, selenium = _have()
    if not (chromium and driver):
        pytest.skip(
            "Chromium/chromedriver not installed and scripts/setup_browser.sh could not install them "
            "(needs root and apt-get)"
        )
    if not selenium:
        pytest.skip("selenium is not installed and scripts/setup_browser.sh could not install it (pip)")
    return chromium, driver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    chromium, driver_path = _browser()
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium missing: run scripts/setup_browser.sh"
    )
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never look for drivers online
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'chrome-profile'}"]:
        options.add_argument(flag)
    drv = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    drv.set_page_load_timeout(20)
    try:
        yield drv
    finally:
        drv.quit()


def _wait(drv, condition, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(drv, timeout, poll_frequency=0.05).until(condition)


def _ready(drv) -> None:  # type: ignore[no-untyped-def]
    _wait(drv, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "1")


def _settled(drv) -> None:  # type: ignore[no-untyped-def]
    _wait(drv, lambda d: d.find_element("tag name", "body").get_attribute("data-pending") == "0")


def _keys(drv, keys: str) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(drv).send_keys(keys).perform()


def test_rate_three_samples_in_chromium_and_resume(browser, exported: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    drv = browser
    samples = json.loads((exported / "samples.json").read_text())
    server = make_server(exported, port=0, rater="alice")
    start_in_thread(server)
    try:
        drv.get(server.url)
        _ready(drv)
        body = drv.find_element("tag name", "body")
        assert body.get_attribute("data-sample") == samples[0]["id"]
        assert "Excellent" in drv.find_element("id", "scale").text
        assert drv.find_element("id", "caption").text == samples[0]["caption"]
        assert drv.execute_script("return document.getElementById('img-fcc').naturalWidth") > 0

        # sample 1: key "2" (Good), click the second word as hallucinated
        _keys(drv, "2")
        word1 = drv.find_elements("css selector", "#caption .w")[1]
        text1 = word1.text
        word1.click()
        _settled(drv)
        assert drv.find_element("id", "hcount").text == "1"
        drv.save_screenshot(str(SCREENSHOT))

        # sample 2: "n", click "Poor", write a comment (c ... Esc)
        _keys(drv, "n")
        _wait(drv, lambda d: d.find_element("tag name", "body").get_attribute("data-index") == "1")
        drv.find_element("css selector", "#scale button[data-value='Poor']").click()
        _keys(drv, "c")
        _keys(drv, "misses the forest" + Keys.ESCAPE)
        _settled(drv)

        # sample 3: "n", key "6" (Terrible), a three-word phrase by click + shift-click
        _keys(drv, "n")
        _wait(drv, lambda d: d.find_element("tag name", "body").get_attribute("data-index") == "2")
        _keys(drv, "6")
        drv.find_elements("css selector", "#caption .w")[0].click()
        _settled(drv)
        word3 = drv.find_elements("css selector", "#caption .w")[2]  # the caption was re-rendered
        ActionChains(drv).key_down(Keys.SHIFT).click(word3).key_up(Keys.SHIFT).perform()
        _settled(drv)
        assert drv.find_element("id", "hcount").text == "1"

        # reload: the page resumes on sample 3 with its answers
        drv.refresh()
        _ready(drv)
        assert drv.find_element("tag name", "body").get_attribute("data-index") == "2"
        selected = drv.find_element("css selector", "#scale button.selected").get_attribute("data-value")
        assert selected == "Terrible"
        assert len(drv.find_elements("css selector", "#caption .w.marked")) == 3
        assert drv.find_element("id", "progress").text == f"3 / {len(samples)} rated"
    finally:
        server.shutdown()
        server.server_close()

    doc = json.loads((exported / "ratings" / "alice.json").read_text())
    assert doc["rater"] == "alice" and doc["position"] == samples[2]["id"]
    r1, r2, r3 = (doc["ratings"][s["id"]] for s in samples[:3])
    c1 = samples[0]["caption"]
    start = c1.index(text1)
    assert r1["completeness"] == "Good"
    assert r1["spans"] == [{"start": start, "end": start + len(text1), "text": text1}]
    assert r2["completeness"] == "Poor" and r2["spans"] == [] and r2["comment"] == "misses the forest"
    c3 = samples[2]["caption"]
    phrase = " ".join(c3.split()[:3]).rstrip(",.")
    assert r3["completeness"] == "Terrible"
    assert r3["spans"] == [{"start": 0, "end": len(phrase), "text": phrase}]

"""The web page in a real browser: `transduce serve` on a free loopback port, headless Chromium
(Debian's, driven by Selenium) types an input, clicks Translate, and finds the output and the
attention heatmap; hovering a target token highlights its row and its source alignment.

Needs `chromium`, `chromium-driver` and `selenium` (`.ci/install-browser.sh`). Skipped when they
are missing, except in CI (CI=true), where it fails instead.
Set TRANSDUCE_SCREENSHOT=path.png to keep a screenshot, TRANSDUCE_SERVE_MODEL=model_dir to serve
another model (the docs screenshot uses a better-trained one).
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_images import image_config
from test_serve import tiny_model_dir
from transduce.config import load_config
from transduce.data.generate import write_shapes
from transduce.training.trainer import Trainer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
try:
    import selenium  # noqa: F401
    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

_missing = [name for name, ok in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER),
                                  ("selenium", HAVE_SELENIUM)) if not ok]
if _missing:
    _why = f"{', '.join(_missing)} not installed; run .ci/install-browser.sh"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser test cannot run in CI: {_why}", pytrace=False)
    pytest.skip(_why, allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chrome(profile: Path) -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--window-size=1100,1000", "--force-device-scale-factor=1",
                f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))


def _wait_healthy(url: str, proc: subprocess.Popen, log, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read()}")
        try:
            with urllib.request.urlopen(url + "health", timeout=2) as r:
                return json.load(r)
        except OSError:
            time.sleep(0.2)
    pytest.fail("server did not answer /health within a minute")


@pytest.fixture(scope="module")
def page(reverse_data, tmp_path_factory):
    """(driver, base url) with `transduce serve` running on a free loopback port."""
    model_dir = os.environ.get("TRANSDUCE_SERVE_MODEL") or tiny_model_dir(reverse_data,
                                                                          tmp_path_factory)
    with _served(model_dir, tmp_path_factory) as served:
        yield served


@pytest.fixture(scope="module")
def image_page(tmp_path_factory):
    """(driver, base url, shapes data) with a tiny image captioning model served."""
    data = write_shapes(tmp_path_factory.mktemp("shapes"), {"train": 64, "dev": 8})
    cfg = image_config(data, tmp_path_factory.mktemp("run") / "model", max_steps=20)
    Trainer(load_config(cfg)).train()
    with _served(cfg["model_dir"], tmp_path_factory) as (driver, url):
        yield driver, url, data


@contextlib.contextmanager
def _served(model_dir, tmp_path_factory):
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    log = (tmp_path_factory.mktemp("server") / "stderr.txt").open("w+")  # a pipe could fill up
    proc = subprocess.Popen([sys.executable, "-m", "transduce", "serve", str(model_dir),
                             "--port", str(port), "--device", "cpu"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
    driver = None
    try:  # Chromium starts while the server loads the model
        driver = _chrome(tmp_path_factory.mktemp("chromium-profile"))
        url = f"http://127.0.0.1:{port}/"
        _wait_healthy(url, proc, log)
        yield driver, url
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _loaded(driver, url: str) -> WebDriverWait:
    """Open the page and wait until it has shown the model (its /health answered)."""
    driver.get(url)
    wait = WebDriverWait(driver, 20)
    wait.until(lambda d: "parameters" in d.find_element(By.ID, "model").text)
    return wait


def _type(driver, text: str) -> None:
    box = driver.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text)


def test_type_translate_and_see_the_heatmap(page):
    driver, url = page
    wait = _loaded(driver, url)
    _type(driver, "w3 w11 w5 w8 w2 w9\nw4 w1 w7")
    driver.find_element(By.ID, "translate").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".result table.heatmap")) == 2)

    results = driver.find_elements(By.CSS_SELECTOR, ".result")
    assert len(results) == 2
    assert "2 input(s)" in driver.find_element(By.ID, "status").text
    assert not driver.find_element(By.ID, "error").is_displayed()
    first = results[0]
    src = [s.text for s in first.find_elements(By.CSS_SELECTOR, ".tokens:not(.output) span")][1:]
    assert src == ["w3", "w11", "w5", "w8", "w2", "w9"]
    output = [s.text for s in first.find_elements(By.CSS_SELECTOR, ".output span")][1:]
    assert output and all(output)

    table = first.find_element(By.CSS_SELECTOR, "table.heatmap")
    cols = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")][1:]
    assert cols == src
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    row_labels = [r.find_element(By.TAG_NAME, "th").text for r in rows]
    assert row_labels[:len(output)] == output and len(rows) in (len(output), len(output) + 1)
    cells = rows[0].find_elements(By.TAG_NAME, "td")
    assert len(cells) == len(src)
    assert all("rgba" in c.value_of_css_property("background-color") for c in cells)

    # hovering a target token highlights its row and the source tokens it attends to
    ActionChains(driver).move_to_element(rows[0].find_element(By.TAG_NAME, "th")).perform()
    wait.until(lambda d: "hl" in rows[0].get_attribute("class"))
    assert table.find_elements(By.CSS_SELECTOR, "thead th.aligned")
    assert first.find_elements(By.CSS_SELECTOR, ".output span.hl")
    k = min(2, len(output) - 1)  # now an output token: its row lights up, the first goes dark
    token = first.find_elements(By.CSS_SELECTOR, ".output span")[1 + k]
    ActionChains(driver).move_to_element(token).perform()
    wait.until(lambda d: "hl" in rows[k].get_attribute("class"))
    assert k == 0 or "hl" not in rows[0].get_attribute("class")

    shot = os.environ.get("TRANSDUCE_SCREENSHOT")
    if shot:  # the whole page
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": 1000, "height": height, "deviceScaleFactor": 1, "mobile": False})
        ActionChains(driver).move_to_element(token).perform()  # the layout moved: hover again
        wait.until(lambda d: "hl" in rows[k].get_attribute("class"))
        driver.save_screenshot(shot)
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    # nothing was blocked or failed: no CSP violation, no failed request, no script error
    problems = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not problems, problems


def _caption(url: str, image: Path, beam: str) -> dict:
    req = urllib.request.Request(url + f"caption?attention=true&beam_size={beam}",
                                 data=image.read_bytes(), headers={"Content-Type": "image/png"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def test_pick_or_drop_an_image_and_see_each_word_attend(image_page):
    driver, url, data = image_page
    driver.get(url)
    wait = WebDriverWait(driver, 20)
    wait.until(lambda d: d.find_element(By.ID, "translate").text == "Caption")
    assert not driver.find_element(By.ID, "text").is_displayed()
    images = [data / p for p in (data / "dev.src").read_text().split()[:2]]

    driver.find_element(By.ID, "image").send_keys(str(images[0]))  # the file picker
    driver.find_element(By.ID, "translate").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".result .words figure"))
    beam = driver.find_element(By.ID, "beam_size").get_attribute("value")
    expected = _caption(url, images[0], beam)
    output = driver.find_element(By.CSS_SELECTOR, ".result .output span:not(.label)").text
    assert output == (expected["caption"] or "(empty)")
    figures = driver.find_elements(By.CSS_SELECTOR, ".result .words figure")
    assert [f.text for f in figures] == expected["attention"]["tgt_tokens"]
    # each canvas holds the image (darkened where its word did not look): not one flat colour
    spread = driver.execute_script(
        "const d = arguments[0].getContext('2d').getImageData(0, 0, 128, 128).data;"
        "let lo = 255, hi = 0; for (let i = 0; i < d.length; i++) { if (i % 4 === 3) continue;"
        "lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); } return hi - lo;",
        figures[0].find_element(By.TAG_NAME, "canvas"))
    assert spread > 150

    # a file dropped on the drop zone (a DataTransfer built in the page, as a drag would)
    driver.execute_script(
        "const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));"
        "const dt = new DataTransfer();"
        "dt.items.add(new File([bytes], 'dropped.png', { type: 'image/png' }));"
        "document.getElementById('drop').dispatchEvent("
        "new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));",
        base64.b64encode(images[1].read_bytes()).decode())
    assert driver.find_element(By.ID, "image-name").text == "dropped.png"
    driver.find_element(By.ID, "translate").click()
    second = _caption(url, images[1], beam)
    redrawn = WebDriverWait(driver, 20, ignored_exceptions=(StaleElementReferenceException,))
    redrawn.until(lambda d: [f.text for f in d.find_elements(By.CSS_SELECTOR, ".words figure")]
                  == second["attention"]["tgt_tokens"])
    problems = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not problems, problems


def test_an_error_from_the_server_is_shown_on_the_page(page):
    driver, url = page
    driver.get(url)
    wait = WebDriverWait(driver, 20)
    box = driver.find_element(By.ID, "text")
    driver.execute_script("arguments[0].value = arguments[1]", box, "w1 " * 400)
    driver.find_element(By.ID, "translate").click()
    error = wait.until(EC.visibility_of_element_located((By.ID, "error")))
    assert "characters" in error.text
    assert driver.find_element(By.ID, "translate").is_enabled()


def test_n_best_list_with_scores_limits_and_a_permalink_that_reproduces_the_input(page):
    driver, url = page
    driver.get_log("browser")  # drop what earlier tests logged (the error test's 413)
    wait = _loaded(driver, url)
    limits = driver.find_element(By.ID, "limits").text
    assert "beam size and n-best up to 16" in limits and "256 tokens" in limits  # serve's Limits
    _type(driver, "w3 w11 w5 w8")
    beam = driver.find_element(By.ID, "beam_size").get_attribute("value")  # the model's default
    n_best = driver.find_element(By.ID, "n_best")
    n_best.clear()
    n_best.send_keys("3")
    driver.find_element(By.ID, "translate").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".result ol.nbest li")) == 3)
    items = driver.find_elements(By.CSS_SELECTOR, ".result ol.nbest li")
    hyps = [li.find_element(By.CSS_SELECTOR, ".hyp").text for li in items]
    scores = [float(li.find_element(By.CSS_SELECTOR, ".score").text) for li in items]
    assert len(set(hyps)) == 3 and scores == sorted(scores, reverse=True)  # best first
    output = " ".join(s.text for s in driver.find_elements(By.CSS_SELECTOR, ".output span")[1:])
    assert hyps[0] == output  # the first hypothesis is the output shown (and its heatmap)

    link = driver.find_element(By.ID, "permalink")
    assert link.is_displayed()
    href = link.get_attribute("href")
    assert "text=w3+w11+w5+w8" in href and "n_best=3" in href and f"beam_size={beam}" in href
    assert driver.current_url == href  # the address bar holds it too
    driver.get("about:blank")
    driver.get(href)  # a fresh page from the permalink fills the form and translates
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".result ol.nbest li")) == 3)
    assert driver.find_element(By.ID, "text").get_attribute("value") == "w3 w11 w5 w8"
    again = [li.find_element(By.CSS_SELECTOR, ".hyp").text
             for li in driver.find_elements(By.CSS_SELECTOR, ".result ol.nbest li")]
    assert again == hyps
    problems = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not problems, problems

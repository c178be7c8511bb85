"""The page at `GET /` in a real headless browser (Debian's chromium through selenium): drop
a photo, see the top-5 bars and the class activation map. EFFNET_SCREENSHOT=PATH saves what
the browser shows (docs/img/serve_page.png was made so)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from .optional import require
from .lite import needs_lite0
from .serving import free_port, start_server, stop

webdriver = require("selenium.webdriver")
require("fastapi")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [pytest.mark.slow, needs_lite0,
              pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                 reason="apt-get install chromium chromium-driver (./run setup does)")]


def test_drop_a_photo_and_see_the_top_5_and_its_cam(tmp_path: Path) -> None:
    from selenium.webdriver.chrome.service import Service as ChromeService
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    skimage_data = require("skimage.data")
    photo = tmp_path / "coffee.jpg"
    Image.fromarray(skimage_data.coffee()).save(photo, quality=95)
    port = free_port()
    proc = start_server("--model", "efficientnet_lite0", "--weights", "lite0.official", "--runtime", "torch", port=port)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,640"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=ChromeService(CHROMEDRIVER), options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        assert "efficientnet_lite0" in driver.title
        upload = driver.find_element(By.ID, "file")
        driver.execute_script("arguments[0].hidden = false;", upload)
        upload.send_keys(str(photo))
        WebDriverWait(driver, 90).until(lambda d: d.execute_script("return document.body.dataset.done") == "1")
        rows = driver.find_elements(By.CSS_SELECTOR, "#bars .row")
        assert len(rows) == 5 and "espresso" in rows[0].text
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(
            "return document.getElementById('cam').complete && document.getElementById('cam').naturalWidth") == 224)
        assert driver.find_element(By.ID, "error").text == ""
        if os.environ.get("EFFNET_SCREENSHOT"):
            driver.save_screenshot(os.environ["EFFNET_SCREENSHOT"])
    finally:
        driver.quit()
        stop(proc)

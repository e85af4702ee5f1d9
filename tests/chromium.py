"""A headless Chromium driven by Selenium, for the tests that open the page in a real browser (Debian's chromium
and chromium-driver; on GitHub's Ubuntu runner, which has no apt chromium, its preinstalled Chrome).

`browser` is a pytest fixture: a test module imports it to use it.
"""

from __future__ import annotations

import os
import tempfile

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

BROWSERS = ("/usr/bin/chromium", "/usr/bin/google-chrome")
DRIVERS = ("/usr/bin/chromedriver", os.path.join(os.environ.get("CHROMEWEBDRIVER", "/nonexistent"), "chromedriver"))
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1100,800",
)


def _installed(paths: tuple[str, ...]) -> str:
    found = [path for path in paths if os.path.exists(path)]
    assert found, f"none of {', '.join(paths)} is installed; scripts/setup.sh installs chromium and chromium-driver"
    return found[0]


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = _installed(BROWSERS)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(_installed(DRIVERS)), options=options)
    yield driver
    driver.quit()

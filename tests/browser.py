"""One headless Chromium for the browser tests of every app: Debian's chromium and chromedriver (installed by
``scripts/ensure_chromium.sh``, which ``make test`` runs), a fixed CSS viewport, login through the admin form, and
screenshots into ``docs/screenshots/`` at desktop and phone widths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
DESKTOP, MOBILE = (1440, 900), (390, 844)
PASSWORD = "pass-1234"

# Every browser test module: ``pytestmark = BROWSER``.
BROWSER = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason="needs Debian's chromium at /usr/bin/chromium (scripts/ensure_chromium.sh installs it)",
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--hide-scrollbars",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(3)
    yield driver
    driver.quit()


def viewport(driver: Any, size: tuple[int, int]) -> None:
    # The exact CSS viewport, whatever the headless window's decorations; the phone one as a phone renders it.
    width, height = size
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def shoot(driver: Any, name: str, size: tuple[int, int]) -> Path:
    """Save ``docs/screenshots/<name>-desktop.png`` or ``-mobile.png`` at that viewport."""
    viewport(driver, size)
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}-{'desktop' if size == DESKTOP else 'mobile'}.png"
    driver.save_screenshot(str(path))
    return path


def page_width(driver: Any) -> int:
    """How wide the page really is: more than the viewport means a horizontal scroll."""
    return int(driver.execute_script("return document.documentElement.scrollWidth"))


def login(driver: Any, live_server: Any, user: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.delete_all_cookies()
    driver.get(live_server.url + reverse("admin:login"))
    driver.find_element(By.NAME, "username").send_keys(user.username)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # Generous: a loaded two-core machine can take seconds to answer the first request of a live server.
    WebDriverWait(driver, 20).until(lambda d: "/login/" not in d.current_url)
    assert "Log in" not in driver.title

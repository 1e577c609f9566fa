"""The cockpit in a real (headless Chromium) browser, on the demo's data: a program manager sees the breaching
canary on the home, opens it, reads its chart and pauses it; on-call acknowledges the incident from the home,
comments and resolves it. Screenshots at 1440×900 and 390×844 go to docs/screenshots/cockpit-*.png, and at
390 px neither page scrolls sideways."""

from __future__ import annotations

from io import StringIO
from typing import Any

from django.contrib.auth.models import User
from django.core.management import call_command
from django.urls import reverse

from monitoring.models import Incident
from releases.models import Release
from tests.browser import BROWSER, DESKTOP, MOBILE, PASSWORD, login, page_width, shoot, viewport

pytestmark = BROWSER


def _demo_user(username: str) -> User:
    call_command("seed_demo", stdout=StringIO())
    user = User.objects.get(username=username)
    user.set_password(PASSWORD)  # the harness logs in with its own password
    user.save()
    return user


def _message(driver: Any, text: str) -> None:
    """Wait for the next page's message (a click navigates; the old page's messages must not be read)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The old page's messages go stale as the click's page replaces them: read again until the new one is there.
    WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: any(text in m.text for m in d.find_elements("css selector", "ul.messagelist li"))
    )


def _phone_fits(driver: Any, name: str, element_id: str) -> None:
    viewport(driver, MOBILE)
    assert page_width(driver) <= MOBILE[0], f"{name} is {page_width(driver)} px wide at {MOBILE[0]} px"
    button = driver.find_element("id", element_id)
    right = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return r.right;", button)
    assert right <= MOBILE[0], f"{element_id} ends at {right} px"
    shoot(driver, name, MOBILE)
    viewport(driver, DESKTOP)


def test_a_program_manager_finds_the_breaching_canary_reads_its_chart_and_pauses_it(browser, live_server):
    from selenium.webdriver.common.by import By

    pm = _demo_user("pm")
    canary = Release.objects.get(status="rolling_out")
    login(browser, live_server, pm)
    viewport(browser, DESKTOP)
    browser.get(live_server.url + reverse("admin:index"))
    line = browser.find_element(By.CSS_SELECTOR, f'#home-rollouts li[data-release="{canary.pk}"]')
    assert line.get_attribute("data-worst") == "fail"
    assert "blocked by" in line.text and "Escalation rate in US" in line.text
    shoot(browser, "cockpit-pm-home", DESKTOP)
    _phone_fits(browser, "cockpit-pm-home", "home-rollouts")

    line.find_element(By.TAG_NAME, "a").click()
    panel = browser.find_element(By.ID, "health-panel")
    assert panel.get_attribute("data-worst") == "fail"
    active = browser.find_element(By.CSS_SELECTOR, '#stage-steps li[aria-current="step"]')
    assert "Canary" in active.text and "samples" in active.text
    cell = browser.find_element(By.CSS_SELECTOR, '#guardrail-grid td[data-market="US"][data-outcome="fail"]')
    assert "vs baseline" in cell.text and "%" in cell.text
    chart = browser.find_element(By.CSS_SELECTOR, "#health-charts figure.guardrail-chart")
    assert int(chart.get_attribute("data-looks")) >= 20
    assert chart.find_elements(By.CSS_SELECTOR, "polyline.limit") and chart.find_elements(By.CSS_SELECTOR, "polygon")
    browser.execute_script("document.getElementById('health-panel').scrollIntoView()")
    shoot(browser, "cockpit-release-health", DESKTOP)
    _phone_fits(browser, "cockpit-release-health", "transition-buttons")

    pause = browser.find_element(By.CSS_SELECTOR, '#transition-buttons input[value="Pause"]')
    pause.find_element(By.XPATH, "..").find_element(By.NAME, "reason").send_keys("Escalations 6 pts over control")
    pause.click()
    _message(browser, "now paused")
    canary.refresh_from_db()
    assert canary.status == "paused"


def test_on_call_acknowledges_from_the_home_comments_and_resolves(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    oncall = _demo_user("oncall")
    incident = Incident.objects.open().get()
    login(browser, live_server, oncall)
    viewport(browser, DESKTOP)
    browser.get(live_server.url + reverse("admin:index"))
    line = browser.find_element(By.CSS_SELECTOR, f'#home-incidents li[data-incident="{incident.pk}"]')
    assert "Escalation rate worse than baseline in US — Buyer refunds assistant" in line.text
    assert "ack overdue since" in line.text or "acknowledge by" in line.text  # its deadline, whichever side
    shoot(browser, "cockpit-oncall-home", DESKTOP)
    _phone_fits(browser, "cockpit-oncall-home", "home-incidents")

    line.find_element(By.CSS_SELECTOR, "input.ack-button").click()
    _message(browser, "is acknowledged")
    assert "vs baseline" in browser.find_element(By.ID, "fired-by").text
    assert browser.find_element(By.CSS_SELECTOR, "#incident-picture figure.guardrail-chart")
    assert "oncall@demo.test" in browser.find_element(By.ID, "notifications").text
    browser.find_element(By.CSS_SELECTOR, "#comment-form textarea").send_keys("Canary paused by pm; watching control.")
    browser.find_element(By.CSS_SELECTOR, '#comment-form input[type="submit"]').click()
    _message(browser, "Comment added")
    browser.execute_script("window.scrollTo(0, 0)")
    shoot(browser, "cockpit-incident", DESKTOP)
    _phone_fits(browser, "cockpit-incident", "triage-buttons")

    resolve = browser.find_element(By.CSS_SELECTOR, '#triage-buttons input[value="Resolve"]')
    form = resolve.find_element(By.XPATH, "..")
    Select(form.find_element(By.NAME, "resolution")).select_by_value("fixed")
    form.find_element(By.NAME, "note").send_keys("Lookup prompt fixed in the next version")
    resolve.click()
    _message(browser, "is resolved")
    incident.refresh_from_db()
    assert incident.status == "resolved"
    assert incident.events.filter(kind="comment", actor=oncall).exists()

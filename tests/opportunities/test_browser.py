"""A program manager in a real (headless Chromium) browser: ranks the gaps, creates an opportunity from the top
gap, links it to a solution and accepts it; later reads a measured opportunity's realized impact and the
calibration. Screenshots at 1440×900 and 390×844 go to docs/screenshots/opportunities-*.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.urls import reverse

from opportunities.demo import seed_opportunities_demo
from opportunities.models import Opportunity
from releases.choices import ReleaseStatus
from tests.browser import BROWSER, DESKTOP, MOBILE, login, viewport
from tests.browser import shoot as browser_shoot
from tests.factories import SolutionFactory, UserFactory, advance_release, make_release

pytestmark = BROWSER


def shoot(driver: Any, name: str, size: tuple[int, int]) -> Path:
    return browser_shoot(driver, f"opportunities-{name}", size)


def _world() -> dict[str, Any]:
    from core.roles import AUTHORS, PROGRAM_MANAGERS

    pm = UserFactory(username="pia.pm", groups=[PROGRAM_MANAGERS])
    author = UserFactory(username="ana.author", groups=[AUTHORS])
    solutions = {
        "buyer-refunds": SolutionFactory(key="buyer-refunds", name="Buyer refunds assistant"),
        "seller-payouts": SolutionFactory(key="seller-payouts", name="Seller payouts assistant", audience="sellers"),
    }
    return {"pm": pm, "author": author, "solutions": solutions}


def test_a_program_manager_ranks_gaps_and_creates_an_opportunity_from_the_top_one(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait

    world = _world()
    # The demo's contact-reason data; with no verified release nothing is measured yet.
    seed_opportunities_demo(program_manager=world["pm"], solutions=world["solutions"], releases=[])
    login(browser, live_server, world["pm"])
    viewport(browser, DESKTOP)
    browser.get(live_server.url + reverse("admin:opportunities_gapanalysis_changelist"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#gap-table tr.gap-row")
    assert rows[0].get_attribute("data-reason") == "order-tracking"
    hours = [float(row.find_element(By.CSS_SELECTOR, ".hours").text.replace(",", "")) for row in rows]
    assert hours == sorted(hours, reverse=True)
    assert browser.find_element(By.ID, "gap-chart").is_displayed()
    shoot(browser, "gap-analysis", DESKTOP)
    shoot(browser, "gap-analysis", MOBILE)
    viewport(browser, DESKTOP)
    Select(browser.find_element(By.NAME, "audience")).select_by_value("sellers")
    browser.find_element(By.CSS_SELECTOR, "#gap-filters input[type=submit]").click()
    WebDriverWait(browser, 5).until(expected_conditions.url_contains("audience=sellers"))
    sellers = [row.get_attribute("data-reason") for row in browser.find_elements(By.CSS_SELECTOR, "tr.gap-row")]
    assert sellers[0] == "payout-delay" and "order-tracking" not in sellers
    browser.get(live_server.url + reverse("admin:opportunities_gapanalysis_changelist"))

    browser.find_elements(By.CSS_SELECTOR, "a.create-opportunity")[0].click()
    WebDriverWait(browser, 5).until(expected_conditions.url_contains("/add/"))
    assert browser.find_element(By.NAME, "contact_reasons_text").get_attribute("value") == "order-tracking"
    browser.find_element(By.NAME, "hypothesis").send_keys("Carrier status answers most tracking questions.")
    browser.find_element(By.NAME, "expected_containment_lift").send_keys("0.3")
    browser.find_element(By.NAME, "effort_weeks").send_keys("6")
    browser.find_element(By.NAME, "confidence").send_keys("0.8")
    Select(browser.find_element(By.NAME, "solution")).select_by_visible_text("Buyer refunds assistant")
    browser.execute_script("window.scrollTo(0, 0)")
    shoot(browser, "create-from-gap", DESKTOP)
    viewport(browser, DESKTOP)
    browser.find_element(By.NAME, "_continue").click()
    # Waits for the saved page before reading the database (a save can take seconds on a loaded machine).
    WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located((By.ID, "opportunity-panel")))
    opportunity = Opportunity.objects.get(title="Automate order tracking")
    assert (opportunity.contact_reasons, opportunity.solution_id) == (
        ["order-tracking"],
        world["solutions"]["buyer-refunds"].pk,
    )
    browser.find_element(By.CSS_SELECTOR, "#transition-buttons input[value=Accept]").click()
    WebDriverWait(browser, 5).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".messagelist")))
    assert "is accepted" in browser.find_element(By.CSS_SELECTOR, ".messagelist").text
    assert "R × I × C ÷ E" in browser.find_element(By.ID, "score-formula").text
    shoot(browser, "opportunity", DESKTOP)
    shoot(browser, "opportunity", MOBILE)
    opportunity.refresh_from_db()
    assert opportunity.status == "accepted"


def test_a_program_manager_reads_realized_impact_and_calibration(browser, live_server):
    from selenium.webdriver.common.by import By

    world = _world()
    refunds = world["solutions"]["buyer-refunds"]
    release = advance_release(
        make_release(author=world["author"], solution=refunds),
        ReleaseStatus.VERIFIED,
        program_manager=world["pm"],
    )
    seed_opportunities_demo(program_manager=world["pm"], solutions=world["solutions"], releases=[release])
    measured = Opportunity.objects.get(status="measured")
    login(browser, live_server, world["pm"])
    viewport(browser, DESKTOP)
    browser.get(live_server.url + reverse("admin:opportunities_opportunity_changelist"))
    titles = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#result_list th.field-title")]
    assert len(titles) == 3
    shoot(browser, "backlog", DESKTOP)
    shoot(browser, "backlog", MOBILE)
    viewport(browser, DESKTOP)
    browser.get(live_server.url + reverse("admin:opportunities_opportunity_change", args=[measured.pk]))
    realized = browser.find_element(By.ID, "realized-lift").text
    assert realized.startswith(f"{measured.realized_containment_lift * 100:+.1f} pp") and "vs control" in realized
    assert browser.find_element(By.ID, "realized-hours").text == f"{measured.realized_hours_saved_per_week:.1f}"
    browser.execute_script("document.getElementById('impact-panel').scrollIntoView()")
    shoot(browser, "impact", DESKTOP)
    shoot(browser, "impact", MOBILE)
    viewport(browser, DESKTOP)
    browser.get(live_server.url + reverse("admin:opportunities_opportunity_calibration"))
    assert "optimistic" in browser.find_element(By.ID, "calibration-summary").text
    shoot(browser, "calibration", DESKTOP)

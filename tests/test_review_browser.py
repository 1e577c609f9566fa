"""Reviewers, authors and auditors in a real (headless Chromium) browser: a reviewer reads the diff, signs the
checklist and approves; an author starts a new version from the launched release, edits its prompt and picks a
stage's markets; the demo's auditor downloads the evidence pack of the demo's verified release and opens its report
and PDF. Screenshots at 1440×900 and 390×844 go to docs/screenshots/ (review-*, authoring-*, evidence-*); that pack
is kept as docs/evidence-example.zip, the example the README points to."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from core.audit import audit_checkpoint
from core.roles import REVIEWERS
from governance import services as governance
from governance.models import ApprovalDecision, ChecklistItem, ChecklistItemState
from releases import services
from releases.choices import ReleaseStatus, RiskLevel
from releases.models import Release
from tests.browser import BROWSER, DESKTOP, MOBILE, PASSWORD, login, page_width, shoot, viewport
from tests.factories import SolutionFactory, UserFactory, advance_release, make_release

pytestmark = BROWSER

DOCS = Path(__file__).resolve().parents[1] / "docs"
NEW_RULE = "Never promise a refund before the eligibility check has passed."


def _launched(status: str = ReleaseStatus.LAUNCHED) -> tuple[Release, Any, Any]:
    from core.roles import AUTHORS, PROGRAM_MANAGERS

    author = UserFactory(username="ana.author", groups=[AUTHORS])
    pm = UserFactory(username="pia.pm", groups=[PROGRAM_MANAGERS])
    solution = SolutionFactory(key="buyer-refunds", name="Buyer refunds assistant")
    release = make_release(author=author, solution=solution, risk_level=RiskLevel.MEDIUM)
    return advance_release(release, status, program_manager=pm), author, pm


def _wait_for(browser: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, 8).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))


def _submit_and_wait_for(browser: Any, button: Any, css: str) -> Any:
    """Click a form's button and wait for ``css`` on the page it leads to: the page being left may show the same
    element (an earlier message), so first wait for that page to go."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    leaving = browser.find_element(By.TAG_NAME, "html")
    button.click()
    WebDriverWait(browser, 8).until(expected_conditions.staleness_of(leaving))
    return _wait_for(browser, css)


def _wait_until_drawn(browser: Any) -> None:
    """Chromium's PDF viewer draws the page inside its own frame, out of the page's DOM: wait until two captures
    in a row are the same and hold more than an empty grey viewer."""
    from selenium.webdriver.support.ui import WebDriverWait

    captures: list[bytes] = []

    def settled(driver: Any) -> bool:
        captures.append(driver.get_screenshot_as_png())
        return len(captures) > 1 and captures[-1] == captures[-2] and len(captures[-1]) > 30_000

    WebDriverWait(browser, 20, poll_frequency=0.5).until(settled)


def test_a_reviewer_reads_the_diff_signs_the_checklist_and_approves(browser, live_server):
    from selenium.webdriver.common.by import By

    launched, author, _pm = _launched()
    draft = services.release_new_version(release=launched, actor=author)
    draft = services.release_update(
        release=draft,
        actor=author,
        system_prompt=launched.system_prompt + "\n" + NEW_RULE,
        tools=["order_lookup", "refund_policy", "carrier_status"],
    )
    in_review = services.release_submit(release=draft, actor=author)
    reviewer = UserFactory(username="rita.reviewer", groups=[REVIEWERS])
    # Everything but the reviewer's own part is done: other groups' items signed, the program manager approved.
    crew_pm = get_user_model().objects.get(username="crew.pm1")
    for item in ChecklistItem.objects.filter(checklist__release=in_review).exclude(signer_group__name=REVIEWERS):
        governance.checklist_item_sign_off(item=item, actor=crew_pm, evidence_url="https://wiki.example.com/e", note="")
    governance.approval_record(
        release=in_review,
        approver=crew_pm,
        group="Program managers",
        decision=ApprovalDecision.APPROVE,
        content_hash=in_review.content_hash,
        comment="",
    )
    mine = ChecklistItem.objects.filter(checklist__release=in_review, signer_group__name=REVIEWERS).count()
    assert mine >= 1

    login(browser, live_server, reviewer)
    viewport(browser, DESKTOP)
    browser.get(live_server.url + reverse("admin:releases_release_change", args=[in_review.pk]))
    # The diff: the new prompt line on the right, the new tool in the structured diff.
    inserted = browser.find_elements(By.CSS_SELECTOR, "#diff table.diff-text[data-name=Prompt] tr.diff-insert td.r")
    assert [cell.text for cell in inserted] == [NEW_RULE]
    tools = browser.find_element(By.CSS_SELECTOR, "#diff tr.diff-field[data-field=Tools]").text
    assert "+ carrier_status" in tools
    assert f"{mine} review-checklist item" in browser.find_element(By.ID, "blocked-by").text
    assert page_width(browser) <= DESKTOP[0]
    browser.execute_script("document.getElementById('diff').scrollIntoView()")
    shoot(browser, "review-diff", DESKTOP)
    shoot(browser, "review-diff", MOBILE)
    viewport(browser, DESKTOP)

    for _ in range(mine):
        form = browser.find_element(By.CSS_SELECTOR, "#checklist form.sign-form")
        evidence = form.find_element(By.NAME, "evidence_url")
        evidence.send_keys("https://wiki.example.com/qa/refunds-v2")
        form.find_element(By.NAME, "note").send_keys("Read the diff; the new rule matches the SOP.")
        _submit_and_wait_for(browser, form.find_element(By.CSS_SELECTOR, "button[value=sign]"), ".messagelist")
        # Back at the checklist, not at the top of the page.
        assert "#checklist-" in browser.current_url
    progress = browser.find_element(By.ID, "gate-progress").text
    total = ChecklistItem.objects.filter(checklist__release=in_review, checklist__gate="review").count()
    assert progress == f"Review checklist: {total}/{total} signed"
    assert "1 approval (Reviewers)" in browser.find_element(By.ID, "blocked-by").text
    browser.execute_script("document.getElementById('governance-panel').scrollIntoView()")
    shoot(browser, "review-decision-panel", DESKTOP)
    shoot(browser, "review-decision-panel", MOBILE)
    viewport(browser, DESKTOP)

    form = browser.find_element(By.ID, "approval-form")
    form.find_element(By.NAME, "comment").send_keys("The refund rule is right.")
    message = _submit_and_wait_for(
        browser, form.find_element(By.CSS_SELECTOR, "button[value=approve]"), ".messagelist"
    ).text
    assert "the release is approved" in message
    in_review.refresh_from_db()
    assert in_review.status == ReleaseStatus.APPROVED
    assert not ChecklistItem.objects.filter(
        checklist__release=in_review, checklist__gate="review", state=ChecklistItemState.PENDING
    ).exists()


def test_an_author_creates_a_new_version_from_the_launched_release_and_edits_its_prompt(browser, live_server):
    from selenium.webdriver.common.by import By

    launched, author, _pm = _launched()
    login(browser, live_server, author)
    viewport(browser, DESKTOP)
    browser.get(live_server.url + reverse("admin:releases_release_change", args=[launched.pk]))
    # A launched release reads as text, not JSON.
    assert "identify_order" in browser.find_element(By.CSS_SELECTOR, "pre.content-readable").text
    browser.find_element(By.ID, "new-version-button").click()
    _wait_for(browser, ".messagelist")
    draft = Release.objects.get(solution=launched.solution, version=launched.version + 1)
    assert browser.current_url.endswith(reverse("admin:releases_release_change", args=[draft.pk]))
    assert "No change" in browser.find_element(By.ID, "diff").text
    assert browser.find_element(By.NAME, "tools").get_attribute("value") == "order_lookup\nrefund_policy"
    assert browser.find_element(By.CSS_SELECTOR, "input[name=markets][value=DE]").is_selected()
    prompt = browser.find_element(By.NAME, "system_prompt")
    prompt.send_keys("\n" + NEW_RULE)
    parameters = browser.find_element(By.NAME, "model_parameters")
    parameters.clear()
    parameters.send_keys("temperature = 0.1\nmax_tokens = 400")
    assert page_width(browser) <= DESKTOP[0]
    browser.execute_script("document.getElementById('release_form').scrollIntoView()")
    shoot(browser, "authoring-new-version", DESKTOP)
    shoot(browser, "authoring-new-version", MOBILE)
    viewport(browser, DESKTOP)

    # Each stage's markets are checkboxes among the release's markets: ticking France on the release offers it
    # to the stages at once.
    def offered(stage: int) -> list[str]:
        boxes = browser.find_elements(By.CSS_SELECTOR, f"div.stage-markets input[name='stages-{stage}-markets']")
        return sorted(box.get_attribute("value") for box in boxes if box.is_displayed())

    assert offered(0) == ["DE", "US"]
    browser.find_element(By.CSS_SELECTOR, "input[name=markets][value=FR]").click()
    assert offered(0) == offered(1) == ["DE", "FR", "US"]
    browser.find_element(By.CSS_SELECTOR, "input[name='stages-0-markets'][value=FR]").click()
    assert page_width(browser) <= DESKTOP[0]
    for size in (DESKTOP, MOBILE):
        viewport(browser, size)
        # On a phone the stage table scrolls sideways: bring the markets cell itself into view.
        browser.execute_script(
            "document.getElementById('id_stages-0-markets').scrollIntoView({block: 'center', inline: 'center'})"
        )
        shoot(browser, "authoring-stage-markets", size)
    viewport(browser, DESKTOP)
    browser.find_element(By.NAME, "_continue").click()
    _wait_for(browser, ".messagelist")
    draft.refresh_from_db()
    assert draft.system_prompt.endswith(NEW_RULE)
    assert draft.model_parameters == {"temperature": 0.1, "max_tokens": 400}
    assert sorted(draft.markets) == ["DE", "FR", "US"]
    assert [stage.markets for stage in draft.ordered_stages] == [["FR"], [], []]
    inserted = browser.find_elements(By.CSS_SELECTOR, "#diff table.diff-text[data-name=Prompt] tr.diff-insert td.r")
    assert [cell.text for cell in inserted] == [NEW_RULE]
    browser.get(live_server.url + reverse("admin:releases_release_add"))
    assert "Lifecycle" not in browser.find_element(By.ID, "release_form").text
    assert page_width(browser) <= DESKTOP[0]
    shoot(browser, "authoring-add", DESKTOP)


@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_an_auditor_downloads_the_evidence_pack_of_the_demos_verified_release(browser, live_server):
    from pypdf import PdfReader
    from selenium.webdriver.common.by import By

    # The demo as `make run` seeds it, on fresh sequences so the example reads release #1 on every run; the
    # checkpoint is the one the periodic task would have signed by now.
    call_command("seed_demo", stdout=io.StringIO())
    audit_checkpoint()
    verified = Release.objects.get(status=ReleaseStatus.VERIFIED)
    auditor = get_user_model().objects.get(username="auditor")
    auditor.set_password(PASSWORD)  # the harness logs in with its own password
    auditor.save()
    login(browser, live_server, auditor)
    viewport(browser, DESKTOP)
    browser.get(live_server.url + reverse("admin:releases_release_change", args=[verified.pk]))
    link = browser.find_element(By.ID, "evidence-download")
    browser.execute_script("document.getElementById('evidence-panel').scrollIntoView()")
    shoot(browser, "evidence-release-page", DESKTOP)
    viewport(browser, DESKTOP)
    # The download with the browser's own session: what the auditor's click fetches.
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    response = requests.get(link.get_attribute("href"), cookies=cookies, timeout=60)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["chain"]["verified"] is True and manifest["scope"]["release"] == verified.pk
    assert manifest["exported_by"] == "auditor"
    assert {"report.html", "report.pdf", "audit_events.csv", "approvals.json", "checklist_items.csv"} <= set(
        archive.namelist()
    )
    assert {a["approved_content_hash"] for a in json.loads(archive.read("approvals.json"))} == {verified.content_hash}
    assert [r["status"] for r in json.loads(archive.read("releases.json"))] == [ReleaseStatus.VERIFIED]
    pdf = archive.read("report.pdf")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert verified.title in text and "Verified" in text
    (DOCS / "evidence-example.zip").write_bytes(response.content)

    # The human-readable report and its PDF, as the auditor opens them from the ZIP.
    folder = Path(tempfile.mkdtemp())
    try:
        archive.extractall(folder)
        browser.get((folder / "report.html").as_uri())
        assert "Verified" in browser.find_element(By.ID, "chain-status").text
        assert page_width(browser) <= DESKTOP[0]
        shoot(browser, "evidence-report", DESKTOP)
        shoot(browser, "evidence-report", MOBILE)
        viewport(browser, DESKTOP)
        browser.get((folder / "report.pdf").as_uri())
        _wait_until_drawn(browser)
        shoot(browser, "evidence-report-pdf", DESKTOP)
    finally:
        shutil.rmtree(folder)
    viewport(browser, DESKTOP)

    browser.get(live_server.url + reverse("admin:core_auditevent_changelist"))
    assert "Chain verified up to event #" in browser.find_element(By.ID, "chain-status").text
    ids = [
        int(cell.text)
        for cell in browser.find_elements(
            By.CSS_SELECTOR, "#result_list tbody td.field-id, #result_list tbody th.field-id"
        )
    ]
    assert ids == sorted(ids, reverse=True) and ids
    shoot(browser, "evidence-audit-log", DESKTOP)
    shoot(browser, "evidence-audit-log", MOBILE)

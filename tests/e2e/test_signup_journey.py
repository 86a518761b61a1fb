"""A reader's whole journey in a real browser, against the real `newsletter up`.

Sign up, confirm from the email, change topics from the welcome email, then
unsubscribe, reading every email in the dev inbox the way a developer would.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Locator, Page, expect

if TYPE_CHECKING:  # the fixtures come from conftest.py; pytest imports it itself
    from tests.e2e.conftest import Screenshots, Service

pytestmark = pytest.mark.browser

INBOX_TIMEOUT = 30.0  # seconds for a queued email to reach the dev inbox
PUBLISHER = "Spine & Pain Health Letter"


def topic(page: Page, name: str) -> Locator:
    """A topic checkbox by the topic's name (its accessible name goes on with the description)."""
    return page.get_by_role("checkbox", name=re.compile(rf"^{re.escape(name)}\b"))


def heading(page: Page) -> Locator:
    return page.get_by_role("heading", level=1)


def open_email(page: Page, service: Service, *, to: str, subject: str) -> None:
    """Reload the dev inbox until a message to `to` with `subject` is listed, then open it."""
    page.goto(service.url("/dev/inbox"))
    row = page.get_by_role("row").filter(has_text=to).filter(has_text=subject).first
    deadline = time.monotonic() + INBOX_TIMEOUT
    while True:
        try:
            expect(row).to_be_visible(timeout=500)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no email {subject!r} to {to} in the dev inbox after {INBOX_TIMEOUT:.0f} s."
                    f"\n--- inbox ---\n{page.locator('main').inner_text()}"
                    f"\n--- service output ---\n{service.log()}"
                ) from None
            page.reload()
    row.get_by_role("link").click()
    expect(heading(page)).to_contain_text(subject)
    expect(page.get_by_text(f"To {to}")).to_be_visible()


def link_in_text_part(page: Page, service: Service, path_prefix: str) -> str:
    """The first link in the email's text part whose path starts with `path_prefix`."""
    link = page.locator(f"pre a[href^='{service.base_url}{path_prefix}']").first
    expect(link).to_be_visible()
    href = link.get_attribute("href")
    assert href is not None
    assert link.inner_text() == href, "the text part's URL is not linked in full"
    parts = urlsplit(href)
    assert f"{parts.scheme}://{parts.netloc}" == service.base_url
    assert parts.path.startswith(path_prefix) and len(parts.path) > len(path_prefix) + 10
    return href


def test_signup_confirm_manage_unsubscribe(
    page: Page, service: Service, screenshots: Screenshots
) -> None:
    email = f"reader-{uuid.uuid4().hex[:12]}@example.com"

    # 1. Sign up with two topics.
    page.goto(service.url("/subscribe"))
    expect(heading(page)).to_have_text("Stay informed")
    screenshots.take(page, "signup")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Name").fill("Robin")
    topic(page, "Spine & MRI").check()
    topic(page, "Headaches").check()
    page.get_by_role("button", name="Subscribe").click()
    expect(heading(page)).to_have_text("Check your inbox")

    # 2. Confirm from the confirmation email.
    open_email(page, service, to=email, subject="Please confirm your subscription")
    screenshots.take(page, "dev-inbox-message")
    confirm_url = link_in_text_part(page, service, "/confirm/")
    page.goto(confirm_url)
    expect(heading(page)).to_have_text("Confirm your subscription")
    page.get_by_role("button", name="Confirm my subscription").click()
    expect(heading(page)).to_have_text("You're subscribed")
    expect(page.locator("main")).to_contain_text("Spine & MRI, Headaches")

    # 3. The welcome email: one-click unsubscribe headers, then the preferences link.
    open_email(page, service, to=email, subject=f"Welcome to {PUBLISHER}")
    preferences_url = link_in_text_part(page, service, "/p/")
    unsubscribe_url = link_in_text_part(page, service, "/u/")
    assert urlsplit(preferences_url).path[3:] == urlsplit(unsubscribe_url).path[3:]
    message_url = page.url
    page.get_by_role("link", name="Raw source").click()
    expect(page).to_have_url(f"{message_url}/raw")
    raw = page.locator("body").inner_text()
    assert "List-Unsubscribe: <" in raw
    assert f"List-Unsubscribe: <{unsubscribe_url}>" in raw
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in raw

    page.goto(preferences_url)
    expect(heading(page)).to_have_text("Your newsletter preferences")
    expect(page.locator("main")).to_contain_text(f"Subscribed as {email}")
    expect(topic(page, "Spine & MRI")).to_be_checked()
    expect(topic(page, "Headaches")).to_be_checked()
    expect(topic(page, "Sciatica & back pain")).not_to_be_checked()
    expect(page.get_by_label("Time zone")).to_have_value("America/Chicago")
    screenshots.take(page, "preferences")
    topic(page, "Headaches").uncheck()
    topic(page, "Sciatica & back pain").check()
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_role("status")).to_have_text("Your preferences are saved.")

    page.goto(preferences_url)  # a fresh GET: what was stored, not the echoed form
    expect(page.get_by_role("status")).to_have_count(0)
    expect(topic(page, "Spine & MRI")).to_be_checked()
    expect(topic(page, "Sciatica & back pain")).to_be_checked()
    expect(topic(page, "Headaches")).not_to_be_checked()

    # 4. Unsubscribe from the preferences page; the link then says so.
    page.get_by_role("button", name="Unsubscribe", exact=True).click()
    expect(heading(page)).to_have_text("You're unsubscribed")
    page.goto(unsubscribe_url)
    expect(heading(page)).to_have_text("You're not subscribed")
    expect(page.locator("main")).to_contain_text("This address receives no newsletter from us.")

    # The stored record, through the CLI a publisher would use.
    record = service.export_subscriber(email)
    assert record["status"] == "unsubscribed"
    assert sorted(record["topics"]) == ["sciatica-back-pain", "spine-mri"]
    assert record["name"] == "Robin"
    assert record["timezone"] == "America/Chicago"
    assert record["confirmed_at"] is not None
    assert record["unsubscribed_at"] is not None
    assert [consent["source"] for consent in record["consents"]] == ["form"]

"""The HTML parts in Debian's chromium at a desktop mail pane's and a phone's width.

Each email is loaded with every network request refused (the images' hosts are
not reachable here), so images show as their alt text, as in a client that
blocks remote images. The PNGs are kept in the test's tmp dir and copied to
/tmp/email-shots/ for a person to look at.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route

from tests.rendering.conftest import SampleEmail

pytestmark = pytest.mark.browser

SHARED_SHOTS = Path("/tmp/email-shots")
DESKTOP_WIDTH, PHONE_WIDTH = 600, 375
SHOWN = ("digest", "broadcast", "confirm", "welcome")
WCAG_AA_CONTRAST = 4.5
_BUTTON_COLOURS = """
    [...document.querySelectorAll('a.button')].map(a => {
        const style = getComputedStyle(a);
        return [a.textContent.trim(), style.color, style.backgroundColor];
    })
"""


def _refuse(route: Route) -> None:
    route.abort()


def _open(browser: Browser, html: str, *, width: int, color_scheme: str = "light") -> Page:
    context = browser.new_context(
        viewport={"width": width, "height": 900},
        color_scheme=color_scheme,  # type: ignore[arg-type]  # "light" or "dark"
        locale="en-US",
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.route("**/*", _refuse)
    page.set_content(html, wait_until="load")
    return page


def _luminance(css_colour: str) -> float:
    """WCAG 2 relative luminance of a computed CSS colour ("rgb(r, g, b)")."""
    channels = [int(value) / 255 for value in re.findall(r"\d+", css_colour)[:3]]
    red, green, blue = (
        c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels
    )
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def _contrast(foreground: str, background: str) -> float:
    """The WCAG 2 contrast ratio of two computed CSS colours ("rgb(r, g, b)")."""
    light, dark = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _unreadable_buttons(page: Page) -> list[tuple[str, str, str, float]]:
    return [
        (label, colour, background, round(_contrast(colour, background), 2))
        for label, colour, background in page.evaluate(_BUTTON_COLOURS)
        if _contrast(colour, background) < WCAG_AA_CONTRAST
    ]


def _shoot(page: Page, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    SHARED_SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, SHARED_SHOTS / path.name)
    return path


@pytest.mark.parametrize("name", SHOWN)
def test_the_email_fits_a_desktop_pane_and_a_phone(
    name: str, browser: Browser, sample_emails: dict[str, SampleEmail], tmp_path: Path
) -> None:
    html = sample_emails[name].html

    page = _open(browser, html, width=DESKTOP_WIDTH)
    path = _shoot(page, tmp_path, f"{name}-{DESKTOP_WIDTH}")
    container = page.evaluate("document.querySelector('.container').getBoundingClientRect().width")
    unreadable = _unreadable_buttons(page)
    page.context.close()
    assert container == DESKTOP_WIDTH, f"{name}: the column is {container} px wide (see {path})"
    assert unreadable == [], f"{name}: button text hard to read (see {path})"

    for scheme in ("light", "dark"):
        page = _open(browser, html, width=PHONE_WIDTH, color_scheme=scheme)
        suffix = "" if scheme == "light" else "-dark"
        path = _shoot(page, tmp_path, f"{name}-{PHONE_WIDTH}{suffix}")
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        unreadable = _unreadable_buttons(page)
        page.context.close()
        assert scroll_width <= PHONE_WIDTH, (
            f"{name} is {scroll_width} px wide on a {PHONE_WIDTH} px phone: it scrolls "
            f"sideways (see {path})"
        )
        assert unreadable == [], f"{name}: button text hard to read in {scheme} (see {path})"

"""Fixtures of the browser tests: a real headless Chromium against pytest-django's live server.

Playwright's sync API runs an asyncio loop in the test thread, and Django refuses
sync ORM calls from a thread with a running loop; DJANGO_ALLOW_ASYNC_UNSAFE is
Django's documented escape hatch for exactly this (tests only, one thread).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# The laptop size: every page must work (and is screenshot) at 1280x800.
VIEWPORT = {"width": 1280, "height": 800}

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def chromium_path() -> str | None:
    """The system Chromium (never a downloaded one), or None."""
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """One headless Chromium for the session; skipped (failed under CI) without one."""
    exe = chromium_path()
    if exe is None:
        reason = "browser tests need Chromium at /usr/bin/chromium or on PATH"
        if _ci():
            pytest.fail(reason + " (CI is set: not skipping)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, live_server) -> Iterator:
    """A fresh browser context (no cookies) at 1280x800 with a page; waits default to 15 s."""
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.js_errors = errors  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def seeded(transactional_db) -> None:
    """Restore migration 0002's rows: a transactional test flushes them after each test."""
    from django.contrib.auth.models import Group

    from inspection.models import Label

    for name in ("integration", "inspector", "supervisor"):
        Group.objects.get_or_create(name=name)
    Label.objects.get_or_create(name="rust", defaults={"color": "#e8590c"})


def login(page, username: str, password: str) -> None:
    """Sign in through the real /login/ form and wait for the home page."""
    page.goto("/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: not url.rstrip("/").endswith("/login"))


def assert_fits(page) -> None:
    """Nothing sticks out sideways: the page never scrolls horizontally at its viewport."""
    overflow = page.evaluate(
        """() => {
          const doc = document.documentElement;
          if (doc.scrollWidth <= doc.clientWidth + 1) return null;
          const wide = [...document.querySelectorAll('body *')]
            .filter((el) => el.getBoundingClientRect().right > doc.clientWidth + 1)
            .map((el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : ''));
          return {scrollWidth: doc.scrollWidth, width: doc.clientWidth, wide: wide.slice(0, 8)};
        }"""
    )
    assert overflow is None, f"{page.url} overflows sideways: {overflow}"


def screenshot(page, name: str) -> None:
    """Check the page fits its width; keep a screenshot when BROWSER_SCREENSHOTS names a folder."""
    assert_fits(page)
    folder = os.environ.get("BROWSER_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))

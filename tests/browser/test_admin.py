"""The menu's Admin link in Chromium: a supervisor (not Django staff) gets in, an inspector not."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import login, screenshot
from tests.conftest import make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_supervisor_follows_the_admin_link_and_an_inspector_is_refused(page, seeded):
    make_user("sam", "supervisor")
    make_user("ines", "inspector")
    login(page, "sam", "pw-sam")
    page.get_by_role("link", name="Admin", exact=True).click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.locator("#site-name")).to_have_text("Rustwatch administration")
    for model in ("Photos", "Inspections", "Periodic tasks", "Users"):
        expect(page.get_by_role("link", name=model, exact=True)).to_be_visible()
    screenshot(page, "admin-supervisor")
    page.get_by_role("link", name="Periodic tasks", exact=True).click()
    page.get_by_role("link", name=re.compile(r"Add periodic task")).click()
    expect(page.get_by_role("button", name="Save", exact=True)).to_be_enabled()
    assert page.js_errors == []

    page.context.clear_cookies()
    login(page, "ines", "pw-ines")
    expect(page.get_by_role("link", name="Admin", exact=True)).to_have_count(0)
    page.goto("/admin/")
    expect(page.locator("body")).to_contain_text("not authorized to access this page")
    expect(page.get_by_role("link", name="Periodic tasks")).to_have_count(0)

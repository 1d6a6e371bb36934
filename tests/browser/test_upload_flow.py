"""The upload page, photo grid and photo page as a user sees them in a real Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from inspection.models import Inspection, Photo
from tests.api.conftest import scene_bytes
from tests.browser.conftest import login, screenshot
from tests.conftest import make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def ines(seeded):
    return make_user("ines", "inspector")


@pytest.fixture
def hull(seeded) -> Inspection:
    from inspection.models import Asset

    asset = Asset.objects.create(name="Hull 7", kind="hull")
    return Inspection.objects.create(asset=asset, name="2026 dry dock")


def test_login_form_lands_on_home(page, ines, hull):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/"))  # anonymous: sent to sign in
    login(page, "ines", "pw-ines")
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", name="Recent inspections")).to_be_visible()
    expect(page.get_by_text("2026 dry dock")).to_be_visible()


def test_wrong_password_stays_on_login_with_message(page, ines):
    login_page = page
    login_page.goto("/login/")
    login_page.get_by_label("User name").fill("ines")
    login_page.get_by_label("Password").fill("wrong")
    login_page.get_by_role("button", name="Sign in").click()
    expect(login_page.locator("p.error")).to_contain_text("did not match")
    screenshot(login_page, "login-refused")
    expect(login_page).to_have_url(re.compile(r"/login/"))


def test_upload_duplicate_and_refused_then_grid_and_boxes(page, ines, hull, tmp_path):
    from inspection.services.boxes import save_boxes

    first, second = tmp_path / "bow.jpg", tmp_path / "stern.jpg"
    first.write_bytes(scene_bytes(1, (320, 240)))
    second.write_bytes(scene_bytes(2, (320, 240)))
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo\n")

    login(page, "ines", "pw-ines")
    page.goto(f"/inspections/{hull.pk}/upload/")
    summary = page.locator("#upload-summary")
    files = page.locator("#upload-form input[type=file]")
    upload = page.get_by_role("button", name="Upload")

    # Two real JPEGs: one row each, both reach 100 % and say where they were stored.
    files.set_input_files([str(first), str(second)])
    upload.click()
    expect(summary).to_have_attribute("data-done", "true")
    expect(summary).to_have_text("2 stored, 0 duplicates, 0 refused.")
    for name in ("bow.jpg", "stern.jpg"):
        row = page.locator(f"#upload-list li[data-filename='{name}']")
        expect(row).to_have_class("done")
        expect(row.locator(".status")).to_contain_text(re.compile(r"stored as photo \d+"))
        expect(row.locator("progress")).to_have_js_property("value", 100)
    bow = Photo.objects.get(inspection=hull, original_name="bow.jpg")
    assert Photo.objects.filter(inspection=hull).count() == 2
    assert page.locator("#upload-list li[data-filename='bow.jpg'] a").get_attribute("href") == (
        f"/photos/{bow.pk}/"
    )

    # The same bytes again: 409, the message names the photo already stored.
    files.set_input_files(str(first))
    upload.click()
    expect(summary).to_have_text(
        "2 stored, 1 duplicate, 0 refused. (all 2 batches sent from this page)"
    )
    dup = page.locator("#upload-list li.duplicate")
    expect(dup).to_have_count(1)
    expect(dup.locator(".status")).to_contain_text(f"the same file as photo {bow.pk}")
    expect(dup.locator(".status")).to_contain_text("it was not stored twice")
    expect(dup.get_by_role("link", name="open it")).to_have_attribute("href", f"/photos/{bow.pk}/")

    # A text file, dropped on the page: refused with the reason in words, nothing stored.
    # The request is held so the button can be seen disabled while it is sending.
    held = []
    page.route("**/api/v1/photos/upload/", lambda route: held.append(route))
    page.evaluate(
        """(text) => {
            const dt = new DataTransfer();
            dt.items.add(new File([text], "notes.txt", { type: "text/plain" }));
            const zone = document.getElementById("drop-zone");
            for (const type of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true }));
            }
        }""",
        notes.read_text(),
    )
    sending = page.locator("#upload-form button[type=submit]")
    expect(sending).to_be_disabled()
    expect(sending).to_have_text("Sending…")
    while not held:
        page.wait_for_timeout(50)
    held[0].continue_()
    expect(summary).to_have_text(
        "2 stored, 1 duplicate, 1 refused. (all 3 batches sent from this page)"
    )
    expect(upload).to_be_enabled()
    page.unroute("**/api/v1/photos/upload/")
    bad = page.locator("#upload-list li[data-filename='notes.txt']")
    expect(bad).to_have_class("failed")
    expect(bad.locator(".status")).to_contain_text("Not a photo this app takes: The file")
    expect(bad.locator(".status")).to_contain_text("not a JPEG, PNG or WebP image")
    assert Photo.objects.filter(inspection=hull).count() == 2
    screenshot(page, "upload")

    # The grid: both thumbnails really decoded in the browser.
    page.get_by_role("link", name="Back to the photos").click()
    expect(page.locator("#photo-count")).to_have_text("2 of 2 photos")
    thumbs = page.locator("ul.grid img")
    expect(thumbs).to_have_count(2)
    for i in range(2):
        img = thumbs.nth(i)
        img.scroll_into_view_if_needed()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=img.element_handle()
        )
    bow.refresh_from_db()
    assert bow.thumbnail, "the eager thumbnail task should have written a thumbnail"

    # The photo page draws the saved boxes as SVG rects.
    save_boxes(
        photo=bow,
        boxes=[
            {"xmin": 10, "ymin": 20, "xmax": 110, "ymax": 90, "label": "rust"},
            {"xmin": 150, "ymin": 100, "xmax": 300, "ymax": 230, "label": "rust"},
        ],
        user=ines,
        expected_version=bow.version,
    )
    page.locator("ul.grid a", has_text="bow.jpg").click()
    expect(page).to_have_url(re.compile(rf"/photos/{bow.pk}/$"))
    expect(page.locator("#editor")).to_have_attribute("data-ready", "true")
    rows = page.locator("#box-rows tr td.coords")
    expect(rows).to_have_text(["10, 20, 110, 90", "150, 100, 300, 230"])
    # The boxes are painted on the canvas over the image: a box's edge pixel is the box colour.
    page.wait_for_function("document.querySelector('#editor').dataset.imageReady === 'true'")
    edge = page.evaluate(
        """() => {
            const c = document.querySelector('#editor .stage canvas');
            const v = window.rustwatchEditor.view, d = window.devicePixelRatio || 1;
            const p = v.toScreen(60, 20);
            const x = Math.round(p.x * d), y = Math.round(p.y * d);
            return Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data);
        }"""
    )
    assert edge[3] == 255 and edge[2] > 200 and edge[0] < 80, edge  # cyan, opaque
    natural = page.evaluate("document.querySelector('#editor .stage img').naturalWidth")
    assert natural == 320  # the full image the rects are drawn over
    assert page.js_errors == []

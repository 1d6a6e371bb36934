"""A supervisor reviews model suggestions from the review page, in a real Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from inspection.models import Asset, Box, Inspection, PhotoEvent
from tests.api.conftest import add_suggestion, ingest
from tests.browser.conftest import login, screenshot
from tests.conftest import make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def queue(seeded):
    """Two inspections; a photo with two suggestions, one edited by an inspector, one untouched."""
    ines = make_user("ines", "inspector")
    make_user("sam", "supervisor")
    hull = Asset.objects.create(name="Hull 7", kind="hull")
    dock = Inspection.objects.create(asset=hull, name="2026 dry dock")
    other = Inspection.objects.create(asset=hull, name="2025 afloat")
    suggested = ingest(dock, ines, name="bow-01.jpg", seed=1, size=(640, 480))
    keep = add_suggestion(suggested, xmin=40, ymin=40, xmax=200, ymax=160)
    drop = add_suggestion(suggested, xmin=300, ymin=220, xmax=460, ymax=380)
    edited = ingest(dock, ines, name="bow-02.jpg", seed=2, size=(640, 480))
    from inspection.services.boxes import save_boxes

    save_boxes(
        photo=edited,
        boxes=[{"xmin": 100, "ymin": 80, "xmax": 260, "ymax": 200, "label": "rust"}],
        user=ines,
        expected_version=1,
    )
    ingest(dock, ines, name="bow-03.jpg", seed=3, size=(640, 480))
    ingest(other, ines, name="stern-01.jpg", seed=4, size=(640, 480))
    return {"photo": suggested, "keep": keep, "drop": drop, "edited": edited, "dock": dock}


def test_supervisor_accepts_and_rejects_from_the_review_page(page, queue):
    photo, keep, drop = queue["photo"], queue["keep"], queue["drop"]
    page.set_viewport_size({"width": 1280, "height": 800})
    login(page, "sam", "pw-sam")
    page.get_by_role("link", name="Review", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("Review queue"))).to_be_visible()
    tiles = page.locator("#review-queue li")
    expect(tiles).to_have_count(2)  # the untouched photos are not work to review
    progress = page.locator(f'#review-progress li[data-inspection="{queue["dock"].pk}"]')
    expect(progress).to_contain_text("0 of 2 reviewed")
    screenshot(page, "review-queue-1280")

    page.locator(f'#review-queue li[data-photo="{photo.pk}"] a').click()
    overlay = page.locator("#review-overlay")
    expect(overlay).to_have_attribute("data-drawn", "2")  # both suggestions drawn on the canvas
    screenshot(page, "review-photo-1280")
    # the overlay is the editor's renderer: yellow (suggestion) pixels where the unselected box is
    assert _has_colour_near(page, photo, drop, (255, 230, 0))
    assert not _has_colour_near(page, photo, keep, (255, 230, 0))  # selected: drawn white
    # ? shows the page's keys in the editor's dialog (drawn from the review key map)
    page.locator("body").press("?")
    dialog = page.locator("#shortcuts-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("dl.keys dd")).to_have_count(8)
    expect(dialog).to_contain_text("Reject the selected suggestion")
    screenshot(page, "review-photo-keys")
    page.keyboard.press("x")  # the open list takes only ? and Esc: nothing is rejected
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.get_by_role("button", name="all keys").click()
    expect(dialog).to_be_visible()
    page.keyboard.press("?")
    expect(dialog).to_be_hidden()
    drop.refresh_from_db()
    assert drop.state == Box.State.SUGGESTED

    row = page.locator(f'#suggestions li[data-box="{keep.pk}"]')
    row.get_by_role("button", name="Accept").click()
    expect(page.locator(".messages")).to_contain_text(f"Suggestion {keep.pk} accepted")
    expect(page.locator("#suggestions li[data-box]")).to_have_count(1)
    # the key map: the remaining suggestion is selected, X rejects it
    page.locator("body").press("x")
    expect(page.locator(".messages")).to_contain_text(f"Suggestion {drop.pk} rejected")
    # nothing open on that photo any more: the page went on to the next photo of the queue
    expect(page).to_have_url(re.compile(rf"/review/photos/{queue['edited'].pk}/"))

    keep.refresh_from_db()
    drop.refresh_from_db()
    assert (keep.state, drop.state) == (Box.State.ACCEPTED, Box.State.REJECTED)
    reviews = PhotoEvent.objects.filter(photo=photo, action=PhotoEvent.Action.SUGGESTION)
    assert sorted(e.after["review"] for e in reviews) == ["accept", "reject"]

    page.get_by_role("button", name="Approve as it stands").click()
    expect(page).to_have_url(re.compile(r"/review/$"))
    expect(page.locator(".empty")).to_contain_text("Nothing to review")
    page.set_viewport_size({"width": 820, "height": 1180})
    screenshot(page, "review-queue-empty-tablet")
    page.set_viewport_size({"width": 1280, "height": 800})
    expect(progress).to_contain_text("2 of 2 reviewed")

    page.goto(f"/review/photos/{photo.pk}/")
    expect(page.locator("#history")).to_contain_text("suggestion accepted (0.80)")
    expect(page.locator("#history")).to_contain_text("suggestion rejected (0.80)")
    page.set_viewport_size({"width": 820, "height": 1180})  # a tablet, upright
    expect(overlay).to_have_attribute("data-drawn", "1")  # the accepted one; rejected are hidden
    screenshot(page, "review-photo-tablet")
    page.get_by_role("link", name="Overview", exact=True).click()
    from inspection.models import Photo

    labelled = Photo.objects.exclude(verdict="unknown", verified=False).count()
    assert labelled >= 1  # at least bow-02, verified by sam's approval
    expect(page.locator("#count-labelled")).to_have_text(str(labelled))
    screenshot(page, "overview-tablet")
    assert page.js_errors == []


def _has_colour_near(page, photo, box, rgb) -> bool:
    """Read the overlay canvas around the box's top-left corner for the suggestion colour."""
    return page.evaluate(
        """([w, h, x, y, rgb]) => {
          const c = document.querySelector('#review-overlay canvas');
          const img = document.querySelector('#review-overlay img');
          const m = new DOMMatrix(getComputedStyle(img).transform);
          const dpr = c.width / c.getBoundingClientRect().width;
          const sx = Math.round((x * m.a + m.e) * dpr), sy = Math.round((y * m.d + m.f) * dpr);
          const d = c.getContext('2d').getImageData(sx - 6, sy - 6, 24, 24).data;
          for (let i = 0; i < d.length; i += 4) {
            if (Math.abs(d[i] - rgb[0]) < 30 && Math.abs(d[i+1] - rgb[1]) < 30
                && Math.abs(d[i+2] - rgb[2]) < 40 && d[i+3] > 200) return true;
          }
          return false;
        }""",
        [photo.width, photo.height, box.xmin, box.ymin + (box.ymax - box.ymin) // 2, list(rgb)],
    )


def _screen(page, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of image pixel (x, y) in the overlay (the image's own transform)."""
    return page.evaluate(
        """([x, y]) => {
          const img = document.querySelector('#review-overlay img');
          const stage = document.getElementById('review-overlay').getBoundingClientRect();
          const m = new DOMMatrix(getComputedStyle(img).transform);
          return [stage.left + x * m.a + m.e, stage.top + y * m.d + m.f];
        }""",
        [x, y],
    )


def test_supervisor_corrects_a_suggestion_by_dragging_it(page, queue):
    photo, keep = queue["photo"], queue["keep"]
    page.set_viewport_size({"width": 1280, "height": 800})
    login(page, "sam", "pw-sam")
    page.goto(f"/review/photos/{photo.pk}/")
    expect(page.locator("#review-overlay")).to_have_attribute("data-drawn", "2")
    scale = page.evaluate(
        "new DOMMatrix(getComputedStyle(document.querySelector('#review-overlay img')).transform).a"
    )
    # drag the selected suggestion (the first) 60 image pixels right and 30 down
    x0, y0 = _screen(page, 120, 100)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 30 * scale, y0 + 15 * scale, steps=4)
    page.mouse.move(x0 + 60 * scale, y0 + 30 * scale, steps=4)
    page.mouse.up()
    row = page.locator(f'#suggestions li[data-box="{keep.pk}"]')
    expect(row.locator(".coords")).to_contain_text("→ ")
    shown = [int(v) for v in re.findall(r"\d+", row.locator(".coords").inner_text())]
    assert all(abs(a - b) <= 2 for a, b in zip(shown, (100, 70, 260, 190), strict=True)), shown
    screenshot(page, "review-correct-1280")
    row.get_by_role("button", name="Save correction").click()
    expect(page.locator(".messages")).to_contain_text(f"Suggestion {keep.pk} corrected")

    keep.refresh_from_db()
    human = Box.objects.get(derived_from=keep)
    assert keep.state == Box.State.REJECTED and human.source == Box.Source.HUMAN
    assert [human.xmin, human.ymin, human.xmax, human.ymax] == shown  # what the page showed
    assert human.changed_by.username == "sam"
    expect(page.locator("#history")).to_contain_text("Boxes saved: 0 boxes → 1 box")
    assert page.js_errors == []

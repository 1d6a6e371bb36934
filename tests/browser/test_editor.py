"""The box editor in a real Chromium: draw, save, keys, suggestions, conflicts, drafts.

Few pages and one shared set of photos per test keep this under a minute: each
test walks a whole inspector workflow rather than one click.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from inspection.models import Box, Photo, QueueLease
from inspection.services.boxes import add_suggestions, voc_path
from ml.voc import read_voc
from tests.api.conftest import ingest
from tests.browser.conftest import VIEWPORT, login, screenshot
from tests.conftest import make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def ines(seeded):
    return make_user("ines", "inspector")


@pytest.fixture
def photos(seeded, ines) -> list[Photo]:
    """Three photos of one inspection, named so that natural order differs from text order."""
    from inspection.models import Asset, Inspection

    asset = Asset.objects.create(name="Hull 7", kind="hull")
    insp = Inspection.objects.create(asset=asset, name="2026 dry dock")
    return [
        ingest(insp, ines, name=name, seed=seed, size=(640, 480))
        for name, seed in (("deck-10.jpg", 1), ("deck-2.jpg", 2), ("deck-9.jpg", 3))
    ]


def open_editor(page, photo: Photo, query: str = "") -> None:
    page.goto(f"/photos/{photo.pk}/{query}")
    page.wait_for_function("document.querySelector('#editor')?.dataset.ready === 'true'")
    assert page.js_errors == []


def to_screen(page, x: float, y: float) -> tuple[float, float]:
    """Image pixels -> page coordinates, through the editor's own view."""
    return page.evaluate(
        """([x, y]) => {
            const r = document.querySelector('#editor .stage').getBoundingClientRect();
            const p = window.rustwatchEditor.view.toScreen(x, y);
            return [r.left + p.x, r.top + p.y];
        }""",
        [x, y],
    )


def next_frame(page) -> None:
    """Wait until the editor has drawn what was asked before now (its frame comes first)."""
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")


def drag(page, a: tuple[float, float], b: tuple[float, float]) -> None:
    page.mouse.move(*to_screen(page, *a))
    page.mouse.down()
    page.mouse.move(*to_screen(page, *b), steps=6)
    page.mouse.up()


def boxes(page) -> list[dict]:
    """The editor's annotation boxes (not suggestions), as it would save them."""
    return page.evaluate("window.rustwatchEditor.state.saveBody().boxes")


def coords(page) -> list[tuple[int, int, int, int]]:
    return [(b["xmin"], b["ymin"], b["xmax"], b["ymax"]) for b in boxes(page)]


def test_draw_save_reload_and_the_xml_has_the_box(page, ines, photos, tmp_path):
    photo = photos[0]
    login(page, "ines", "pw-ines")
    open_editor(page, photo)
    page.keyboard.press("w")
    drag(page, (100, 80), (300, 240))
    assert coords(page) == [(100, 80, 300, 240)]
    expect(page.locator("#editor")).to_have_attribute("data-dirty", "true")
    expect(page.locator("#box-rows tr")).to_have_count(1)
    # Hover: the box under the pointer lights its row, and a row lights its box.
    page.mouse.move(*to_screen(page, 200, 160))
    expect(page.locator("#box-rows tr").first).to_have_class(re.compile(r"\bhover\b"))
    page.mouse.move(*to_screen(page, 500, 400))
    expect(page.locator("#box-rows tr.hover")).to_have_count(0)
    page.locator("#box-rows tr").first.hover()
    assert page.evaluate("document.querySelector('#box-rows tr.hover') !== null")
    page.keyboard.press("Control+s")
    expect(page.locator("#editor-status")).to_contain_text("Saved")
    expect(page.locator("#editor")).to_have_attribute("data-dirty", "false")
    screenshot(page, "editor-drawn")

    page.reload()
    expect(page.locator("#editor")).to_have_attribute("data-ready", "true")
    assert coords(page) == [(100, 80, 300, 240)]
    expect(page.locator("#box-rows tr td.coords")).to_have_text("100, 80, 300, 240")
    ann = read_voc(voc_path(Photo.objects.get(pk=photo.pk)))
    assert [(b.xmin, b.ymin, b.xmax, b.ymax) for b in ann.boxes] == [(100, 80, 300, 240)]
    # Drawing a rust box made the verdict rust: nobody had set one.
    photo.refresh_from_db()
    assert photo.verdict == "rust"
    assert page.js_errors == []


def editor(page, expr: str):
    """Evaluate `expr` against the live editor (state, view)."""
    return page.evaluate(f"(() => {{ const e = window.rustwatchEditor; return {expr}; }})()")


def test_every_keyboard_shortcut(page, ines, photos):
    deck10, deck2, deck9 = photos
    login(page, "ines", "pw-ines")
    open_editor(page, deck9, "?sort=name")  # natural order: deck-2, deck-9, deck-10
    expect(page.locator("h1")).to_contain_text("2 of 3")
    stage = page.locator("#editor .stage")

    page.keyboard.press("w")
    expect(page.locator("#btn-draw")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("Escape")
    expect(page.locator("#btn-draw")).to_have_attribute("aria-pressed", "false")
    page.keyboard.press("w")
    drag(page, (100, 100), (200, 200))
    assert coords(page) == [(100, 100, 200, 200)]
    page.keyboard.press("Escape")
    assert editor(page, "e.state.selected") is None
    page.keyboard.press("Tab")  # the stage has the focus: Tab selects the box
    assert editor(page, "e.state.selectedBox.xmin") == 100
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+ArrowDown")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Shift+ArrowRight")
    assert coords(page) == [(110, 109, 210, 209)]
    page.keyboard.press("Control+d")
    assert len(boxes(page)) == 2
    page.keyboard.press("Delete")
    assert coords(page) == [(110, 109, 210, 209)]
    page.keyboard.press("Control+z")
    assert len(boxes(page)) == 2
    page.keyboard.press("Control+y")
    assert len(boxes(page)) == 1
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+Shift+z")
    assert len(boxes(page)) == 1
    page.keyboard.press("Tab")
    page.keyboard.press("Backspace")
    assert boxes(page) == []
    page.keyboard.press("Control+z")
    assert coords(page) == [(110, 109, 210, 209)]

    page.keyboard.press(" ")
    assert editor(page, "e.state.doc.verified") is True
    expect(page.locator("#verified")).to_be_checked()
    page.keyboard.press(" ")
    assert editor(page, "e.state.doc.verified") is False
    page.keyboard.press(" ")

    fit = editor(page, "e.view.scale")
    page.keyboard.press("+")
    assert editor(page, "e.view.scale") == pytest.approx(fit * 1.25)
    page.keyboard.press("-")
    page.keyboard.press("-")
    assert editor(page, "e.view.scale") < fit
    page.keyboard.press("1")
    assert editor(page, "e.view.scale") == 1
    expect(page.locator("#zoom-level")).to_have_text("100 %")
    page.keyboard.press("f")
    assert editor(page, "e.view.scale") == pytest.approx(fit)
    page.keyboard.press("1")
    page.keyboard.press("0")
    assert editor(page, "e.view.scale") == pytest.approx(fit)
    # The box stays exactly on its pixels at every zoom (the canvas and the image share one view).
    for key in ("+", "+", "+"):
        page.keyboard.press(key)
        next_frame(page)  # the image's transform follows the view in the next frame
        left, top = to_screen(page, 0, 0)
        img = page.locator("#editor .stage img").bounding_box()
        assert (img["x"], img["y"]) == (pytest.approx(left, abs=0.01), pytest.approx(top, abs=0.01))
    stage.hover()
    page.mouse.wheel(0, 300)
    assert editor(page, "e.view.scale") < fit * 1.25**3

    # Pan: Space held while dragging (verified stays as it was), or the middle button.
    verified = editor(page, "e.state.doc.verified")
    x, y = to_screen(page, 500, 400)
    for hold_space, button in ((True, "left"), (False, "middle")):
        tx, ty = editor(page, "[e.view.tx, e.view.ty]")
        if hold_space:
            page.keyboard.down(" ")
        page.mouse.move(x, y)
        page.mouse.down(button=button)
        page.mouse.move(x + 60, y + 25, steps=4)
        page.mouse.up(button=button)
        if hold_space:
            page.keyboard.up(" ")
        assert editor(page, "[e.view.tx, e.view.ty]") == [
            pytest.approx(tx + 60),
            pytest.approx(ty + 25),
        ]
    assert editor(page, "e.state.doc.verified") == verified
    assert coords(page) == [(110, 109, 210, 209)]  # panning moved no box

    page.keyboard.press("?")
    expect(page.locator("#shortcuts-dialog")).to_be_visible()
    expect(page.locator("#shortcuts-dialog")).to_contain_text("Next unlabelled photo")
    page.keyboard.press("Escape")
    expect(page.locator("#shortcuts-dialog")).to_be_hidden()

    page.keyboard.press("Control+s")
    expect(page.locator("#editor-status")).to_contain_text("Saved")
    expect(page.locator("#editor")).to_have_attribute("data-verdict", "rust")
    deck9.refresh_from_db()
    assert deck9.verified and deck9.boxes.count() == 1 and deck9.verdict == "rust"
    for key, verdict, shown in (
        ("n", "norust", "norust"),
        ("u", "unknown", "unsure"),
        ("r", "rust", "rust"),
    ):
        page.keyboard.press(key)
        expect(page.locator("#editor")).to_have_attribute("data-verdict", shown)
        deck9.refresh_from_db()
        assert deck9.verdict == verdict and deck9.verdict_by == ines
    expect(page.locator("button[data-verdict=rust]")).to_have_attribute("aria-pressed", "true")
    screenshot(page, "editor-shortcuts")

    # The queue (no model scores yet: upload order) hands out deck-10, the first unlabelled;
    # no Skip on a photo opened from the grid, Skip (Shift+Q) on the queue's one gives it back.
    expect(page.locator("#btn-skip")).to_have_count(0)
    page.keyboard.press("Shift+q")
    expect(page.locator("#editor-status")).to_contain_text("Skip is for a photo the queue gave")
    page.keyboard.press("q")
    expect(page).to_have_url(re.compile(rf"/photos/{deck10.pk}/\?sort=name$"))
    expect(page.locator("#editor")).to_have_attribute("data-ready", "true")
    expect(page.locator("#btn-skip")).to_be_visible()
    screenshot(page, "editor-from-queue")
    page.keyboard.press("Shift+q")
    expect(page).to_have_url(re.compile(rf"/photos/{deck2.pk}/\?sort=name$"))
    expect(page.locator("#editor")).to_have_attribute("data-ready", "true")
    assert deck10.skips.filter(user=ines).exists() and not QueueLease.objects.filter(photo=deck10)
    page.locator("#btn-skip").click()  # the button does the same: deck-10 is skipped, none left
    expect(page.locator("#editor-status")).to_contain_text("Every photo is labelled or held")
    assert deck2.skips.filter(user=ines).exists()
    open_editor(page, deck9, "?sort=name")

    page.keyboard.press("a")
    expect(page).to_have_url(re.compile(rf"/photos/{deck2.pk}/\?sort=name$"))
    expect(page.locator("#editor")).to_have_attribute("data-ready", "true")
    page.keyboard.press("d")
    expect(page).to_have_url(re.compile(rf"/photos/{deck9.pk}/\?sort=name$"))
    expect(page.locator("#editor")).to_have_attribute("data-ready", "true")
    page.keyboard.press("d")
    expect(page).to_have_url(re.compile(rf"/photos/{deck10.pk}/\?sort=name$"))
    expect(page.locator("#editor")).to_have_attribute("data-ready", "true")
    page.keyboard.press("Shift+d")  # deck-9 is labelled now: wraps round to deck-2
    expect(page).to_have_url(re.compile(rf"/photos/{deck2.pk}/\?sort=name$"))
    expect(page.locator("#editor")).to_have_attribute("data-ready", "true")
    page.locator("#back-to-grid").click()
    expect(page).to_have_url(re.compile(r"/inspections/\d+/\?sort=name$"))
    expect(page.locator("ul.grid .name")).to_have_text(["deck-2.jpg", "deck-9.jpg", "deck-10.jpg"])
    # The grid's keys: the first tile has the focus (a filter is set), arrows move it, Enter opens.
    expect(page.locator("ul.grid .tile a").first).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(page.locator("ul.grid .tile a").nth(1)).to_be_focused()
    screenshot(page, "grid")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/photos/{deck9.pk}/\?sort=name$"))
    page.goto("/")
    screenshot(page, "home")
    page.goto("/assets/")
    screenshot(page, "assets")
    page.get_by_role("link", name="Hull 7").first.click()
    screenshot(page, "asset")
    assert page.js_errors == []


def test_accept_edit_and_reject_suggestions(page, ines, photos):
    photo = photos[0]
    add_suggestions(
        photo=photo,
        boxes=[
            {"xmin": 10, "ymin": 10, "xmax": 110, "ymax": 90, "score": 0.9},
            {"xmin": 200, "ymin": 10, "xmax": 300, "ymax": 90, "score": 0.6},
            {"xmin": 10, "ymin": 200, "xmax": 110, "ymax": 290, "score": 0.5},
            {"xmin": 400, "ymin": 300, "xmax": 500, "ymax": 400, "score": 0.2},
        ],
        model_version="det-7",
    )
    by_score = {b.score: b for b in Box.objects.filter(photo=photo)}
    login(page, "ines", "pw-ines")
    open_editor(page, photo)
    expect(page.locator("#suggestion-count")).to_have_text("4 open, 1 below 0.30 hidden")
    expect(page.locator("#box-rows tr.suggested")).to_have_count(3)
    screenshot(page, "editor-suggestions")

    page.keyboard.press("Enter")  # picks the best one
    assert editor(page, "e.state.selectedBox.score") == 0.9
    page.keyboard.press("Enter")  # accepts it, the next best is selected
    assert editor(page, "e.state.selectedBox.score") == 0.6
    page.keyboard.press("x")
    assert editor(page, "e.state.selectedBox.score") == 0.5
    page.keyboard.press("Shift+Enter")  # all shown: the 0.5 one
    expect(page.locator("#suggestion-count")).to_have_text("1 open, 1 below 0.30 hidden")
    page.locator("#score-threshold").fill("0.1")
    expect(page.locator("#box-rows tr.suggested")).to_have_count(1)
    drag(page, (450, 350), (470, 360))  # moving a suggestion corrects it: a human box now
    expect(page.locator("#suggestion-count")).to_have_text("none open")
    page.keyboard.press("Control+s")
    expect(page.locator("#editor-status")).to_contain_text("Saved")

    states = {b.score: (b.state, b.xmin, b.ymin) for b in Box.objects.filter(photo=photo)}
    assert states == {
        0.9: ("accepted", 10, 10),
        0.6: ("rejected", 200, 10),
        0.5: ("accepted", 10, 200),
        0.2: ("rejected", 400, 300),  # the model's box as it drew it: corrected, not accepted
        None: ("accepted", 420, 310),  # the person's box that corrects it
    }
    assert Box.objects.get(photo=photo, source="human").derived_from == by_score[0.2]
    assert by_score[0.6].pk in {b.pk for b in Box.objects.filter(state="rejected")}
    ann = read_voc(voc_path(Photo.objects.get(pk=photo.pk)))
    assert sorted((b.xmin, b.ymin) for b in ann.boxes) == [(10, 10), (10, 200), (420, 310)]
    assert page.js_errors == []


def test_two_pages_on_one_photo_show_the_conflict_and_lose_nothing(
    browser, live_server, ines, photos
):
    photo = photos[1]
    make_user("ivan", "inspector")
    pages = []
    for who in ("ines", "ivan"):
        ctx = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
        ctx.set_default_timeout(15_000)
        pg = ctx.new_page()
        pg.js_errors = []
        pg.on("pageerror", lambda exc, pg=pg: pg.js_errors.append(str(exc)))
        login(pg, who, f"pw-{who}")
        open_editor(pg, photo)
        pages.append(pg)
    first, second = pages
    try:
        first.keyboard.press("w")
        drag(first, (20, 20), (120, 120))
        first.keyboard.press("Control+s")
        expect(first.locator("#editor-status")).to_contain_text("Saved")

        second.keyboard.press("w")
        drag(second, (300, 300), (400, 400))
        second.keyboard.press("Control+s")
        notice = second.locator("#editor-notice")
        expect(notice).to_contain_text("Someone else saved this photo")
        # One save: the box, and the verdict rust it implies (boxes.verdict_follows_boxes).
        expect(notice).to_contain_text("now version 2, 1 box, verdict rust")
        assert editor(second, "e.state.dirty") is True
        assert coords(second) == [(300, 300, 400, 400)]
        # Theirs is drawn beside mine; nothing of ines's was overwritten.
        assert second.evaluate("localStorage.length") == 1
        screenshot(second, "editor-conflict")
        assert [(b.xmin, b.ymin) for b in Box.objects.filter(photo=photo)] == [(20, 20)]

        second.locator("#conflict-keep-mine").click()  # explicit: save over theirs
        expect(second.locator("#editor-status")).to_contain_text("Saved")
        assert [(b.xmin, b.ymin) for b in Box.objects.filter(photo=photo)] == [(300, 300)]

        first.locator("#editor .stage").focus()
        first.keyboard.press("Tab")
        first.keyboard.press("ArrowRight")
        first.keyboard.press("Control+s")
        expect(first.locator("#editor-notice")).to_contain_text("Someone else saved")
        first.locator("#conflict-use-theirs").click()
        assert coords(first) == [(300, 300, 400, 400)]
        assert editor(first, "e.state.dirty") is False
        assert first.evaluate("localStorage.length") == 0
        assert Photo.objects.get(pk=photo.pk).events.filter(action="boxes").count() == 2
        assert first.js_errors == [] and second.js_errors == []
    finally:
        for pg in pages:
            pg.context.close()


def test_unsaved_work_survives_a_reload_and_leaving_warns(page, ines, photos):
    photo = photos[2]
    login(page, "ines", "pw-ines")
    open_editor(page, photo)
    page.keyboard.press("w")
    drag(page, (50, 60), (150, 160))
    dialogs: list[str] = []

    def answer(dialog):
        dialogs.append(dialog.type)
        (dialog.dismiss if len(dialogs) == 1 else dialog.accept)()

    page.on("dialog", answer)
    page.locator("#back-to-grid").click()  # the leave-page warning: dismissed, we stay
    page.wait_for_timeout(300)
    assert dialogs == ["beforeunload"]
    assert re.search(rf"/photos/{photo.pk}/$", page.url)
    page.reload()  # accepted: the page reloads, the draft is offered back
    assert dialogs == ["beforeunload", "beforeunload"]
    page.wait_for_function("document.querySelector('#editor')?.dataset.ready === 'true'")
    assert boxes(page) == []
    expect(page.locator("#editor-notice")).to_contain_text("You have unsaved changes")
    screenshot(page, "editor-draft")
    page.locator("#draft-restore").click()
    assert coords(page) == [(50, 60, 150, 160)]
    assert editor(page, "e.state.dirty") is True
    page.keyboard.press("Control+s")
    expect(page.locator("#editor-status")).to_contain_text("Saved")
    assert Box.objects.filter(photo=photo).count() == 1
    assert page.evaluate("localStorage.length") == 0
    page.reload()  # nothing unsaved: no warning, no draft
    page.wait_for_function("document.querySelector('#editor')?.dataset.ready === 'true'")
    assert dialogs == ["beforeunload", "beforeunload"]
    expect(page.locator("#editor-notice")).to_be_hidden()

    # Autosave: on, an edit is saved by itself a moment later (and the choice is remembered).
    page.locator("#autosave").check()
    page.locator("#editor .stage").focus()
    page.keyboard.press("Tab")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#editor")).to_have_attribute("data-dirty", "false", timeout=5_000)
    assert Box.objects.get(photo=photo).xmin == 51
    assert page.evaluate("localStorage.getItem('rustwatch:autosave')") == "on"


def touch(cdp, kind: str, points: list[tuple[float, float]]) -> None:
    """One touch event (Chromium's own input path: the page sees pointer events of type touch)."""
    cdp.send(
        "Input.dispatchTouchEvent",
        {
            "type": kind,
            "touchPoints": [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)],
        },
    )


def test_tablet_touch_draws_moves_and_pinch_zooms(browser, live_server, ines, photos):
    """A tablet held upright (820x1180, touch): draw and move a box with a finger, pinch to zoom."""
    photo = photos[0]
    ctx = browser.new_context(
        base_url=live_server.url, viewport={"width": 820, "height": 1180}, has_touch=True
    )
    ctx.set_default_timeout(15_000)
    page = ctx.new_page()
    page.js_errors = []
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    try:
        login(page, "ines", "pw-ines")
        open_editor(page, photo)
        cdp = ctx.new_cdp_session(page)
        page.locator("#btn-draw").tap()
        a, b = to_screen(page, 100, 100), to_screen(page, 300, 260)
        touch(cdp, "touchStart", [a])
        for i in range(1, 6):
            touch(cdp, "touchMove", [(a[0] + (b[0] - a[0]) * i / 5, a[1] + (b[1] - a[1]) * i / 5)])
        touch(cdp, "touchEnd", [])
        assert coords(page) == [(100, 100, 300, 260)]

        start, end = to_screen(page, 200, 180), to_screen(page, 250, 200)
        touch(cdp, "touchStart", [start])
        for i in range(1, 6):
            touch(
                cdp,
                "touchMove",
                [(start[0] + (end[0] - start[0]) * i / 5, start[1] + (end[1] - start[1]) * i / 5)],
            )
        touch(cdp, "touchEnd", [])
        ((x0, y0, x1, y1),) = coords(page)
        assert (x1 - x0, y1 - y0) == (200, 160) and abs(x0 - 150) <= 1 and abs(y0 - 120) <= 1

        scale = editor(page, "e.view.scale")
        centre = to_screen(page, 320, 240)
        touch(cdp, "touchStart", [(centre[0] - 40, centre[1]), (centre[0] + 40, centre[1])])
        for i in range(1, 6):
            touch(
                cdp,
                "touchMove",
                [(centre[0] - 40 - 16 * i, centre[1]), (centre[0] + 40 + 16 * i, centre[1])],
            )
        touch(cdp, "touchEnd", [])
        # the fingers went from 80 to 240 px apart: three times the zoom
        assert editor(page, "e.view.scale") == pytest.approx(scale * 3, rel=0.02)
        assert len(boxes(page)) == 1  # pinching moved nothing
        screenshot(page, "editor-tablet")
        page.locator("#btn-save").tap()
        expect(page.locator("#editor-status")).to_contain_text("Saved")
        assert page.js_errors == []
    finally:
        ctx.close()


def test_a_long_box_list_draws_only_the_rows_in_sight(page, ines, photos):
    from inspection.services.boxes import save_boxes

    photo = photos[1]
    many = [
        {
            "xmin": 20 * (i % 30),
            "ymin": 15 * (i // 30),
            "xmax": 20 * (i % 30) + 15,
            "ymax": 15 * (i // 30) + 12,
        }
        for i in range(300)
    ]
    save_boxes(photo=photo, boxes=many, user=ines, expected_version=1)
    login(page, "ines", "pw-ines")
    open_editor(page, photo)
    expect(page.locator("#box-count")).to_have_text("300 boxes")
    drawn = page.locator("#box-rows tr[data-key]")
    assert 10 < drawn.count() < 80
    last = "580, 135, 595, 147"  # box 299
    expect(page.locator("#box-rows td.coords", has_text=last)).to_have_count(0)
    page.locator(".box-list").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(page.locator("#box-rows td.coords", has_text=last)).to_have_count(1)
    # Selecting a box on the photo brings its row into the list.
    page.locator(".box-list").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    page.mouse.click(*to_screen(page, 7, 6))  # box 0
    expect(page.locator("#box-rows tr.selected td.coords")).to_have_text("0, 0, 15, 12")
    assert page.js_errors == []

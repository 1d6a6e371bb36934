"""Server pages: login required, role checks, pages render with real data."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from inspection.models import Asset, Inspection
from tests.api.conftest import add_suggestion, ingest
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

PAGES = [
    "/",
    "/assets/",
    "/assets/{asset}/",
    "/inspections/{inspection}/",
    "/inspections/{inspection}/upload/",
    "/photos/{photo}/",
    "/photos/{photo}/image",
    "/photos/{photo}/thumbnail",
]


@pytest.fixture
def photo(inspection, inspector):
    return ingest(inspection, inspector, name="deck-01.jpg", seed=11)


def signed_in(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def fill(path: str, photo) -> str:
    return path.format(
        asset=photo.inspection.asset_id, inspection=photo.inspection_id, photo=photo.pk
    )


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_is_sent_to_login(client, photo, path):
    r = client.get(fill(path, photo))
    assert r.status_code == 302 and r["Location"].startswith("/login/?next=")


@pytest.mark.parametrize("path", PAGES)
def test_user_without_role_gets_403(photo, path):
    r = signed_in(make_user("nora", None)).get(fill(path, photo))
    assert r.status_code == 403
    assert b"role" in r.content


@pytest.mark.parametrize("path", PAGES)
def test_every_role_sees_the_pages(photo, integration_user, path):
    assert signed_in(integration_user).get(fill(path, photo)).status_code == 200


def test_no_open_media_url(client, photo, inspector):
    r = signed_in(inspector).get(f"/media/{photo.image.name}")
    assert r.status_code == 404


def test_login_and_logout(client, inspector):
    r = client.get("/login/")
    assert r.status_code == 200 and b'name="password"' in r.content
    r = client.post("/login/", {"username": "ines", "password": "wrong"})
    assert r.status_code == 200 and b"did not match" in r.content
    r = client.post("/login/", {"username": "ines", "password": "pw-ines"})
    assert r.status_code == 302 and r["Location"] == "/"
    assert client.get("/").status_code == 200
    r = client.post("/logout/")
    assert r.status_code == 302
    assert client.get("/").status_code == 302


def test_image_served_after_login_is_the_stored_file(photo, inspector):
    r = signed_in(inspector).get(f"/photos/{photo.pk}/image")
    assert r["Content-Type"] == "image/jpeg"
    assert b"".join(r.streaming_content) == photo.image.open("rb").read()


def test_thumbnail_after_the_task(photo, inspector):
    from inspection.tasks import make_thumbnail

    make_thumbnail.delay(photo.pk)
    photo.refresh_from_db()
    r = signed_in(inspector).get(f"/photos/{photo.pk}/thumbnail")
    assert b"".join(r.streaming_content) == photo.thumbnail.open("rb").read()


def test_grid_shows_photos_and_filters(inspection, inspector):
    from inspection.services.photos import set_verdict

    a = ingest(inspection, inspector, name="a-rusty.jpg", seed=1)
    b = ingest(inspection, inspector, name="b-clean.jpg", seed=2)
    c = ingest(inspection, inspector, name="c-model.jpg", seed=3)
    set_verdict(photo=a, verdict="rust", user=inspector, expected_version=1)
    set_verdict(photo=b, verdict="norust", user=inspector, expected_version=1)
    add_suggestion(c)
    client = signed_in(inspector)

    def names(query: str = "") -> set[str]:
        r = client.get(f"/inspections/{inspection.pk}/?{query}")
        assert r.status_code == 200
        return set(re.findall(r'class="name">([^<]+)<', r.content.decode()))

    assert names() == {"a-rusty.jpg", "b-clean.jpg", "c-model.jpg"}
    assert names("verdict=rust") == {"a-rusty.jpg"}
    assert names("has_suggestions=true") == {"c-model.jpg"}
    assert names("has_suggestions=false&verdict=norust") == {"b-clean.jpg"}
    html = client.get(f"/inspections/{inspection.pk}/").content.decode()
    assert f'src="/photos/{a.pk}/thumbnail"' in html
    # A nonsense filter value is ignored, not an error.
    assert names("verdict=purple") == {"a-rusty.jpg", "b-clean.jpg", "c-model.jpg"}


def editor_data(html: str) -> dict:
    import json

    return json.loads(
        re.search(r'id="editor-data" type="application/json">(.*?)</script>', html).group(1)
    )


def test_photo_page_gives_the_editor_boxes_history_and_near_duplicates(inspection, inspector):
    from inspection.services.boxes import save_boxes

    photo = ingest(inspection, inspector, name="frame.jpg", seed=5, size=(200, 100))
    twin = ingest(inspection, inspector, name="frame-small.jpg", seed=5, size=(100, 50))
    save_boxes(
        photo=photo,
        boxes=[{"xmin": 10, "ymin": 20, "xmax": 60, "ymax": 90}],
        user=inspector,
        expected_version=1,
    )
    suggestion = add_suggestion(photo, xmin=100, ymin=5, xmax=150, ymax=50)
    html = signed_in(inspector).get(f"/photos/{photo.pk}/").content.decode()
    data = editor_data(html)
    assert data["photo"] == {"id": photo.pk, "width": 200, "height": 100, "name": "frame.jpg"}
    assert data["state"]["version"] == 2 and data["can_label"] is True
    assert [(b["xmin"], b["ymax"], b["source"], b["state"]) for b in data["state"]["boxes"]] == [
        (10, 90, "human", "accepted"),
        (100, 50, "model", "suggested"),
    ]
    assert data["state"]["boxes"][1]["id"] == suggestion.pk
    assert data["urls"]["boxes"] == f"/api/v1/photos/{photo.pk}/boxes/"
    assert data["urls"]["image"] == f"/photos/{photo.pk}/image"
    assert f'href="/photos/{twin.pk}/"' in html
    assert "Boxes saved by ines" in html and "Upload by ines" in html
    assert "js/editor/editor.js" in html and 'id="shortcuts-dialog"' in html


def test_photo_page_is_read_only_without_the_inspector_role(photo, integration_user):
    html = signed_in(integration_user).get(f"/photos/{photo.pk}/").content.decode()
    assert editor_data(html)["can_label"] is False
    assert re.search(r'id="btn-draw"[^>]*disabled', html)


def test_editor_reviews_suggestions_only_where_the_service_allows(photo, inspector, supervisor):
    """The photo was uploaded by ines: she and a supervisor review its suggestions, ivan not."""
    ivan = make_user("ivan", "inspector")
    for user, allowed in ((inspector, True), (supervisor, True), (ivan, False)):
        data = editor_data(signed_in(user).get(f"/photos/{photo.pk}/").content.decode())
        assert (data["can_label"], data["can_review"]) == (True, allowed), user


def test_grid_sorts_names_naturally_and_photo_links_keep_the_filter(inspection, inspector):
    from inspection.services.photos import set_verdict

    made = {
        n: ingest(inspection, inspector, name=n, seed=i)
        for i, n in enumerate(["img10.jpg", "img9.jpg", "IMG2.jpg", "img1.jpg"], start=1)
    }
    set_verdict(photo=made["img9.jpg"], verdict="rust", user=inspector, expected_version=1)
    client = signed_in(inspector)
    html = client.get(f"/inspections/{inspection.pk}/?sort=name").content.decode()
    assert re.findall(r'class="name">([^<]+)<', html) == [
        "img1.jpg",
        "IMG2.jpg",
        "img9.jpg",
        "img10.jpg",
    ]
    assert f'href="/photos/{made["img1.jpg"].pk}/?sort=name"' in html
    assert "1 labelled" in html and "3 unlabelled" in html
    html = client.get(f"/inspections/{inspection.pk}/?sort=name&labelled=false").content.decode()
    assert re.findall(r'class="name">([^<]+)<', html) == ["img1.jpg", "IMG2.jpg", "img10.jpg"]

    # The photo page's previous / next follow that filter and order, and the way back keeps it.
    nav = editor_data(
        client.get(f"/photos/{made['IMG2.jpg'].pk}/?sort=name&labelled=false").content.decode()
    )["nav"]
    assert nav["prev"] == f"/photos/{made['img1.jpg'].pk}/?sort=name&labelled=false"
    assert nav["next"] == f"/photos/{made['img10.jpg'].pk}/?sort=name&labelled=false"
    assert nav["grid"] == f"/inspections/{inspection.pk}/?sort=name&labelled=false"
    # img9 left the filter when it got a verdict: D still goes on from its place.
    nav = editor_data(
        client.get(f"/photos/{made['img9.jpg'].pk}/?sort=name&labelled=false").content.decode()
    )["nav"]
    assert nav["prev"].startswith(f"/photos/{made['IMG2.jpg'].pk}/")
    assert nav["next"].startswith(f"/photos/{made['img10.jpg'].pk}/")
    assert nav["next_unlabelled"].startswith(f"/photos/{made['img10.jpg'].pk}/")
    # Unknown sort: newest first, no error.
    assert client.get(f"/inspections/{inspection.pk}/?sort=purple").status_code == 200


def test_supervisor_creates_asset_inspector_creates_inspection(supervisor, inspector):
    r = signed_in(supervisor).post("/assets/", {"name": "Pier 4", "kind": "bridge"})
    asset = Asset.objects.get(name="Pier 4")
    assert r.status_code == 302 and r["Location"] == f"/assets/{asset.pk}/"
    assert signed_in(inspector).post("/assets/", {"name": "Nope"}).status_code == 403

    r = signed_in(inspector).post(
        f"/assets/{asset.pk}/", {"name": "Survey 1", "date": "2026-05-02"}
    )
    inspection = Inspection.objects.get(name="Survey 1")
    assert r["Location"] == f"/inspections/{inspection.pk}/"
    assert inspection.created_by == inspector


def test_create_forms_show_errors(supervisor, asset, inspection):
    client = signed_in(supervisor)
    r = client.post("/assets/", {"name": asset.name, "kind": "hull"})
    assert r.status_code == 400 and b"exists" in r.content
    r = client.post("/assets/", {"name": "", "kind": "rocket"})
    assert r.status_code == 400 and b"errorlist" in r.content
    r = client.post(f"/assets/{asset.pk}/", {"name": inspection.name})
    assert r.status_code == 400 and b"already has" in r.content
    r = client.post(f"/assets/{asset.pk}/", {"name": "Year six", "date": "0006-05-02"})
    assert r.status_code == 400 and b"not a plausible inspection date" in r.content
    assert not Inspection.objects.filter(name="Year six").exists()
    assert b'min="1900-01-01"' in r.content


def test_upload_page_points_at_the_api(inspection, inspector):
    html = signed_in(inspector).get(f"/inspections/{inspection.pk}/upload/").content.decode()
    assert 'data-endpoint="/api/v1/photos/upload/"' in html
    assert f'data-inspection="{inspection.pk}"' in html
    assert "js/upload.js" in html and "csrfmiddlewaretoken" in html


def test_unknown_ids_are_404(inspector):
    client = signed_in(inspector)
    for path in ("/assets/9999/", "/inspections/9999/", "/photos/9999/", "/photos/9999/image"):
        assert client.get(path).status_code == 404


def test_upload_page_token_lets_the_browser_post_to_the_api(inspection, inspector):
    """What upload.js does: the session plus the page's CSRF token, one file per request."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.conftest import jpeg_bytes

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(inspector)
    html = browser.get(f"/inspections/{inspection.pk}/upload/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)

    def post(**headers):
        f = SimpleUploadedFile("deck.jpg", jpeg_bytes(50, 40))
        return browser.post(
            "/api/v1/photos/upload/",
            {"inspection": inspection.pk, "files": f},
            HTTP_ACCEPT="application/json",
            **headers,
        )

    r = post()
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    r = post(HTTP_X_CSRFTOKEN=token)
    assert r.status_code == 201 and r.json()["results"][0]["status"] == 201
    r = post(HTTP_X_CSRFTOKEN=token)
    assert r.status_code == 409 and r.json()["results"][0]["photo_id"]


def test_api_docs_fetch_nothing_from_the_internet(client):
    for path in ("/api/v1/redoc/", "/api/v1/docs/"):
        html = client.get(path).content.decode()
        assert re.findall(r'(?:src|href)="(https?://[^"]+)"', html) == [], path
        assert "fonts.googleapis" not in html and "fonts.gstatic" not in html


def test_favicon_and_the_admin_link_for_supervisors(photo, inspector, supervisor):
    r = Client().get("/favicon.ico")
    assert r.status_code == 301 and r["Location"].endswith("favicon.svg")
    html = signed_in(inspector).get("/").content.decode()
    assert 'rel="icon"' in html and 'href="/admin/"' not in html
    assert 'href="/admin/"' in signed_in(supervisor).get("/").content.decode()

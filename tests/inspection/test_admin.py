"""The admin shows every model; records are read-only there; delete removes files."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from inspection.models import Box, Label, Photo, PhotoEvent
from inspection.services.boxes import save_boxes
from inspection.services.photos import ingest_photo
from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(db) -> Client:
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def photo(inspection, inspector, django_capture_on_commit_callbacks) -> Photo:
    with django_capture_on_commit_callbacks(execute=True):
        p = ingest_photo(
            inspection=inspection,
            file=io.BytesIO(jpeg_bytes(80, 60)),
            filename="deck.jpg",
            user=inspector,
        )
    save_boxes(
        photo=p,
        boxes=[{"xmin": 1, "ymin": 1, "xmax": 20, "ymax": 20}],
        user=inspector,
        expected_version=1,
    )
    p.refresh_from_db()
    return p


@pytest.mark.parametrize(
    "model", ["label", "asset", "inspection", "photo", "box", "photoevent", "apitoken"]
)
def test_every_model_has_a_working_changelist(admin_client_, photo, model):
    url = reverse(f"admin:inspection_{model}_changelist")
    response = admin_client_.get(url)
    assert response.status_code == 200
    response = admin_client_.get(url, {"q": "deck"})
    assert response.status_code == 200


def test_photo_page_shows_thumbnail_boxes_and_history(admin_client_, photo):
    response = admin_client_.get(reverse("admin:inspection_photo_change", args=[photo.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Boxes saved" in html and "Upload" in html  # history inline
    listing = admin_client_.get(reverse("admin:inspection_photo_changelist")).content.decode()
    # Previews and file links go through the app's file views (media has no open URL),
    # and really answer with the files.
    thumb, image = f"/photos/{photo.pk}/thumbnail", f"/photos/{photo.pk}/image"
    assert f'src="{thumb}"' in html and f'src="{thumb}"' in listing
    assert f'href="{image}">{photo.image.name}</a>' in html
    assert photo.thumbnail.url not in html and photo.image.url not in html
    for url, stored in ((thumb, photo.thumbnail), (image, photo.image)):
        r = admin_client_.get(url)
        assert r.status_code == 200
        assert b"".join(r.streaming_content) == stored.open("rb").read()


def test_records_cannot_be_edited_in_the_admin(admin_client_, photo):
    box = photo.boxes.get()
    event = PhotoEvent.objects.filter(photo=photo).first()
    assert admin_client_.get(reverse("admin:inspection_photo_add")).status_code == 403
    assert admin_client_.get(reverse("admin:inspection_box_add")).status_code == 403
    url = reverse("admin:inspection_box_change", args=[box.pk])
    admin_client_.post(url, {"xmin": 0, "ymin": 0, "xmax": 5, "ymax": 5})
    assert Box.objects.get(pk=box.pk).xmax == 20
    url = reverse("admin:inspection_photoevent_delete", args=[event.pk])
    assert admin_client_.post(url, {"post": "yes"}).status_code == 403
    assert PhotoEvent.objects.filter(pk=event.pk).exists()


def test_deleting_a_photo_removes_its_files_and_keeps_groups(
    admin_client_, photo, inspection, django_capture_on_commit_callbacks
):
    image, xml, thumb = (
        Path(photo.image.path),
        Path(photo.image.path).with_suffix(".xml"),
        Path(photo.thumbnail.path),
    )
    assert image.exists() and xml.exists() and thumb.exists()
    # Two resized copies of the same scene: linked to the photo as their group root.
    copy_a, copy_b = (
        ingest_photo(
            inspection=inspection, file=io.BytesIO(jpeg_bytes(w, h)), filename=n, user=None
        )
        for w, h, n in [(40, 30, "a.jpg"), (60, 45, "b.jpg")]
    )
    assert copy_a.near_duplicate_of_id == copy_b.near_duplicate_of_id == photo.pk
    url = reverse("admin:inspection_photo_delete", args=[photo.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not Photo.objects.filter(pk=photo.pk).exists()
    assert not image.exists() and not xml.exists() and not thumb.exists()
    copy_a.refresh_from_db()
    copy_b.refresh_from_db()
    assert copy_a.near_duplicate_of is None and copy_b.near_duplicate_of_id == copy_a.pk


def test_labels_are_editable(admin_client_):
    response = admin_client_.post(
        reverse("admin:inspection_label_add"),
        {"name": "weld-crack", "color": "#123456", "description": "cracks"},
    )
    assert response.status_code == 302
    assert Label.objects.filter(name="weld-crack").exists()


def test_admin_issues_a_token_shows_its_key_once_and_revokes_it(admin_client_, integration_user):
    from inspection.models import ApiToken

    url = reverse("admin:inspection_apitoken_add")
    assert admin_client_.get(url).status_code == 200
    form = {"user": integration_user.pk, "name": "drone 7", "expires_in_days": 30}
    response = admin_client_.post(url, form, follow=True)
    assert response.status_code == 200
    token = ApiToken.objects.get()
    shown = [str(m) for m in response.context["messages"] if "shown this once" in str(m)]
    key = shown[0].rsplit(" ", 1)[-1]
    assert key.startswith(token.token_key) and key not in token.digest
    again = admin_client_.post(url, form)  # the same name: the form says why
    assert again.status_code == 200 and "already has a token named" in again.content.decode()

    change = reverse("admin:inspection_apitoken_change", args=[token.pk])
    assert key not in admin_client_.get(change).content.decode()
    delete = reverse("admin:inspection_apitoken_delete", args=[token.pk])
    assert admin_client_.post(delete, {"post": "yes"}).status_code == 302
    assert not ApiToken.objects.exists()


# --- supervisors use the admin (not staff): records, schedules, people and roles -------


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_supervisor_who_is_not_staff_uses_the_admin(supervisor, photo):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    assert not supervisor.is_staff and not supervisor.is_superuser
    sam = _signed_in(supervisor)
    index = sam.get(reverse("admin:index"))
    assert index.status_code == 200
    html = index.content.decode()
    for name in ("Photos", "Boxes", "Periodic tasks", "Crontabs", "Users"):
        assert f">{name}<" in html, name
    assert ">Groups<" in html  # seen, not changed (who holds a role is set on the user)
    assert sam.get(reverse("admin:auth_group_add")).status_code == 403
    # the photo list with its preview, and Django's own rule still holds: boxes are read-only
    assert sam.get(reverse("admin:inspection_photo_changelist")).status_code == 200
    assert sam.get(reverse("admin:inspection_box_add")).status_code == 403

    # a schedule is editable: add one through the admin's own form
    every = IntervalSchedule.objects.create(every=6, period=IntervalSchedule.HOURS)
    response = sam.post(
        reverse("admin:django_celery_beat_periodictask_add"),
        {
            "name": "retrain every 6 h",
            "regtask": "inspection.tasks.training.nightly_run",
            "task": "",
            "interval": every.pk,
            "enabled": "on",
            "args": "[]",
            "kwargs": "{}",
            "priority": "",
            "queue": "",
            "exchange": "",
            "routing_key": "",
            "headers": "{}",
            "expire_seconds": "",
            "description": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert PeriodicTask.objects.filter(name="retrain every 6 h", interval=every).exists()


def test_a_supervisor_sets_roles_but_never_staff_superuser_or_a_superuser(supervisor, inspector):
    from django.contrib.auth.models import Group

    root = User.objects.create_superuser("root", "root@example.com", "pw")
    sam = _signed_in(supervisor)
    url = reverse("admin:auth_user_change", args=[inspector.pk])
    form = sam.get(url).content.decode()
    assert 'name="groups"' in form
    assert 'name="is_superuser"' not in form and 'name="is_staff"' not in form
    assert 'name="user_permissions"' not in form
    sup = Group.objects.get(name="supervisor")
    response = sam.post(
        url,
        {
            "username": inspector.username,
            "first_name": "Ines",
            "last_name": "",
            "email": "",
            "is_active": "on",
            "groups": [sup.pk],
            "is_superuser": "on",  # not on the form: ignored
            "is_staff": "on",
            "last_login_0": "",
            "last_login_1": "",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "08:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    inspector.refresh_from_db()
    assert list(inspector.groups.values_list("name", flat=True)) == ["supervisor"]
    assert not inspector.is_superuser and not inspector.is_staff
    # a superuser's account: shown, never changed
    assert sam.get(reverse("admin:auth_user_change", args=[root.pk])).status_code == 200
    refused = sam.post(reverse("admin:auth_user_change", args=[root.pk]), {"username": "x"})
    assert refused.status_code == 403
    assert sam.get(reverse("admin:auth_user_password_change", args=[root.pk])).status_code == 403


def test_the_admin_refuses_inspectors_and_integrations(inspector, integration_user):
    for user in (inspector, integration_user):
        response = _signed_in(user).get(reverse("admin:index"))
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    # the admin's own sign-in form says why, for a valid password of a non-supervisor
    response = Client().post(
        reverse("admin:login"), {"username": "ines", "password": "pw-ines", "next": "/admin/"}
    )
    assert response.status_code == 200
    assert "The admin is for supervisors" in response.content.decode()

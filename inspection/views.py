"""Server pages: assets, inspections, the photo grid, upload, a photo's detail.

Thin like the API: parse, authorise, call a service or a selector, render.
Photos and thumbnails are served here, after a login check, never by an open
media URL. Every page needs a role; the create forms need the role the API
asks for the same action (supervisor: assets; inspector: inspections).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, QueryDict
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from inspection import selectors
from inspection.errors import DomainError
from inspection.models import (
    EARLIEST_INSPECTION_DATE,
    Asset,
    Inspection,
    Photo,
    Role,
    Verdict,
)
from inspection.roles import has_role, user_role
from inspection.services.boxes import may_review_suggestions, verdict_chosen_by_person
from inspection.services.catalog import create_asset, create_inspection
from inspection.services.history import photo_state

GRID_PAGE_SIZE = 48


def role_required(role: Role) -> Callable:
    """Login first (redirect), then the role (403 with a clear page)."""

    def decorate(view: Callable) -> Callable:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not has_role(request.user, role):
                raise PermissionDenied(f"This page needs the {role.value} role.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def _can(request: HttpRequest) -> dict[str, bool]:
    return {
        "can_label": has_role(request.user, Role.INSPECTOR),
        "can_supervise": has_role(request.user, Role.SUPERVISOR),
    }


class AssetForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=Asset.Kind.choices, initial=Asset.Kind.OTHER)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class InspectionForm(forms.Form):
    name = forms.CharField(max_length=200)
    date = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date", "min": EARLIEST_INSPECTION_DATE.isoformat()}),
        help_text="The day of the survey.",
    )
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class PhotoFilterForm(forms.Form):
    """The grid's filters; the same meaning as the API's photo list filters."""

    YES_NO = [("", "any"), ("true", "yes"), ("false", "no")]
    verdict = forms.ChoiceField(choices=[("", "any"), *Verdict.choices], required=False)
    has_boxes = forms.ChoiceField(choices=YES_NO, required=False, label="Has boxes")
    has_suggestions = forms.ChoiceField(choices=YES_NO, required=False, label="Has suggestions")
    labelled = forms.ChoiceField(choices=YES_NO, required=False, label="Labelled")
    sort = forms.ChoiceField(
        choices=list(selectors.PHOTO_SORTS.items()), required=False, label="Sort"
    )

    def sort_key(self) -> str:
        return (self.cleaned_data.get("sort") if self.is_valid() else "") or "uploaded"

    def filters(self, inspection_id: int) -> selectors.PhotoFilters:
        data = self.cleaned_data if self.is_valid() else {}

        def flag(name: str) -> bool | None:
            value = data.get(name)
            return None if not value else value == "true"

        return selectors.PhotoFilters(
            inspection_id=inspection_id,
            verdict=data.get("verdict") or None,
            has_boxes=flag("has_boxes"),
            has_suggestions=flag("has_suggestions"),
            labelled=flag("labelled"),
        )


# --- pages -------------------------------------------------------------------


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """The icon, for browsers that ask /favicon.ico (the admin, JSON pages)."""
    return redirect(static("favicon.svg"), permanent=True)


@role_required(Role.INTEGRATION)
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Where a signed-in person starts: recent inspections and the assets."""
    return render(
        request,
        "home.html",
        {
            "inspections": selectors.inspection_list()[:10],
            "assets": selectors.asset_list()[:20],
            "role": user_role(request.user),
            **_can(request),
        },
    )


@role_required(Role.INTEGRATION)
@require_http_methods(["GET", "POST"])
def asset_list(request: HttpRequest) -> HttpResponse:
    """All assets; supervisors may add one."""
    form = AssetForm(request.POST or None)
    if request.method == "POST":
        if not has_role(request.user, Role.SUPERVISOR):
            raise PermissionDenied("Only supervisors create assets.")
        if form.is_valid():
            try:
                asset = create_asset(**form.cleaned_data, user=request.user)
            except DomainError as exc:
                form.add_error("name" if exc.status == 409 else None, exc.message)
            else:
                messages.success(request, f"Asset '{asset.name}' created.")
                return redirect("asset-detail", pk=asset.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "assets.html",
        {"assets": selectors.asset_list(), "form": form, **_can(request)},
        status=status,
    )


@role_required(Role.INTEGRATION)
@require_http_methods(["GET", "POST"])
def asset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One asset's inspections; inspectors may add one."""
    asset = get_object_or_404(Asset, pk=pk)
    form = InspectionForm(request.POST or None)
    if request.method == "POST":
        if not has_role(request.user, Role.INSPECTOR):
            raise PermissionDenied("Only inspectors and supervisors create inspections.")
        if form.is_valid():
            try:
                inspection = create_inspection(asset=asset, user=request.user, **form.cleaned_data)
            except DomainError as exc:
                form.add_error("name" if exc.status == 409 else None, exc.message)
            else:
                messages.success(request, f"Inspection '{inspection.name}' created.")
                return redirect("inspection-detail", pk=inspection.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "asset_detail.html",
        {
            "asset": asset,
            "inspections": selectors.inspection_list(asset_id=asset.pk),
            "form": form,
            **_can(request),
        },
        status=status,
    )


@role_required(Role.INTEGRATION)
@require_GET
def inspection_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The photo grid of an inspection, with filters and pages."""
    inspection = get_object_or_404(Inspection.objects.select_related("asset"), pk=pk)
    filter_form = PhotoFilterForm(request.GET or None)
    ids = selectors.photo_ids_in_order(filter_form.filters(inspection.pk), filter_form.sort_key())
    page = Paginator(ids, GRID_PAGE_SIZE).get_page(request.GET.get("page"))
    by_id = {p.pk: p for p in selectors.photo_list().filter(pk__in=list(page.object_list))}
    kept = {k: v for k, v in request.GET.items() if k != "page" and v}
    back = {**kept, "page": page.number} if page.number > 1 else kept
    return render(
        request,
        "inspection_detail.html",
        {
            "inspection": inspection,
            "filter_form": filter_form,
            "page": page,
            "photos": [by_id[i] for i in page.object_list if i in by_id],
            "query": urlencode(kept),
            "photo_query": urlencode(back),
            "total": inspection.photos.count(),
            "labelled": selectors.labelled_counts(inspection.pk),
            "labelled_links": {v: urlencode({**kept, "labelled": v}) for v in ("true", "false")},
            **_can(request),
        },
    )


@role_required(Role.INTEGRATION)
@require_GET
def upload(request: HttpRequest, pk: int) -> HttpResponse:
    """Upload photos to an inspection: the browser posts each file to the API."""
    inspection = get_object_or_404(Inspection.objects.select_related("asset"), pk=pk)
    return render(request, "upload.html", {"inspection": inspection, **_can(request)})


def _neighbours(photo: Photo, query: QueryDict) -> dict[str, Any]:
    """Previous, next and next unlabelled photo in the grid's filter and order.

    A photo that left the filter (its verdict changed) keeps its place in the
    unfiltered order, so A / D still go on from where the inspector was.
    """
    form = PhotoFilterForm(query or None)
    sort = form.sort_key()
    filtered = selectors.photo_ids_in_order(form.filters(photo.inspection_id), sort)
    everything = selectors.photo_ids_in_order(
        selectors.PhotoFilters(inspection_id=photo.inspection_id), sort
    )
    shown = set(filtered)
    at = everything.index(photo.pk) if photo.pk in everything else 0
    before = [i for i in everything[:at] if i in shown]
    after = [i for i in everything[at + 1 :] if i in shown]
    unlabelled = selectors.unlabelled_ids(photo.inspection_id)
    later = [i for i in after + before if i in unlabelled]
    kept = {k: v for k, v in query.items() if k != "page" and v}
    suffix = f"?{urlencode(kept)}" if kept else ""

    def url(pk: int | None) -> str | None:
        return f"{reverse('photo-detail', args=[pk])}{suffix}" if pk else None

    grid = reverse("inspection-detail", args=[photo.inspection_id])
    return {
        "prev": url(before[-1] if before else None),
        "next": url(after[0] if after else None),
        "next_unlabelled": url(later[0] if later else None),
        "query": urlencode(kept),
        "grid": f"{grid}?{urlencode(dict(query.items()))}" if query else grid,
        "position": (len(before) + 1, len(filtered)) if photo.pk in shown else None,
    }


@role_required(Role.INTEGRATION)
@require_GET
def photo_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The box editor (read-only without the inspector role), near-duplicates and history."""
    # The boxes come once, in the editor's state (photo_state): no prefetch of them here.
    photo = get_object_or_404(
        Photo.objects.select_related("inspection__asset", "uploaded_by"), pk=pk
    )
    nav = _neighbours(photo, request.GET)
    can = _can(request)
    editor = {
        "photo": {"id": photo.pk, "width": photo.width, "height": photo.height, "name": str(photo)},
        "state": photo_state(photo),
        "verdict_by_person": verdict_chosen_by_person(photo),
        "can_label": can["can_label"],
        "can_review": can["can_label"] and may_review_suggestions(request.user, photo),
        # Skip is offered on the photo the queue gave this inspector (a live lease).
        "from_queue": can["can_label"] and selectors.queue_lease_held(photo, request.user),
        "csrf": get_token(request),
        "labels": [label.name for label in selectors.label_list()],
        "urls": {
            "boxes": reverse("api:photo-boxes", args=[photo.pk]),
            "verdict": reverse("api:photo-verdict", args=[photo.pk]),
            "image": reverse("photo-image", args=[photo.pk]),
            "queue_next": reverse("api:queue-next"),
            "queue_skip": reverse("api:queue-skip", args=[photo.pk]),
        },
        "nav": nav,
    }
    return render(
        request,
        "photo_detail.html",
        {
            "photo": photo,
            "editor": editor,
            "nav": nav,
            "labels": editor["labels"],
            "near_duplicates": selectors.near_duplicates(photo),
            "history": selectors.photo_history(photo)[:50],
            **can,
        },
    )


# --- files behind login --------------------------------------------------------


def _photo_file(photo: Photo, *, thumbnail: bool) -> FileResponse:
    field = photo.thumbnail if thumbnail and photo.thumbnail else photo.image
    if not field:
        raise Http404("This photo has no file.")
    try:
        handle = field.open("rb")
    except OSError as exc:
        raise Http404("The photo's file is missing from storage.") from exc
    content_type = "image/jpeg" if field is photo.thumbnail else (photo.content_type or None)
    response = FileResponse(handle, content_type=content_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response


@role_required(Role.INTEGRATION)
@require_GET
def photo_image(request: HttpRequest, pk: int) -> FileResponse:
    """The stored image, only for signed-in people with a role."""
    return _photo_file(get_object_or_404(Photo, pk=pk), thumbnail=False)


@role_required(Role.INTEGRATION)
@require_GET
def photo_thumbnail(request: HttpRequest, pk: int) -> FileResponse:
    """The thumbnail; the full image until the worker has made it."""
    return _photo_file(get_object_or_404(Photo, pk=pk), thumbnail=True)

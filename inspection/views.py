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
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from inspection import selectors
from inspection.errors import DomainError
from inspection.models import Asset, Box, Inspection, Photo, Role, Verdict
from inspection.roles import has_role, user_role
from inspection.services.catalog import create_asset, create_inspection

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
    date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class PhotoFilterForm(forms.Form):
    """The grid's filters; the same meaning as the API's photo list filters."""

    YES_NO = [("", "any"), ("true", "yes"), ("false", "no")]
    verdict = forms.ChoiceField(choices=[("", "any"), *Verdict.choices], required=False)
    has_boxes = forms.ChoiceField(choices=YES_NO, required=False, label="Has boxes")
    has_suggestions = forms.ChoiceField(choices=YES_NO, required=False, label="Has suggestions")

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
        )


# --- pages -------------------------------------------------------------------


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
                asset = create_asset(**form.cleaned_data)
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
    photos = selectors.photo_list(filter_form.filters(inspection.pk))
    page = Paginator(photos, GRID_PAGE_SIZE).get_page(request.GET.get("page"))
    kept = {k: v for k, v in request.GET.items() if k != "page" and v}
    return render(
        request,
        "inspection_detail.html",
        {
            "inspection": inspection,
            "filter_form": filter_form,
            "page": page,
            "query": urlencode(kept),
            "total": inspection.photos.count(),
            **_can(request),
        },
    )


@role_required(Role.INTEGRATION)
@require_GET
def upload(request: HttpRequest, pk: int) -> HttpResponse:
    """Upload photos to an inspection: the browser posts each file to the API."""
    inspection = get_object_or_404(Inspection.objects.select_related("asset"), pk=pk)
    return render(request, "upload.html", {"inspection": inspection, **_can(request)})


@role_required(Role.INTEGRATION)
@require_GET
def photo_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A photo with its boxes drawn (read-only), its near-duplicates and its history."""
    photo = get_object_or_404(selectors.photo_detail_queryset(), pk=pk)
    boxes = list(selectors.photo_boxes(photo))
    for b in boxes:  # SVG rects take a size, VOC boxes give corners
        b.w, b.h = b.xmax - b.xmin, b.ymax - b.ymin
    return render(
        request,
        "photo_detail.html",
        {
            "photo": photo,
            "boxes": boxes,
            "suggestions": [b for b in boxes if b.state == Box.State.SUGGESTED],
            "near_duplicates": selectors.near_duplicates(photo),
            "history": selectors.photo_history(photo)[:50],
            "stroke": max(2, round(max(photo.width, photo.height) / 300)),
            **_can(request),
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

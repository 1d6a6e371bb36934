"""Django admin for every model.

Supervisors use it too (inspection/roles.py): the team's accounts and roles
here, but never a superuser's account or the staff / superuser flags.
Photos, boxes and history are inspection records: the admin shows them but
does not edit boxes or verdicts (that would bypass the history and the VOC
XML); those changes go through the app. Deleting a photo goes through the
service, so its files go too.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from inspection.errors import DomainError
from inspection.models import ApiToken, Asset, Box, Inspection, Label, Photo, PhotoEvent, Role
from inspection.services.photos import delete_photo
from inspection.services.tokens import check_token_request, issue_token, revoke_token


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["name", "swatch", "description", "box_count"]
    search_fields = ["name", "description"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Label]:
        return super().get_queryset(request).annotate(n_boxes=Count("boxes"))

    @admin.display(description="colour")
    def swatch(self, obj: Label) -> str:
        return format_html(
            '<span style="display:inline-block;width:1em;height:1em;background:{}"></span> {}',
            obj.color,
            obj.color,
        )

    @admin.display(description="image")
    def image_file(self, obj: Photo) -> str:
        return _file_link(obj, "image", "photo-image")

    @admin.display(description="thumbnail")
    def thumbnail_file(self, obj: Photo) -> str:
        return _file_link(obj, "thumbnail", "photo-thumbnail")

    @admin.display(description="boxes", ordering="n_boxes")
    def box_count(self, obj: Label) -> int:
        return obj.n_boxes


class InspectionInline(admin.TabularInline):
    model = Inspection
    extra = 0
    fields = ["name", "date", "notes"]
    show_change_link = True


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "inspection_count", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "description"]
    inlines = [InspectionInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Asset]:
        return super().get_queryset(request).annotate(n_inspections=Count("inspections"))

    @admin.display(description="inspections", ordering="n_inspections")
    def inspection_count(self, obj: Asset) -> int:
        return obj.n_inspections


@admin.register(Inspection)
class InspectionAdmin(admin.ModelAdmin):
    list_display = ["name", "asset", "date", "photo_count", "created_by", "created_at"]
    list_filter = ["asset", "date"]
    search_fields = ["name", "notes", "asset__name"]
    list_select_related = ["asset", "created_by"]
    autocomplete_fields = ["asset"]
    readonly_fields = ["created_by", "created_at"]
    date_hierarchy = "created_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Inspection]:
        return super().get_queryset(request).annotate(n_photos=Count("photos"))

    @admin.display(description="photos", ordering="n_photos")
    def photo_count(self, obj: Inspection) -> int:
        return obj.n_photos


class BoxInline(ReadOnlyInline):
    model = Box
    fields = [
        "label",
        "xmin",
        "ymin",
        "xmax",
        "ymax",
        "difficult",
        "source",
        "state",
        "score",
        "model_version",
        "changed_by",
        "changed_at",
    ]
    readonly_fields = fields


class PhotoEventInline(ReadOnlyInline):
    model = PhotoEvent
    fields = ["at", "action", "actor", "version", "before", "after"]
    readonly_fields = fields


def _thumb(photo: Photo, size: int) -> str:
    """A preview through the app's own file view: media has no open URL (login first)."""
    if not (photo.thumbnail or photo.image):
        return "-"
    return format_html(
        '<a href="{}"><img src="{}" alt="" style="max-width:{}px;max-height:{}px"></a>',
        reverse("photo-detail", args=[photo.pk]),
        reverse("photo-thumbnail", args=[photo.pk]),
        size,
        size,
    )


def _file_link(photo: Photo, field: str, view: str) -> str:
    stored = getattr(photo, field)
    if not stored:
        return "-"
    return format_html('<a href="{}">{}</a>', reverse(view, args=[photo.pk]), stored.name)


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):
    list_display = [
        "preview",
        "__str__",
        "inspection",
        "verdict",
        "verified",
        "box_count",
        "width",
        "height",
        "near_duplicate_of",
        "uploaded_by",
        "uploaded_at",
    ]
    list_display_links = ["preview", "__str__"]
    list_filter = ["verdict", "verified", "content_type", "inspection__asset", "inspection"]
    search_fields = ["original_name", "sha256", "inspection__name", "inspection__asset__name"]
    list_select_related = ["inspection__asset", "uploaded_by", "near_duplicate_of"]
    date_hierarchy = "uploaded_at"
    autocomplete_fields = ["inspection"]
    readonly_fields = [
        "large_preview",
        "image_file",
        "thumbnail_file",
        "sha256",
        "phash",
        "near_duplicate_of",
        "width",
        "height",
        "content_type",
        "uploaded_by",
        "uploaded_at",
        "verdict",
        "verdict_by",
        "verdict_at",
        "verified",
        "version",
    ]
    fields = ["large_preview", "inspection", "original_name", *readonly_fields[1:]]
    inlines = [BoxInline, PhotoEventInline]
    actions = ["delete_with_files"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Photo]:
        return super().get_queryset(request).annotate(n_boxes=Count("boxes"))

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # would leave the files behind
        return actions

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # photos come in through upload or import (validated, hashed)

    @admin.display(description="")
    def preview(self, obj: Photo) -> str:
        return _thumb(obj, 80)

    @admin.display(description="preview")
    def large_preview(self, obj: Photo) -> str:
        return _thumb(obj, 320)

    @admin.display(description="image")
    def image_file(self, obj: Photo) -> str:
        return _file_link(obj, "image", "photo-image")

    @admin.display(description="thumbnail")
    def thumbnail_file(self, obj: Photo) -> str:
        return _file_link(obj, "thumbnail", "photo-thumbnail")

    @admin.display(description="boxes", ordering="n_boxes")
    def box_count(self, obj: Photo) -> int:
        return obj.n_boxes

    def get_deleted_objects(self, objs, request: HttpRequest):
        # A photo's boxes and history go with it; their own admins refuse deleting
        # them one by one, which must not block deleting the whole photo.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed = {p for p in perms_needed if p not in {"box", "boxes", "photo event"}}
        return deleted, counts, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: Photo) -> None:
        delete_photo(photo=obj)

    @admin.action(description="Delete selected photos and their files", permissions=["delete"])
    def delete_with_files(self, request: HttpRequest, queryset: QuerySet[Photo]) -> None:
        count = 0
        for photo in queryset:
            delete_photo(photo=photo)
            count += 1
        self.message_user(request, f"Deleted {count} photos and their files.")


@admin.register(Box)
class BoxAdmin(admin.ModelAdmin):
    """Boxes are edited in the box editor (versioned, audited); here they are shown."""

    list_display = [
        "id",
        "photo",
        "label",
        "xmin",
        "ymin",
        "xmax",
        "ymax",
        "source",
        "state",
        "score",
        "model_version",
        "changed_by",
        "changed_at",
    ]
    list_filter = ["source", "state", "label", "difficult", "photo__inspection__asset"]
    search_fields = ["photo__original_name", "photo__sha256", "model_version"]
    list_select_related = ["photo", "label", "changed_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(PhotoEvent)
class PhotoEventAdmin(admin.ModelAdmin):
    """The audit trail: read-only by design."""

    list_display = ["at", "photo", "action", "actor", "version"]
    list_filter = ["action", "at"]
    search_fields = ["photo__original_name", "photo__sha256", "actor__username"]
    list_select_related = ["photo", "actor"]
    date_hierarchy = "at"
    readonly_fields = ["photo", "action", "actor", "at", "version", "before", "after"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ApiTokenAddForm(forms.ModelForm):
    """A new token: for whom, its name, how long it lives (the key is shown once)."""

    expires_in_days = forms.IntegerField(
        min_value=1, initial=settings.RUSTWATCH_TOKEN_DAYS, help_text="Days until it stops working."
    )

    class Meta:
        model = ApiToken
        fields = ["user", "name"]

    def clean(self) -> dict:
        data = super().clean()
        if data.get("user") is not None and not self.errors:
            try:
                check_token_request(
                    user=data["user"],
                    name=data.get("name"),
                    expires_in_days=data.get("expires_in_days"),
                )
            except DomainError as exc:
                raise forms.ValidationError(exc.message) from exc
        return data

    def validate_unique(self) -> None:
        """The service refuses a name in use, with a message (see clean)."""


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Hashed API tokens: issue (key shown once), see, revoke (delete); never edit or read a key."""

    list_display = ["name", "user", "token_key", "created", "expiry", "issued_by"]
    list_filter = ["created"]
    search_fields = ["name", "token_key", "user__username"]
    list_select_related = ["user", "issued_by"]
    readonly_fields = ["name", "user", "token_key", "created", "expiry", "issued_by"]
    exclude = ["digest"]
    raw_id_fields = ["user"]

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiTokenAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return self.readonly_fields if obj is not None else ["user", "name", "expires_in_days"]

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: ApiToken, form, change: bool) -> None:
        token, key = issue_token(
            user=form.cleaned_data["user"],
            issued_by=request.user,
            name=form.cleaned_data["name"],
            expires_in_days=form.cleaned_data["expires_in_days"],
        )
        for f in ApiToken._meta.concrete_fields:
            setattr(obj, f.attname, getattr(token, f.attname))
        obj._state.adding = False
        self.message_user(
            request,
            f"The key of {token.name!r}, shown this once (only its hash is stored): {key}",
            messages.WARNING,
        )

    def delete_model(self, request: HttpRequest, obj: ApiToken) -> None:
        revoke_token(token=obj, revoked_by=request.user)


User = get_user_model()
# Only what a supervisor may set on an account: who it is, whether it works, its roles.
_GUARDED_FIELDS = {"is_staff", "is_superuser", "user_permissions"}


admin.site.unregister(User)  # django.contrib.auth.admin's, replaced by the one below


@admin.register(User)
class TeamUserAdmin(UserAdmin):
    """Accounts and roles (the groups integration / inspector / supervisor)."""

    list_display = ["username", "first_name", "last_name", "roles", "is_active", "last_login"]
    list_filter = ["groups", "is_active", "is_staff", "is_superuser"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="roles")
    def roles(self, obj) -> str:
        names = sorted(g.name for g in obj.groups.all())
        return ", ".join(names) + (" (superuser)" if obj.is_superuser else "") or "-"

    def get_fieldsets(self, request: HttpRequest, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        kept = []
        for name, opts in fieldsets:
            fields = [f for f in opts.get("fields", ()) if f not in _GUARDED_FIELDS]
            if name == "Permissions":
                name = "Account and roles"
            kept.append((name, {**opts, "fields": fields}))
        return kept

    def formfield_for_manytomany(self, db_field, request: HttpRequest, **kwargs):
        if db_field.name == "groups" and not request.user.is_superuser:
            kwargs["queryset"] = Group.objects.filter(name__in=[r.value for r in Role])
            kwargs["widget"] = forms.CheckboxSelectMultiple
            kwargs["label"] = "Roles"
            kwargs["help_text"] = (
                "Integration: upload and read. Inspector: label. Supervisor: everything."
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False  # a supervisor sees a superuser's account, never changes it
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

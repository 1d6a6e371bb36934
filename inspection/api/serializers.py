"""Output shapes shared by several API resources: photos, their boxes and state, history.

A resource's own serializers (its inputs, and outputs no one else uses) live in
its module (catalog.py, photos.py, voc.py, tokens.py); these are the shapes
that several endpoints answer with, so they read the same everywhere.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from inspection.models import Box, Photo, PhotoEvent, Verdict
from inspection.selectors import is_labelled


def _username() -> serializers.SlugRelatedField:
    """Who did it; null when nobody has yet (no verdict) or the user was deleted."""
    return serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="A username; null when nobody (yet), or the user was deleted.",
    )


def _absolute(context: dict[str, Any], url: str) -> str:
    request = context.get("request")
    return request.build_absolute_uri(url) if request is not None else url


class BoxSerializer(serializers.ModelSerializer):
    label = serializers.SlugRelatedField(slug_field="name", read_only=True)
    changed_by = _username()

    class Meta:
        model = Box
        fields = [
            "id",
            "xmin",
            "ymin",
            "xmax",
            "ymax",
            "label",
            "difficult",
            "source",
            "score",
            "state",
            "model_version",
            "changed_by",
            "changed_at",
        ]
        read_only_fields = fields


class PhotoLinkSerializer(serializers.ModelSerializer):
    """A short reference to another photo (near-duplicates)."""

    url = serializers.SerializerMethodField()
    inspection_name = serializers.CharField(source="inspection.name", read_only=True)

    class Meta:
        model = Photo
        fields = ["id", "original_name", "inspection", "inspection_name", "url"]
        read_only_fields = fields

    @extend_schema_field(serializers.URLField())
    def get_url(self, photo: Photo) -> str:
        return _absolute(self.context, reverse("api:photo-detail", args=[photo.pk]))


class PhotoSerializer(serializers.ModelSerializer):
    """A photo in a list: enough to show a grid tile and filter."""

    asset = serializers.IntegerField(source="inspection.asset_id", read_only=True)
    uploaded_by = _username()
    verdict_by = _username()
    has_boxes = serializers.BooleanField(read_only=True)
    has_suggestions = serializers.BooleanField(read_only=True)
    labelled = serializers.BooleanField(
        read_only=True, help_text="A human verdict or verified (selectors.unlabelled_q)."
    )
    url = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    class Meta:
        model = Photo
        fields = [
            "id",
            "url",
            "inspection",
            "asset",
            "original_name",
            "width",
            "height",
            "content_type",
            "sha256",
            "phash",
            "near_duplicate_of",
            "uploaded_by",
            "uploaded_at",
            "verdict",
            "verdict_by",
            "verdict_at",
            "verified",
            "version",
            "has_boxes",
            "has_suggestions",
            "labelled",
            "suggestion_state",
            "suggestion_error",
            "score",
            "queue_score",
            "image_url",
            "thumbnail_url",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.URLField())
    def get_url(self, photo: Photo) -> str:
        return _absolute(self.context, reverse("api:photo-detail", args=[photo.pk]))

    @extend_schema_field(serializers.URLField())
    def get_image_url(self, photo: Photo) -> str:
        return _absolute(self.context, reverse("api:photo-image", args=[photo.pk]))

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_thumbnail_url(self, photo: Photo) -> str | None:
        if not photo.thumbnail:
            return None  # the worker has not made it yet
        return _absolute(self.context, reverse("api:photo-thumbnail", args=[photo.pk]))


class PhotoDetailSerializer(PhotoSerializer):
    """One photo with its boxes, near-duplicates and where to edit it."""

    boxes = BoxSerializer(many=True, read_only=True)
    near_duplicates = serializers.SerializerMethodField()
    boxes_url = serializers.SerializerMethodField()
    verdict_url = serializers.SerializerMethodField()
    history_url = serializers.SerializerMethodField()

    class Meta(PhotoSerializer.Meta):
        fields = [
            *PhotoSerializer.Meta.fields,
            "boxes",
            "near_duplicates",
            "boxes_url",
            "verdict_url",
            "history_url",
        ]
        read_only_fields = fields

    @extend_schema_field(PhotoLinkSerializer(many=True))
    def get_near_duplicates(self, photo: Photo) -> list[dict[str, Any]]:
        from inspection.selectors import near_duplicates

        return PhotoLinkSerializer(near_duplicates(photo), many=True, context=self.context).data

    @extend_schema_field(serializers.URLField())
    def get_boxes_url(self, photo: Photo) -> str:
        return _absolute(self.context, reverse("api:photo-boxes", args=[photo.pk]))

    @extend_schema_field(serializers.URLField())
    def get_verdict_url(self, photo: Photo) -> str:
        return _absolute(self.context, reverse("api:photo-verdict", args=[photo.pk]))

    @extend_schema_field(serializers.URLField())
    def get_history_url(self, photo: Photo) -> str:
        return _absolute(self.context, reverse("api:photo-history", args=[photo.pk]))


class PhotoStateBoxSerializer(serializers.Serializer):
    """A box as the editor sees it (services.history.box_state has the same shape)."""

    id = serializers.IntegerField()
    xmin = serializers.IntegerField()
    ymin = serializers.IntegerField()
    xmax = serializers.IntegerField()
    ymax = serializers.IntegerField()
    label = serializers.CharField(source="label.name")
    difficult = serializers.BooleanField()
    source = serializers.ChoiceField(choices=Box.Source.choices)
    score = serializers.FloatField(allow_null=True)
    state = serializers.ChoiceField(choices=Box.State.choices)
    model_version = serializers.CharField(allow_blank=True)


class PhotoStateSerializer(serializers.Serializer):
    """A photo's annotation state (also the `current` of a 412 answer)."""

    id = serializers.IntegerField()
    version = serializers.IntegerField()
    verdict = serializers.ChoiceField(choices=Verdict.choices)
    verified = serializers.BooleanField()
    labelled = serializers.SerializerMethodField()
    boxes = serializers.SerializerMethodField()

    @extend_schema_field(serializers.BooleanField(help_text="A human verdict or verified."))
    def get_labelled(self, photo: Photo) -> bool:
        return is_labelled(photo)

    @extend_schema_field(PhotoStateBoxSerializer(many=True))
    def get_boxes(self, photo: Photo) -> list[dict[str, Any]]:
        boxes = Box.objects.filter(photo_id=photo.pk).select_related("label").order_by("id")
        return PhotoStateBoxSerializer(boxes, many=True).data


class PhotoEventSerializer(serializers.ModelSerializer):
    actor = _username()

    class Meta:
        model = PhotoEvent
        fields = ["id", "action", "actor", "at", "version", "before", "after"]
        read_only_fields = fields

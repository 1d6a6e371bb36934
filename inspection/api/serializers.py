"""Serializers: the API's JSON shapes, and validation of what clients send.

Output serializers are read-only views of rows; input serializers only check
shapes and types (a wrong type is a 400 naming the field). Domain rules (boxes
inside the image, stale versions, duplicates) live in the services.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from inspection.models import Asset, Box, Inspection, Photo, PhotoEvent, Verdict

# Ids and versions beyond a 64-bit integer are refused here (400), before a
# database driver overflows on them (500).
MAX_ID = 2**63 - 1


def _absolute(context: dict[str, Any], url: str) -> str:
    request = context.get("request")
    return request.build_absolute_uri(url) if request is not None else url


class AssetSerializer(serializers.ModelSerializer):
    inspection_count = serializers.IntegerField(read_only=True, required=False)
    photo_count = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        model = Asset
        fields = [
            "id",
            "name",
            "kind",
            "description",
            "created_at",
            "inspection_count",
            "photo_count",
        ]
        read_only_fields = ["id", "created_at"]


class InspectionSerializer(serializers.ModelSerializer):
    asset = serializers.PrimaryKeyRelatedField(queryset=Asset.objects.all())
    asset_name = serializers.CharField(source="asset.name", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    photo_count = serializers.IntegerField(read_only=True, required=False)
    unlabelled_count = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        model = Inspection
        fields = [
            "id",
            "asset",
            "asset_name",
            "name",
            "date",
            "notes",
            "created_by",
            "created_at",
            "photo_count",
            "unlabelled_count",
        ]
        read_only_fields = ["id", "created_at"]


class _Text(serializers.CharField):
    """A string, and only a string: a number or a list is a 400, not silently str()-ed."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class _PatchSerializer(serializers.Serializer):
    """A partial update: only the fields sent; an unknown or read-only field is a 400."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {
                    name: [f"Cannot be changed; editable fields: {', '.join(self.fields)}."]
                    for name in unknown
                }
            )
        if not attrs:
            raise serializers.ValidationError(
                f"Send at least one field to change: {', '.join(self.fields)}."
            )
        return attrs


class AssetUpdateSerializer(_PatchSerializer):
    """PATCH of an asset; a name in use is a 409 from the service."""

    name = _Text(max_length=200, required=False)
    kind = serializers.ChoiceField(choices=Asset.Kind.choices, required=False)
    description = _Text(required=False, allow_blank=True)


class InspectionUpdateSerializer(_PatchSerializer):
    """PATCH of an inspection (it stays with its asset); a name in use is a 409."""

    name = _Text(max_length=200, required=False)
    date = serializers.DateField(required=False, allow_null=True)
    notes = _Text(required=False, allow_blank=True)


class BoxSerializer(serializers.ModelSerializer):
    label = serializers.SlugRelatedField(slug_field="name", read_only=True)
    changed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

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
    uploaded_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    verdict_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    has_boxes = serializers.BooleanField(read_only=True)
    has_suggestions = serializers.BooleanField(read_only=True)
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


class PhotoFilterSerializer(serializers.Serializer):
    """Query parameters of the photo list; a bad value is a 400 naming it."""

    inspection = serializers.IntegerField(max_value=MAX_ID, required=False, min_value=1)
    asset = serializers.IntegerField(max_value=MAX_ID, required=False, min_value=1)
    verdict = serializers.ChoiceField(choices=Verdict.choices, required=False)
    has_boxes = serializers.BooleanField(required=False, allow_null=True, default=None)
    has_suggestions = serializers.BooleanField(required=False, allow_null=True, default=None)


class PhotoStateBoxSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    xmin = serializers.IntegerField()
    ymin = serializers.IntegerField()
    xmax = serializers.IntegerField()
    ymax = serializers.IntegerField()
    label = serializers.CharField()
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
    boxes = PhotoStateBoxSerializer(many=True)


class BoxInputSerializer(serializers.Serializer):
    """One box a client saves, in original-image pixels."""

    id = serializers.IntegerField(
        max_value=MAX_ID,
        required=False,
        help_text="Id of a model suggestion being accepted or edited.",
    )
    xmin = serializers.IntegerField()
    ymin = serializers.IntegerField()
    xmax = serializers.IntegerField()
    ymax = serializers.IntegerField()
    label = serializers.CharField(max_length=64, default="rust")
    difficult = serializers.BooleanField(default=False)


class BoxesInputSerializer(serializers.Serializer):
    """The whole set of a photo's boxes (replaces human and accepted boxes)."""

    boxes = BoxInputSerializer(many=True, allow_empty=True)
    verified = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="True once a person confirmed the photo (VOC verified=yes).",
    )
    rejected = serializers.ListField(
        child=serializers.IntegerField(max_value=MAX_ID),
        required=False,
        default=list,
        help_text="Ids of model suggestions the person refused in this edit.",
    )


class VerdictInputSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=Verdict.choices)
    version = serializers.IntegerField(
        max_value=MAX_ID,
        required=False,
        min_value=1,
        help_text="The photo version the client saw; or send it as If-Match.",
    )


class SuggestionReviewSerializer(serializers.Serializer):
    """Accept or reject one of a photo's model suggestions."""

    box = serializers.IntegerField(max_value=MAX_ID, help_text="Id of the model box.")
    action = serializers.ChoiceField(choices=["accept", "reject"])
    version = serializers.IntegerField(
        max_value=MAX_ID, required=False, min_value=1, help_text="Or send it as If-Match."
    )


class PhotoEventSerializer(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = PhotoEvent
        fields = ["id", "action", "actor", "at", "version", "before", "after"]
        read_only_fields = fields


class UploadInputSerializer(serializers.Serializer):
    inspection = serializers.IntegerField(max_value=MAX_ID, min_value=1)
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True, use_url=False),
        allow_empty=False,
        help_text="One or more JPEG, PNG or WebP photos (multipart field `files`).",
    )


class UploadResultSerializer(serializers.Serializer):
    """What happened to one uploaded file."""

    filename = serializers.CharField()
    status = serializers.IntegerField(help_text="HTTP status of this file alone.")
    photo = PhotoSerializer(required=False)
    detail = serializers.CharField(required=False)
    code = serializers.CharField(required=False)
    photo_id = serializers.IntegerField(required=False, help_text="The existing photo (409).")


class UploadResponseSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    failed = serializers.IntegerField()
    results = UploadResultSerializer(many=True)


class ImportInputSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A zip of images + labelImg XML (class folders ok).")
    inspection = serializers.IntegerField(
        max_value=MAX_ID, required=False, min_value=1, help_text="Import into this inspection"
    )
    inspection_name = serializers.CharField(
        required=False, max_length=200, help_text="Or into this inspection (created if new)."
    )
    asset_name = serializers.CharField(
        required=False,
        max_length=200,
        help_text="The asset of `inspection_name` (created if new; default: the same name).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "inspection" in attrs and ("inspection_name" in attrs or "asset_name" in attrs):
            raise serializers.ValidationError(
                "Give `inspection`, or `inspection_name` (and `asset_name`), not both."
            )
        return attrs


class ImportReportSerializer(serializers.Serializer):
    photos_created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    near_duplicates = serializers.IntegerField()
    boxes = serializers.IntegerField()
    verdicts = serializers.IntegerField()
    errors = serializers.ListField(
        child=serializers.CharField(), help_text="Each file that was skipped, and why."
    )
    duplicate_files = serializers.ListField(child=serializers.CharField())
    notes = serializers.ListField(child=serializers.CharField())
    inspection_id = serializers.IntegerField(allow_null=True)


class ExportQuerySerializer(serializers.Serializer):
    inspection = serializers.IntegerField(max_value=MAX_ID, required=False, min_value=1)
    asset = serializers.IntegerField(max_value=MAX_ID, required=False, min_value=1)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "inspection" in attrs and "asset" in attrs:
            raise serializers.ValidationError("Export an inspection or an asset, not both.")
        return attrs


class TokenSerializer(serializers.Serializer):
    """An API token. The key is shown to its owner, and once to the supervisor
    who creates it; lists show only its first characters."""

    user = serializers.CharField(source="user.username")
    role = serializers.CharField(allow_null=True)
    created = serializers.DateTimeField()
    key = serializers.CharField(required=False)
    key_prefix = serializers.CharField()


class TokenCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)

    def validate_username(self, value: str) -> str:
        if not get_user_model().objects.filter(username=value).exists():
            raise serializers.ValidationError(f"No user named {value!r}.")
        return value

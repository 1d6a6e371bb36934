"""The inspection records: Asset -> Inspection -> Photo -> Box, and their history.

Rows are written by `inspection.services` only (STYLE.md); models hold fields,
constraints and the validation a single row can do on its own.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q


class Role(models.TextChoices):
    """The groups a user can belong to; `supervisor` may do everything."""

    INTEGRATION = "integration", "Integration"
    INSPECTOR = "inspector", "Inspector"
    SUPERVISOR = "supervisor", "Supervisor"


class Label(models.Model):
    """A box class. `rust` exists from the start; a team may add others."""

    name = models.SlugField(max_length=64, unique=True)
    color = models.CharField(max_length=7, default="#e8590c", help_text="#rrggbb")
    description = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Asset(models.Model):
    """The thing inspected: a ship hull, a bridge, a tank, a pipe."""

    class Kind(models.TextChoices):
        HULL = "hull", "Ship hull"
        BRIDGE = "bridge", "Bridge"
        TANK = "tank", "Tank"
        PIPE = "pipe", "Pipe"
        OTHER = "other", "Other"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.OTHER)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Inspection(models.Model):
    """One survey of an asset."""

    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="inspections")
    name = models.CharField(max_length=200)
    date = models.DateField(null=True, blank=True)
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "name"]
        constraints = [
            models.UniqueConstraint(fields=["asset", "name"], name="inspection_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.asset.name} / {self.name}"


class Verdict(models.TextChoices):
    """A photo's human rust / no-rust label."""

    UNKNOWN = "unknown", "Not yet"
    RUST = "rust", "Rust"
    NORUST = "norust", "No rust"


class Photo(models.Model):
    """One uploaded image, stored under MEDIA_ROOT by its content hash."""

    inspection = models.ForeignKey(Inspection, on_delete=models.PROTECT, related_name="photos")
    image = models.ImageField(upload_to="photos/", width_field="width", height_field="height")
    thumbnail = models.ImageField(upload_to="thumbs/", blank=True)
    sha256 = models.CharField(max_length=64, unique=True)
    # 64-bit perceptual hash as 16 hex digits: near-duplicates are a few bits apart.
    phash = models.CharField(max_length=16, db_index=True)
    near_duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="near_duplicates"
    )
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    content_type = models.CharField(max_length=32)
    original_name = models.CharField(max_length=255, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)

    verdict = models.CharField(max_length=8, choices=Verdict.choices, default=Verdict.UNKNOWN)
    verdict_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verdict_at = models.DateTimeField(null=True, blank=True)
    # A person confirmed the boxes (labelImg's verified="yes").
    verified = models.BooleanField(default=False)
    # Bumped on every change of boxes or verdict; a stale save is refused.
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-uploaded_at", "-id"]
        indexes = [models.Index(fields=["inspection", "verdict"])]

    def __str__(self) -> str:
        return self.original_name or self.sha256[:12]

    @property
    def duplicate_group(self) -> int:
        """The id shared by a photo and its near-duplicates (kept in one split)."""
        return self.near_duplicate_of_id or self.id


class Box(models.Model):
    """A rust box in original-image pixels (VOC xmin, ymin, xmax, ymax)."""

    class Source(models.TextChoices):
        HUMAN = "human", "Human"
        MODEL = "model", "Model"

    class State(models.TextChoices):
        SUGGESTED = "suggested", "Suggested"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="boxes")
    label = models.ForeignKey(Label, on_delete=models.PROTECT, related_name="boxes")
    # PostgreSQL reserves the column names xmin and xmax (system columns), so
    # the columns are x_min..y_max while the fields keep their VOC names.
    xmin = models.IntegerField(db_column="x_min")
    ymin = models.IntegerField(db_column="y_min")
    xmax = models.IntegerField(db_column="x_max")
    ymax = models.IntegerField(db_column="y_max")
    difficult = models.BooleanField(default=False)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.HUMAN)
    # Model boxes only: the detector's score and the model version that drew it.
    score = models.FloatField(null=True, blank=True)
    model_version = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACCEPTED)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "boxes"
        constraints = [
            models.CheckConstraint(
                condition=Q(xmin__gte=0)
                & Q(ymin__gte=0)
                & Q(xmax__gt=F("xmin"))
                & Q(ymax__gt=F("ymin")),
                name="box_non_empty",
            ),
            models.CheckConstraint(
                condition=Q(source="human", score__isnull=True) | Q(source="model"),
                name="box_score_only_for_model",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.xmin},{self.ymin},{self.xmax},{self.ymax})"

    def clean(self) -> None:
        if not (self.xmin < self.xmax and self.ymin < self.ymax):
            raise ValidationError("A box needs xmin < xmax and ymin < ymax.")
        if self.xmin < 0 or self.ymin < 0:
            raise ValidationError("A box cannot start left of or above the image.")
        if self.photo_id and (self.xmax > self.photo.width or self.ymax > self.photo.height):
            raise ValidationError(
                f"Box ({self.xmin},{self.ymin},{self.xmax},{self.ymax}) is outside the "
                f"{self.photo.width}x{self.photo.height} photo."
            )
        if self.source == self.Source.HUMAN and self.score is not None:
            raise ValidationError("Only model boxes carry a score.")


class PhotoEvent(models.Model):
    """Audit trail: every change of a photo's boxes or verdict, before and after."""

    class Action(models.TextChoices):
        UPLOAD = "upload", "Upload"
        IMPORT = "import", "Import"
        BOXES = "boxes", "Boxes saved"
        VERDICT = "verdict", "Verdict set"
        SUGGESTION = "suggestion", "Model suggestion"

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=16, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)
    version = models.PositiveIntegerField(help_text="The photo's version after the change.")
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["photo", "-at"])]

    def __str__(self) -> str:
        return f"{self.photo_id} {self.action} v{self.version}"

"""The inspection records: Asset -> Inspection -> Photo -> Box, and their history.

Rows are written by `inspection.services` only (STYLE.md); models hold fields,
constraints and the validation a single row can do on its own.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from knox.models import AbstractAuthToken
from knox.settings import CONSTANTS

# An inspection date before this, or more than a year ahead, is a typing slip (year 6).
EARLIEST_INSPECTION_DATE = dt.date(1900, 1, 1)


# Characters a name may not hold: controls (tabs, line breaks, escapes) and the
# bidirectional overrides that make a name read differently than it sorts. The API
# schema publishes the same class as the names' pattern.
NAME_FORBIDDEN_CHARS = r"\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"  # a regex class
# ...and something besides spaces (names are trimmed): the pattern the API publishes
_F = NAME_FORBIDDEN_CHARS
NAME_PATTERN = rf"^[^{_F}]*[^\s{_F}][^{_F}]*$"
_NAME_FORBIDDEN = re.compile(f"[{NAME_FORBIDDEN_CHARS}]")


def check_name(name: str) -> None:
    """A name people read in lists and file names: no control characters (tabs, newlines).

    Lone surrogates (not text at all; PostgreSQL cannot store them) are refused too.
    """
    text = name or ""
    if _NAME_FORBIDDEN.search(text) or any(unicodedata.category(c) == "Cs" for c in text):
        raise ValidationError(
            {"name": "A name cannot hold tabs, line breaks or control characters."}
        )


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

    def clean(self) -> None:
        check_name(self.name)


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

    def clean(self) -> None:
        check_name(self.name)
        if self.date is not None:
            latest = timezone.localdate() + dt.timedelta(days=366)
            if not (EARLIEST_INSPECTION_DATE <= self.date <= latest):
                raise ValidationError(
                    {
                        "date": f"{self.date.isoformat()} is not a plausible inspection date: "
                        f"use one from {EARLIEST_INSPECTION_DATE.isoformat()} to "
                        f"{latest.isoformat()}."
                    }
                )


class Verdict(models.TextChoices):
    """A photo's human rust / no-rust label."""

    UNKNOWN = "unknown", "Not yet"
    RUST = "rust", "Rust"
    NORUST = "norust", "No rust"


class SuggestionState(models.TextChoices):
    """Why a photo has (or has no) model suggestions."""

    NO_MODEL = "no_model", "No model deployed yet"
    QUEUED = "queued", "Queued for scoring"
    READY = "ready", "Scored"
    FAILED = "failed", "Scoring failed"


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

    # The learning loop. A split, once given by a snapshot, never changes (train/val/test).
    split = models.CharField(max_length=8, blank=True)
    # The deployed models' view of the photo (the boxes live in Box, source "model").
    suggestion_state = models.CharField(
        max_length=10, choices=SuggestionState.choices, default=SuggestionState.NO_MODEL
    )
    suggestion_error = models.TextField(blank=True)
    score = models.FloatField(null=True, blank=True, help_text="The classifier's rust probability.")
    scored_by = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    scored_at = models.DateTimeField(null=True, blank=True)
    # The active-learning priority (higher = label sooner); null until scored.
    queue_score = models.FloatField(null=True, blank=True, db_index=True)
    # The detector's view, cached so the queue re-ranks without the models: the version that
    # looked, how unsure it was (largest box-score entropy) and its best box score.
    detected_by = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    detector_uncertainty = models.FloatField(null=True, blank=True)
    detector_max_score = models.FloatField(null=True, blank=True)
    # How typical of the classifier's training photos this one is (ml.active.typicality):
    # the queue weights uncertainty by it. Null for classifiers saved without a centre.
    typicality = models.FloatField(null=True, blank=True)
    # The classifier's embedding (float16 bytes), for the queue's diversity (k-center).
    embedding = models.BinaryField(null=True, blank=True, editable=False)

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
    # A human box a person made by correcting this suggestion (the suggestion is then rejected:
    # it is not an annotation; "edited" in the model's real-world statistics).
    derived_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="edits"
    )
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


# --- The learning loop: jobs, snapshots, runs, model versions, deployment ---------------------


class ModelKind(models.TextChoices):
    """The two models the loop trains and deploys, each on its own pointer."""

    CLASSIFIER = "classifier", "Classifier"
    DETECTOR = "detector", "Detector"


class Job(models.Model):
    """Long work on a worker (training, re-scoring, import, export, prediction), seen live.

    Celery payloads carry the job id only; the task loads the row, is idempotent by
    that id, and writes progress, log tail and the error in words here.
    """

    class Kind(models.TextChoices):
        TRAIN = "train", "Training run"
        SCORE = "score", "Re-score photos"
        IMPORT = "import", "Import"
        EXPORT = "export", "Export"
        PREDICT = "predict", "Prediction request"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (State.SUCCEEDED, State.FAILED, State.CANCELLED)

    kind = models.CharField(max_length=16, choices=Kind.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    # Ids and options only (never images): what the task needs to redo the work.
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    progress_step = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    # Live details of the current step, e.g. {"phase": "detector", "epoch": 3, "loss": 0.41}.
    progress = models.JSONField(default=dict, blank=True)
    log_tail = models.TextField(blank=True)
    error = models.TextField(blank=True, help_text="Why it failed, in words.")
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    celery_task_id = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=255, blank=True, help_text="The worker that ran it.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "state"])]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.state})"

    @property
    def finished(self) -> bool:
        return self.state in self.FINISHED


class Snapshot(models.Model):
    """A frozen VOC folder + manifest of the labelled photos; `ml/` trains on it alone."""

    # Storage name of the folder (JPEGImages/, Annotations/, ImageSets/Main/, manifest.json).
    path = models.CharField(max_length=255, unique=True)
    dataset_hash = models.CharField(max_length=64, db_index=True)
    photo_count = models.PositiveIntegerField(default=0)
    box_count = models.PositiveIntegerField(default=0)
    rust_count = models.PositiveIntegerField(default=0)
    # Photo counts per split, e.g. {"train": 31, "val": 7, "test": 7}.
    splits = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"snapshot {self.pk} ({self.photo_count} photos)"


class TrainingRun(models.Model):
    """One training run: a `train` job, the snapshot it read, the versions it made."""

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Started by a person"
        NIGHTLY = "nightly", "Nightly schedule"
        LABELS = "labels", "New labels since the last run"

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="run")
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    snapshot = models.ForeignKey(
        Snapshot, null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    # The training settings used (ml config overrides, warm start, which kinds).
    config = models.JSONField(default=dict, blank=True)
    # Human labels counted when the run started: the label trigger counts from here.
    labels_at_start = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.trigger})"


class ModelVersion(models.Model):
    """An immutable artifact folder one run produced for one model kind."""

    class Gate(models.TextChoices):
        PENDING = "pending", "Not judged yet"
        FIRST = "first", "First of its kind"
        PASSED = "passed", "Not worse than the deployed one"
        HELD = "held", "Worse: waits for a supervisor"

    kind = models.CharField(max_length=16, choices=ModelKind.choices)
    # Short, unique and stable, e.g. "detector-7": what predictions and boxes record.
    name = models.CharField(max_length=64, unique=True)
    # Storage name of the artifact folder (manifest.json + models); never rewritten.
    artifact = models.CharField(max_length=255)
    run = models.ForeignKey(
        TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="versions"
    )
    snapshot = models.ForeignKey(
        Snapshot, null=True, blank=True, on_delete=models.PROTECT, related_name="versions"
    )
    metrics = models.JSONField(default=dict, blank=True)
    # Candidate vs deployed on the same validation photos in the same run, margins, decision.
    gate = models.CharField(max_length=8, choices=Gate.choices, default=Gate.PENDING)
    gate_report = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "-created_at"])]

    def __str__(self) -> str:
        return self.name


class DeployedModel(models.Model):
    """The pointer: which version serves, one row per model kind. Deploy = move it."""

    kind = models.CharField(max_length=16, choices=ModelKind.choices, primary_key=True)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.kind} -> {self.version_id}"


class Deployment(models.Model):
    """Audit of every pointer move: who, when, why, from which version to which."""

    class Action(models.TextChoices):
        DEPLOY = "deploy", "Deploy"
        ROLLBACK = "rollback", "Rollback"

    kind = models.CharField(max_length=16, choices=ModelKind.choices)
    action = models.CharField(max_length=10, choices=Action.choices)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="deployments")
    previous = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    automatic = models.BooleanField(default=False, help_text="Deployed by the gate, not a person.")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.kind} {self.version_id}"


class QueueLease(models.Model):
    """A photo handed to one inspector by the queue until `expires_at`."""

    photo = models.OneToOneField(Photo, on_delete=models.CASCADE, related_name="lease")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"photo {self.photo_id} -> user {self.user_id}"


class QueueSkip(models.Model):
    """An inspector passed on a photo: the queue offers it to others, not to them, for a while."""

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="skips")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["photo", "user"], name="queue_skip_once_per_user")
        ]

    def __str__(self) -> str:
        return f"photo {self.photo_id} skipped by user {self.user_id}"


class ApiToken(AbstractAuthToken):
    """An API credential (django-rest-knox): only the key's SHA-512 digest is stored.

    A user (an integration: a drone, a robot) may hold several, each named, each
    with an expiry; revoking one leaves the others working. `token_key` is the
    key's first characters, to find the row and to show which key it is.
    """

    id = models.BigAutoField(primary_key=True)
    digest = models.CharField(max_length=CONSTANTS.DIGEST_LENGTH, unique=True)
    name = models.CharField(max_length=100)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["user_id", "-created", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="api_token_name_unique_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.token_key}…) of user {self.user_id}"

"""Supervisor pages: the review queue, training runs, model versions and the overview.

Thin like the other pages: parse, authorise (supervisors only: others get the
403 page that names the role), call a service or a selector, render. Actions are
plain form posts that go through the same services as the API
(`review_suggestion`, `approve_photo`, the registry's deploy and rollback, the
training service's start and the job service's cancel); a domain error comes
back as a message on the page, never a traceback. Live training progress is
read by the page from the job API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from django import forms
from django.contrib import messages
from django.core.files.storage import default_storage
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from inspection import selectors
from inspection import selectors_supervisor as sup
from inspection.charts import line_chart
from inspection.errors import DomainError
from inspection.models import (
    Box,
    Inspection,
    Job,
    ModelKind,
    ModelVersion,
    Photo,
    PhotoEvent,
    Role,
    TrainingRun,
)
from inspection.services.boxes import review_suggestion
from inspection.services.history import check_version, photo_state
from inspection.services.jobs import cancel_job
from inspection.services.registry import deploy_version, deployed_versions, rollback
from inspection.services.review import COORDS, approve_photo, correct_suggestion
from inspection.services.suggestions import suggestion_stats
from inspection.services.training import start_run
from inspection.views import role_required

supervisor_page = role_required(Role.SUPERVISOR)
QUEUE_PAGE = 200  # the review queue shows the most recent work first, this many at a time
CAN = {"can_label": True, "can_supervise": True}  # a supervisor may do everything

# Metrics shown side by side, per kind, in this order (others follow by name).
HEADLINE = {
    ModelKind.CLASSIFIER: ("accuracy", "roc_auc", "precision_rust", "recall_rust", "f1_rust"),
    ModelKind.DETECTOR: ("AP50", "AP", "AP75", "AR100"),
}
# What the overview draws over time, per kind.
CHART_METRICS = {
    ModelKind.CLASSIFIER: ("accuracy", "roc_auc", "recall_rust"),
    ModelKind.DETECTOR: ("AP50", "AP"),
}
HIDDEN_METRICS = {"confusion", "threshold", "n"}
PLOT_TITLES = {
    "pr_curve": "Precision–recall curve",
    "roc_curve": "ROC curve",
    "confusion_matrix": "Confusion matrix",
    "loss_curves": "Loss curves",
}


def _error_message(request: HttpRequest, exc: DomainError) -> None:
    messages.error(request, exc.message)


# --- review ------------------------------------------------------------------------------


class ReviewFilterForm(forms.Form):
    """The queue's filters; bad values are ignored with the field's message shown."""

    inspection = forms.ModelChoiceField(
        queryset=Inspection.objects.select_related("asset").order_by("asset__name", "name"),
        required=False,
        empty_label="any",
    )
    inspector = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    min_score = forms.FloatField(min_value=0, max_value=1, required=False, label="Score ≥")
    max_score = forms.FloatField(min_value=0, max_value=1, required=False, label="Score ≤")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["inspector"].choices = [("", "any"), *sup.inspector_choices()]
        self.fields["inspection"].label_from_instance = lambda i: f"{i.asset.name} / {i.name}"
        for name in ("min_score", "max_score"):
            self.fields[name].widget.attrs.update({"step": "0.05", "placeholder": "0–1"})

    def filters(self) -> sup.ReviewFilters:
        data = self.cleaned_data if self.is_valid() else {}
        insp = data.get("inspection")
        return sup.ReviewFilters(
            inspection_id=insp.pk if insp else None,
            inspector_id=data.get("inspector"),
            min_score=data.get("min_score"),
            max_score=data.get("max_score"),
        )


def _kept_query(request: HttpRequest) -> str:
    keys = ("inspection", "inspector", "min_score", "max_score")
    return urlencode({k: request.GET[k] for k in keys if request.GET.get(k)})


def _review_url(photo_id: int | None, query: str) -> str:
    if photo_id is None:
        url = reverse("review")
    else:
        url = reverse("review-photo", args=[photo_id])
    return f"{url}?{query}" if query else url


@supervisor_page
@require_GET
def review(request: HttpRequest) -> HttpResponse:
    """The review queue: photos with open suggestions or inspector changes, and progress."""
    form = ReviewFilterForm(request.GET or None)
    filters = form.filters()
    queue = sup.review_queue(filters)
    return render(
        request,
        "review.html",
        {
            "form": form,
            "queue": queue.page(QUEUE_PAGE),
            "queue_total": len(queue.ids),
            "progress": sup.review_progress(),
            "query": _kept_query(request),
            **CAN,
        },
    )


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 'es' if word.endswith('x') else 's'}"


REVIEW_WORDS = {"accept": "accepted", "reject": "rejected", "edit": "corrected"}


def event_summary(event: PhotoEvent) -> str:
    """What one audit entry changed, in words ("suggestion accepted (0.80)", "1 box → 2 boxes")."""
    before, after = event.before or {}, event.after or {}
    parts = []
    if "review" in after:
        score = (after.get("box") or {}).get("score")
        word = REVIEW_WORDS.get(after["review"], after["review"])
        parts.append(f"suggestion {word}" + (f" ({score:.2f})" if score is not None else ""))
    elif "suggestions" in after:
        source = after.get("model_version") or "the model"
        parts.append(f"{_count(len(after['suggestions']), 'suggestion')} from {source}")
    if "boxes" in after:
        old, new = len(before.get("boxes", [])), len(after["boxes"])
        parts.append(
            f"{_count(old, 'box')} → {_count(new, 'box')}" if old != new else _count(new, "box")
        )
    if after.get("verified") and not before.get("verified"):
        parts.append("verified")
    if "verdict" in after and before.get("verdict") != after["verdict"]:
        parts.append(f"verdict {before.get('verdict', '?')} → {after['verdict']}")
    return ", ".join(parts)


def _box_rows(photo: Photo) -> list[Box]:
    return list(selectors.photo_boxes(photo))


@supervisor_page
@require_GET
def review_photo(request: HttpRequest, pk: int) -> HttpResponse:
    """One photo of the queue: human and model boxes over the photo, actions, history."""
    photo = get_object_or_404(
        Photo.objects.select_related("inspection__asset", "uploaded_by", "verdict_by"), pk=pk
    )
    state = sup.photo_review_state(photo)
    photo.last_editor = sup.last_editors([photo.pk]).get(photo.pk)
    form = ReviewFilterForm(request.GET or None)
    query = _kept_query(request)
    nav = sup.review_neighbours(photo.pk, sup.review_queue(form.filters()))
    boxes = _box_rows(photo)
    overlay = {
        "photo": {"id": photo.pk, "width": photo.width, "height": photo.height},
        "image": reverse("photo-image", args=[photo.pk]),
        "boxes": photo_state(photo)["boxes"],
    }
    return render(
        request,
        "review_photo.html",
        {
            "photo": photo,
            "suggestions": [b for b in boxes if b.state == Box.State.SUGGESTED],
            "human": [b for b in boxes if b.state == Box.State.ACCEPTED],
            "rejected": [b for b in boxes if b.state == Box.State.REJECTED],
            "history": [(e, event_summary(e)) for e in selectors.photo_history(photo)[:50]],
            "overlay": overlay,
            "query": query,
            "prev_url": _review_url(nav["prev"], query) if nav["prev"] else None,
            "next_url": _review_url(nav["next"], query) if nav["next"] else None,
            "queue_url": _review_url(None, query),
            "nav": nav,
            "to_review": state.to_review,
            "progress": sup.review_progress(inspection_id=photo.inspection_id),
            "csrf": get_token(request),
            "coord_names": COORDS,
            **CAN,
        },
    )


def _after_review(request: HttpRequest, photo: Photo) -> HttpResponseRedirect:
    """Stay on the photo while suggestions are open; else go on to the next one in the queue."""
    query = request.POST.get("query", "")
    still_open = photo.boxes.filter(source=Box.Source.MODEL, state=Box.State.SUGGESTED).exists()
    if still_open:
        return redirect(_review_url(photo.pk, query))
    form = ReviewFilterForm(dict(_parse_query(query)) or None)
    nav = sup.review_neighbours(photo.pk, sup.review_queue(form.filters()))
    return redirect(_review_url(nav["next"], query))


def _parse_query(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query)


def _version_field(request: HttpRequest) -> int:
    return check_version(request.POST.get("version", ""))


@supervisor_page
@require_POST
def review_suggestion_action(request: HttpRequest, pk: int, box: int) -> HttpResponse:
    """Accept, reject or correct one model suggestion (versioned: a stale page is told to reload).

    A correction (`action=edit` with xmin..ymax) becomes a person's box derived from the
    suggestion, which is kept as rejected: the version's "edited" count.
    """
    photo = get_object_or_404(Photo, pk=pk)
    suggestion = photo.boxes.filter(pk=box).first()
    if suggestion is None:
        messages.error(request, f"Box {box} is not a box of photo {photo.pk}.")
        return redirect(_review_url(photo.pk, request.POST.get("query", "")))
    action = request.POST.get("action", "")
    try:
        version = _version_field(request)
        if action == "edit":
            coords = {k: request.POST.get(k, "") for k in COORDS}
            photo = correct_suggestion(
                suggestion=suggestion, coords=coords, user=request.user, expected_version=version
            )
        else:
            photo = review_suggestion(
                box=suggestion, action=action, user=request.user, expected_version=version
            )
    except DomainError as exc:
        _error_message(request, exc)
        return redirect(_review_url(pk, request.POST.get("query", "")))
    messages.success(request, f"Suggestion {box} {REVIEW_WORDS[action]} on {photo}.")
    return _after_review(request, photo)


@supervisor_page
@require_POST
def review_approve(request: HttpRequest, pk: int) -> HttpResponse:
    """Approve the inspector's boxes and verdict as they stand (marks the photo verified)."""
    photo = get_object_or_404(Photo, pk=pk)
    try:
        photo = approve_photo(
            photo=photo, user=request.user, expected_version=_version_field(request)
        )
    except DomainError as exc:
        _error_message(request, exc)
        return redirect(_review_url(pk, request.POST.get("query", "")))
    messages.success(request, f"{photo} approved.")
    return _after_review(request, photo)


# --- models ------------------------------------------------------------------------------


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v:  # NaN
        return None
    return float(v)


def metric_rows(kind: str, metrics: dict, deployed: dict | None) -> list[dict[str, Any]]:
    """The version's scalar metrics beside the deployed version's, with the difference."""
    names = [m for m in HEADLINE.get(kind, ()) if m in metrics or (deployed and m in deployed)]
    names += sorted(
        k
        for k, v in metrics.items()
        if k not in names and k not in HIDDEN_METRICS and _number(v) is not None
    )
    rows = []
    for name in names:
        value = _number(metrics.get(name))
        other = _number((deployed or {}).get(name))
        delta = value - other if value is not None and other is not None else None
        rows.append({"name": name, "value": value, "deployed": other, "delta": delta})
    return rows


def _deployed() -> dict[str, ModelVersion]:
    """The deployed version per kind."""
    return deployed_versions()


@supervisor_page
@require_GET
def models(request: HttpRequest) -> HttpResponse:
    """Deployed versions per kind, every version beside them, recent runs, a start button."""
    deployed = _deployed()
    kinds = []
    for kind in ModelKind:
        current = deployed.get(kind)
        versions = []
        for v in sup.model_versions(kind)[:50]:
            headline = metric_rows(kind, v.metrics or {}, current.metrics if current else None)
            versions.append(
                {
                    "version": v,
                    "metrics": headline[:4],
                    "deployed": current is not None and current.pk == v.pk,
                }
            )
        kinds.append({"kind": kind, "deployed": current, "versions": versions})
    return render(
        request,
        "models.html",
        {
            "kinds": kinds,
            "runs": sup.training_runs(10),
            "active_run": sup.running_run(),
            "deployments": sup.deployment_history(limit=10),
            **CAN,
        },
    )


def _plots(version: ModelVersion) -> list[dict[str, str]]:
    folder = f"{version.artifact}/plots"
    try:
        _, files = default_storage.listdir(folder)
    except (FileNotFoundError, NotADirectoryError, OSError):
        return []
    out = []
    for name in sorted(files):
        if name.endswith(".png"):
            stem = name.removesuffix(".png")
            title = PLOT_TITLES.get(stem, stem.replace("_", " ").capitalize())
            out.append(
                {
                    "name": name,
                    "title": title,
                    "url": reverse("api:model-plot", args=[version.pk, name]),
                }
            )
    return out


def _version_charts(version: ModelVersion) -> list[Any]:
    """Charts drawn in the page from the metrics when the artifact has no plots."""
    charts = []
    history = (version.metrics or {}).get("history")
    if isinstance(history, dict):
        series = {k: v for k, v in history.items() if isinstance(v, list) and "loss" in k}
        if series:
            n = max(len(v) for v in series.values())
            charts.append(("Loss per epoch", line_chart(series, [str(i + 1) for i in range(n)])))
    return charts


@supervisor_page
@require_GET
def model_version(request: HttpRequest, pk: int) -> HttpResponse:
    """One version: metrics beside the deployed one, plots, snapshot, acceptance, deploy."""
    version = get_object_or_404(sup.model_versions(), pk=pk)
    deployed = _deployed().get(version.kind)
    is_deployed = deployed is not None and deployed.pk == version.pk
    confusion = (version.metrics or {}).get("confusion")
    return render(
        request,
        "model_version.html",
        {
            "version": version,
            "deployed": deployed,
            "is_deployed": is_deployed,
            "metrics": metric_rows(
                version.kind,
                version.metrics or {},
                deployed.metrics if deployed and not is_deployed else None,
            ),
            "confusion": confusion if _is_matrix(confusion) else None,
            "gate_checks": (version.gate_report or {}).get("checks", []),
            "plots": _plots(version),
            "charts": _version_charts(version),
            "acceptance": suggestion_stats(version),
            "deployments": sup.deployment_history(kind=version.kind, limit=10),
            **CAN,
        },
    )


def _is_matrix(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(r, list) and len(r) == 2 for r in value)
    )


def _reason(request: HttpRequest) -> str:
    reason = request.POST.get("reason", "").strip()
    if len(reason) > 2000:
        raise DomainError("The reason is longer than 2,000 characters; say it shorter.")
    return reason


@supervisor_page
@require_POST
def model_deploy(request: HttpRequest, pk: int) -> HttpResponse:
    """Deploy a version (a held one needs a reason): the registry moves the pointer."""
    version = get_object_or_404(ModelVersion, pk=pk)
    try:
        deploy_version(version=version, user=request.user, reason=_reason(request))
    except DomainError as exc:
        _error_message(request, exc)
    else:
        messages.success(request, f"{version.name} is now the deployed {version.kind}.")
    return redirect("model-version", pk=version.pk)


@supervisor_page
@require_POST
def model_rollback(request: HttpRequest, kind: str) -> HttpResponse:
    """Move the kind's pointer back to the version deployed before the current one."""
    try:
        deployment = rollback(kind=kind, user=request.user, reason=_reason(request))
    except DomainError as exc:
        _error_message(request, exc)
        back = request.POST.get("back")
        return redirect(back if back and back.startswith("/models/") else "models")
    messages.success(
        request, f"Rolled back: {deployment.version.name} is the deployed {deployment.kind} again."
    )
    return redirect("model-version", pk=deployment.version_id)


# --- training runs ------------------------------------------------------------------------


@supervisor_page
@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A training run: live progress (the page polls the job API), log, cancel, its versions."""
    run = get_object_or_404(
        TrainingRun.objects.select_related("job__created_by", "snapshot").prefetch_related(
            "versions"
        ),
        pk=pk,
    )
    return render(
        request,
        "run_detail.html",
        {
            "run": run,
            "job": run.job,
            "job_url": reverse("api:job-detail", args=[run.job_id]),
            "versions": list(run.versions.order_by("kind")),
            **CAN,
        },
    )


@supervisor_page
@require_POST
def run_start(request: HttpRequest) -> HttpResponse:
    """Queue a training run now (it waits while another one runs)."""
    try:
        run = start_run(user=request.user, skip_detector=request.POST.get("skip_detector") == "on")
    except DomainError as exc:
        _error_message(request, exc)
        return redirect("models")
    messages.success(request, f"Training run {run.pk} queued.")
    return redirect("run-detail", pk=run.pk)


@supervisor_page
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel the run's job: at once while queued, at its next step while running."""
    run = get_object_or_404(TrainingRun.objects.select_related("job"), pk=pk)
    try:
        job = cancel_job(job=run.job, user=request.user)
    except DomainError as exc:
        _error_message(request, exc)
    else:
        if job.state == Job.State.CANCELLED:
            messages.success(request, f"Training run {run.pk} cancelled.")
        else:
            messages.success(request, f"Training run {run.pk} stops at its next step.")
    return redirect("run-detail", pk=run.pk)


# --- overview ----------------------------------------------------------------------------


def _metric_history_chart(kind: str) -> Any:
    rows = sup.deployed_over_time(kind)
    if not rows:
        return None
    names = CHART_METRICS[kind]
    series = {m: [_number(r["metrics"].get(m)) for r in rows] for m in names}
    return line_chart(series, [r["version"] for r in rows], y_range=(0.0, 1.0))


@supervisor_page
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    """The whole data set at a glance: labelling progress, models over time, rust found."""
    deployed = _deployed()
    return render(
        request,
        "overview.html",
        {
            "counts": sup.label_counts(),
            "charts": [
                {"kind": k, "chart": _metric_history_chart(k), "deployed": deployed.get(k)}
                for k in ModelKind
            ],
            "by_asset": sup.rust_by_asset(),
            "by_inspection": sup.rust_by_inspection(),
            "progress": sup.review_progress(),
            **CAN,
        },
    )

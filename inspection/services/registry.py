"""The model registry: versions, the promotion gate, deploy and rollback.

A `ModelVersion` names an immutable artifact folder in storage (`models/<name>/`,
loadable with `ml.artifacts.load_artifact`), the snapshot and run it came from,
and its metrics. The gate compares a candidate with the deployed version of its
kind on the same validation photos, evaluated in the same run: it deploys by
itself only when no gated metric is worse by more than its margin
(settings.RUSTWATCH_GATE_MARGINS); otherwise the version is held for a
supervisor, who may deploy it anyway with a reason.

Deploy and rollback are one pointer move (`DeployedModel`) and one audit row
(`Deployment`: who, when, why, from which version), in one transaction. After a
move, the unlabelled photos are re-scored (`inspection.services.suggestions`).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from inspection.errors import Conflict, DomainError, NotFound
from inspection.models import DeployedModel, Deployment, ModelKind, ModelVersion

log = logging.getLogger(__name__)


class ReasonRequired(DomainError):
    status = 400
    code = "reason_required"


def margins(kind: str) -> dict[str, float]:
    """The gated metrics of a kind and how much worse each may be."""
    return dict(settings.RUSTWATCH_GATE_MARGINS.get(kind, {}))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def judge(kind: str, candidate: dict | None, deployed: dict | None) -> tuple[str, dict]:
    """The gate's decision for a candidate vs the deployed model, and why.

    `candidate` / `deployed` are metrics on the same validation photos;
    `deployed` None means nothing of the kind is deployed yet (FIRST).
    A metric that cannot be computed for the candidate while the deployed
    model has it counts as worse (held), never as a pass; with no metric that
    both have (no validation photos of the kind), the candidate is held too.
    """
    if deployed is None:
        return ModelVersion.Gate.FIRST, {"decision": "first", "margins": margins(kind)}
    checks = []
    worse = False
    for metric, margin in margins(kind).items():
        new, old = _number((candidate or {}).get(metric)), _number(deployed.get(metric))
        if old is None:  # undefined for the deployed model too (e.g. a one-class val split)
            checks.append({"metric": metric, "candidate": new, "deployed": None, "ok": None})
            continue
        ok = new is not None and new >= old - margin
        worse |= not ok
        checks.append(
            {"metric": metric, "candidate": new, "deployed": old, "margin": margin, "ok": ok}
        )
    report: dict = {"checks": checks, "margins": margins(kind)}
    if not any(c["ok"] is not None for c in checks):
        # Nothing to compare on (no val photos of the kind): not shown to be not worse.
        worse = True
        report["reason"] = "no validation metric could be compared; a supervisor decides"
    decision = ModelVersion.Gate.HELD if worse else ModelVersion.Gate.PASSED
    return decision, {"decision": str(decision), **report}


def deployed_version(kind: str) -> ModelVersion | None:
    row = DeployedModel.objects.select_related("version").filter(kind=kind).first()
    return row.version if row else None


def deployed_versions() -> dict[str, ModelVersion]:
    return {row.kind: row.version for row in DeployedModel.objects.select_related("version").all()}


def _move_pointer(
    *,
    version: ModelVersion,
    action: str,
    user: AbstractBaseUser | None,
    reason: str,
    automatic: bool,
    rescore: bool = True,
) -> Deployment:
    with transaction.atomic():
        row = DeployedModel.objects.select_for_update().filter(kind=version.kind).first()
        previous = row.version if row else None
        if row is None:
            DeployedModel.objects.create(kind=version.kind, version=version)
        else:
            row.version = version
            row.save(update_fields=["version", "changed_at"])
        deployment = Deployment.objects.create(
            kind=version.kind,
            action=action,
            version=version,
            previous=previous,
            automatic=automatic,
            actor=user if user is not None and user.pk else None,
            reason=reason,
        )
        # robust: the pointer has moved; a failure to queue the re-scoring is logged, it
        # does not undo or fail the deploy (or the training run that made it)
        if rescore:
            transaction.on_commit(lambda: rescore_after_deploy(version.kind), robust=True)
    log.info("%s %s: %s -> %s (%s)", action, version.kind, previous, version, reason)
    return deployment


def deploy_version(
    *,
    version: ModelVersion,
    user: AbstractBaseUser | None,
    reason: str = "",
    automatic: bool = False,
    rescore: bool = True,
) -> Deployment:
    """Point the version's kind at it. A held version needs a reason (a supervisor's word).

    The unlabelled photos are re-scored once it commits; `rescore=False` leaves that to
    the caller (a run deploying both kinds re-scores once, not once per kind).
    """
    reason = (reason or "").strip()
    if version.gate == ModelVersion.Gate.HELD and not reason and not automatic:
        raise ReasonRequired(
            f"{version.name} was held by the gate (worse than the deployed model on the "
            "validation photos); give a reason to deploy it anyway."
        )
    current = deployed_version(version.kind)
    if current is not None and current.pk == version.pk:
        raise Conflict(f"{version.name} is already the deployed {version.kind}.")
    return _move_pointer(
        version=version,
        action=Deployment.Action.DEPLOY,
        user=user,
        reason=reason or ("passed the gate" if automatic else ""),
        automatic=automatic,
        rescore=rescore,
    )


def rollback(*, kind: str, user: AbstractBaseUser | None, reason: str = "") -> Deployment:
    """Move the kind's pointer back to the version the current one replaced when deployed.

    Repeated rollbacks walk back through the deploys (v3 -> v2 -> v1).
    """
    if kind not in ModelKind.values:
        raise NotFound(f"No model kind {kind!r}; use one of {', '.join(ModelKind.values)}.")
    current = deployed_version(kind)
    if current is None:
        raise Conflict(f"No {kind} is deployed; there is nothing to roll back.")
    last = (
        Deployment.objects.filter(
            kind=kind, version=current, action=Deployment.Action.DEPLOY, previous__isnull=False
        )
        .select_related("previous")
        .order_by("-at", "-id")
        .first()
    )
    if last is None:
        raise Conflict(f"{current.name} is the first {kind} deployed; there is no earlier one.")
    return _move_pointer(
        version=last.previous,
        action=Deployment.Action.ROLLBACK,
        user=user,
        reason=(reason or "").strip() or f"rolled back from {current.name}",
        automatic=False,
    )


def rescore_after_deploy(kind: str) -> None:
    """Ask the serving side to re-score the unlabelled photos with the new pointer.

    `inspection.services.suggestions.rescore_unlabelled` is the serving side's
    entry point; without it (serving not installed yet) nothing is scored.
    """
    try:
        from inspection.services.suggestions import rescore_unlabelled
    except ImportError:
        log.warning("no re-scoring entry point (inspection.services.suggestions); skipped")
        return
    log.info("%s deployed: re-scoring the unlabelled photos", kind)
    rescore_unlabelled()

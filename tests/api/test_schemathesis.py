"""The API keeps its published contract: schemathesis over every operation, for each role.

Schemathesis (the engine behind `schemathesis run`) reads /api/v1/schema/ from a
live server of the app (pytest-django's live_server), and sends examples,
boundary cases (coverage), random valid and invalid requests (fuzzing) and
chains of calls (stateful),
with all its checks enabled (`--checks all`). The run's token is renewed by
the auth provider whenever a call revoked it (DELETE /tokens/..., rotation),
so every request carries a valid credential of the role under test.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events

from tests.api.conftest import add_suggestion, ingest
from tests.conftest import make_user

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.schemathesis,
]

MAX_EXAMPLES = int(os.environ.get("RUSTWATCH_SCHEMATHESIS_EXAMPLES", "4"))  # per operation, phase
SEED = 20261202


@dataclass
class RunSummary:
    """What one schemathesis run did: operations, cases and failures per check."""

    role: str
    operations: set[str] = field(default_factory=set)
    cases: int = 0
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    checks: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"{self.role}: {len(self.operations)} operations, {self.cases} cases, "
            f"{sum(self.checks.values())} checks, {len(self.failures)} failures, "
            f"{len(self.errors)} errors, {self.seconds:.1f} s"
        )


def _world(role_user):
    """Rows for the run to find: an asset, an inspection, photos with boxes and suggestions."""
    from inspection.models import Asset, Inspection

    asset = Asset.objects.create(name="Hull 7", kind="hull")
    inspection = Inspection.objects.create(asset=asset, name="Dry dock", created_by=role_user)
    own = ingest(inspection, role_user, name="own.jpg", seed=11)
    other = ingest(inspection, None, name="other.jpg", seed=12)
    for photo in (own, other):
        add_suggestion(photo)


def _token_auth(schema, user):
    """Send a token of `user`; make a new one when a call revoked it (or all of them)."""
    from inspection.models import ApiToken

    held: dict[str, object] = {}

    @schema.auth(refresh_interval=None)
    class TokenAuth:
        def get(self, case, ctx):
            if not ApiToken.objects.filter(pk=getattr(held.get("token"), "pk", None)).exists():
                held["token"], held["key"] = ApiToken.objects.create(
                    user=user, name=f"schemathesis {ApiToken.objects.count()}"
                )
            return held["key"]

        def set(self, case, data, ctx):
            case.headers = {**(case.headers or {}), "Authorization": f"Token {data}"}

    return TokenAuth


def run_schemathesis(base_url: str, role: str, user) -> RunSummary:
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "cache": {"enabled": False},  # no state between runs: the same seed, the same run
            "workers": 1,
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none", "mode": "all"},
            "phases": {"stateful": {"max-steps": 6}},
            # 428 is the status for a missing precondition header (RFC 6585), as declared
            "checks": {
                "enabled": True,
                "missing_required_header": {"expected-statuses": [400, 401, 403, 406, 428]},
            },
            "operations": [
                {
                    # With no model deployed (as in this run) a prediction is 503 by design:
                    # the service is not available yet, and the body says so. Random file
                    # bytes are refused as uploads are (400/413/415), and the run
                    # soon meets the per-token throttle (429 with Retry-After).
                    "include-name": ["POST /api/v1/predict/", "POST /api/v1/predict/batch/"],
                    "checks": {
                        "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", 503]},
                        "positive_data_acceptance": {
                            "expected-statuses": [
                                "2xx",
                                400,
                                401,
                                403,
                                404,
                                409,
                                413,
                                415,
                                429,
                                503,
                            ]
                        },
                    },
                },
                {
                    # A schema cannot know the photo's current version: a valid but stale
                    # If-Match is the declared 412 (with the current state), not a refusal.
                    "include-path-regex": r"^/api/v1/photos/\{id\}/(boxes|verdict|suggestions)/$",
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": ["2xx", 401, 403, 404, 409, 412]
                        },
                        "negative_data_rejection": {
                            "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 412, 415]
                            + [422, 428]
                        },
                    },
                },
                {
                    # A schema can say "binary", not "a decodable JPEG" or "a VOC zip":
                    # random bytes are refused with the file's own 400/413/415.
                    "include-path": [
                        "/api/v1/photos/upload/",
                        "/api/v1/import/",
                        "/api/v1/jobs/import/",
                    ],
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": ["2xx", 400, 401, 403, 404, 409, 413, 415]
                        }
                    },
                },
            ],
        }
    )
    schema = schemathesis.openapi.from_url(f"{base_url}/api/v1/schema/", config=config)
    _token_auth(schema, user)
    summary = RunSummary(role)
    start = time.monotonic()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            recorder = event.recorder
            summary.cases += len(recorder.cases)
            for node in recorder.cases.values():
                summary.operations.add(node.value.operation.label)
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    summary.checks[check.name] += 1
                    if check.status == Status.FAILURE:
                        case = recorder.cases[case_id].value
                        failure = check.failure_info.failure
                        summary.failures.append(
                            f"{check.name}: {case.operation.label}: {failure.title}: "
                            f"{failure.message}\n    {check.failure_info.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError):
            summary.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            summary.errors.append(f"fatal: {event.exception!r}")
    summary.seconds = time.monotonic() - start
    return summary


@pytest.mark.parametrize("role", ["integration", "inspector", "supervisor"])
def test_every_operation_keeps_the_schema(role, live_server, capsys):
    logging.getLogger("django.request").setLevel(logging.CRITICAL)
    user = make_user(f"st-{role}", role)
    _world(user)
    summary = run_schemathesis(live_server.url, role, user)
    with capsys.disabled():
        print("\nschemathesis", summary.line())
        for text in sorted(set(summary.failures)):
            print(text)
    assert not summary.errors, "\n".join(summary.errors)
    assert not summary.failures, "\n".join(sorted(set(summary.failures))[:40])
    assert len(summary.operations) >= 40, summary.operations

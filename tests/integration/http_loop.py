"""The whole learning loop driven over HTTP, for the process tests of both setups.

tests/integration/test_topology.py runs it against docker-compose.yml's
processes on PostgreSQL + Redis; tests/integration/test_embedded_loop.py against
`make run`'s on SQLite + the filesystem broker. The sequence is the issue's:
upload photos -> import their labels (a job) -> train -> gate -> deploy ->
suggestions on the unlabelled photos -> the queue's order changes -> an
inspector accepts a suggestion -> with two more labels the threshold starts
the next run -> the worse candidate is held back -> deploy it with a reason ->
rollback. An inspector labels; a supervisor trains, deploys and rolls back.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import REPO, wait_for

HTTP_TIMEOUT_S = 60  # one request, on a busy 2-core machine
# The environment both setups run the loop with: tiny, strict, quick.
STRICT_GATE = {"classifier": {"roc_auc": -1.01, "accuracy": -1.01}, "detector": {"AP50": -1.01}}
LABELS_FOR_A_RUN = 3
# "loaded classifier classifier-… (was none) in process …" (inspection/serving.py)
MODEL_LOAD = re.compile(r"loaded (classifier|detector) \S+ \(was ")
# "queued 8 photos for scoring in 1 batches (deploy)" (inspection/services/suggestions.py)
RESCORE = re.compile(r"queued \d+ photos for scoring in \d+ batches \(deploy\)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Named processes started here, each in its own session and log; stopped at the end."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp, self.env = tmp, env
        self.procs: dict[str, tuple[subprocess.Popen, object]] = {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, commands: dict[str, list[str]]) -> None:
        for name, argv in commands.items():
            log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop)
            proc = subprocess.Popen(
                argv,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.procs[name] = (proc, log)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def logs(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name)[-chars:]}" for name in self.procs)

    def check_alive(self) -> None:
        for name, (proc, _) in self.procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}\n{self.logs()}")

    def stop(self) -> None:
        for proc, _ in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, log in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()


@dataclass
class LoopPhotos:
    """Photos to upload: labelled ones (with their labels for the import zip) and the rest."""

    # name -> (image bytes, "rust" | "norust", labelImg XML of its boxes or None)
    labelled: dict[str, tuple[bytes, str, bytes | None]] = field(default_factory=dict)
    unlabelled: dict[str, bytes] = field(default_factory=dict)

    def files(self) -> list[tuple[str, tuple[str, bytes, str]]]:
        every = {**{n: v[0] for n, v in self.labelled.items()}, **self.unlabelled}
        return [("files", (name, data, "image/jpeg")) for name, data in every.items()]

    def labels_zip(self) -> bytes:
        """The labelled photos as an import zip: `rust/` and `norust/` folders, XML beside."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name, (data, verdict, xml) in self.labelled.items():
                zf.writestr(f"{verdict}/{name}", data)
                if xml is not None:
                    zf.writestr(f"{verdict}/{Path(name).stem}.xml", xml)
        return buf.getvalue()


def loop_env() -> dict[str, str]:
    """What the processes run with: small and strict (behaviour, not quality, is under test)."""
    import json

    from tests.loop_photos import TINY_TRAIN_CONFIG

    return {
        "RUSTWATCH_TRAIN_CONFIG": json.dumps(TINY_TRAIN_CONFIG),
        "RUSTWATCH_TRAIN_AFTER_LABELS": str(LABELS_FOR_A_RUN),
        "RUSTWATCH_GATE_MARGINS": json.dumps(STRICT_GATE),
        "RUSTWATCH_JOB_HEARTBEAT_S": "2",
        # a one-epoch detector is shy: keep its boxes, so there is a suggestion to accept
        "RUSTWATCH_DETECTOR_SCORE_FLOOR": "0",
        "RUSTWATCH_SUGGESTION_MIN_SCORE": "0",
        "RUSTWATCH_SUGGESTION_MAX_BOXES": "3",
        "PYTHONUNBUFFERED": "1",
    }


class Client:
    """One person's token session against the API; every call checks the processes first."""

    def __init__(self, procs: Processes, token: str) -> None:
        self.procs = procs
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {token}"
        self.base = procs.url + "/api/v1"

    def call(self, method: str, path: str, expect: int = 200, **kwargs) -> dict:
        self.procs.check_alive()
        kwargs.setdefault("timeout", HTTP_TIMEOUT_S)
        r = self.http.request(method, self.base + path, **kwargs)
        assert r.status_code == expect, (method, path, r.status_code, r.text[:1000])
        return r.json()

    def get(self, path: str) -> dict:
        return self.call("GET", path)

    def job(self, job_id: int, deadline: float) -> dict:
        """The job once it finished (fails with the processes' logs if it does not in time)."""

        def finished():
            job = self.get(f"/jobs/{job_id}/")
            return job if job["state"] in ("succeeded", "failed", "cancelled") else None

        try:
            job = wait_for(finished, timeout=deadline, interval=1, what=f"job {job_id}")
        except TimeoutError as exc:
            pytest.fail(f"{exc}\n{self.procs.logs()}")
        assert job["state"] == "succeeded", (job, self.procs.logs())
        return job


def wait_until_up(procs: Processes, deadline: float = 180) -> None:
    def up() -> bool:
        procs.check_alive()
        try:
            return requests.get(procs.url + "/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    wait_for(up, timeout=deadline, interval=0.5, what="the web process answering /healthz")


def drive_the_loop(
    procs: Processes,
    *,
    ines: Client,
    sam: Client,
    inspection_id: int,
    photos: LoopPhotos,
    deadline: float,
) -> dict[str, str]:
    """The issue's sequence, over HTTP; returns the first deployed versions by kind."""
    from inspection.models import DeployedModel, Photo

    wait_until_up(procs)
    # upload the photos, then import the labels of some of them (the import is a job)
    body = ines.call(
        "POST",
        "/photos/upload/",
        expect=201,
        data={"inspection": str(inspection_id)},
        files=photos.files(),
        timeout=180,
    )
    ids = {row["filename"]: row["photo"]["id"] for row in body["results"]}
    open_ids = {ids[name] for name in photos.unlabelled}
    job = ines.call(
        "POST",
        "/import/",
        expect=202,
        data={"inspection": str(inspection_id)},
        files={"file": ("labels.zip", photos.labels_zip(), "application/zip")},
        timeout=180,
    )
    report = ines.job(job["id"], deadline)["result"]
    assert report["duplicates"] == len(photos.labelled), report
    assert report["verdicts"] == len(photos.labelled) and report["boxes"] > 0, report

    limit = len(photos.files())
    before = ines.get(f"/queue/?limit={limit}")["results"]
    assert {r["id"] for r in before} == open_ids, before
    assert all(r["queue_score"] is None for r in before), "no model yet: upload order"

    # train -> gate -> deploy
    run = sam.call("POST", "/runs/", expect=202, json={})
    sam.job(run["job"]["id"], deadline)
    models = sam.get("/models/")
    first = {kind: v["name"] for kind, v in models["deployed"].items()}
    assert set(first) == {"classifier", "detector"}, models
    assert all(v["gate"] == "first" for v in models["versions"]), models["versions"]

    # the deploy re-scores the unlabelled photos: suggestions appear
    def scored() -> bool:
        return all(ines.get(f"/photos/{i}/")["suggestion_state"] == "ready" for i in open_ids)

    wait_for(scored, timeout=deadline, interval=1, what="suggestions on the unlabelled photos")

    # the queue's order changes: by the deployed models' active-learning score now
    after = ines.get(f"/queue/?limit={limit}")["results"]
    assert {r["id"] for r in after} == open_ids
    scores = [r["queue_score"] for r in after]
    assert None not in scores and scores == sorted(scores, reverse=True), after
    assert [r["id"] for r in after] != [r["id"] for r in before], (before, after)
    deployed = {d.kind: d.version for d in DeployedModel.objects.select_related("version")}
    for photo in Photo.objects.filter(pk__in=open_ids):
        assert photo.scored_by_id == deployed["classifier"].pk, photo.pk
        assert photo.detected_by_id == deployed["detector"].pk, photo.pk

    # an inspector takes the next photo and accepts one of its suggestions (If-Match)
    taken = ines.get("/queue/next/")["photo"]
    assert taken["id"] in open_ids, taken
    state = ines.get(f"/photos/{taken['id']}/boxes/")
    suggested = [b for b in state["boxes"] if b["source"] == "model" and b["state"] == "suggested"]
    assert suggested, state
    box = suggested[0]
    assert box["model_version"] == first["detector"]
    state = ines.call(
        "PUT",
        f"/photos/{taken['id']}/boxes/",
        json={"boxes": [{k: box[k] for k in ("id", "xmin", "ymin", "xmax", "ymax", "label")}]},
        headers={"If-Match": f'"{state["version"]}"'},
    )
    kept = next(b for b in state["boxes"] if b["id"] == box["id"])
    assert (kept["source"], kept["state"]) == ("model", "accepted"), state
    assert state["labelled"] and state["verdict"] == "rust", "a rust box labels the photo"
    stats = next(v for v in sam.get("/models/")["versions"] if v["name"] == first["detector"])
    assert stats["suggestions"]["accepted"] == 1 and stats["suggestions"]["accepted_share"] == 1.0

    # the accepted suggestion is one of the N labels: two verdicts more start the next run
    def label_run():
        return next((r for r in sam.get("/runs/")["results"] if r["trigger"] == "labels"), None)

    rest = sorted(open_ids - {taken["id"]})[: LABELS_FOR_A_RUN - 1]
    for n, pid in enumerate(rest, 2):
        assert label_run() is None, f"a run started after {n - 1} of {LABELS_FOR_A_RUN} labels"
        version = ines.get(f"/photos/{pid}/")["version"]
        ines.call(
            "POST",
            f"/photos/{pid}/verdict/",
            json={"verdict": "norust"},
            headers={"If-Match": f'"{version}"'},
        )
    run = wait_for(label_run, timeout=120, interval=1, what="a run started by the labels")
    first_run = next(r for r in sam.get("/runs/")["results"] if r["trigger"] == "manual")
    assert run["labels_at_start"] == first_run["labels_at_start"] + LABELS_FOR_A_RUN
    sam.job(run["job"]["id"], deadline)

    # the candidate is held back; the deployed versions stay
    models = sam.get("/models/")
    clf = [v for v in models["versions"] if v["kind"] == "classifier"]
    held = next(v for v in clf if v["name"] != first["classifier"])
    assert held["gate"] == "held" and not held["deployed"], held
    assert {k: v["name"] for k, v in models["deployed"].items()} == first, models["versions"]

    # a supervisor deploys it anyway, with a reason, then rolls back
    refused = sam.call("POST", f"/models/{held['id']}/deploy/", expect=400, json={})
    assert refused["code"] == "reason_required"
    sam.call("POST", f"/models/{held['id']}/deploy/", json={"reason": "reviewed the photos"})
    assert sam.get("/models/")["deployed"]["classifier"]["name"] == held["name"]
    sam.call("POST", "/models/classifier/rollback/", json={"reason": "field reports"})
    models = sam.get("/models/")
    assert models["deployed"]["classifier"]["name"] == first["classifier"]
    actions = [(d["action"], d["version"], d["actor"]) for d in models["deployments"]][:2]
    assert actions == [
        ("rollback", first["classifier"], "sam"),
        ("deploy", held["name"], "sam"),
    ]
    procs.check_alive()
    return first

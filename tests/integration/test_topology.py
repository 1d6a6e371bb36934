"""The production topology, proven with processes, driven over HTTP.

gunicorn, the two workers with docker-compose.yml's queue options (`worker`:
default + predict, prefork; `worker-gpu`: train, one child per run) and beat
(django-celery-beat's DatabaseScheduler), against the real PostgreSQL and
Redis on loopback. Through the API only: upload seed photos -> import their
labels -> train (tiny settings) -> the gate deploys the first versions ->
(suggestions on the unlabelled photos, when the serving side is installed) ->
label three photos -> the label threshold starts the next run by itself -> the
gate holds it (this topology's margins demand a clear improvement) -> a
supervisor deploys it with a reason -> rollback.

PostgreSQL + Redis only (CI pass 2): the embedded setup is covered by
tests/integration/test_training_worker.py and tests/smoke.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest
import requests

from tests.conftest import SEED
from tests.integration.conftest import REPO, database_url_for_worker, wait_for
from tests.loop_photos import TINY_TRAIN_CONFIG

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(
        not os.environ.get("CELERY_BROKER_URL", "").startswith("redis")
        or not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="the production topology runs on PostgreSQL + Redis (CI pass 2)",
    ),
]

DEADLINE_S = 480
HTTP_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Topology:
    """The processes of docker-compose.yml, started here, stopped at the end."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp, self.env, self.procs = tmp, env, {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        py, tag = sys.executable, uuid.uuid4().hex[:6]
        commands = {
            "web": [py, "-m", "gunicorn", "inspection.wsgi:application",
                    "--bind", f"127.0.0.1:{self.port}", "--workers", "2", "--timeout", "120"],
            "worker": [py, "-m", "celery", "-A", "inspection", "worker",
                       "--queues", "default,predict", "--concurrency", "2",
                       "--hostname", f"worker-{tag}@%h", "--loglevel", "INFO"],
            "worker-gpu": [py, "-m", "celery", "-A", "inspection", "worker",
                           "--queues", "train", "--concurrency", "1",
                           "--max-tasks-per-child", "1", "--prefetch-multiplier", "1",
                           "--hostname", f"gpu-{tag}@%h", "--loglevel", "INFO"],
            "beat": [py, "-m", "celery", "-A", "inspection", "beat", "--scheduler",
                     "django_celery_beat.schedulers:DatabaseScheduler", "--pidfile=",
                     "--schedule", str(self.tmp / "beat-schedule"), "--loglevel", "INFO"],
        }  # fmt: skip
        for name, argv in commands.items():
            log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop)
            self.procs[name] = (
                subprocess.Popen(
                    argv,
                    cwd=REPO,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                ),
                log,
            )

    def logs(self, chars: int = 3000) -> str:
        out = []
        for name in self.procs:
            text = (self.tmp / f"{name}.log").read_text(errors="replace")[-chars:]
            out.append(f"--- {name} ---\n{text}")
        return "\n".join(out)

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
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()


@pytest.fixture
def topology(tmp_path, settings, redis_test_url):
    strict = {"classifier": {"roc_auc": -1.01, "accuracy": -1.01}, "detector": {"AP50": -1.01}}
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "inspection.settings",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "RUSTWATCH_VAR": str(tmp_path / "var"),
        "DATABASE_URL": database_url_for_worker(),
        "CELERY_BROKER_URL": redis_test_url,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "RUSTWATCH_WORK_DIR": str(tmp_path / "work"),
        "RUSTWATCH_EMBEDDING_CACHE": str(tmp_path / "embeddings"),
        "RUSTWATCH_TRAIN_CONFIG": json.dumps(TINY_TRAIN_CONFIG),
        "RUSTWATCH_TRAIN_AFTER_LABELS": "3",
        "RUSTWATCH_GATE_MARGINS": json.dumps(strict),
        "RUSTWATCH_JOB_HEARTBEAT_S": "2",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    top = Topology(tmp_path, env)
    top.start()
    yield top
    top.stop()


def seed_files() -> tuple[list[Path], list[Path], list[Path]]:
    """10 boxed rust photos, 10 no-rust photos, 5 rust photos to leave unlabelled."""
    if not SEED.is_dir():
        pytest.skip(f"seed photos not found at {SEED}")
    boxed = sorted((SEED / "detection" / "train").glob("*.jpg"))[:10]
    norust = sorted((SEED / "classification" / "norust").glob("*.jpg"))[:10]
    names = {p.name for p in (SEED / "detection").glob("*/*.jpg")}
    rest = [p for p in sorted((SEED / "classification" / "rust").glob("*.jpg"))]
    return boxed, norust, [p for p in rest if p.name not in names][:5]


def labels_zip(boxed: list[Path], norust: list[Path]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in boxed:
            zf.write(p, f"rust/{p.name}")
            zf.write(p.with_suffix(".xml"), f"rust/{p.stem}.xml")
        for p in norust:
            zf.write(p, f"norust/{p.name}")
    return buf.getvalue()


def test_the_whole_loop_over_http_on_the_production_topology(topology, supervisor, inspection):
    from inspection.services.tokens import issue_token

    _, token = issue_token(user=supervisor, issued_by=supervisor)
    http = requests.Session()
    http.headers["Authorization"] = f"Token {token}"
    base = topology.url + "/api/v1"

    def get(path: str):
        topology.check_alive()
        r = http.get(base + path, timeout=HTTP_TIMEOUT_S)
        assert r.status_code == 200, (path, r.status_code, r.text[:500])
        return r.json()

    wait_for(lambda: _up(topology, http), timeout=180, what="gunicorn answering /healthz")
    boxed, norust, unlabelled = seed_files()
    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in boxed + norust + unlabelled]
    r = http.post(
        base + "/photos/upload/",
        data={"inspection": str(inspection.pk)},
        files=files,
        timeout=120,
    )
    assert r.status_code == 201, r.text[:1000]
    r = http.post(
        base + "/import/",
        data={"inspection": str(inspection.pk)},
        files={"file": ("labels.zip", labels_zip(boxed, norust), "application/zip")},
        timeout=120,
    )
    assert r.status_code == 201, r.text[:1000]
    report = r.json()
    assert report["duplicates"] == 20 and report["boxes"] > 0, report

    # train -> gate -> deploy
    r = http.post(base + "/runs/", json={}, timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 202, r.text
    first_job = r.json()["job"]["id"]
    job = _wait_job(get, topology, first_job)
    assert job["state"] == "succeeded", (job, topology.logs())
    models = get("/models/")
    first = {k: v["name"] for k, v in models["deployed"].items()}
    assert set(first) == {"classifier", "detector"}, models
    assert all(v["gate"] == "first" for v in models["versions"])

    photos = get(f"/photos/?inspection={inspection.pk}&page_size=100")["results"]
    open_ids = [p["id"] for p in photos if p["verdict"] == "unknown"]
    assert len(open_ids) == 5
    if importlib.util.find_spec("inspection.services.suggestions") is not None:
        # the serving side re-scores the unlabelled photos after the deploy
        def scored():
            states = [get(f"/photos/{i}/").get("suggestion_state") for i in open_ids]
            return all(s == "ready" for s in states)

        wait_for(scored, timeout=DEADLINE_S, interval=2, what="suggestions on unlabelled photos")

    # three new labels: the threshold starts the next run by itself
    for pid in open_ids[:3]:
        version = get(f"/photos/{pid}/")["version"]
        r = http.post(
            base + f"/photos/{pid}/verdict/",
            json={"verdict": "rust"},
            headers={"If-Match": f'"{version}"'},
            timeout=HTTP_TIMEOUT_S,
        )
        assert r.status_code == 200, r.text

    def label_run():
        runs = get("/runs/")["results"]
        return next((run for run in runs if run["trigger"] == "labels"), None)

    run = wait_for(label_run, timeout=60, interval=1, what="a run started by the labels")
    job = _wait_job(get, topology, run["job"]["id"])
    assert job["state"] == "succeeded", (job, topology.logs())

    # the candidate is held back; the deployed versions stay
    models = get("/models/")
    held = next(
        v
        for v in models["versions"]
        if v["kind"] == "classifier" and v["name"] != first["classifier"]
    )
    assert held["gate"] == "held" and not held["deployed"], held
    assert {k: v["name"] for k, v in models["deployed"].items()} == first, models["versions"]
    r = http.post(base + f"/models/{held['id']}/deploy/", json={}, timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 400 and r.json()["code"] == "reason_required"
    r = http.post(
        base + f"/models/{held['id']}/deploy/",
        json={"reason": "reviewed the validation photos"},
        timeout=HTTP_TIMEOUT_S,
    )
    assert r.status_code == 200, r.text
    assert get("/models/")["deployed"]["classifier"]["name"] == held["name"]

    r = http.post(
        base + "/models/classifier/rollback/", json={"reason": "field reports"}, timeout=30
    )
    assert r.status_code == 200, r.text
    models = get("/models/")
    assert models["deployed"]["classifier"]["name"] == first["classifier"]
    actions = [(d["action"], d["version"], d["actor"]) for d in models["deployments"]][:2]
    assert actions == [
        ("rollback", first["classifier"], supervisor.username),
        ("deploy", held["name"], supervisor.username),
    ]
    topology.check_alive()  # web, both workers and beat ran the whole loop


def _up(topology: Topology, http: requests.Session) -> bool:
    topology.check_alive()
    try:
        return http.get(topology.url + "/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _wait_job(get, topology: Topology, job_id: int) -> dict:
    def finished():
        job = get(f"/jobs/{job_id}/")
        return job if job["state"] in ("succeeded", "failed", "cancelled") else None

    try:
        return wait_for(finished, timeout=DEADLINE_S, interval=2, what=f"job {job_id}")
    except TimeoutError as exc:
        pytest.fail(f"{exc}\n{topology.logs()}")

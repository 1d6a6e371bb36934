"""Fixtures shared by the whole suite: isolated media, users per role, API clients."""

from __future__ import annotations

import atexit
import importlib
import io
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Tiny trained models, deployed per test (tests/model_fixtures.py).
pytest_plugins = ["tests.model_fixtures"]

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SEED = SHARED / "data" / "corrosion-seed"
WEIGHTS = SHARED / "weights"


@pytest.fixture(scope="session")
def seed_dir() -> Path:
    if not SEED.is_dir():
        pytest.skip(f"seed photos not found at {SEED}")
    return SEED


def _offline_keras_home() -> Path:
    """A KERAS_HOME of this test run's own holding ../shared/weights (no download).

    Keras reads KERAS_HOME once, when it is first imported, so it is set here,
    when pytest loads this file, before any test can import Keras.
    """
    home = Path(tempfile.mkdtemp(prefix="rustwatch-keras-"))
    atexit.register(shutil.rmtree, home, True)
    (home / "models").mkdir()
    for f in WEIGHTS.glob("*.h5"):
        shutil.copy(f, home / "models" / f.name)
    os.environ["KERAS_HOME"] = str(home)
    return home


KERAS_HOME = _offline_keras_home()
# Embeddings run in Keras here: LiteRT converts each new set of weights once (~10 s), and
# most tests train fresh tiny backbones. tests/ml/test_embedding_runtime.py checks that
# LiteRT, the CPU default, gives the same vectors and predictions.
os.environ.setdefault("RUSTWATCH_EMBED_RUNTIME", "keras")
# The same for the detector network (ml/serving.py); tests/ml/test_serving.py checks LiteRT.
os.environ.setdefault("RUSTWATCH_DETECT_RUNTIME", "keras")


@pytest.fixture(scope="session")
def keras_home() -> Path:
    """The offline KERAS_HOME that weights="imagenet" resolves from."""
    return KERAS_HOME


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """Keep the SQLite test database in a file, not in memory.

    Integration tests start real Celery worker processes that must see the rows
    the test wrote; an in-memory database is private to one process.
    """
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        test = db.setdefault("TEST", {})
        if not test.get("NAME") or test["NAME"] == ":memory:":
            test["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing():
    """Hash test passwords with MD5: the real PBKDF2 costs ~0.3 s per user on 2 cores.

    Only this test process is affected; `make run` in the smoke test keeps the
    real hasher.
    """
    from django.test.utils import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def _media_root(tmp_path, settings):
    """Every Django test writes photos into its own folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    # Users are made in many tests: PBKDF2's deliberate slowness buys nothing here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings.MEDIA_ROOT


def pytest_collection_modifyitems(items) -> None:
    """Every transactional test restores the database it found (serialized_rollback).

    A transactional test ends with a flush; without the rollback, the flush's
    post_migrate re-creates content types that the next restoring test then loads
    again (a UNIQUE error), and mixed kinds of test break each other by order.
    """
    for item in items:
        marker = item.get_closest_marker("django_db")
        kwargs = dict(marker.kwargs) if marker else {}
        transactional = kwargs.get("transaction") or (marker and marker.args and marker.args[0])
        if not (transactional or {"transactional_db", "live_server"} & set(item.fixturenames)):
            continue
        if not kwargs.get("serialized_rollback"):
            kwargs.update(transaction=True, serialized_rollback=True)
            item.add_marker(pytest.mark.django_db(**kwargs), append=False)


_DB_FIXTURES = {"db", "transactional_db", "live_server", "django_db_serialized_rollback"}


@pytest.fixture(autouse=True)
def _seed_rows(request):
    """Migration 0002's rows (the role groups, the `rust` label) in every database test.

    A transactional test ends with a flush, which also removes the rows the data
    migration made, so the tests after it would find no roles and no label.
    """
    if request.node.get_closest_marker("django_db") is None and not (
        _DB_FIXTURES & set(request.fixturenames)
    ):
        return
    request.getfixturevalue("db")  # the test's own kind: plain or transactional
    from django.apps import apps

    seed = importlib.import_module("inspection.migrations.0002_roles_and_rust_label")
    seed.forwards(apps, None)


@pytest.fixture(autouse=True)
def _celery_eager(request):
    """Unit and API tests run Celery tasks in-process; integration tests use real workers."""
    from inspection.celery import app

    if "integration" in str(request.node.fspath):
        yield
        return
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False


def make_user(username: str, role: str | None, **extra):
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(username=username, password="pw-" + username, **extra)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def integration_user(db):
    return make_user("drone", "integration")


@pytest.fixture
def inspector(db):
    return make_user("ines", "inspector")


@pytest.fixture
def supervisor(db):
    return make_user("sam", "supervisor")


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def client_for(db):
    """client_for(user) -> an APIClient authenticated as that user."""
    from rest_framework.test import APIClient

    def make(user):
        c = APIClient()
        if user is not None:
            c.force_authenticate(user)
        return c

    return make


def jpeg_bytes(
    width: int = 64, height: int = 48, color=(180, 80, 30), fmt: str = "JPEG", **save_kwargs
) -> bytes:
    """A small real image, encoded."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, fmt, **save_kwargs)
    return buf.getvalue()


@pytest.fixture
def asset(db):
    from inspection.models import Asset

    return Asset.objects.create(name="Hull 7", kind="hull")


@pytest.fixture
def inspection(asset):
    from inspection.models import Inspection

    return Inspection.objects.create(asset=asset, name="2026 dry dock")

"""The deployed models inside a worker process: loaded once, swapped when the pointer moves.

A `predict` worker asks `deployed_models()` at the start of every task (batch). It
reads the DeployedModel pointers (one query) and loads a version only when the
pointer names one it does not hold yet, so a deploy or a rollback takes effect on
the next batch without a restart, and a batch is scored by one consistent pair.

Loading happens after fork, in the process that predicts: a prefork child loads on
`worker_process_init` (so the first request does not pay for it), and any other
process (the solo pool, a test) on first use. TensorFlow never runs in threads here.

Artifacts and photos are read through Django's storage API. Where the storage
has local paths (FileSystemStorage, a shared volume) they are used in place;
otherwise (django-storages: S3 and the like) an artifact folder is downloaded
once under `RUSTWATCH_WORK_DIR` (`snapshots.materialize`; artifacts are immutable,
so a download is never stale) and a photo into a temporary file for the batch.

This module imports TensorFlow lazily; the web process never loads models.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.files.storage import Storage, default_storage

from inspection.models import DeployedModel, ModelKind, ModelVersion

log = logging.getLogger(__name__)

__all__ = [
    "ServingModels",
    "artifact_dir",
    "deployed_models",
    "deployed_versions",
    "local_file",
    "reset_models",
]


@dataclass(frozen=True)
class LoadedModel:
    """One loaded version: the row's id and name, and the ml object that predicts."""

    version_id: int
    name: str
    model: Any  # ml.classifier.RustClassifier | ml.detector.RustDetector (ml.serving.load_detector)


@dataclass(frozen=True)
class ServingModels:
    """What scores a batch: the deployed classifier and detector (either may be missing)."""

    classifier: LoadedModel | None
    detector: LoadedModel | None

    @property
    def empty(self) -> bool:
        return self.classifier is None and self.detector is None

    def versions(self) -> dict[str, str]:
        """{"classifier": name, "detector": name} of what is loaded."""
        return {
            kind: loaded.name
            for kind, loaded in (("classifier", self.classifier), ("detector", self.detector))
            if loaded is not None
        }


_loaded: dict[str, LoadedModel] = {}
_lock = threading.Lock()  # one loader at a time, should a caller use threads after all


def deployed_versions() -> dict[str, ModelVersion]:
    """The versions the pointers name now, by kind (no models loaded: the web may call it)."""
    rows = DeployedModel.objects.select_related("version")
    return {row.kind: row.version for row in rows}


def deployed_models() -> ServingModels:
    """The deployed models, loading only those whose pointer moved since the last call."""
    wanted = deployed_versions()
    with _lock:
        for kind in ModelKind.values:
            version = wanted.get(kind)
            held = _loaded.get(kind)
            if version is None:
                _loaded.pop(kind, None)
            elif held is None or held.version_id != version.pk:
                _loaded[kind] = LoadedModel(version.pk, version.name, _load(version))
                log.info(
                    "loaded %s %s (was %s) in process %d",
                    kind,
                    version.name,
                    held.name if held else "none",
                    os.getpid(),
                )
        return ServingModels(_loaded.get(ModelKind.CLASSIFIER), _loaded.get(ModelKind.DETECTOR))


def reset_models() -> None:
    """Forget what is loaded (tests; a worker never needs it)."""
    with _lock:
        _loaded.clear()


def warm_up(**_: Any) -> None:
    """`worker_process_init` receiver: load the deployed models in a fresh prefork child."""
    try:
        deployed_models()
    except Exception:  # a broken artifact must not kill the worker: tasks report it per photo
        log.exception("could not load the deployed models at worker start")


def _load(version: ModelVersion) -> Any:
    root = artifact_dir(version.artifact)
    if version.kind == ModelKind.CLASSIFIER:
        from ml.classifier import RustClassifier

        return RustClassifier.load(_model_folder(root, "classifier", "classifier.json"))
    from ml.serving import load_detector

    return load_detector(_model_folder(root, "detector", "detector.json"))


def _model_folder(root: Path, sub: str, marker: str) -> Path:
    """The model's own folder: `<artifact>/<sub>/` (an ml artifact) or the artifact itself."""
    if (root / sub / marker).is_file():
        return root / sub
    if (root / marker).is_file():
        return root
    raise FileNotFoundError(f"artifact {root} holds no {sub} model ({sub}/{marker})")


def _local_path(storage: Storage, name: str) -> Path | None:
    """The file's path on this machine, when the storage keeps files locally."""
    try:
        path = Path(storage.path(name))
    except NotImplementedError:  # remote storage (S3, GCS, ...): no local path
        return None
    return path if path.exists() else None


def artifact_dir(name: str) -> Path:
    """A local folder holding the artifact `name` (a storage folder), downloaded if need be."""
    from inspection.services.snapshots import materialize

    return materialize(name)


@contextlib.contextmanager
def local_file(name: str, storage: Storage | None = None) -> Iterator[Path]:
    """A local path to the stored file `name` for the block (a temporary copy if remote)."""
    storage = storage or default_storage
    local = _local_path(storage, name)
    if local is not None:
        yield local
        return
    suffix = Path(name).suffix
    fd, tmp = tempfile.mkstemp(prefix="rustwatch-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as dst, storage.open(name, "rb") as src:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield Path(tmp)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)

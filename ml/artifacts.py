"""Model artifacts: one directory per training run, loadable anywhere.

    ART/
      manifest.json              config, dataset hash + split, metrics,
                                 thresholds, library versions, timings
      classifier/                classifier_backbone.keras, classifier_head.keras,
                                 classifier.json (config, threshold)
      detector/                  detector.keras, detector.json (when trained)
      logs/                      TensorBoard event files

An artifact is written into a temporary sibling directory and renamed into
place, so a killed run never leaves a half-written artifact under its name.
Loading it and predicting gives the same numbers as before saving.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ml.json_safe import dumps
from ml.voc import write_atomic

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class ArtifactError(ValueError):
    """An artifact directory that cannot be read; names the path."""


def library_versions() -> dict[str, str]:
    """Versions of what produced the models (cheap: metadata, no imports)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in (
        "tensorflow",
        "keras",
        "keras-hub",
        "scikit-learn",
        "numpy",
        "pycocotools",
        "Pillow",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


@dataclass
class Artifact:
    """A loaded artifact: the models and the manifest that describes them."""

    path: Path
    manifest: dict
    classifier: object | None = None  # ml.classifier.RustClassifier
    detector: object | None = None  # ml.detector.RustDetector
    extra: dict = field(default_factory=dict)


def new_staging_dir(out: str | os.PathLike) -> Path:
    """A temporary directory beside `out`, later moved there by `commit_artifact`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))


def write_manifest(directory: Path, manifest: dict) -> None:
    manifest = {
        "format": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(),
        "libraries": library_versions(),
        **manifest,
    }
    write_atomic(directory / MANIFEST, dumps(manifest, indent=1, default=str).encode())


def commit_artifact(staging: Path, out: str | os.PathLike) -> Path:
    """Move a finished staging directory to `out` (replacing an older artifact)."""
    out = Path(out)
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)
    return out


def save_artifact(out: str | os.PathLike, manifest: dict, classifier=None, detector=None) -> Path:
    """Write models + manifest.json into `out` atomically."""
    staging = new_staging_dir(out)
    try:
        if classifier is not None:
            classifier.save(staging / "classifier")
        if detector is not None:
            detector.save(staging / "detector")
        write_manifest(staging, manifest)
        return commit_artifact(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def read_manifest(path: str | os.PathLike) -> dict:
    path = Path(path)
    f = path / MANIFEST
    if not f.is_file():
        raise ArtifactError(f"{path}: not a model artifact (no {MANIFEST})")
    try:
        manifest = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{f}: invalid JSON: {exc}") from exc
    if manifest.get("format") != FORMAT_VERSION:
        raise ArtifactError(f"{f}: format {manifest.get('format')!r}, expected {FORMAT_VERSION}")
    return manifest


def load_artifact(path: str | os.PathLike, *, detector: bool = True) -> Artifact:
    """Load the classifier (and detector, when present and wanted) of an artifact."""
    from ml.classifier import RustClassifier

    path = Path(path)
    manifest = read_manifest(path)
    try:
        clf = RustClassifier.load(path / "classifier") if (path / "classifier").is_dir() else None
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{path / 'classifier'}: cannot load: {exc}") from exc
    det = None
    if detector and (path / "detector").is_dir():
        from ml.detector import RustDetector

        det = RustDetector.load(path / "detector")
    return Artifact(path=path, manifest=manifest, classifier=clf, detector=det)

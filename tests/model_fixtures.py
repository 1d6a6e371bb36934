"""Tiny trained models for the serving tests: trained once per session, deployed per test.

`tiny_artifact` trains a classifier (MobileNet 0.25 at 48 px) and a detector
(64 px, one epoch) on synthetic photos with `ml.training.train`: behaviour, not
quality, is under test. `deploy_tiny_models()` copies it into the test's media
storage as two versions (classifier + detector) and points the deployed
pointers at them, as a real deploy does.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

TINY_CLASSIFIER = {"backbone": "mobilenet_025", "image_sizes": (48,), "n_aug": 1}
TINY_DETECTOR = {
    "image_size": 64,
    "max_level": 5,
    "epochs": 1,
    "batch_size": 4,
    "predict_batch": 2,
    "fpn_width": 16,
    "head_width": 16,
    "head_layers": 1,
}


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory, keras_home) -> Path:
    """An ml artifact folder (classifier/ + detector/ + manifest.json) of tiny models."""
    from ml.classifier import ClassifierConfig
    from ml.dataset import from_folders
    from ml.detector import DetectorConfig
    from ml.embeddings import EmbeddingCache
    from ml.training import train
    from tests.ml.conftest import make_source

    root = tmp_path_factory.mktemp("tiny-models")
    voc = from_folders(make_source(root / "src"), root / "voc")
    sets = voc.root / "ImageSets" / "Main"
    boxed = [p.id for p in voc.photos if p.boxed]
    rest = [p.id for p in voc.photos if not p.boxed]
    (sets / "train.txt").write_text("\n".join(boxed + rest[:8]) + "\n")
    (sets / "val.txt").write_text("\n".join(rest[8:]) + "\n")
    (sets / "test.txt").write_text("")
    from ml.dataset import load_dataset

    return train(
        load_dataset(voc.root),
        root / "artifact",
        classifier_config=ClassifierConfig(**TINY_CLASSIFIER),
        detector_config=DetectorConfig.from_dict(TINY_DETECTOR),
        cache=EmbeddingCache(root / "emb"),
        progress=False,
    )


@pytest.fixture
def deploy_tiny_models(tiny_artifact, settings) -> Callable[..., dict]:
    """deploy(tag="1", kinds=("classifier", "detector")) -> {kind: ModelVersion}, deployed."""
    from inspection.models import DeployedModel, ModelVersion

    def deploy(tag: str = "1", kinds: tuple[str, ...] = ("classifier", "detector")) -> dict:
        name = f"models/tiny-{tag}"
        shutil.copytree(tiny_artifact, Path(settings.MEDIA_ROOT) / name, dirs_exist_ok=True)
        out = {}
        for kind in kinds:
            version = ModelVersion.objects.create(
                kind=kind, name=f"{kind}-tiny{tag}", artifact=name
            )
            DeployedModel.objects.update_or_create(kind=kind, defaults={"version": version})
            out[kind] = version
        return out

    return deploy


@pytest.fixture
def deploy_tiny_models_rows(db) -> dict:
    """Deployed pointers naming versions with no artifact: for web-side tests that never predict."""
    from inspection.models import DeployedModel, ModelVersion

    out = {}
    for kind in ("classifier", "detector"):
        version = ModelVersion.objects.create(
            kind=kind, name=f"{kind}-rows", artifact="models/none"
        )
        DeployedModel.objects.update_or_create(kind=kind, defaults={"version": version})
        out[kind] = version
    return out

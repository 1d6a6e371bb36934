"""Where a run's detector starts (services.training.warm_start_detector), without TensorFlow.

The decision reads the deployed detector's `detector.json` only, so a version whose
storage folder holds just that file is enough here; tests/ml/test_training_hooks.py
trains from real deployed weights, and the topology test warm-starts a real second run.
"""

from __future__ import annotations

import json

import pytest

from inspection.models import Job, ModelVersion, TrainingRun
from inspection.services import jobs, registry, snapshots
from inspection.services.training import ml_configs, warm_start_detector

pytestmark = pytest.mark.django_db

TINY = {"image_size": 64, "max_level": 5, "fpn_width": 16, "head_width": 16, "epochs": 40}


def _run(warm_start=None) -> TrainingRun:
    job = jobs.create_job(kind=Job.Kind.TRAIN)
    return TrainingRun.objects.create(job=job, config={"warm_start": warm_start})


def _deploy_detector(tmp_path, config: dict, name="detector-1") -> ModelVersion:
    from ml.detector import FORMAT_VERSION, DetectorConfig

    local = tmp_path / name / "detector"
    local.mkdir(parents=True)
    meta = {"format": FORMAT_VERSION, "config": DetectorConfig(**config).to_dict(), "info": {}}
    (local / "detector.json").write_text(json.dumps(meta))
    snapshots.upload_folder(local.parent, f"models/{name}")
    version = ModelVersion.objects.create(
        kind="detector", name=name, artifact=f"models/{name}", gate="first"
    )
    registry.deploy_version(version=version, user=None, automatic=True, rescore=False)
    return version


def test_the_deployed_detector_of_the_same_architecture_is_the_start(tmp_path, settings):
    settings.RUSTWATCH_TRAIN_CONFIG = {"detector": TINY}
    settings.RUSTWATCH_WARM_START, settings.RUSTWATCH_WARM_START_EPOCHS = True, 12
    run = _run()
    _, det_cfg = ml_configs(run)
    init, cfg, words = warm_start_detector(run, det_cfg)
    assert (init, cfg.epochs, words) == (None, 40, "ImageNet (no detector deployed yet)")

    _deploy_detector(tmp_path, TINY)
    init, cfg, words = warm_start_detector(run, det_cfg)
    assert init is not None and (init / "detector.json").is_file()
    assert (cfg.epochs, words) == (12, "detector-1 (12 epochs)")
    assert cfg.image_size == det_cfg.image_size == 64  # only the epochs change
    settings.RUSTWATCH_WARM_START_EPOCHS = 100  # never more than the run's own epochs
    assert warm_start_detector(run, det_cfg)[1].epochs == 40

    # the run's own word wins over the setting, both ways
    assert warm_start_detector(_run(warm_start=False), det_cfg)[2] == "ImageNet (warm start off)"
    settings.RUSTWATCH_WARM_START = False
    assert warm_start_detector(run, det_cfg)[2] == "ImageNet (warm start off)"
    assert warm_start_detector(_run(warm_start=True), det_cfg)[0] is not None


def test_another_architecture_falls_back_to_imagenet_saying_why(tmp_path, settings):
    settings.RUSTWATCH_TRAIN_CONFIG = {"detector": TINY}
    settings.RUSTWATCH_WARM_START = True
    _deploy_detector(tmp_path, {**TINY, "image_size": 96, "max_level": 5})
    run = _run()
    _, det_cfg = ml_configs(run)
    init, cfg, words = warm_start_detector(run, det_cfg)
    assert init is None and cfg.epochs == 40
    assert words.startswith("ImageNet (not detector-1: ") and "image_size 96 (wanted 64)" in words


def test_loop_defaults_fill_what_the_run_config_leaves_open(settings):
    settings.RUSTWATCH_TRAIN_CONFIG = {"detector": {"epochs": 3}}
    settings.RUSTWATCH_TRAIN_DEFAULTS = {"detector": {"image_size": 256, "epochs": 30}}
    _, det = ml_configs(_run())
    assert (det.image_size, det.epochs) == (256, 3)


def test_runs_api_takes_a_warm_start_choice(client_for, supervisor):
    r = client_for(supervisor).post("/api/v1/runs/", {"warm_start": False}, format="json")
    assert r.status_code == 202, r.content
    assert TrainingRun.objects.get(pk=r.json()["id"]).config["warm_start"] is False
    r = client_for(supervisor).post("/api/v1/runs/", {"warm_start": "sometimes"}, format="json")
    assert r.status_code == 400 and "warm_start" in r.json()["detail"]

"""Undefined metrics are written as null everywhere: the artifact manifest is valid JSON."""

from __future__ import annotations

import json

import numpy as np

from ml.artifacts import read_manifest, write_manifest
from ml.json_safe import json_safe


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_nan_and_numpy_become_plain_json():
    value = {"roc_auc": float("nan"), "ap": np.float32(0.5), "cm": np.eye(2, dtype=int), 3: -np.inf}
    assert json_safe(value) == {"roc_auc": None, "ap": 0.5, "cm": [[1, 0], [0, 1]], "3": None}


def test_manifest_with_an_undefined_roc_auc_is_valid_json(tmp_path):
    write_manifest(tmp_path, {"metrics": {"classifier": {"roc_auc": float("nan"), "acc": 1.0}}})
    text = (tmp_path / "manifest.json").read_text()
    assert _strict(text)["metrics"]["classifier"] == {"roc_auc": None, "acc": 1.0}
    assert read_manifest(tmp_path)["metrics"]["classifier"]["roc_auc"] is None

"""Serving the trained models: load a detector for prediction in a long-lived worker.

`load_detector(folder)` gives an object with the detector's `predict(images,
score_threshold)` (boxes in original pixels, scores, best first). The worker
model cache (inspection/serving.py) calls it once per deployed version.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def load_detector(directory: str | os.PathLike):
    """The detector saved in `directory`, ready to predict."""
    from ml.detector import RustDetector

    return RustDetector.load(Path(directory))

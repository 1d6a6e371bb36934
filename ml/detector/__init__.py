"""Rust detectors: two families behind one `RustDetector` interface and artifact format.

- `config`: DetectorConfig (family, backbone, training, prediction settings)
- `preprocessing`: photos, boxes and masks in; letterbox and augmentation
- `retinanet`: keras-hub RetinaNet with slim heads (anchors, box regression, NMS)
- `scoremap`: a dense rust score map, boxes from its connected components, heat map
- `hub`: the keras-hub internals RetinaNet needs, behind the version pin
- `training`: the shared training loop
- `interface`: RustDetector (predict, evaluate, save, load) and the artifact files

Importing this package is cheap: TensorFlow loads when a model is built or used.
"""

from ml.detector.config import FAMILIES, DetectorConfig
from ml.detector.interface import (
    FORMAT_VERSION,
    META_FILE,
    MODEL_FILE,
    Detections,
    RustDetector,
    WarmStartError,
    build_model,
    detection_uncertainty,
    gpu_visible,
    load_init_weights,
    register_custom_objects,
    warm_start_mismatch,
)
from ml.detector.preprocessing import (
    DetectorInputError,
    DetSample,
    as_rgb,
    augment_sample,
    check_boxes,
    letterbox,
    load_image,
)
from ml.detector.training import make_dataset, train_detector

__all__ = [
    "FAMILIES",
    "FORMAT_VERSION",
    "META_FILE",
    "MODEL_FILE",
    "DetSample",
    "Detections",
    "DetectorConfig",
    "DetectorInputError",
    "RustDetector",
    "WarmStartError",
    "as_rgb",
    "augment_sample",
    "build_model",
    "check_boxes",
    "detection_uncertainty",
    "gpu_visible",
    "letterbox",
    "load_init_weights",
    "load_image",
    "make_dataset",
    "register_custom_objects",
    "train_detector",
    "warm_start_mismatch",
]

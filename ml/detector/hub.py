"""The keras-hub internals the RetinaNet family builds on, in one place, behind the pin.

`keras_hub.src` is not keras-hub's public API: it may change in any release.
Everything of it that ml/ uses is imported here, and only after checking that
the installed keras-hub is the series pyproject.toml pins (and these were
checked against); a different one fails with a message saying so, instead of
a confusing error deep in model building.
"""

from __future__ import annotations

KERAS_HUB_SERIES = "0.32."  # pyproject.toml pins keras-hub==0.32.0


def check_keras_hub() -> None:
    import keras_hub

    if not keras_hub.__version__.startswith(KERAS_HUB_SERIES):
        raise ImportError(
            f"ml.detector uses keras-hub internals checked against {KERAS_HUB_SERIES}x; "
            f"keras-hub {keras_hub.__version__} is installed (install the pinned version)"
        )


check_keras_hub()

from keras_hub.src.layers.modeling.box_matcher import BoxMatcher  # noqa: E402
from keras_hub.src.models.retinanet.feature_pyramid import FeaturePyramid  # noqa: E402
from keras_hub.src.models.retinanet.prediction_head import PredictionHead  # noqa: E402
from keras_hub.src.models.retinanet.retinanet_label_encoder import (  # noqa: E402
    RetinaNetLabelEncoder,
)

__all__ = ["BoxMatcher", "FeaturePyramid", "PredictionHead", "RetinaNetLabelEncoder"]

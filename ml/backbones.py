"""ImageNet backbones from `keras.applications`, chosen by name in the config.

Each entry says how to build the network without its top, how to preprocess
pixels for it, which layers form a feature pyramid (strides 8, 16, 32, for
the detector) and where its ImageNet weights live. Weights resolve through
`keras.utils.get_file`, i.e. from the Keras cache (`$KERAS_HOME/models/`)
before any download: offline machines put the files there, real users
download as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KERAS_WEIGHTS = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    application: str  # attribute of keras.applications
    kwargs: dict[str, Any]
    preprocess: str  # "minus_one_one" ([-1, 1]) or "raw" (the model rescales 0..255 itself)
    feature_dim: int
    # where the features at strides 8, 16, 32 are: a layer name (its output), "NAME:input"
    # (that layer's input) or "@output" (the model's output); see pyramid_outputs
    pyramid: tuple[str, str, str]
    # (file name, url folder) of a no-top weight file loadable at any input
    # size; None means keras.applications resolves weights="imagenet" itself.
    weight_file: tuple[str, str] | None = None


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            "mobilenet_v2_035",
            "MobileNetV2",
            {"alpha": 0.35},
            "minus_one_one",
            1280,
            ("block_6_expand_relu", "block_13_expand_relu", "out_relu"),
            (
                "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5",
                KERAS_WEIGHTS + "mobilenet_v2/",
            ),
        ),
        BackboneSpec(
            "mobilenet_v2_100",
            "MobileNetV2",
            {"alpha": 1.0},
            "minus_one_one",
            1280,
            ("block_6_expand_relu", "block_13_expand_relu", "out_relu"),
            (
                "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
                KERAS_WEIGHTS + "mobilenet_v2/",
            ),
        ),
        BackboneSpec(
            "mobilenet_025",
            "MobileNet",
            {"alpha": 0.25},
            "minus_one_one",
            256,
            ("conv_pw_5_relu", "conv_pw_11_relu", "conv_pw_13_relu"),
            ("mobilenet_2_5_224_tf_no_top.h5", KERAS_WEIGHTS + "mobilenet/"),
        ),
        BackboneSpec(
            "mobilenet_v3_large",
            "MobileNetV3Large",
            {"include_preprocessing": True},
            "raw",
            960,
            # the residual outputs: keras names the activations with a global
            # counter (re_lu_N, activation_N), so only these names are stable
            ("expanded_conv_5_add", "expanded_conv_11_add", "expanded_conv_14_add"),
        ),
        BackboneSpec(
            "efficientnet_v2_b0",
            "EfficientNetV2B0",
            {"include_preprocessing": True},
            "raw",
            1280,
            ("block3b_add", "block5e_add", "top_activation"),
        ),
        # bigger backbones for a team with a GPU (README: which to pick); ImageNet weights
        # download through keras.applications as usual
        BackboneSpec(
            "efficientnet_v2_s",
            "EfficientNetV2S",
            {"include_preprocessing": True},
            "raw",
            1280,
            ("block3d_add", "block5i_add", "top_activation"),
        ),
        BackboneSpec(
            "convnext_tiny",
            "ConvNeXtTiny",
            {"include_preprocessing": True},
            "raw",
            768,
            # a stage ends in an unnamed residual add: take the next downsampling's input
            # (downsampling block i leads from stage i to i + 1); stride 32: the final norm
            (
                "convnext_tiny_downsampling_block_1:input",
                "convnext_tiny_downsampling_block_2:input",
                "@output",
            ),
        ),
    )
}


def pyramid_outputs(base, spec: BackboneSpec) -> dict:
    """{"P3", "P4", "P5"}: the backbone's feature tensors at strides 8, 16 and 32."""
    out = {}
    for level, where in zip((3, 4, 5), spec.pyramid, strict=True):
        if where == "@output":
            out[f"P{level}"] = base.output
        elif where.endswith(":input"):
            out[f"P{level}"] = base.get_layer(where.removesuffix(":input")).input
        else:
            out[f"P{level}"] = base.get_layer(where).output
    return out


def get_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(
            f"unknown backbone {name!r}; choose one of {', '.join(sorted(BACKBONES))}"
        ) from None


def build_backbone(name: str, image_size: int, weights: str | None = "imagenet"):
    """A no-top `keras.Model` for square `image_size` inputs.

    `weights` is "imagenet" (cache first, then download), None (random), or a
    path to a weight file.
    """
    import keras

    spec = get_spec(name)
    ctor = getattr(keras.applications, spec.application)
    shape = (image_size, image_size, 3)
    if weights == "imagenet" and spec.weight_file is not None:
        # keras.applications looks for a size-specific file at some sizes
        # (e.g. 160 px); the 224 file holds the same convolutions, so build
        # without weights and load it: works at any size, offline or not.
        model = ctor(input_shape=shape, include_top=False, weights=None, **spec.kwargs)
        fname, folder = spec.weight_file
        path = keras.utils.get_file(fname, folder + fname, cache_subdir="models")
        model.load_weights(path)
        return model
    if weights not in ("imagenet", None):
        model = ctor(input_shape=shape, include_top=False, weights=None, **spec.kwargs)
        model.load_weights(weights)
        return model
    return ctor(input_shape=shape, include_top=False, weights=weights, **spec.kwargs)


def preprocess(name: str, pixels):
    """Map float RGB pixels in 0..255 to what the backbone expects."""
    spec = get_spec(name)
    if spec.preprocess == "minus_one_one":
        return pixels / 127.5 - 1.0
    return pixels

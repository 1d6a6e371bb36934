"""DetectorConfig: everything that defines a detector and how it is trained (JSON-serialisable)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ml.backbones import get_spec
from ml.config import config_from_dict

# "retinanet": keras-hub RetinaNet (anchors, box regression, NMS);
# "scoremap": a dense rust score map from the backbone's features, boxes from its
# thresholded connected components (ml.detector.scoremap)
FAMILIES = ("retinanet", "scoremap")
BOX_SPLITS = ("none", "watershed")  # score map: how a thresholded region becomes boxes
BOX_SCORES = ("mean", "max")
# the settings that shape the network's weights or what they mean: a detector may start
# from another's weights (a warm start) only when all of these are equal
ARCHITECTURE_KEYS = (
    "family",
    "backbone",
    "image_size",
    "fpn_width",
    "head_width",
    "head_layers",
    "min_level",
    "max_level",
    "anchor_size",
    "num_scales",
    "aspect_ratios",
    "map_level",
    "map_width",
)
# settings whose best value differs per family; None in a config means "the family's"
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "retinanet": {"train_backbone": True, "epochs": 60},
    # the score map is trained on a frozen backbone: ImageNet features carry over to other
    # people's photos better than features tuned to 45 web photos, and it is ~3x cheaper
    "scoremap": {"train_backbone": False, "epochs": 30},
}


@dataclass
class DetectorConfig:
    """Everything that defines a detector and how it is trained (JSON-serialisable)."""

    family: str = "retinanet"
    backbone: str = "mobilenet_v2_035"
    image_size: int = 384
    epochs: int | None = None  # None: the family's default (FAMILY_DEFAULTS)
    batch_size: int = 8
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 2.0
    train_backbone: bool | None = None  # None: the family's default; BatchNorm stays frozen
    # architecture (keras-hub RetinaNet: 256 / 256 / 4)
    fpn_width: int = 64
    head_width: int = 64
    head_layers: int = 2
    min_level: int = 3
    max_level: int = 7
    # smallest anchor = anchor_size * 8 px: 24 px, as a quarter of the seed boxes are < 35 px
    # at 384 px (keras-hub and the probe use 4; 3 lifted AP50 0.19 -> 0.33 in experiment e3)
    anchor_size: float = 3.0
    num_scales: int = 3
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    positive_iou: float = 0.5
    negative_iou: float = 0.4
    # also make each box's best anchor positive when none reaches positive_iou (12 % of the
    # seed boxes at 384 px); off: it halved the article-split AP50 (experiment e6b)
    force_match: bool = False
    # loss
    box_loss_weight: float = 4.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    # score map (family "scoremap"): one rust logit per `2**map_level` px cell
    map_level: int = 3
    map_width: int = 64
    pos_weight: float = 2.0  # rust cells weigh this much more than clean ones in the loss
    # boxes: connected components of the score map above each threshold (nested regions
    # at several levels, as rust has no edge); a region smaller than min_region of the
    # photo is dropped; a box scores the mean rust probability inside its region
    box_thresholds: tuple[float, ...] = (0.3, 0.5, 0.7)
    min_region: float = 0.001
    # region split (ml.detector.scoremap.hot_cores): "none", or "watershed": inside each
    # thresholded region, also a box per hot core (watershed basin of the map around each
    # peak at least split_min_distance cells from a higher one and standing split_min_depth
    # above the saddle to it), so neighbouring rust patches that merged get their own boxes.
    # Chosen on 246 unseen VT train photos (benchmarks/scoremap_boxes.py): AP50 0.035 ->
    # 0.045, AR100 0.028 -> 0.048; seed CV AP50 unchanged within its spread (0.099 -> 0.097)
    box_split: str = "watershed"
    split_min_distance: int = 2
    split_min_depth: float = 0.1
    # a box scores the "mean" or the "max" rust probability inside its region
    box_score: str = "mean"
    # augmentation (all box-preserving; see augment_sample)
    augment: bool = True
    flip: bool = True
    crop_prob: float = 0.5
    crop_min_area: float = 0.3
    min_visible: float = 0.5  # boxes less visible than this after a crop are ignored
    zoom_out_min: float = 0.6
    color: float = 1.0  # strength of brightness/contrast/saturation/hue jitter
    # prediction
    nms_iou: float = 0.5
    max_detections: int = 100
    pre_nms_top_k: int = 1000
    predict_batch: int = 4
    # test-time augmentation: also look at the mirrored photo (RetinaNet: pool the candidate
    # boxes of both views before NMS; score map: average both maps); twice the forward cost
    tta_flip: bool = False
    mixed_precision: bool | None = None  # None: on when a GPU is visible
    seed: int = 0

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(
                f"unknown detector family {self.family!r}; choose one of {', '.join(FAMILIES)}"
            )
        for key, value in FAMILY_DEFAULTS[self.family].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        get_spec(self.backbone)  # unknown backbone -> ValueError listing the known ones
        self.aspect_ratios = tuple(float(a) for a in self.aspect_ratios)
        self.box_thresholds = tuple(float(t) for t in self.box_thresholds)
        # RetinaNet's FPN upsamples by 2 per level up to max_level; the score map only
        # needs the backbone's stride 32 to divide evenly
        multiple = 2**self.max_level if self.family == "retinanet" else 32
        if self.image_size < 32 or self.image_size % multiple:
            raise ValueError(f"image_size must be a multiple of {multiple} (got {self.image_size})")
        if self.epochs < 0 or self.batch_size < 1 or self.predict_batch < 1:
            raise ValueError("epochs must be >= 0, batch_size and predict_batch >= 1")
        if not 3 <= self.map_level <= 5:
            raise ValueError("map_level must be 3, 4 or 5 (stride 8, 16 or 32)")
        if not self.box_thresholds or not all(0 < t < 1 for t in self.box_thresholds):
            raise ValueError("box_thresholds must be probabilities in (0, 1)")
        if self.box_split not in BOX_SPLITS:
            raise ValueError(f"box_split must be one of {', '.join(BOX_SPLITS)}")
        if self.box_score not in BOX_SCORES:
            raise ValueError(f"box_score must be one of {', '.join(BOX_SCORES)}")
        if self.split_min_distance < 1 or not 0 <= self.split_min_depth < 1:
            raise ValueError("split_min_distance must be >= 1, split_min_depth in [0, 1)")

    def architecture_mismatch(self, other: DetectorConfig) -> str | None:
        """Why a network of `other` cannot lend its weights to one of this config (None: it
        can): the ARCHITECTURE_KEYS that differ, in words."""
        diff = [
            f"{key} {getattr(other, key)!r} (wanted {getattr(self, key)!r})"
            for key in ARCHITECTURE_KEYS
            if getattr(self, key) != getattr(other, key)
        ]
        return ", ".join(diff) or None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        """Inverse of `to_dict`; unknown keys are an error (a typo should not pass)."""
        return config_from_dict(cls, data, "detector config")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["aspect_ratios"] = list(self.aspect_ratios)
        data["box_thresholds"] = list(self.box_thresholds)
        return data

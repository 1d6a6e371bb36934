"""`python -m ml from-folders | train | evaluate | predict | cv`.

Progress bars on stderr (tqdm), tables on stdout (rich), `--json PATH` for
machines. Bad input ends with one `error: ...` line naming the file and a
nonzero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from ml.json_safe import dumps as json_dumps
from ml.voc import write_atomic

log = logging.getLogger("ml")

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A user error: printed as `error: ...`."""


def _console():
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 140)


def _table(title: str, columns: list[str], rows: list[list]) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        table.add_column(escape(c), justify="left" if i == 0 else "right")
    for r in rows:
        table.add_row(*[escape(_fmt(v)) for v in r])
    _console().print(table)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return "" if v is None else str(v)


def _write_json(path: str | None, data: dict) -> None:
    if path:
        text = json_dumps(data, indent=1)
        write_atomic(Path(path), (text + "\n").encode())
        log.info("wrote %s", path)


def _cache(args):
    from ml.embeddings import EmbeddingCache

    return EmbeddingCache(args.cache) if getattr(args, "cache", None) else EmbeddingCache()


def _weights(value: str) -> str | None:
    return None if value.lower() in ("none", "random") else value


def _classifier_config(args):
    from ml.classifier import ClassifierConfig

    kw = {}
    if args.backbone:
        kw["backbone"] = args.backbone
    if args.image_size:
        kw["image_sizes"] = tuple(args.image_size)
    if args.n_aug is not None:
        kw["n_aug"] = args.n_aug
    if args.target_recall is not None:
        kw["target_recall"] = args.target_recall
    if args.fine_tune_layers:
        kw["fine_tune_layers"] = args.fine_tune_layers
    return ClassifierConfig(**kw)


def _detector_config(args):
    from ml.detector import DetectorConfig

    kw = {}
    if args.backbone:
        kw["backbone"] = args.backbone
    if args.epochs is not None:
        kw["epochs"] = args.epochs
    if args.det_image_size:
        kw["image_size"] = args.det_image_size
    for item in args.det_set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--det-set {item!r}: expected KEY=VALUE")
        try:
            kw[key] = json.loads(value)
        except json.JSONDecodeError:
            kw[key] = value
    return DetectorConfig.from_dict(kw)


def _pm(m: dict, k: str) -> str:
    """A metric, with its std across folds when there is one."""
    return f"{m[k]:.3f}" + (f" ± {m[k + '_std']:.3f}" if k + "_std" in m else "")


CLASSIFIER_COLUMNS = (
    "accuracy",
    "roc_auc",
    "precision_rust",
    "recall_rust",
    "f1_rust",
    "threshold",
)
DETECTOR_COLUMNS = ("AP", "AP50", "AP75", "AR1", "AR10", "AR100")


def _print_metrics(result: dict, title: str) -> None:
    if "classifier" in result:
        m = result["classifier"]
        _table(
            f"classifier — {title}",
            [
                "",
                "accuracy",
                "ROC-AUC",
                "precision",
                "recall",
                "F1",
                "threshold",
                "confusion [[tn,fp],[fn,tp]]",
            ],
            [["rust", *[_pm(m, k) for k in CLASSIFIER_COLUMNS], str(m.get("confusion"))]],
        )
    if "detector" in result:
        m = result["detector"]
        _table(
            f"detector — {title}",
            ["", *DETECTOR_COLUMNS],
            [["rust", *[_pm(m, k) for k in DETECTOR_COLUMNS]]],
        )


# ------------------------------------------------------------------ commands


def cmd_from_folders(args) -> int:
    from tqdm import tqdm

    from ml.dataset import from_folders

    ds = from_folders(
        args.src,
        args.out,
        val=args.val,
        test=args.test,
        max_distance=args.near_duplicate_distance,
        progress=lambda it: tqdm(it, desc="reading", unit="file", leave=False),
    )
    c = ds.manifest["counts"]
    _table(
        f"dataset {args.out}",
        ["", "value"],
        [
            ["files read", ds.manifest["files"]],
            ["distinct photos", c["photos"]],
            ["rust", c["rust"]],
            ["no rust", c["norust"]],
            ["with boxes", c["boxed"]],
            ["boxes", c["boxes"]],
            ["near-duplicate groups", c["groups"]],
        ]
        + [
            [f"split {name}", " / ".join(f"{k} {len(v)}" for k, v in parts.items())]
            for name, parts in ds.splits.items()
        ],
    )
    _write_json(
        args.json,
        {
            "counts": c,
            "dataset_hash": ds.dataset_hash,
            "splits": {n: {k: len(v) for k, v in s.items()} for n, s in ds.splits.items()},
        },
    )
    return 0


def cmd_train(args) -> int:
    from ml.dataset import load_dataset
    from ml.training import train

    ds = load_dataset(args.data)
    det_cfg = None if args.skip_detector else _detector_config(args)
    out = train(
        ds,
        args.out,
        split=args.split_name,
        classifier_config=_classifier_config(args),
        detector_config=det_cfg,
        skip_detector=args.skip_detector,
        weights=_weights(args.weights),
        cache=_cache(args),
        progress=not args.quiet,
        init_detector=args.init_detector,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    val = manifest["metrics"]["val"]
    if val:
        _print_metrics(val, f"validation ({args.split_name} split)")
    _console().print(
        f"artifact written to {out} "
        f"(classifier threshold {manifest['thresholds']['classifier']:.3f}; "
        f"{manifest['timings']['total_s']:.0f} s)"
    )
    from ml.training import metrics_json

    _write_json(args.json, metrics_json(val.get("classifier"), val.get("detector")))
    return 0


def cmd_evaluate(args) -> int:
    from ml.artifacts import load_artifact
    from ml.dataset import load_dataset
    from ml.training import evaluate, metrics_json

    ds = load_dataset(args.data)
    art = load_artifact(args.model, detector=not args.skip_detector)
    result = evaluate(art, ds, args.split, args.split_name, _cache(args), not args.quiet)
    if not result:
        raise CliError(f"{args.data}: no labelled photos in part {args.split!r}")
    _print_metrics(result, f"{args.split} part of the {args.split_name} split")
    _write_json(args.json, metrics_json(result.get("classifier"), result.get("detector")))
    return 0


def _expand_photos(paths: list[str]) -> list[Path]:
    from ml.dataset import IMAGE_SUFFIXES

    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.exists():
            out.append(p)
        else:
            raise CliError(f"{p}: no such file or folder")
    if not out:
        raise CliError("no photos to predict")
    return out


def cmd_predict(args) -> int:
    from ml.artifacts import load_artifact
    from ml.images import check_images

    photos = _expand_photos(args.photos)
    check_images(photos)
    art = load_artifact(args.model, detector=not args.skip_detector)
    prob = art.classifier.predict(photos, progress=not args.quiet)
    verdicts = art.classifier.verdicts(prob)
    boxes = (
        art.detector.predict(photos, score_threshold=args.score_threshold)
        if art.detector is not None
        else [None] * len(photos)
    )
    rows, records = [], []
    for path, p, v, b in zip(photos, prob, verdicts, boxes, strict=True):
        rec = {
            "photo": str(path),
            "rust_probability": float(p),
            "verdict": "rust" if v else "norust",
            "boxes": [],
        }
        if b is not None:
            rec["boxes"] = [
                {
                    "xmin": float(x0),
                    "ymin": float(y0),
                    "xmax": float(x1),
                    "ymax": float(y1),
                    "score": float(s),
                }
                for (x0, y0, x1, y1), s in zip(b[0].tolist(), b[1].tolist(), strict=True)
            ]
            heatmap = getattr(b, "heatmap", None)
            if heatmap is not None:  # rows x cols of P(rust), over the photo (score map)
                rec["heatmap"] = [[round(float(v), 3) for v in row] for row in heatmap]
        records.append(rec)
        rows.append(
            [
                str(path),
                float(p),
                rec["verdict"],
                "; ".join(
                    f"({x['xmin']:.0f},{x['ymin']:.0f},{x['xmax']:.0f},"
                    f"{x['ymax']:.0f}) {x['score']:.2f}"
                    for x in rec["boxes"]
                ),
            ]
        )
    _table(
        f"predictions (threshold {art.classifier.threshold:.3f})",
        ["photo", "rust probability", "verdict", "boxes (xmin,ymin,xmax,ymax) score"],
        rows,
    )
    _write_json(args.json, {"threshold": art.classifier.threshold, "photos": records})
    return 0


def cmd_cv(args) -> int:
    from ml.dataset import load_dataset
    from ml.training import cross_validate_classifier, cross_validate_detector, metrics_json

    ds = load_dataset(args.data)
    photos = ds.labelled() if args.split == "all" else ds.subset(args.split, args.split_name)
    clf = cross_validate_classifier(
        photos,
        args.folds,
        _classifier_config(args),
        _weights(args.weights),
        _cache(args),
        not args.quiet,
        seed=args.seed,
    )
    result = {"classifier": clf["summary"]}
    if not args.skip_detector and any(p.boxed for p in photos):
        det = cross_validate_detector(
            photos,
            args.folds,
            _detector_config(args),
            _weights(args.weights),
            not args.quiet,
            args.seed,
        )
        result["detector"] = det["summary"]
    _print_metrics(result, f"{args.folds}-fold grouped cross-validation (mean ± std)")
    _write_json(args.json, metrics_json(result["classifier"], result.get("detector")))
    return 0


# ------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ml", description=__doc__.split("\n")[0])
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, data=True):
        if data:
            sp.add_argument("--data", required=True, help="VOC dataset folder")
        sp.add_argument("--json", metavar="PATH", help="also write the results as JSON")
        sp.add_argument(
            "--cache",
            metavar="DIR",
            help="embedding cache folder "
            "(default $RUSTWATCH_EMBEDDING_CACHE or ~/.cache/rustwatch/embeddings)",
        )
        sp.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)

    def model_opts(sp):
        sp.add_argument("--backbone", help="keras.applications backbone (see ml/backbones.py)")
        sp.add_argument("--image-size", type=int, nargs="+", help="classifier input size(s)")
        sp.add_argument("--n-aug", type=int, help="augmented views per training photo")
        sp.add_argument("--target-recall", type=float, help="rust recall the threshold keeps")
        sp.add_argument(
            "--fine-tune-layers",
            type=int,
            default=0,
            help="train the last N backbone layers first (slow)",
        )
        sp.add_argument(
            "--weights",
            default="imagenet",
            help="imagenet (Keras cache, then download), none, or a weight file",
        )
        sp.add_argument("--skip-detector", action="store_true", help="classifier only")
        sp.add_argument("--epochs", type=int, help="detector epochs")
        sp.add_argument("--det-image-size", type=int, help="detector input size")
        sp.add_argument(
            "--det-set",
            action="append",
            metavar="KEY=VALUE",
            help="any DetectorConfig field (JSON value), repeatable",
        )
        sp.add_argument(
            "--split-name",
            default="default",
            help="named split: default (ImageSets/Main) or one in the manifest",
        )

    sp = sub.add_parser("from-folders", help="build a VOC dataset from rust/ norust/ folders")
    sp.add_argument("src", help="folder with rust/, norust/ and/or labelImg image+XML files")
    sp.add_argument("out", help="the VOC dataset folder to write")
    sp.add_argument("--val", type=float, default=0.15, help="validation share")
    sp.add_argument("--test", type=float, default=0.15, help="test share")
    sp.add_argument(
        "--near-duplicate-distance",
        type=int,
        default=10,
        help="pHash bits within which photos are grouped",
    )
    sp.add_argument("--json", metavar="PATH")
    sp.set_defaults(func=cmd_from_folders)

    sp = sub.add_parser("train", help="train classifier (+ detector) into an artifact")
    common(sp)
    model_opts(sp)
    sp.add_argument("--out", required=True, help="artifact directory to write")
    sp.add_argument(
        "--init-detector",
        metavar="DIR",
        help="warm start: begin the detector from this trained detector folder (an "
        "artifact's detector/; same architecture) instead of ImageNet",
    )
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("evaluate", help="score an artifact on a dataset")
    common(sp)
    sp.add_argument("--model", required=True, help="artifact directory")
    sp.add_argument("--split", default="test", choices=["train", "val", "test", "trainval", "all"])
    sp.add_argument("--split-name", default="default")
    sp.add_argument("--skip-detector", action="store_true")
    sp.set_defaults(func=cmd_evaluate)

    sp = sub.add_parser("predict", help="rust probability, verdict and boxes per photo")
    sp.add_argument("--model", required=True, help="artifact directory")
    sp.add_argument("photos", nargs="+", help="photo files or folders")
    sp.add_argument("--score-threshold", type=float, default=0.3, help="lowest box score shown")
    sp.add_argument("--skip-detector", action="store_true")
    sp.add_argument("--json", metavar="PATH")
    sp.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)
    sp.set_defaults(func=cmd_predict)

    sp = sub.add_parser("cv", help="grouped k-fold cross-validation of both models")
    common(sp)
    model_opts(sp)
    sp.add_argument("--folds", type=int, default=5)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--split", default="all", choices=["train", "val", "test", "trainval", "all"])
    sp.set_defaults(func=cmd_cv)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from ml.artifacts import ArtifactError
    from ml.dataset import DatasetError
    from ml.images import ImageError
    from ml.voc import VocError

    user_errors: tuple[type[BaseException], ...] = (
        CliError,
        DatasetError,
        ImageError,
        VocError,
        ArtifactError,
        ValueError,
        OSError,
    )
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except user_errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # a bug, not bad input: still one line, details with -v
        log.debug("unexpected failure", exc_info=True)
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (run with -v for details)",
            file=sys.stderr,
        )
        return 1

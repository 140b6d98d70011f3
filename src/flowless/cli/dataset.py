"""``flowless dataset summary ROOT --format F``: check a dataset's annotations and files
(videos or frame folders), and show the validation hold-out of a dataset without splits."""

from __future__ import annotations

import argparse
import json

MAX_LISTED = 20  # missing files printed per split in the text report


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help="inspect a dataset (annotation formats, missing videos)",
        description="Inspect a video dataset in one of the supported annotation formats.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    summary = actions.add_parser(
        "summary",
        help="videos per split, classes, missing files",
        description="Read ROOT's annotations and print, per split, the number of videos and "
        "the missing video files (a video is a file or a folder of frames), and the number of "
        "classes. A dataset without splits (a plain class folder) also shows the validation "
        "hold-out that `flowless train` uses. Exit code 2 when an annotation file is malformed "
        "(the message names the file and line).",
    )
    add_dataset_arguments(summary)
    summary.add_argument("--json", action="store_true",
                         help='print one JSON object {"classes", "splits": {name: {"videos", '
                         '"missing"}}[, "holdout": {"val_fraction", "train", "validation"}]}')
    summary.add_argument("--val-fraction", type=float, default=None, metavar="F",
                         help="share of each class held out for validation when the dataset "
                         "has no train/test split (default: data.val_fraction, 0.2)")
    summary.add_argument("--frame-pattern", default=None, metavar="NAME",
                         help="frame image names in frame folders, e.g. img_%%05d.jpg "
                         "(default: detected; sets FLOWLESS_FRAME_PATTERN)")
    # accepted after the action too (the framework adds them to `dataset` itself)
    summary.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                         help="no progress bars")
    summary.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show tracebacks on errors")
    return parser


def add_dataset_arguments(parser: argparse.ArgumentParser, root_required: bool = True) -> None:
    """ROOT, --format, --split, --annotations: shared by commands that read a dataset."""
    from flowless.data.annotations import FORMATS

    parser.add_argument("root", metavar="ROOT", help="dataset root folder (videos inside)")
    parser.add_argument("--format", "-f", dest="format", required=root_required, choices=FORMATS,
                        help="annotation format")
    parser.add_argument("--split", type=int, default=1,
                        help="split number for UCF101/HMDB51/list files (default 1)")
    parser.add_argument("--annotations", metavar="PATH", default=None,
                        help="folder (or list file) with the annotation files, when not in ROOT")


def run(args: argparse.Namespace) -> int:
    from flowless.data.annotations import load_index
    from flowless.data.frames import set_pattern
    from flowless.data.holdout import DEFAULT_VAL_FRACTION

    set_pattern(args.frame_pattern)
    fraction = DEFAULT_VAL_FRACTION if args.val_fraction is None else args.val_fraction
    index = load_index(args.root, args.format, split=args.split, annotations=args.annotations,
                       val_fraction=fraction)
    summary = index.summary()
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"dataset {index.root} (format {index.format}, split {args.split})")
    print(f"classes: {summary['classes']}")
    width = max([5] + [len(s) for s in summary["splits"]])
    print(f"{'split':<{width}}  {'videos':>8}  {'missing':>8}")
    for name, info in summary["splits"].items():
        print(f"{name:<{width}}  {info['videos']:>8}  {len(info['missing']):>8}")
    if "holdout" in summary:
        hold = summary["holdout"]
        print(f"hold-out (no train/test split): train {hold['train']}, validation "
              f"{hold['validation']} (val_fraction {hold['val_fraction']:g} of each class; "
              "the split `flowless train` uses)")
    for name, info in summary["splits"].items():
        missing = info["missing"]
        if missing:
            print(f"missing in {name}:")
            for path in missing[:MAX_LISTED]:
                print(f"  {path}")
            if len(missing) > MAX_LISTED:
                print(f"  ... and {len(missing) - MAX_LISTED} more (--json lists all)")
    return 0

"""``flowless flow INPUT OUT``: compute optical flow of many videos into a store.

INPUT is a dataset root (with --format), a folder of videos or frame folders (searched
recursively), one frame folder, or a .txt file listing video paths. ``--export-jpg LAYOUT``
(INPUT = a store) and ``--import-jpg [LAYOUT]`` (INPUT = a folder of JPEG flow; the layout
is detected when not named) convert to and from the MARS, mmaction2/denseflow and u/v JPEG
layouts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXPORT_CHOICES = ("mars", "mmaction2", "denseflow", "xy", "uv")  # flow.jpeg.LAYOUTS
IMPORT_CHOICES = ("auto", *EXPORT_CHOICES)


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="compute optical flow of videos into a resumable store",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compute TV-L1 (or DIS/Farneback) optical flow of every video in INPUT and\n"
        "store it quantised as in MARS under OUT, one <key>.npz per video. Parallel,\n"
        "resumable (rerun the same command to continue) and shardable. Failed videos are\n"
        "listed in OUT/flowless-flow-report.json and make the exit code 2. See docs/flow.md.",
        epilog="examples:\n"
        "  flowless flow UCF101/ flow/ --format ucf101\n"
        "  flowless flow videos/ flow/ --backend dis --preset fast --workers 8 --shard 0/4\n"
        "  flowless flow list.txt flow/ --param warps=3 --param epsilon=0.02\n"
        "  flowless flow jpegs_256/ flow/                  # RGB frame folders\n"
        "  flowless flow flow/ jpg/ --export-jpg mars\n"
        "  flowless flow jpg/ flow/ --import-jpg --backend tvl1   # layout detected\n"
        "  flowless flow tvl1_flow/ flow/ --import-jpg uv",
    )
    p.add_argument("input", metavar="INPUT", type=Path,
                   help="dataset root, folder of videos or frame folders, .txt list of video "
                   "paths, one video file or frame folder; a store with --export-jpg; a JPEG "
                   "folder with --import-jpg")
    p.add_argument("out", metavar="OUT", type=Path, help="output store (or JPEG folder)")
    g = p.add_argument_group("flow")
    g.add_argument("--backend", choices=("tvl1", "dis", "farneback", "tvl1-torch"), default=None,
                   help="flow algorithm (default tvl1, OpenCV defaults as in MARS)")
    g.add_argument("--preset", default=None,
                   help="named parameter set: tvl1 default|fast, dis ultrafast|fast|medium "
                   "(default medium), farneback default")
    g.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="override one backend parameter, e.g. --param warps=3 (repeatable; "
                   "names in docs/flow.md)")
    g.add_argument("--short-side", type=int, default=256,
                   help="resize frames so the shorter side is this many px (default 256 as "
                   "in MARS; 0 keeps the original size)")
    r = p.add_argument_group("run")
    r.add_argument("--workers", type=int, default=None,
                   help="parallel processes (default: all cores); tvl1-torch: CPU threads")
    r.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                   help="tvl1-torch only: where to compute (default auto: CUDA if available)")
    r.add_argument("--batch-size", type=int, default=None,
                   help="tvl1-torch only: frame pairs per batch (default 64 on CUDA, 4 on "
                   "CPU; halved on out-of-memory)")
    r.add_argument("--shard", default="0/1", metavar="I/N",
                   help="process only part I of N (0-based, disjoint, by sorted key)")
    r.add_argument("--overwrite", action="store_true",
                   help="recompute complete videos and accept a store made with other settings")
    r.add_argument("--verify", action="store_true",
                   help="re-read complete videos and redo any that do not load")
    d = p.add_argument_group("dataset input")
    d.add_argument("--format", "-f", default=None,
                   help="INPUT is a dataset root in this format (ucf101, hmdb51, kinetics, "
                   "ssv2, list, folder)")
    d.add_argument("--split", type=int, default=1, help="split number for --format (default 1)")
    d.add_argument("--annotations", type=Path, default=None,
                   help="annotation folder (list file for --format list) when not in INPUT")
    d.add_argument("--frame-pattern", default=None, metavar="NAME",
                   help="frame image names in frame folders, e.g. img_%%05d.jpg (default: "
                   "detected; sets FLOWLESS_FRAME_PATTERN)")
    j = p.add_argument_group("JPEG layouts")
    x = j.add_mutually_exclusive_group()
    x.add_argument("--export-jpg", choices=EXPORT_CHOICES, default=None, metavar="LAYOUT",
                   help="write the store INPUT as per-video JPEG folders under OUT: mars "
                   "(TVL1jpg_x_00001.jpg), mmaction2/denseflow (flow_x_00001.jpg), xy "
                   "(x_00001.jpg), uv (u/<video>/frame000001.jpg, v/...)")
    x.add_argument("--import-jpg", choices=IMPORT_CHOICES, nargs="?", const="auto",
                   default=None, metavar="LAYOUT",
                   help="convert JPEG flow folders under INPUT into the store OUT; LAYOUT as "
                   "for --export-jpg (mmaction2 reads flow_x_ and x_), default auto (detect)")
    j.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality for export (95)")
    return p


def run(args: argparse.Namespace) -> int:
    from flowless.data.discover import discover_videos
    from flowless.data.frames import set_pattern
    from flowless.flow import export_jpg, extract_flow, import_jpg, parse_shard
    from flowless.flow.backends import parse_param_args

    params = parse_param_args(args.param)
    set_pattern(args.frame_pattern)  # before any worker starts: they inherit it
    layout = args.export_jpg or args.import_jpg
    if args.export_jpg:
        summary = export_jpg(args.input, args.out, layout, quality=args.jpeg_quality,
                             quiet=args.quiet)
    elif args.import_jpg:
        summary = import_jpg(args.input, args.out, layout, backend=args.backend, params=params,
                             preset=args.preset, short_side=args.short_side if args.backend else None,
                             overwrite=args.overwrite, quiet=args.quiet)
    else:
        videos = discover_videos(args.input, args.format, args.split, args.annotations)
        summary = extract_flow(
            videos, args.out, backend=args.backend or "tvl1", short_side=args.short_side,
            workers=args.workers, shard=parse_shard(args.shard), params=params,
            preset=args.preset, overwrite=args.overwrite, verify=args.verify, quiet=args.quiet,
            device=args.device, batch_size=args.batch_size,
        )
    print(f"flowless flow: {summary.line()} in {summary.seconds:.1f} s -> {args.out}")
    if summary.failed:
        for failure in summary.failures[:5]:
            print(f"  failed {failure['key']}: {failure['error']}", file=sys.stderr)
        if summary.failed > 5:
            print(f"  ... {summary.failed - 5} more in {summary.report}", file=sys.stderr)
        return 2
    return 0

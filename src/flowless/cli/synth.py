"""``flowless synth OUT``: write the embedded (motion x colour family) action dataset."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    """Register the ``synth`` command."""
    from flowless.data.synth import FAMILIES, MOTIONS

    parser = subparsers.add_parser(
        name,
        help="write the embedded synthetic action dataset (UCF101 layout, H.264 mp4)",
        description="Write a synthetic action dataset whose classes are (motion, object colour "
        "family) pairs, as lossless H.264 mp4 files in the UCF101 layout (classInd.txt, "
        "trainlist01.txt, testlist01.txt). A still frame shows the colour but not the motion; "
        "optical flow shows the motion but not the colour. Same --seed, same frames. Rerunning "
        "into the same folder "
        "with the same options resumes. Motions, in order: "
        + ", ".join(m.name for m in MOTIONS) + ". Colour families, in order: "
        + ", ".join(f for f, _ in FAMILIES) + ". See docs/dataset.md.",
    )
    parser.add_argument("out", help="output folder (created; must be empty unless resuming)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--motions", type=int, default=5, metavar="M",
                        help=f"number of motions, the first M of the list (1-{len(MOTIONS)}, "
                        "default 5)")
    parser.add_argument("--categories", type=int, default=2, metavar="C",
                        help=f"number of colour families (1-{len(FAMILIES)}, default 2); 1 gives "
                        "motion-only classes with colours drawn from all families")
    parser.add_argument("--videos-per-class", type=int, default=60, metavar="N",
                        help="videos per class, train + test (default 60)")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--test-fraction", type=float, default=0.25, metavar="F",
                       help="fraction of each class's videos in the test split (default 0.25)")
    split.add_argument("--test-per-class", type=int, default=None, metavar="K",
                       help="test videos per class (instead of --test-fraction)")
    parser.add_argument("--clips-per-group", type=int, default=4, metavar="G",
                        help="videos per group gNN (a group shares its background; default 4)")
    parser.add_argument("--frames", type=int, default=17, metavar="T",
                        help="frames per video (default 17)")
    parser.add_argument("--size", type=int, default=64, metavar="S",
                        help="frame width and height in pixels (default 64)")
    parser.add_argument("--fps", type=int, default=25, help="frame rate written (default 25)")
    parser.add_argument("--motion-scale", type=float, default=1.0, metavar="X",
                        help="multiplies object speeds, spin and zoom rates (default 1.0; "
                        "smaller is harder)")
    parser.add_argument("--nuisance", type=float, default=1.0, metavar="X",
                        help="multiplies background drift, camera jitter and pixel noise "
                        "(default 1.0; 0 turns them off)")
    parser.add_argument("--spin-scale", type=float, default=1.0, metavar="X",
                        help="multiplies the Rotate motions' spin on top of --motion-scale "
                        "(default 1.0)")
    parser.add_argument("--zoom-scale", type=float, default=1.0, metavar="X",
                        help="multiplies the Zoom motions' rate on top of --motion-scale "
                        "(default 1.0)")
    parser.add_argument("--zoom-max", type=float, default=2.5, metavar="R",
                        help="the largest size ratio a zoom reaches over the video "
                        "(default 2.5)")
    parser.add_argument("--distractors", type=int, default=2, metavar="N",
                        help="most distractor objects per video, each video draws 0..N "
                        "(default 2)")
    parser.add_argument("--context", type=float, default=0.0, metavar="P",
                        help="with --categories 1: chance that a video's object has its "
                        "class's own colour family, a scene-context hint (default 0)")
    parser.add_argument("--jobs", "-j", type=int, default=None,
                        help="worker processes (default: the CPUs, at most 8; 1 for small sets)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty folder, rewriting every dataset file")
    return parser


def run(args: argparse.Namespace) -> int:
    """Generate the dataset and print what was written."""
    from flowless.data.synth import FAMILIES, SynthConfig, generate

    cfg = SynthConfig(
        motions=args.motions, categories=args.categories,
        videos_per_class=args.videos_per_class, test_fraction=args.test_fraction,
        test_per_class=args.test_per_class, clips_per_group=args.clips_per_group,
        frames=args.frames, size=args.size, seed=args.seed, motion_scale=args.motion_scale,
        nuisance=args.nuisance, distractors=args.distractors, fps=args.fps,
        context=args.context, spin_scale=args.spin_scale,
        zoom_scale=args.zoom_scale, zoom_max=args.zoom_max,
    )
    summary = generate(args.out, cfg, jobs=args.jobs, overwrite=args.overwrite,
                       quiet=args.quiet or None)
    families = "any colour" if cfg.categories == 1 else "/".join(
        f for f, _ in FAMILIES[: cfg.categories])
    resumed = f", {summary.skipped} already present" if summary.skipped else ""
    print(f"wrote {summary.root}: {len(summary.classes)} classes ({cfg.motions} motions x "
          f"{families}), {summary.train + summary.test} videos ({summary.train} train, "
          f"{summary.test} test), {cfg.frames} frames of {cfg.size}x{cfg.size}, "
          f"{summary.written} written{resumed} in {summary.seconds:.1f} s")
    print(f"read it with: flowless dataset summary {summary.root} --format ucf101")
    return 0

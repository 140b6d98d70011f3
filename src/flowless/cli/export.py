"""``flowless export CKPT --onnx OUT.onnx``: ONNX export checked against PyTorch."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help="export a stream checkpoint to ONNX (verified with onnxruntime)",
        description="Export a stream checkpoint to ONNX with a dynamic batch axis and the "
        "classes and clip settings in its metadata (so `flowless predict --onnx` can run "
        "it). The file is kept only if onnxruntime and PyTorch logits agree to 1e-4 on "
        "random clips (exit code 1 otherwise).",
    )
    parser.add_argument("checkpoint", metavar="CKPT", help="a stream checkpoint (best.pt)")
    parser.add_argument("--onnx", required=True, metavar="OUT.onnx", help="output file")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest accepted logit difference (relative above 1)")
    parser.add_argument("--exporter", choices=("auto", "legacy", "dynamo"), default="auto",
                        help="torch.onnx exporter: legacy TorchScript-based (fast), dynamo "
                        "(torch.export-based), auto = legacy, else dynamo (default)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def run(args: argparse.Namespace) -> int:
    from flowless.export import ExportMismatchError, export_onnx

    try:
        report = export_onnx(args.checkpoint, args.onnx, opset=args.opset,
                             tolerance=args.tolerance, exporter=args.exporter)
    except ExportMismatchError as exc:
        print(f"flowless export: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
    else:
        print(f"wrote {report['onnx']} ({report['bytes'] / 1e6:.1f} MB, {report['exporter']} "
              f"exporter, opset {report['opset']}, "
              f"input {report['input_shape']}); onnxruntime matches PyTorch on "
              f"{report['check_batch']} random clips (max error {report['max_error']:.1e})")
    return 0

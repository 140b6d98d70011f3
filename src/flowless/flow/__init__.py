"""Optical flow: backends (TV-L1, DIS, Farneback), MARS quantisation, the on-disk store,
parallel resumable extraction, and MARS/mmaction2 JPEG import/export."""

from __future__ import annotations

from flowless.flow.backends import (
    BACKENDS,
    DEFAULTS,
    PRESETS,
    FlowBackend,
    compute_flow,
    resolve_params,
    video_flow,
)
from flowless.flow.extract import ExtractSummary, extract_flow, parse_shard, shard_videos
from flowless.flow.jpeg import LAYOUTS, export_jpg, import_jpg
from flowless.flow.quantize import BOUND, dequantize, quantize
from flowless.flow.store import (
    count_fields,
    flow_path,
    load_flow,
    load_flow_u8,
    read_manifest,
    save_flow_u8,
    store_keys,
)

__all__ = [
    "BACKENDS",
    "BOUND",
    "DEFAULTS",
    "LAYOUTS",
    "PRESETS",
    "ExtractSummary",
    "FlowBackend",
    "compute_flow",
    "count_fields",
    "dequantize",
    "export_jpg",
    "extract_flow",
    "flow_path",
    "import_jpg",
    "load_flow",
    "load_flow_u8",
    "parse_shard",
    "quantize",
    "read_manifest",
    "resolve_params",
    "save_flow_u8",
    "shard_videos",
    "store_keys",
    "video_flow",
]

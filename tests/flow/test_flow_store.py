"""The on-disk store: round trip, deterministic bytes, partial reads, corruption, keys."""

from __future__ import annotations

import time
import zipfile

import numpy as np
import pytest

from flowless.errors import FlowError
from flowless.flow import (
    count_fields,
    dequantize,
    flow_path,
    load_flow,
    load_flow_u8,
    read_manifest,
    save_flow_u8,
    store_keys,
)
from flowless.flow.store import (
    MANIFEST_NAME,
    ensure_manifest,
    make_manifest,
    open_flow_writer,
    remove_partial,
)


def random_u8(n: int = 5, h: int = 12, w: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 2, h, w), dtype=np.uint8)


def test_round_trip_and_numpy_compatible(tmp_path):
    arr = random_u8()
    path = flow_path(tmp_path, "Class/v_1")
    assert path == tmp_path / "Class" / "v_1.npz"
    save_flow_u8(path, arr)
    back = load_flow_u8(path)
    assert back.dtype == np.uint8 and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)
    np.testing.assert_array_equal(load_flow(path), dequantize(arr))
    assert load_flow(path).dtype == np.float32
    with np.load(path) as z:  # readable without flowless
        np.testing.assert_array_equal(z["flow_00003"], arr[3])
    assert count_fields(path) == 5


def test_partial_reads(tmp_path):
    arr = random_u8(7)
    save_flow_u8(tmp_path / "v.npz", arr)
    np.testing.assert_array_equal(load_flow_u8(tmp_path / "v.npz", 2, 5), arr[2:5])
    np.testing.assert_array_equal(load_flow_u8(tmp_path / "v.npz", -2), arr[-2:])
    assert load_flow_u8(tmp_path / "v.npz", 7).shape == (0, 2, 12, 16)


def test_same_flow_gives_identical_bytes(tmp_path):
    arr = random_u8()
    save_flow_u8(tmp_path / "a.npz", arr)
    time.sleep(1.1)  # zip timestamps have 2 s resolution; ours are fixed
    save_flow_u8(tmp_path / "b.npz", arr)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_compression_is_effective_on_smooth_flow(tmp_path):
    y, x = np.mgrid[0:64, 0:64]
    field = np.stack([128 + (x // 8), 128 - (y // 16)]).astype(np.uint8)
    arr = np.stack([field] * 4)
    save_flow_u8(tmp_path / "s.npz", arr)
    assert (tmp_path / "s.npz").stat().st_size < arr.nbytes / 4


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_files_raise_flow_error_naming_the_file(tmp_path, damage):
    path = tmp_path / "v.npz"
    save_flow_u8(path, random_u8())
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"x" * 500,
                      "empty": b""}[damage])
    with pytest.raises(FlowError, match="delete it and rerun") as info:
        load_flow_u8(path)
    assert str(path) in str(info.value)


def test_flipped_bit_is_detected(tmp_path):
    path = tmp_path / "v.npz"
    save_flow_u8(path, random_u8(h=64, w=64))
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(FlowError, match=str(path)):
        load_flow_u8(path)


def test_missing_file_and_foreign_zip(tmp_path):
    with pytest.raises(FlowError, match="not found; run `flowless flow` first"):
        load_flow_u8(tmp_path / "nope.npz")
    np.savez(tmp_path / "other.npz", something=np.zeros(3))
    with pytest.raises(FlowError, match="not a flowless flow file"):
        load_flow_u8(tmp_path / "other.npz")


@pytest.mark.parametrize("key", ["", "/abs/path", "../escape", "a/../../b", "a//b", "./a"])
def test_bad_keys_are_refused(tmp_path, key):
    with pytest.raises(FlowError, match="invalid video key"):
        flow_path(tmp_path, key)


def test_interrupted_write_leaves_no_complete_file(tmp_path):
    path = tmp_path / "v.npz"
    with pytest.raises(RuntimeError):
        with open_flow_writer(path) as writer:
            writer.add(random_u8(1)[0])
            raise RuntimeError("killed")
    assert not path.exists() and list(tmp_path.iterdir()) == []
    # A temp file left by a hard kill is ignored by store_keys and removed by remove_partial.
    (tmp_path / ".v.npz.abc123.tmp.npz").write_bytes(b"partial")
    save_flow_u8(tmp_path / "w.npz", random_u8(1))
    assert store_keys(tmp_path) == ["w"]
    assert remove_partial(path) == 1 and not (tmp_path / ".v.npz.abc123.tmp.npz").exists()


def test_writer_refuses_empty_and_inconsistent_fields(tmp_path):
    with pytest.raises(FlowError, match="no flow fields"):
        with open_flow_writer(tmp_path / "e.npz"):
            pass
    assert not (tmp_path / "e.npz").exists()
    with pytest.raises(ValueError, match="differs"):
        with open_flow_writer(tmp_path / "x.npz") as writer:
            writer.add(np.zeros((2, 4, 4), np.uint8))
            writer.add(np.zeros((2, 4, 5), np.uint8))


def test_manifest_refuses_mixed_settings(tmp_path):
    assert ensure_manifest(tmp_path, make_manifest("farneback", {"levels": 3}, 256)) == "new"
    save_flow_u8(tmp_path / "old.npz", random_u8(1))
    assert ensure_manifest(tmp_path, make_manifest("farneback", {"levels": 3}, 256)) == "same"
    with pytest.raises(FlowError) as info:
        ensure_manifest(tmp_path, make_manifest("tvl1", {"warps": 5}, 256))
    message = str(info.value)
    assert str(tmp_path / MANIFEST_NAME) in message
    assert "backend=farneback" in message and "--overwrite" in message
    with pytest.raises(FlowError, match="short_side=128"):
        ensure_manifest(tmp_path, make_manifest("farneback", {"levels": 3}, 128))
    assert (tmp_path / "old.npz").exists()
    # --overwrite with other settings: the old files go, the manifest describes every file.
    new = make_manifest("tvl1", {"warps": 5}, 256)
    assert ensure_manifest(tmp_path, new, overwrite=True) == "replaced"
    assert not (tmp_path / "old.npz").exists()
    assert ensure_manifest(tmp_path, new) == "same"
    assert read_manifest(tmp_path)["backend"] == "tvl1"


def test_store_without_manifest_is_refused(tmp_path):
    save_flow_u8(tmp_path / "v.npz", random_u8(1))
    with pytest.raises(FlowError, match="no flowless-flow.json"):
        ensure_manifest(tmp_path, make_manifest("dis", {}, 256))


def test_member_layout_is_documented(tmp_path):
    save_flow_u8(tmp_path / "v.npz", random_u8(2))
    with zipfile.ZipFile(tmp_path / "v.npz") as zf:
        assert zf.namelist() == ["flow_00000.npy", "flow_00001.npy"]
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())

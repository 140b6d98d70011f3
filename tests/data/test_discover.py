"""Video discovery: one video file, list files (labels, comments, encoding), missing input."""

from __future__ import annotations

import pytest

from flowless.data.discover import discover_videos
from flowless.errors import AnnotationError, FlowError


def test_one_video_file_is_keyed_by_its_stem(tmp_path):
    video = tmp_path / "sub/My Clip.MP4"
    video.parent.mkdir()
    video.write_bytes(b"")  # readable or not: extraction reports bad videos
    assert discover_videos(video) == [("My Clip", video)]


def test_list_labels_are_ignored_unless_the_path_exists(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v/x 3.mp4").write_bytes(b"")  # a file whose name ends like a label
    lst = tmp_path / "l.txt"
    lst.write_text("\ufeffv/a.mp4 1\n  # comment\nv/x 3.mp4\nv/b.avi -2\nv/c d.mp4\n",
                   encoding="utf-8")
    assert discover_videos(lst) == [("v/a", tmp_path / "v/a.mp4"),
                                    ("v/x 3", tmp_path / "v/x 3.mp4"),
                                    ("v/b", tmp_path / "v/b.avi"),
                                    ("v/c d", tmp_path / "v/c d.mp4")]


def test_list_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(AnnotationError, match="empty.txt: lists no videos"):
        discover_videos(empty)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("a.mp4\nvidéo.mp4\n".encode("latin-1"))
    with pytest.raises(AnnotationError, match=r"latin.txt:2: not valid UTF-8"):
        discover_videos(latin)
    with pytest.raises(FlowError, match="gone: not found"):
        discover_videos(tmp_path / "gone")


def test_list_lines_may_name_frame_folders_with_count_columns(tmp_path):
    for rel in ("f/run one", "f/walk.v2"):
        (tmp_path / rel).mkdir(parents=True)
        (tmp_path / rel / "img_00001.jpg").write_bytes(b"")
    lst = tmp_path / "l.txt"
    lst.write_text("f/run one 120 3\nf/walk.v2 0 95 1\n")  # mmaction2 rawframe lines
    assert discover_videos(lst) == [("f/run one", tmp_path / "f/run one"),
                                    ("f/walk.v2", tmp_path / "f/walk.v2")]
    (tmp_path / "e/sub").mkdir(parents=True)
    (tmp_path / "e/sub/x_00001.jpg").write_bytes(b"")  # flow images are not a video
    with pytest.raises(FlowError, match=r"e: no video files \(.*\) or frame folders found"):
        discover_videos(tmp_path / "e")

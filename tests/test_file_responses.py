"""Range headers of archive downloads (the responses themselves: tests/test_download.py)."""

from __future__ import annotations

import pytest

from tasks_app.lib.file_responses import ByteRange, RangeNotSatisfiable, parse_range


@pytest.mark.parametrize(
    "header, expected",
    [
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=100-", ByteRange(100, 999)),
        ("bytes=-100", ByteRange(900, 999)),
        ("bytes=-5000", ByteRange(0, 999)),
        ("bytes=990-5000", ByteRange(990, 999)),
        ("BYTES = 5 - 9", ByteRange(5, 9)),
        (None, None),
        ("", None),
        ("bytes=0-1,5-9", None),  # several ranges: the whole file instead
        ("items=0-9", None),
        ("bytes=9-5", None),
        ("bytes=-", None),
    ],
)
def test_it_parses_single_byte_ranges(header, expected):
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header, size", [("bytes=1000-", 1000), ("bytes=-0", 1000), ("bytes=0-", 0)])
def test_it_flags_ranges_outside_the_file(header, size):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)

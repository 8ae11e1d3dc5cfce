"""Property-based fuzzing of the insights page and the export: any query string, any zone, no 500."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .test_fuzz_views import EDGE_DATES, LIST_PARAMS, ZONES, check, encode, fuzz, params, raw_query, world  # noqa: F401

INSIGHTS_PARAMS = ["range", "start", "end"]
RANGES = st.sampled_from(["24h", "7d", "30d", "custom", "", "90d"])
DAYS = st.one_of(EDGE_DATES.map(lambda text: text[:10]), st.dates().map(str))


@pytest.mark.slow
def test_it_survives_any_insights_query(world):  # noqa: F811 - the fixture imported above
    @fuzz(200)
    @given(pairs=params(INSIGHTS_PARAMS), raw=raw_query, zone=ZONES, root=st.booleans())
    def run(pairs, raw, zone, root):
        client = world["root" if root else "op"]
        client.cookies["arkdash_tz"] = zone
        query = encode(pairs) + ("&" + raw if raw else "")
        check(client.get(f"/insights/?{query}"), f"insights ?{query} in {zone}")

    run()


@pytest.mark.slow
def test_it_survives_any_custom_range_in_any_zone(world):  # noqa: F811 - the fixture imported above
    @fuzz(200)
    @given(choice=RANGES, start=DAYS, end=DAYS, zone=ZONES)
    def run(choice, start, end, zone):
        client = world["op"]
        client.cookies["arkdash_tz"] = zone
        query = encode([("range", choice), ("start", start), ("end", end)])
        response = client.get(f"/insights/?{query}")
        check(response, f"insights ?{query} in {zone}")
        assert response.status_code in (200, 400), query

    run()


@pytest.mark.slow
def test_it_survives_any_export_query(world):  # noqa: F811 - the fixture imported above
    @fuzz(150)
    @given(pairs=params(LIST_PARAMS), raw=raw_query, zone=ZONES, fmt=st.sampled_from(["csv", "jsonl"]))
    def run(pairs, raw, zone, fmt):
        client = world["op"]
        client.cookies["arkdash_tz"] = zone
        query = encode(pairs) + ("&" + raw if raw else "")
        response = client.get(f"/tasks/export.{fmt}?{query}")
        check(response, f"export.{fmt} ?{query} in {zone}")
        assert response.status_code in (200, 400), query

    run()

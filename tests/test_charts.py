"""The charts' geometry and markup: bars proportional to their values, every text escaped."""

from __future__ import annotations

import pytest

from tasks_app import charts

SERIES = [charts.Series("a", "<b>A</b>", "series-0"), charts.Series("b", "B", "series-1")]


def test_it_rounds_the_axis_up_to_a_readable_number():
    tops = [charts.axis_ticks(v, whole=False)[-1] for v in (0, 0.7, 3, 7, 12, 26, 480, 1001)]
    assert tops == [1, 0.75, 3, 7.5, 15, 30, 500, 1500]
    assert charts.axis_ticks(0.7, whole=False) == [0, 0.25, 0.5, 0.75]


@pytest.mark.parametrize("highest", [1, 2, 3, 5, 7, 10, 11, 26, 99, 1001])
def test_a_count_axis_has_whole_distinct_ticks_and_at_most_five(highest):
    ticks = charts.axis_ticks(highest, whole=True)
    assert all(float(tick).is_integer() for tick in ticks)
    assert len(set(ticks)) == len(ticks) <= 5
    assert ticks[0] == 0 and ticks[-1] >= highest
    assert ticks[-2] < highest  # the top is the first tick at or above the highest value


def test_a_small_failure_count_reads_0_1_2_not_0_0_1_2_2():
    chart = charts.grouped_hbars(rows=[("InternalError", {"n": 2}), ("Timeout", {"n": 1})],
                                 series=[charts.Series("n", "failed", "status-failed")], fmt=lambda v: f"{v:.0f}",
                                 label_head="Error code")
    assert [tick.text for tick in chart.gridlines] == ["0", "1", "2"]


def test_it_stacks_bars_in_proportion_to_their_values():
    chart = charts.stacked_bars(labels=["d1", "d2"], series=SERIES, values=[{"a": 10, "b": 30}, {"a": 20}],
                                fmt=str, label_head="Day")
    heights = {(rect.title.split(" · ")[0], rect.css): rect.height for rect in chart.rects}
    plot = chart.plot_bottom - charts.TOP
    assert [tick.text for tick in chart.gridlines] == ["0", "10", "20", "30", "40"]  # the top: 40
    assert heights[("d1", "series-0")] == pytest.approx(plot * 10 / 40, abs=0.1)
    assert heights[("d1", "series-1")] == pytest.approx(plot * 30 / 40, abs=0.1)
    assert heights[("d2", "series-0")] == pytest.approx(plot * 20 / 40, abs=0.1)
    assert ("d2", "series-1") not in heights  # nothing drawn for a zero
    assert chart.table_head == ["Day", "<b>A</b>", "B"]
    assert chart.table_rows == [["d1", "10", "30"], ["d2", "20", "0"]]


def test_it_escapes_every_text_it_writes():
    chart = charts.grouped_hbars(rows=[("<script>x</script>", {"a": 5.0})], series=SERIES, fmt=str,
                                 label_head="Model")
    svg, table = str(chart.svg_body()), str(chart.table_body())
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "<b>" not in svg and "&lt;b&gt;A&lt;/b&gt;" in svg  # the series label, in the bar's title
    assert "<script>" not in table and "&lt;script&gt;x&lt;/script&gt;" in table
    assert "–" in table  # no value for series b


def test_it_shows_a_missing_rate_as_a_dash_not_a_zero():
    rate = [charts.Series("rate", "rate", "series-0")]
    chart = charts.stacked_bars(labels=["d1", "d2"], series=rate, values=[{"rate": 50.0}, {}], fmt=str,
                                label_head="Day", missing="–")
    assert chart.table_rows == [["d1", "50.0"], ["d2", "–"]]


def test_a_size_or_time_axis_ticks_on_round_units_not_round_numbers():
    mib = 1024 * 1024
    assert charts.axis_ticks(3_000_000, whole=True, units=charts.BYTES) == [0, mib, 2 * mib, 3 * mib]
    hour = 3600
    assert charts.axis_ticks(24 * hour, whole=False, units=charts.SECONDS) == [0, 6 * hour, 12 * hour, 18 * hour,
                                                                               24 * hour]
    assert charts.axis_ticks(700, whole=False, units=charts.SECONDS) == [0, 300, 600, 900]  # 5-minute steps
    assert charts.axis_ticks(50, whole=False, units=charts.SECONDS) == [0, 25, 50]  # under a minute: seconds

"""The bench's figures (bench.common.Result, the percentiles): what they report given known inputs,
and that a figure that is no measurement stops the run instead of landing in bench/results/latest.json.
No timing here."""

import json
import math

import pytest

from bench import metrics, traces
from bench.common import Result


def test_a_baseline_of_nothing_is_refused():
    # BENCH_ROUNDS=0 (or BENCH_EVENTS=0) leaves the ingest and client benchmarks' best figures at 0.0: the
    # ratio was NaN (written as the invalid JSON token NaN) and the goal merely "not met".
    with pytest.raises(ValueError, match="copy_events_per_s"):
        Result("ingest_batch_events_per_s", 0.0, "events/s", 0.0, "copy_events_per_s", 0.4)
    with pytest.raises(ValueError, match="single_event_events_per_s"):
        Result("ingest_batch_vs_single_event", 17_000.0, "events/s", 0.0, "single_event_events_per_s", 20)


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0])
def test_a_value_that_is_no_measurement_is_refused(value):
    with pytest.raises(ValueError):
        Result("pipeline_events_per_s", value, "events/s", 20_000.0, "raw_bulk_events_per_s", 0.6)


def test_a_lower_is_better_value_of_zero_is_refused():
    with pytest.raises(ValueError):
        Result("retention_drop", 0.0, "s", 1.3, "delete_s", 10, speedup=True)


def test_an_exact_estimate_is_a_valid_figure():
    # An error of 0 % is a measurement (the sketches were exact), bounded on the value itself.
    result = Result(
        "metrics_series_unique_users_error_pct", 0.0, "%", 0.81, "hll_standard_error_pct", 2, "<=", "value"
    )
    assert result.met is True
    assert json.loads(json.dumps(result.as_dict()))["ratio"] == 0.0


def test_ratios_and_goals_point_the_right_way():
    faster = Result("metrics_series_p95_ms", 30.0, "ms", 3000.0, "raw_group_by_p95_ms", 50, speedup=True)
    assert (faster.ratio, faster.met) == (100.0, True)
    slower = Result("trace_api_p95_ms", 13.0, "ms", 6.0, "raw_term_query_p95_ms", 2, goal_op="<=")
    assert slower.ratio == pytest.approx(2.1667, abs=1e-3) and slower.met is False
    share = Result("pipeline_events_per_s", 11_800.0, "events/s", 20_000.0, "raw_bulk_events_per_s", 0.6)
    assert share.ratio == 0.59 and share.met is False


@pytest.mark.parametrize("percentile", [metrics.percentile, traces.percentile])
def test_nearest_rank_percentiles(percentile):
    samples = [float(n) for n in range(100, 0, -1)]  # 1..100, unsorted
    assert (percentile(samples, 50), percentile(samples, 95), percentile(samples, 100)) == (50.0, 95.0, 100.0)
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 95) == 5.0  # of five, the p95 is the slowest

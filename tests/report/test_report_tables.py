import csv
import io
import json

import numpy as np
import pytest

from filterprune.report import (
    format_value,
    iteration_table,
    layer_table,
    table_from_json,
    to_csv,
    to_html,
    to_json,
    to_markdown,
)
from filterprune.report.formatting import metric_kinds, plural
from filterprune.report.latency_table import latency_table

# Concat-style network: branches "a" (16 ch) and "b" (16 ch) are concatenated into 32 channels
# that feed "c". Only the producing layers are listed; the concat adds no channels of its own.
BEFORE = {"a": 16, "b": 16, "c": 32}
AFTER = {"a": 10, "b": 12, "c": 20}

# The seed's run, with MACs and side-by-side latency (as compare_latency logs it) added.
ROWS = [
    {"iteration": 0, "metrics": {"dice": 0.985}, "params": 13_000_000, "macs": 2_000_000_000,
     "size_mb": 52.4, "latency_ms": 40.0, "speedup": 1.0, "speedup_low": 0.98,
     "speedup_high": 1.01, "latency_flags": []},
    {"iteration": 1, "ranking_batches": 500, "removed": 300, "removed_total": 300,
     "finetune": "0/1500", "metrics": {"dice": 0.948}, "params": 11_000_000,
     "macs": 1_600_000_000, "size_mb": 44.4, "latency_ms": 34.0, "speedup": 1.18,
     "speedup_low": 1.05, "speedup_high": 1.31, "latency_flags": ["rounds disagree"]},
    {"iteration": 2, "ranking_batches": 500, "removed": 300, "removed_total": 600,
     "finetune": "5/0", "metrics": {"dice": 0.955}, "params": 6_800_000,
     "macs": 1_000_000_000, "size_mb": 27.2, "latency_ms": 25.0, "speedup": 1.6,
     "speedup_low": 1.58, "speedup_high": 1.61, "latency_flags": []},
]  # fmt: skip


def test_layer_table_counts_each_channel_once():
    table = layer_table(before=BEFORE, after=AFTER)
    assert table.column("removed") == [6, 4, 12]
    assert table.column("pct_of_layer") == [6 / 16 * 100, 4 / 16 * 100, 12 / 32 * 100]
    assert table.column("pct_of_removed") == pytest.approx(
        [6 / 22 * 100, 4 / 22 * 100, 12 / 22 * 100]
    )
    assert sum(table.column("pct_of_removed")) == pytest.approx(100.0)
    assert table.notes == ["Total: 64 → 42 channels, 22 removed (34.4 %)"]


def test_layer_table_without_removal_and_bad_input():
    table = layer_table(before=BEFORE, after=BEFORE)
    assert table.column("pct_of_removed") == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="only in before: \\['c'\\]"):
        layer_table(before=BEFORE, after={"a": 1, "b": 1})
    with pytest.raises(ValueError, match="layer 'a' has more channels after"):
        layer_table(before=BEFORE, after={**AFTER, "a": 17})


def test_iteration_table_reductions_vs_row_0():
    table = iteration_table(ROWS)
    assert table.column("size_reduction_pct") == pytest.approx(
        [0.0, 8 / 52.4 * 100, 25.2 / 52.4 * 100]
    )
    assert table.column("macs_reduction_pct") == pytest.approx([0.0, 20.0, 50.0])
    assert table.column("params_reduction_pct") == pytest.approx(
        [0.0, 2 / 13 * 100, 6.2 / 13 * 100]
    )
    assert table.column("delta:dice") == pytest.approx([0.0, 0.948 - 0.985, 0.955 - 0.985])
    assert table.column("speedup") == ["reference", 1.18, 1.6]  # as measured side by side
    assert table.column("speedup_range") == [None, "1.05–1.31", "1.58–1.61"]
    assert table.column("latency_flags") == ["–", "rounds disagree", "–"]
    # latencies of different rows are never divided into a speed-up
    alone = [{k: v for k, v in row.items() if not k.startswith("speedup")} for row in ROWS]
    assert iteration_table(alone).column("speedup") == [None, None, None]
    assert table.column("ranking_batches") == [None, 500, 500]
    assert "Size reduction: (52.40 − 27.20) / 52.40 × 100 % = 48.1 %" in table.notes
    assert "dice: 98.50 % → 95.50 % (-3.00 pt)" in table.notes


def test_metric_changes_print_in_the_metrics_own_unit():
    table = iteration_table(ROWS)
    kinds = {c.key: c.kind for c in table.columns}
    assert (kinds["metric:dice"], kinds["delta:dice"]) == ("fraction", "points")
    md = to_markdown(table)
    assert "| 95.50 % | -3.00 pt |" in md and "| 98.50 % | +0.00 pt |" in md and "-0.03" not in md
    assert format_value(0.003839, "points") == "+0.38 pt"
    assert format_value(0.9712, "fraction") == "97.12 %"
    assert format_value(52.4, "mb") == "52.40" and format_value(0.004123, "mb") == "0.00412"
    assert metric_kinds("top5", [0.5, 1.0]) == ("fraction", "points")
    assert metric_kinds("val_accuracy", [0.5]) == ("fraction", "points")
    assert metric_kinds("loss", [0.5, 0.2]) == ("metric", "delta")  # not a share
    assert metric_kinds("accuracy", [97.1, 96.0]) == ("metric", "delta")  # already in percent
    rows = [{"iteration": 0, "metrics": {"loss": 0.5}}, {"iteration": 1, "metrics": {"loss": 0.25}}]
    assert "loss: 0.5 → 0.25 (-0.25)" in iteration_table(rows).notes


def test_iteration_table_converts_numpy_and_rejects_bad_rows():
    rows = [{"iteration": 0, "macs": np.int64(10), "metrics": {"acc": np.float32(0.5)}},
            {"iteration": 1, "macs": np.int64(4), "metrics": {"acc": np.float32(0.25)}}]  # fmt: skip
    table = iteration_table(rows)
    assert type(table.rows[1]["macs"]) is int and table.rows[1]["macs_reduction_pct"] == 60.0
    json.loads(to_json(table))
    with pytest.raises(ValueError, match="unknown keys \\['flops'\\]"):
        iteration_table([{"iteration": 0, "flops": 1}])
    with pytest.raises(ValueError, match="rows is empty"):
        iteration_table([])


def test_markdown_rendering():
    text = to_markdown(iteration_table(ROWS))
    lines = text.splitlines()
    assert lines[0].startswith("| Iteration | Ranking batches | Removed channels |")
    table_lines = [line for line in lines if line.startswith("|")]
    assert len(table_lines) == 2 + len(ROWS)
    row2 = [cell.strip() for cell in table_lines[4].strip("|").split("|")]
    assert row2[:5] == ["2", "500", "300", "600", "5/0"]
    assert "1.00 G" in row2 and "27.20" in row2 and "48.1" in row2 and "1.60x" in row2
    assert "N/A" in table_lines[2] and "| reference |" in table_lines[2]
    layer_md = to_markdown(layer_table(before=BEFORE, after=AFTER))
    assert "| c | 32 | 20 | 12 | 37.5 | 54.5 |" in layer_md


def test_csv_round_trip_keeps_numbers():
    table = iteration_table(ROWS)
    parsed = list(csv.DictReader(io.StringIO(to_csv(table))))
    assert list(parsed[0]) == table.keys
    for raw, row in zip(parsed, table.rows, strict=True):
        assert float(raw["size_reduction_pct"]) == row["size_reduction_pct"]
        assert int(raw["macs"]) == row["macs"]
        assert float(raw["metric:dice"]) == row["metric:dice"]
    assert parsed[0]["removed"] == ""  # None
    layer = list(csv.DictReader(io.StringIO(to_csv(layer_table(before=BEFORE, after=AFTER)))))
    assert sum(float(r["pct_of_removed"]) for r in layer) == pytest.approx(100.0)


def test_json_round_trip_keeps_numbers():
    table = iteration_table(ROWS)
    data = json.loads(to_json(table))
    assert data["rows"] == table.rows
    assert [c["key"] for c in data["columns"]] == table.keys
    assert table_from_json(to_json(table)) == table


def test_html_and_format_value():
    html = to_html(layer_table(before=BEFORE, after=AFTER))
    assert html.count("<tr>") == 1 + 3 and "<caption>Channels per layer</caption>" in html
    assert format_value(1_234_567, "count") == "1.23 M"
    assert format_value(2.5e9, "count") == "2.50 G"
    assert format_value(3.14159, "mb") == "3.14"
    assert format_value(None, "mb") == "N/A"
    assert format_value(-0.03, "delta") == "-0.03"
    with pytest.raises(ValueError, match="unknown kind"):
        format_value(1, "bytes")


def test_iteration_0_is_the_reference_not_a_speed_up():
    # the original timed beside its own copy read 1.37x: noise, never shown as a speed-up
    rows = [{**ROWS[0], "speedup": 1.37, "speedup_low": 0.9, "speedup_high": 2.1}, *ROWS[1:]]
    table = iteration_table(rows)
    assert table.rows[0]["speedup"] == "reference"
    assert table.rows[0]["speedup_range"] is None and table.rows[0]["efficiency"] is None
    md = to_markdown(table)
    row0 = md.splitlines()[2]
    assert "reference" in row0 and "1.37" not in row0 and "0.90–2.10" not in row0
    assert any("it read 1.37x, rounds 0.90–2.10: the machine's noise" in n for n in table.notes)
    assert "Measured speed-up: 1.60x" in " ".join(table.notes)  # the last row's, measured
    # the latency table says the same for iteration 0's records
    record = {"device": "cpu", "batch_size": 1, "median_ms": 40.0, "macs": 10, "original_macs": 10,
              "original_median_ms": 40.0, "speedup": 1.37, "speedup_low": 0.9,
              "speedup_high": 2.1, "flags": []}  # fmt: skip
    timing = latency_table(
        [{"iteration": 0, "latency": [record]}, {"iteration": 1, "latency": [record]}]
    )
    assert timing.column("speedup") == ["reference", 1.37]
    assert timing.column("speedup_range") == [None, "0.90–2.10"]
    assert timing.column("efficiency")[0] is None
    # without any speed-up nothing is marked (the column is empty and not shown)
    alone = [{k: v for k, v in r.items() if not k.startswith("speedup")} for r in ROWS]
    assert iteration_table(alone).column("speedup") == [None, None, None]


def test_a_table_without_latency_shows_no_latency_columns():
    keep = ("iteration", "ranking_batches", "removed", "removed_total", "finetune", "metrics",
            "params", "macs", "size_mb")  # fmt: skip
    table = iteration_table([{k: v for k, v in r.items() if k in keep} for r in ROWS])
    empty = {"latency_ms", "latency_iqr_ms", "original_latency_ms", "speedup", "speedup_range",
             "efficiency", "latency_flags", "floor_speedup", "latency_decided_by",
             "status"}  # fmt: skip
    assert empty <= set(table.keys)  # the machine formats keep every column ...
    assert list(csv.DictReader(io.StringIO(to_csv(table))))[0].keys() >= empty
    assert {c["key"] for c in json.loads(to_json(table))["columns"]} >= empty
    shown = table.with_values()  # ... the views for people show only columns with values
    assert not empty & set(shown.keys)
    assert shown.keys == [k for k in table.keys if k not in empty]
    md, page = to_markdown(table), to_html(table)
    for header in ("Latency", "IQR", "Original (ms)", "Speed-up", "Round range", "Efficiency",
                   "Timing flags", "Clean-block speed-up", "Goal decided by"):  # fmt: skip
        assert header not in md and header not in page
    assert "N/A |" in md  # a column with some values keeps its N/A cells (row 0's batches)
    assert md.splitlines()[0].count("|") == len(shown.columns) + 1
    assert to_markdown(shown) == md
    # with latency: only the latency columns ROWS has no values for are left out (a busy
    # machine's clean-block figures are not in ROWS)
    full = iteration_table(ROWS)
    assert set(full.keys) - set(full.with_values().keys) == {
        "latency_iqr_ms",
        "original_latency_ms",
        "floor_speedup",
        "latency_decided_by",
        "status",  # no row was rejected
    }
    layers = layer_table(before=BEFORE, after=AFTER)
    assert layers.with_values() is layers  # every column has values: the table as it is


def test_counts_in_text_have_the_right_number():
    assert plural(1, "epoch") == "1 epoch" and plural(2, "epoch") == "2 epochs"
    assert plural(1, "epochs") == "1 epoch" and plural(0, "steps") == "0 steps"
    assert plural("?", "core") == "? cores"
    table = layer_table(before={"a": 2}, after={"a": 1})
    assert table.notes == ["Total: 2 → 1 channel, 1 removed (50.0 %)"]


def test_a_flagged_final_speed_up_says_it_is_not_to_be_trusted():
    clean = " ".join(iteration_table(ROWS).notes)
    assert "Measured speed-up: 1.60x" in clean and "too busy" not in clean
    flagged = [*ROWS[:-1], {**ROWS[-1], "latency_flags": ["preempted (on a core 22% of the time)"]}]
    notes = " ".join(iteration_table(flagged).notes)
    assert "flagged preempted (on a core 22% of the time): the machine was too busy" in notes
    assert "filterprune eval --load RUN --compare ORIGINAL --latency" in notes


# A run whose last iteration collapsed: iteration 3 is logged with accepted=False and the run
# keeps iteration 2 (ROWS[2]); every figure of the rejected row differs from the kept one's.
REJECTED = {"iteration": 3, "accepted": False, "ranking_batches": 500, "removed": 300,
            "removed_total": 900, "finetune": "5/0", "metrics": {"dice": 0.381},
            "params": 3_250_000, "macs": 500_000_000, "size_mb": 13.0, "latency_ms": 19.0,
            "speedup": 2.1, "speedup_low": 2.0, "speedup_high": 2.2,
            "latency_flags": ["preempted (on a core 40% of the time)"], "floor_speedup": 2.4,
            "table_speedup": 3.0}  # fmt: skip
KEPT = {**ROWS[2], "accepted": True, "table_speedup": 2.0, "latency_flags": ["noisy model"],
        "floor_speedup": 1.5}  # fmt: skip


@pytest.mark.parametrize("final", [False, True])
def test_notes_describe_the_kept_model_not_a_rejected_last_row(final):
    rows = [{**ROWS[0], "accepted": True}, {**ROWS[1], "accepted": True}, KEPT, REJECTED]
    if final:  # a final finetuning after the rejection: its row is the kept model
        rows.append({**KEPT, "iteration": "final", "metrics": {"dice": 0.96}})
    table = iteration_table(rows)
    notes = " ".join(table.notes)
    kept_dice = "96.00 %" if final else "95.50 %"
    # every note producer reads the kept row: reductions, speed-up, flags, metric, prediction
    assert "Size reduction: (52.40 − 27.20) / 52.40 × 100 % = 48.1 %" in notes
    assert "MACs reduction: (2.00 G − 1.00 G) / 2.00 G × 100 % = 50.0 %" in notes
    assert "Params reduction: (13.00 M − 6.80 M) / 13.00 M × 100 % = 47.7 %" in notes
    assert "Measured speed-up: 1.60x (rounds 1.58–1.61) for 2.00x fewer MACs" in notes
    assert "flagged noisy model" in notes and "gives 1.50x" in notes
    assert f"dice: 98.50 % → {kept_dice}" in notes
    assert "predicted 2.00x" in notes and "+25 % against the measured" in notes
    for rejected_figure in ("2.10x", "38.10 %", "75.0 %", "preempted", "2.40x", "3.00x"):
        assert rejected_figure not in notes
    # the rejected row is in the table, marked, and the kept row named
    kept = ["accepted", "kept"] if final else ["kept"]
    assert table.column("status") == ["accepted", "accepted", kept[0], "rejected", *kept[1:]]
    assert "Rejected (status 'rejected'): iteration 3" in notes
    assert f"kept model, iteration {'final' if final else 2}" in notes
    rejected_line = next(line for line in to_markdown(table).splitlines() if "| rejected |" in line)
    assert rejected_line.startswith("| 3 | rejected |")
    # the status column is shown only for a run with a rejection
    assert "Status" in to_markdown(table) and "Status" not in to_markdown(iteration_table(ROWS))


def test_kept_row_can_be_named_and_a_wrong_name_is_refused():
    rows = [ROWS[0], ROWS[1], {**ROWS[2], "accepted": False}]
    notes = " ".join(iteration_table(rows).notes)
    assert "Measured speed-up: 1.18x" in notes and "1.60x" not in notes  # iteration 1 is kept
    named = " ".join(iteration_table(ROWS, kept=1).notes)
    assert "Measured speed-up: 1.18x" in named and "dice: 98.50 % → 94.80 %" in named
    with pytest.raises(ValueError, match="kept=7 names no row"):
        iteration_table(ROWS, kept=7)
    with pytest.raises(ValueError, match="'accepted' must be true or false"):
        iteration_table([{**ROWS[0], "accepted": "yes"}])


def _record(speedup, flags=(), macs=True):
    record = {"device": "cpu", "batch_size": 1, "median_ms": 10.0, "original_median_ms": 20.0,
              "speedup": speedup, "speedup_low": 1.9, "speedup_high": 2.1, "rounds": 5,
              "runs": 5, "calls_per_run": 2, "flags": list(flags)}  # fmt: skip
    if macs:
        record.update(macs=100, original_macs=400)
    return record


def test_latency_table_of_an_eval_comparison_explains_only_what_it_shows():
    # as `filterprune eval --compare ... --latency` builds it: no MACs, no iteration 0
    table = latency_table(
        [
            {
                "iteration": "eager PyTorch: model vs original",
                "latency": [_record(2.0, ["noisy reference"], macs=False)],
            }
        ]  # fmt: skip
    )
    md = to_markdown(table)
    assert md.startswith("| Comparison |")
    notes = " ".join(table.notes)
    for absent in ("MACs ratio", "efficiency", "Iteration 0", "Iteration"):
        assert absent not in notes and absent not in md
    for flag in ("'noisy reference'", "'noisy model'", "'rounds disagree'",
                 "'preempted (on a core N % of the time)'"):  # fmt: skip
        assert flag in notes
    assert "50%" in notes and "35%" in notes and "80%" in notes  # measure.latency's thresholds
    assert "Speed-up = median over rounds" in notes
    assert (
        latency_table([{"iteration": "x", "latency": [_record(2.0)]}], label="Run")
        .columns[0]
        .header
        == "Run"
    )


def test_latency_table_of_a_run_marks_rejected_iterations():
    rows = [
        {"iteration": 0, "accepted": True, "latency": [_record(1.01)]},
        {"iteration": 1, "accepted": True, "latency": [_record(2.0)]},
        {"iteration": 2, "accepted": False, "latency": [_record(3.0)]},
    ]
    table = latency_table(rows)
    assert table.columns[0].header == "Iteration"
    assert table.column("status") == ["accepted", "accepted", "rejected"]
    notes = " ".join(table.notes)
    assert "MACs ratio = original MACs / MACs" in notes and "Iteration 0 is the original" in notes
    assert "Status 'rejected'" in notes
    untimed_flags = latency_table([{"iteration": 1, "latency": [{**_record(2.0), "flags": None}]}])
    assert "Timing flags" not in " ".join(untimed_flags.notes)
    assert "Status" not in " ".join(untimed_flags.notes)

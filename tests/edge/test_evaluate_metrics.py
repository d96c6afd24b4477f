"""fieldpick.lab.scoring: matching rules, per-phase scores, streams, and the table."""

import json
import math

import numpy as np
import pytest

from fieldpick.edge.errors import DataError
from fieldpick.edge.picks import Pick
from fieldpick.lab.scoring import by_phase, evaluate_stream, evaluate_windows, match


def _match_reference(t, p, tol):
    """Obviously-correct twin: every pair within tol, closest first, label then pick order on ties."""
    pairs = sorted(
        (abs(p[j] - t[i]), i, j) for i in range(len(t)) for j in range(len(p)) if abs(p[j] - t[i]) <= tol
    )
    used_t, used_p, out = set(), set(), []
    for _, i, j in pairs:
        if i not in used_t and j not in used_p:
            used_t.add(i)
            used_p.add(j)
            out.append((i, j))
    return sorted(out)


@pytest.mark.parametrize(
    "labels, picks, expected",
    [
        ([10.0], [10.5], [(0, 0)]),  # exactly at the tolerance: matched
        ([10.0], [10.625], []),  # beyond it: not matched
        ([10.0], [9.75, 10.125], [(0, 1)]),  # the closest pick wins
        ([1.0, 1.5], [1.25], [(0, 0)]),  # a tie goes to the earlier label
        ([1.0, 1.25], [1.125, 1.25], [(0, 0), (1, 1)]),  # one-to-one, closest pairs first
        ([1.0, np.nan], [1.0], [(0, 0)]),  # NaN labels are absent
        ([], [1.0], []),
    ],
)
def test_match_hand_cases(labels, picks, expected):
    li, pj = match(labels, picks, 0.5)
    assert list(zip(li.tolist(), pj.tolist())) == expected


def test_match_agrees_with_reference_twin(rng):
    for _ in range(50):
        t = np.round(rng.uniform(0, 10, rng.integers(0, 8)), 2)
        p = np.round(rng.uniform(0, 10, rng.integers(0, 8)), 2)
        li, pj = match(t, p, 0.5)
        assert list(zip(li.tolist(), pj.tolist())) == _match_reference(t.tolist(), p.tolist(), 0.5)


def test_windows_hand_checked_scores():
    # window 0: P at 1.00 s, picks at 1.05 s (match) and 4.00 s (false); S at 3.00 s picked at 2.90 s
    # window 1: P at 2.00 s, pick at 2.60 s (too far: false + missed)
    # window 2: no labels: its P pick counts for nobody
    true = {"P": [100, 200, np.nan], "S": [300, np.nan, np.nan]}
    picks = {"P": [[105, 400], [260], [5]], "S": [[290], [], []]}
    s = evaluate_windows(true, picks, fs=100.0, noise_picks={"P": [[1], [2, 3]], "S": [[], []]}, noise_seconds=1800)
    P, S = s["P"], s["S"]
    assert (P.n_true, P.n_picks, P.matched) == (2, 3, 1)
    assert P.precision == pytest.approx(1 / 3) and P.recall == pytest.approx(0.5)
    assert P.f1 == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))  # 0.4
    assert P.residual_mean_s == pytest.approx(0.05) and P.residual_mae_s == pytest.approx(0.05)
    assert P.false_per_hour == pytest.approx(6.0)  # 3 picks in half an hour of noise
    assert (S.precision, S.recall, S.f1) == (1.0, 1.0, 1.0)
    assert S.residual_mean_s == pytest.approx(-0.1) and S.within_fraction == 1.0  # -0.1 s counts as within 0.1 s
    assert s.unlabeled_window_picks == 1


def test_windows_seconds_and_multiple_labels_per_window():
    true = {"P": [[1.0, 20.0]], "S": [[2.0]]}
    picks = {"P": [[1.05, 1.2, 20.3]], "S": [[]]}
    s = evaluate_windows(true, picks)
    assert (s["P"].matched, s["P"].n_picks) == (2, 3)
    assert s["P"].residuals_s.tolist() == pytest.approx([0.05, 0.3])
    assert s["P"].within_fraction == 0.5
    assert s["P"].residual_std_s == pytest.approx(0.125)
    assert s["S"].recall == 0.0 and math.isnan(s["S"].precision) and math.isnan(s["S"].f1)


def test_precision_counts_picks_of_phase_in_any_labeled_window():
    # S is not labeled in window 0, but the window holds a P label: its S pick is a false pick
    s = evaluate_windows({"P": [1.0], "S": [np.nan]}, {"P": [[1.0]], "S": [[3.0]]})
    assert s["S"].n_picks == 1 and s["S"].false_picks == 1 and s["S"].n_true == 0


def test_stream_with_pick_objects_and_truth_array():
    t0 = 1_700_000_000 * 10 ** 9
    truth = np.array(
        [(0, "P", t0 + 10 * 10 ** 9), (0, "S", t0 + 15 * 10 ** 9), (1, "P", t0 + 100 * 10 ** 9)],
        dtype=[("event_id", "i8"), ("phase", "U1"), ("time_ns", "i8")],
    )
    picks = [
        Pick(t0 + 10 * 10 ** 9 + 20_000_000, "P", 0.9),  # +20 ms
        Pick(t0 + 15 * 10 ** 9 - 300_000_000, "S", 0.8),  # -300 ms
        Pick(t0 + 500 * 10 ** 9, "P", 0.7),  # false
    ]
    s = evaluate_stream(truth, picks, duration_s=1800)
    assert (s["P"].matched, s["P"].false_picks, s["P"].missed) == (1, 1, 1)
    assert s["P"].residuals_s.tolist() == [0.02]  # exact: subtracted in integer ns
    assert s["S"].residual_mean_s == pytest.approx(-0.3) and s["S"].within_fraction == 0.0
    assert s["P"].false_per_hour == pytest.approx(2.0)
    assert by_phase(picks)["P"].dtype == np.int64


def test_to_dict_is_strict_json_and_table_marks_undefined():
    s = evaluate_windows({"P": [1.0], "S": [np.nan]}, {"P": [[1.0]]})
    json.dumps(s.to_dict(), allow_nan=False)
    table = s.table("title")
    lines = table.splitlines()
    assert lines[0] == "title" and lines[1].split()[:4] == ["phase", "labels", "picks", "matched"]
    s_row = lines[3].split()
    assert s_row[0] == "S" and s_row[4] == "-"  # S precision undefined: no picks, no labels


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(true={"P": [1.0, 2.0]}, picks={"P": [[1.0]]}), r"picks\['P'\] has 1 windows; expected 2"),
        (dict(true={"Q": [1.0]}, picks={}), r"true has phase\(s\) 'Q'; allowed: P, S"),
        (dict(true={"P": [1.0]}, picks={"P": [[1]]}, noise_picks={"P": [[]]}), "noise_picks given without noise_seconds"),
        (dict(true={"P": [1.0]}, picks={"P": [[1]]}, tolerance_s=0), r"tolerance_s=0; it must be"),
        (dict(true={"P": [1.0]}, picks={"P": [[1]]}, within_s=0.7), r"within_s=0.7; it must lie in \[0, tolerance_s=0.5\]"),
        (dict(true={"P": [1.0]}, picks={"P": [[1]]}, fs=-1), r"fs=-1 Hz"),
    ],
)
def test_window_errors_name_the_bad_value(kwargs, message):
    with pytest.raises(DataError, match=message):
        evaluate_windows(**kwargs)


def test_stream_errors():
    with pytest.raises(DataError, match="duration_s=0"):
        evaluate_stream({"P": []}, {"P": []}, duration_s=0)
    with pytest.raises(DataError, match="phase 'X'; allowed: P, S"):
        evaluate_stream({"P": []}, [{"phase": "X", "time_ns": 1}], duration_s=1)

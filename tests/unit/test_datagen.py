"""The lab's synthetic data: same seed, same rows; faults plant exactly one problem."""

from __future__ import annotations


def test_same_seed_gives_same_rows(datagen):
    a = datagen.generate("qyyl", 200, 7, frozenset())
    b = datagen.generate("qyyl", 200, 7, frozenset())
    assert a == b
    assert datagen.generate("qyyl", 200, 8, frozenset())["person"] != a["person"]


def test_scale_sets_the_row_counts(datagen):
    counts = datagen.expected_counts("gs", 500, 1, frozenset())
    assert counts["person"] == 500
    assert counts["account"] == 500
    assert counts["contribution"] == 500 * len(datagen.PERIODS)
    assert counts["agency"] == 1 + 11 + 11 * datagen.COUNTIES_PER_CITY


def test_default_data_passes_every_gate(datagen):
    for line in datagen.LINES:
        rows = datagen.generate(line, 300, 20231118, frozenset())
        agencies = {a[0] for a in rows["agency"]}
        planned = {p[0] for p in rows["collection_plan"] if p[1] == datagen.CURRENT_PERIOD}
        assert planned == agencies  # N1
        due = [b for b in rows["payment_batch"] if b[1] <= datagen.CURRENT_PERIOD]
        assert all(b[3] == "paid" and b[4] for b in due)  # N3
        assert not [a for a in rows["approval"] if a[2] == "pending"]
        assert not [t for t in rows["in_transit"] if t[2] == "open"]


def test_each_fault_plants_one_problem_in_enterprise_pension_only(datagen):
    clean = datagen.expected_counts("qyyl", 300, 1, frozenset())
    faulty = datagen.generate("qyyl", 300, 1, frozenset(datagen.FAULTS))
    assert len(faulty["collection_plan"]) == clean["collection_plan"] - 1
    assert [a for a in faulty["approval"] if a[2] == "pending"] == [
        (datagen.FAULT_AGENCY, "benefit-claim", "pending", datagen.BASE_TIME)]
    assert len([t for t in faulty["in_transit"] if t[2] == "open"]) == 1
    assert len([b for b in faulty["payment_batch"] if b[3] == "unpaid"]) == 1
    other = datagen.generate("gs", 300, 1, frozenset(datagen.FAULTS))
    assert other == datagen.generate("gs", 300, 1, frozenset())

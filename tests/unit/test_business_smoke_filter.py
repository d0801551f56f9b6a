"""roles/business_smoke: which answers are records to read back and remove, and which are
refusals to report. Every answer comes from a host; only a plain decimal id is ever used."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "business_smoke_filter", ROOT / "roles" / "business_smoke" / "filter_plugins" / "smoke.py")
smoke = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(smoke)

URL = "http://127.0.0.1:28011/"


def answer(status=200, **extra):
    return {"item": [URL, "qyyl"], "status": status, **extra}


def test_an_accepted_transaction_is_a_record_to_remove_and_no_refusal():
    results = [answer(json={"ok": True, "id": 42}), answer(json={"id": "7"})]
    assert smoke.smoke_records(results) == [{"url": URL, "line": "qyyl", "id": 42},
                                            {"url": URL, "line": "qyyl", "id": 7}]
    assert smoke.smoke_refusals(results) == []


@pytest.mark.parametrize("made_up", [
    "1; DROP TABLE approval", "12\n", "-1", "1e3", "١٢", True, None, [1], {"id": 1}, 3.5, "", "9" * 19,
])
def test_an_id_that_is_not_a_plain_decimal_is_never_used_and_is_reported(made_up):
    results = [answer(json={"id": made_up}, content='{"id": "..."}')]
    assert smoke.smoke_records(results) == []
    assert smoke.smoke_refusals(results) == [
        f'{URL}approval accepted the qyyl transaction but answered no record id: {{"id": "..."}}']


def test_a_refusal_names_the_service_line_and_status_and_shows_a_short_clean_answer():
    hostile = "\x1b[2J\u202eevil" + "x" * 500
    [said] = smoke.smoke_refusals([answer(503, content=hostile)])
    assert said.startswith(f"{URL}approval refused the qyyl transaction (status 503): ?[2J?evil")
    assert "\x1b" not in said
    assert "\u202e" not in said
    assert said.endswith("…")
    assert len(said) < 300


def test_an_answer_without_status_or_body_is_a_refusal_too():
    [said] = smoke.smoke_refusals([{"item": [URL, "gs"], "msg": "Connection refused"}])
    assert said == f"{URL}approval refused the gs transaction (status none): Connection refused"
    assert smoke.smoke_records([{"item": [URL, "gs"], "msg": "Connection refused"}]) == []

"""N5: the export reaches the database with libpq keywords and a stated sslmode. A password
with a space or a quote stays one value; a value like `x host=elsewhere` cannot redirect the
connection (it did, built into a conninfo string)."""

from __future__ import annotations

import socket

import pytest

from cutover.data import __main__ as data_main
from cutover.data.session import connect
from cutover.errors import CutoverError


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_hostile_password_stays_a_password_and_cannot_redirect_the_connection(monkeypatch):
    port = _closed_port()
    monkeypatch.setitem(data_main.SECRETS, "db_password", "it's a secret host=203.0.113.9 port=1")
    conn = data_main._connection({"host": "127.0.0.1", "port": port, "user": "si_owner", "sslmode": "disable"})
    assert conn["password"] == "it's a secret host=203.0.113.9 port=1"
    with pytest.raises(CutoverError) as err:
        connect(conn, "gs", "si_gs")
    message = err.value.message
    assert "127.0.0.1" in message
    assert str(port) in message
    assert "203.0.113.9" not in message


def test_a_connection_without_a_stated_sslmode_is_refused_before_connecting():
    conn = data_main._connection({"host": "127.0.0.1", "port": _closed_port(), "user": "u"})
    with pytest.raises(CutoverError, match="no sslmode") as err:
        connect(conn, "gs", "si_gs")
    assert "si_db_sslmode" in err.value.hint

"""The hand-off's transfers against the lab's real drop (N6): an upload cut off midway, over
SFTP (host key checked), FTP and FTPS (certificate checked), resumes from what the drop holds
and is verified there; an FTPS server whose certificate is not trusted gets nothing."""

from __future__ import annotations

import hashlib
import io

import pytest

from cutover.data import drop as dropmod
from cutover.data.handoff import upload
from cutover.errors import CutoverError
from cutover.lab import lab as labmod

pytestmark = pytest.mark.lab


class CutOff(io.RawIOBase):
    """A local file whose reading fails after `limit` bytes, as a dropped connection does."""

    def __init__(self, data: bytes, limit: int) -> None:
        self.buf, self.limit, self.pos = data, limit, 0

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset
        return offset

    def read(self, n: int = -1) -> bytes:
        if self.pos >= self.limit:
            raise ConnectionResetError("connection reset by peer (test)")
        n = self.limit - self.pos if n < 0 else min(n, self.limit - self.pos)
        out = self.buf[self.pos:self.pos + n]
        self.pos += len(out)
        return out


CA_FILE = labmod.LAB_STATE / "ftps" / "drop-ca.pem"  # fetched from drop1 by lab.up


@pytest.mark.parametrize("protocol", ["sftp", "ftp", "ftps"])
def test_an_upload_cut_off_midway_resumes_from_what_the_drop_holds(lab, lab_vars, tmp_path, protocol):
    data = bytes(range(256)) * 40_000  # 10 MB
    local = tmp_path / "big.csv"
    local.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    spec = {"protocol": protocol, "host": "127.0.0.1", "user": lab_vars["si_drop_user"],
            "port": 22051 if protocol == "sftp" else lab_vars["si_drop_ftp_port"],
            "known_hosts": str(labmod.SSH_DIR / "known_hosts"), "ca_file": str(CA_FILE)}
    remote = f"inbox/cutoff-{protocol}.csv"
    said: list[str] = []
    with dropmod.connect(spec, lab_vars["vault_si_drop_password"]) as drop:
        for name in (remote, remote + ".part"):
            if drop.size(name) is not None:
                drop.remove(name)
        with pytest.raises(ConnectionResetError):
            drop.put(CutOff(data, 3_000_000), remote + ".part", 0)  # cut off after 3 MB
    with dropmod.connect(spec, lab_vars["vault_si_drop_password"]) as drop:  # a new session
        held = drop.size(remote + ".part")
        assert held is not None
        assert 0 < held <= 3_000_000
        result = upload(drop, local, remote, size=len(data), sha256=sha, say=said.append)
        assert result["resumed_at"] == held
        assert drop.sha256(remote) == sha
        assert drop.size(remote + ".part") is None
        drop.remove(remote)
    assert any(f"resuming at {held:,}" in s for s in said)


def test_an_ftps_drop_whose_certificate_is_not_trusted_gets_nothing(lab, lab_vars):
    # the system's CAs did not sign the drop's certificate: refused before the login
    spec = {"protocol": "ftps", "host": "127.0.0.1", "port": lab_vars["si_drop_ftp_port"],
            "user": lab_vars["si_drop_user"]}
    with pytest.raises(CutoverError) as err:
        dropmod.connect(spec, lab_vars["vault_si_drop_password"])
    assert "the server's certificate is not trusted" in err.value.message
    assert "si_drop_ca_file" in err.value.hint
    # and with the drop's own certificate the same server is accepted, over TLS
    with dropmod.connect(spec | {"ca_file": str(CA_FILE)}, lab_vars["vault_si_drop_password"]) as drop:
        assert drop.name.startswith("ftps://")
        assert drop.ftp.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert drop.size("inbox") == 0

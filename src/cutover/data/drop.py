"""The shared drop (N6): SFTP (Fabric/paramiko, host key verified) or FTP/FTPS (ftplib;
with FTPS the server's certificate and name are verified, against `ca_file` when given).

Both transports offer the same few operations on paths relative to the login directory,
so the hand-off and the reconciliation do not care which one the inventory chose.
"""

from __future__ import annotations

import ftplib
import hashlib
import io
import posixpath
import ssl
from collections.abc import Iterator
from typing import Any, BinaryIO

import paramiko
from fabric import Connection

from cutover.errors import CutoverError

CHUNK = 1 << 20


class Drop:
    """Common helpers on top of a transport's primitives."""

    name = "drop"

    def size(self, path: str) -> int | None:
        raise NotImplementedError

    def put(self, fp: BinaryIO, path: str, offset: int) -> None:
        raise NotImplementedError

    def read(self, path: str) -> Iterator[bytes]:
        raise NotImplementedError

    def mkdir(self, path: str) -> None:
        raise NotImplementedError

    def rename(self, src: str, dst: str) -> None:
        raise NotImplementedError

    def remove(self, path: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def makedirs(self, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if self.size(sub) is None:
                self.mkdir(sub)

    def sha256(self, path: str) -> str:
        digest = hashlib.sha256()
        for chunk in self.read(path):
            digest.update(chunk)
        return digest.hexdigest()

    def get_bytes(self, path: str) -> bytes:
        return b"".join(self.read(path))

    def put_bytes(self, data: bytes, path: str) -> None:
        tmp = path + ".part"
        self.put(io.BytesIO(data), tmp, 0)
        if self.size(path) is not None:
            self.remove(path)
        self.rename(tmp, path)

    def __enter__(self) -> Drop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SFTPDrop(Drop):
    def __init__(self, host: str, port: int, user: str, password: str, known_hosts: str | None) -> None:
        self.name = f"sftp://{user}@{host}:{port}"
        self.conn = Connection(host, port=port, user=user, connect_timeout=20,
                               connect_kwargs={"password": password, "look_for_keys": False,
                                               "allow_agent": False})
        client = self.conn.client
        if known_hosts:
            client.load_host_keys(known_hosts)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            self.sftp = self.conn.sftp()
        except paramiko.SSHException as exc:
            raise CutoverError(f"{self.name}: {exc}",
                               "the drop's host key must be in known_hosts; check it with its owner") from exc
        except (TimeoutError, OSError) as exc:
            raise CutoverError(f"{self.name}: cannot connect: {exc}", "is the drop reachable?") from exc

    def size(self, path: str) -> int | None:
        try:
            return self.sftp.stat(path).st_size
        except FileNotFoundError:
            return None

    def put(self, fp: BinaryIO, path: str, offset: int) -> None:
        with self.sftp.open(path, "ab" if offset else "wb") as remote:
            remote.set_pipelined(True)
            while block := fp.read(CHUNK):
                remote.write(block)

    def read(self, path: str) -> Iterator[bytes]:
        with self.sftp.open(path, "rb") as remote:
            remote.prefetch()
            while block := remote.read(CHUNK):
                yield block

    def mkdir(self, path: str) -> None:
        self.sftp.mkdir(path)

    def rename(self, src: str, dst: str) -> None:
        self.sftp.posix_rename(src, dst)

    def remove(self, path: str) -> None:
        self.sftp.remove(path)

    def close(self) -> None:
        self.conn.close()


class _FTP_TLS(ftplib.FTP_TLS):
    """ftplib.FTP_TLS whose data connections resume the control connection's TLS session.

    Stock ftplib starts a fresh TLS session on every data connection; vsftpd refuses that by
    default (require_ssl_reuse=YES, "522 SSL connection failed; session reuse required"): the
    resumed session is its proof that the data connection comes from the logged-in client.
    """

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[Any, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            # The session is read at each transfer, not kept from AUTH: with TLS 1.3 the server's
            # ticket comes after the handshake and only a later read (the login's replies) takes
            # it in. Same context, so the certificate and name checks stay as they are.
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size


class FTPDrop(Drop):
    def __init__(self, host: str, port: int, user: str, password: str, tls: bool = False,
                 ca_file: str | None = None) -> None:
        self.name = f"{'ftps' if tls else 'ftp'}://{user}@{host}:{port}"
        # ftplib's own default context verifies nothing; this one checks certificate and name
        self.ftp = _FTP_TLS(context=ssl.create_default_context(cafile=ca_file or None)) \
            if tls else ftplib.FTP()
        try:
            self.ftp.connect(host, port, timeout=30)
            self.ftp.login(user, password)  # FTP_TLS: AUTH TLS first, the password goes encrypted
        except ssl.SSLCertVerificationError as exc:
            self.ftp.close()
            raise CutoverError(f"{self.name}: the server's certificate is not trusted: {exc.verify_message}; "
                               "nothing was sent", "set si_drop_ca_file to the CA that signed the drop's "
                               "certificate (ask the drop's owner); never switch verification off") from exc
        except (OSError, ftplib.Error) as exc:
            self.ftp.close()
            raise CutoverError(f"{self.name}: cannot log in: {exc}", "is the drop reachable?") from exc
        if tls:
            self.ftp.prot_p()
        self.ftp.voidcmd("TYPE I")

    def size(self, path: str) -> int | None:
        try:
            return self.ftp.size(path)
        except ftplib.error_perm:
            try:  # a directory has no SIZE; CWD tells it exists
                pwd = self.ftp.pwd()
                self.ftp.cwd(path)
                self.ftp.cwd(pwd)
                return 0
            except ftplib.error_perm:
                return None

    def put(self, fp: BinaryIO, path: str, offset: int) -> None:
        self.ftp.storbinary(f"STOR {path}", fp, blocksize=CHUNK, rest=offset or None)

    def read(self, path: str) -> Iterator[bytes]:
        with self.ftp.transfercmd(f"RETR {path}") as conn:
            while block := conn.recv(CHUNK):
                yield block
        self.ftp.voidresp()

    def mkdir(self, path: str) -> None:
        self.ftp.mkd(path)

    def rename(self, src: str, dst: str) -> None:
        self.ftp.rename(src, dst)

    def remove(self, path: str) -> None:
        self.ftp.delete(path)

    def close(self) -> None:
        try:
            self.ftp.quit()
        except (OSError, ftplib.Error):
            self.ftp.close()


def connect(spec: dict[str, Any], password: str) -> Drop:
    """The drop named by the inventory: `protocol` sftp, ftp or ftps."""
    proto = spec.get("protocol", "sftp")
    if proto == "sftp":
        return SFTPDrop(spec["host"], int(spec["port"]), spec["user"], password, spec.get("known_hosts"))
    if proto in ("ftp", "ftps"):
        return FTPDrop(spec["host"], int(spec["port"]), spec["user"], password, tls=proto == "ftps",
                       ca_file=spec.get("ca_file"))
    raise CutoverError(f"unknown drop protocol {proto!r}", "si_drop_protocol is sftp, ftp or ftps")


def join(*parts: str) -> str:
    return posixpath.join(*[p.strip("/") for p in parts if p])

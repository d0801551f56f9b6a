"""FTPS data connections resume the control connection's TLS session, as vsftpd demands by
default (require_ssl_reuse=YES): checked against a tiny FTPS server on 127.0.0.1 that, like
vsftpd, refuses a data connection whose TLS session is not a resumed one (522)."""

from __future__ import annotations

import contextlib
import datetime
import ftplib
import hashlib
import ipaddress
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cutover.data.drop import FTPDrop

USER, PASSWORD = "drop", "s3cret"


def certificates(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)

    def issue(subject: str, key, issuer: x509.Name, issuer_key, ca: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(issuer).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                  critical=False))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False), critical=True)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False).add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test drop CA")])
    ca = issue("test drop CA", ca_key, ca_name, ca_key, ca=True)
    cert = issue("127.0.0.1", key, ca_name, ca_key, ca=False)
    paths = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class ReuseCheckingFTPS:
    """Explicit FTPS (AUTH TLS, PASV) with files kept in memory, serving one session at a time
    on 127.0.0.1. Like vsftpd with require_ssl_reuse=YES it answers 522 to a protected data
    connection that did not resume the control connection's TLS session; `reused` records,
    for each data connection, whether it did."""

    def __init__(self, context: ssl.SSLContext, ca_file: str) -> None:
        self.context, self.ca_file = context, ca_file  # ca_file: what a client must trust
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)  # to look at `stopped` now and then
        self.stopped = threading.Event()
        self.port = self.listener.getsockname()[1]
        self.files: dict[str, bytes] = {}
        self.reused: list[bool] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(10)
        self.listener.close()

    def serve(self) -> None:
        while not self.stopped.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            sock.settimeout(10)
            try:
                self.session(sock)
            except OSError:
                pass
            finally:
                sock.close()

    def session(self, sock: socket.socket) -> None:
        ctrl: socket.socket = sock
        reader = ctrl.makefile("rb")
        pasv: socket.socket | None = None
        rnfr = ""

        def reply(line: str) -> None:
            ctrl.sendall(line.encode() + b"\r\n")

        reply("220 test FTPS")
        while line := reader.readline():
            verb, _, arg = line.decode().rstrip("\r\n").partition(" ")
            verb = verb.upper()
            if verb == "AUTH":
                reply("234 Proceed with negotiation.")
                ctrl = self.context.wrap_socket(sock, server_side=True)
                reader = ctrl.makefile("rb")
            elif verb == "USER":
                reply("331 Please specify the password.")
            elif verb == "PASS":
                reply("230 Login successful." if arg == PASSWORD else "530 Login incorrect.")
            elif verb in ("PBSZ", "PROT", "TYPE"):
                reply("200 OK.")
            elif verb == "PWD":
                reply('257 "/"')
            elif verb == "CWD":
                reply("250 OK." if arg == "/" else "550 Failed to change directory.")
            elif verb == "SIZE":
                reply(f"213 {len(self.files[arg])}" if arg in self.files else "550 Could not get file size.")
            elif verb == "DELE":
                reply("250 Deleted." if self.files.pop(arg, None) is not None else "550 Delete failed.")
            elif verb == "RNFR":
                rnfr = arg
                reply("350 Ready for RNTO.")
            elif verb == "RNTO":
                self.files[arg] = self.files.pop(rnfr)
                reply("250 Rename successful.")
            elif verb == "PASV":
                pasv = socket.create_server(("127.0.0.1", 0))
                port = pasv.getsockname()[1]
                reply(f"227 Entering Passive Mode (127,0,0,1,{port >> 8},{port & 0xFF}).")
            elif verb in ("STOR", "RETR") and pasv is not None:
                if verb == "RETR" and arg not in self.files:
                    reply("550 Failed to open file.")
                    continue
                reply("150 Ok to send data.")
                pasv.settimeout(10)
                with pasv, pasv.accept()[0] as raw:
                    reply(self.transfer(verb, arg, raw))
                pasv = None
            elif verb == "QUIT":
                reply("221 Goodbye.")
                return
            else:
                reply("502 Command not implemented.")

    def transfer(self, verb: str, path: str, raw: socket.socket) -> str:
        raw.settimeout(10)
        try:
            data = self.context.wrap_socket(raw, server_side=True)
        except OSError:
            return "425 Failed to establish connection."
        with data:
            self.reused.append(data.session_reused)
            if not data.session_reused:
                return "522 SSL connection failed; session reuse required"
            if verb == "STOR":
                received = bytearray()
                while block := data.recv(1 << 16):
                    received += block
                self.files[path] = bytes(received)
            else:
                data.sendall(self.files[path])
            with contextlib.suppress(OSError):  # close_notify, as vsftpd sends; the client may be gone
                data.unwrap()
        return "226 Transfer complete."


@pytest.fixture(params=[ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"])
def server(request, tmp_path):
    ca, cert, key = certificates(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.maximum_version = request.param
    context.load_cert_chain(cert, key)
    srv = ReuseCheckingFTPS(context, str(ca))
    yield srv
    srv.close()


def test_ftps_data_connections_resume_the_control_session(server):
    data = bytes(range(256)) * 4_000  # 1 MB
    with FTPDrop("127.0.0.1", server.port, USER, PASSWORD, tls=True, ca_file=server.ca_file) as drop:
        drop.put_bytes(data, "inbox/x.csv")  # STOR of the .part, then a rename
        assert drop.size("inbox/x.csv") == len(data)
        assert drop.sha256("inbox/x.csv") == hashlib.sha256(data).hexdigest()  # RETR
        drop.put_bytes(b"again", "inbox/x.csv")  # a later transfer in the same session resumes too
        assert drop.get_bytes("inbox/x.csv") == b"again"
    assert server.reused == [True, True, True, True]


def test_the_stand_in_server_refuses_a_fresh_tls_session_like_vsftpd(server):
    # stock ftplib starts a new TLS session per data connection: what vsftpd refuses by default
    ftp = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=server.ca_file))
    ftp.connect("127.0.0.1", server.port, timeout=10)
    ftp.login(USER, PASSWORD)
    ftp.prot_p()
    server.files["f"] = b"x"
    with pytest.raises((OSError, ftplib.Error)):
        ftp.retrbinary("RETR f", lambda _: None)
    ftp.close()
    assert server.reused == [False]

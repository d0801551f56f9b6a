"""Where the status page may listen, and the token it asks for.

The page shows who did what in the window (names, reasons, site by site): on the loopback
address (the default) only this machine sees it, and a team reaches it through `ssh -L`. Bound
anywhere else it asks every request for a read-only token, read from a file: never from the
command line, where `ps` would show it to every user of the machine. Without one, such a bind is
refused before anything listens.
"""

from __future__ import annotations

import ipaddress
import socket
import stat

from cutover.errors import CutoverError
from cutover.paths import resolve

TOKEN_HINT = ("write a token to a file only you can read, e.g. "  # noqa: S105 - how to make one, not one
              "`umask 077; openssl rand -hex 32 > ~/.cutover-page-token`, pass --token-file "
              "~/.cutover-page-token, and give the token to the team by another channel")
MIN_TOKEN = 16


def is_loopback(bind: str) -> bool:
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def read_token(token_file: str) -> str:
    """The token in `token_file`: a file only its owner may read, one line of at least 16
    printable ASCII characters. Anything else is refused, naming the file (never its content)."""
    path = resolve(token_file)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii") if stat.S_ISREG(mode) else None
    except (OSError, UnicodeDecodeError) as exc:
        raise CutoverError(f"--token-file {path} cannot be read: {type(exc).__name__}", TOKEN_HINT) from None
    if text is None:
        raise CutoverError(f"--token-file {path} is not a regular file", TOKEN_HINT)
    if mode & 0o077:
        raise CutoverError(f"--token-file {path} may be read by others (mode {stat.S_IMODE(mode):o})",
                           f"chmod 600 {path}")
    token = text.strip()
    if len(token) < MIN_TOKEN or not token.isascii() or not token.isprintable() or " " in token:
        raise CutoverError(f"--token-file {path} does not hold a token: one line of at least {MIN_TOKEN} "
                           "printable characters without spaces", TOKEN_HINT)
    return token


def token_for(bind: str, token_file: str | None) -> str | None:
    """The token requests must carry (None: none, on loopback only); a bind beyond this
    machine without a token is refused, before anything is read or listened on."""
    if token_file:
        return read_token(token_file)
    if not is_loopback(bind):
        raise CutoverError(f"--bind {bind} would open the status page beyond this machine without a token; "
                           "nothing is listening",
                           f"{TOKEN_HINT}; or leave --bind out (127.0.0.1) and reach the page through "
                           "`ssh -L 8765:127.0.0.1:8765 THIS_HOST`")
    return None


def listen(bind: str, port: int) -> socket.socket:
    """The listening socket, or a refusal saying why (a port in use, an address not here)."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    try:
        return socket.create_server((bind, port), family=family)
    except OSError as exc:
        raise CutoverError(f"cannot listen on {bind} port {port}: {exc.strerror or exc}",
                           "choose another --port, or an address of this machine for --bind") from None


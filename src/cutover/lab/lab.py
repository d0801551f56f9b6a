"""`lab.up`, `lab.down`, `lab.status`: the lab's life cycle.

`up` is idempotent: containers that run with the wanted image and settings are kept,
dead or half-made ones (a previous session's leftovers) are removed and recreated, and
provisioning is skipped when nothing it depends on changed since it last succeeded.
A provisioning is kept as an image per window host (#17); an `up` that would provision the
same again (a reset, `lab.rehearse`) starts the hosts from those images instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from cutover.ansible import run_playbook
from cutover.errors import CutoverError
from cutover.inventory import active_limit, lab_state, resolved_var
from cutover.lab import artifacts, image
from cutover.lab.podman import ensure_host_tools, ensure_inotify, podman
from cutover.lab.topology import LabHost, every_lab_host, select
from cutover.paths import (
    LAB_INVENTORY,
    LAB_JOURNAL_PGPASS,
    LAB_OPS_INVENTORY,
    LAB_STATE,
    LAB_STATE_FILE,
    ROOT,
)

LABEL = "cutover.lab"
SSH_DIR = LAB_STATE / "ssh"
# the drop's FTPS certificate, for the controller to trust (the lab inventory's si_drop_ca_file);
# provisioning fetches it; a start from provisioned images copies it from drop1 instead
DROP_CA = LAB_STATE / "ftps" / "drop-ca.pem"
DROP_CERT = "/etc/ssl/certs/vsftpd.pem"
PROVISION = ROOT / "playbooks" / "lab" / "provision.yml"
PROVISION_OPS = ROOT / "playbooks" / "lab" / "ops.yml"  # the shared journal's host (inventories/lab-ops)
FAULTS = ("missing-plan", "unpaid-batch", "pending-approval", "in-transit")
# #17: each window host as it stands right after provisioning, kept as an image per host and
# per provisioning (its hash): the next lab.up that would provision the same again (a reset,
# lab.rehearse) starts the hosts from these instead. The ops host is never kept: its journal
# may hold a team's window, and ops.yml (quick, one host) always runs.
SNAPSHOTS = "localhost/cutover-lab-provisioned"
SNAPSHOTS_KEPT = 2  # provisionings kept (the test lab's and the default's, say)


# ---------------------------------------------------------------- keys


def _keygen(path: Path, comment: str) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                        "-f", str(path)], check=True)
    path.chmod(0o600)


def ensure_keys(hosts: list[LabHost]) -> None:
    """The lab's client key, a host key per host, and a known_hosts that pins them."""
    SSH_DIR.mkdir(parents=True, exist_ok=True)
    SSH_DIR.chmod(0o700)
    _keygen(SSH_DIR / "id_ed25519", "cutover-lab-controller")
    (SSH_DIR / "authorized_keys").write_text((SSH_DIR / "id_ed25519.pub").read_text())
    known, config = [], ["# written by invoke lab.up: `ssh -F .lab/ssh/config HOST` reaches a lab host"]
    for host in hosts:
        hdir = SSH_DIR / "hosts" / host.name
        _keygen(hdir / "ssh_host_ed25519_key", host.name)
        (hdir / "sshd.conf").write_text(
            "# written by invoke lab.up: this host's own sshd port on loopback\n"
            f"Port {host.ssh_port}\nListenAddress 127.0.0.1\n"
            "HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\n"
        )
        pub = (hdir / "ssh_host_ed25519_key.pub").read_text().split()
        known.append(f"[127.0.0.1]:{host.ssh_port} {pub[0]} {pub[1]}")
        config += [f"Host {host.name}", "  HostName 127.0.0.1", f"  Port {host.ssh_port}", "  User root",
                   f"  IdentityFile {SSH_DIR / 'id_ed25519'}", "  IdentitiesOnly yes",
                   f"  UserKnownHostsFile {SSH_DIR / 'known_hosts'}", "  StrictHostKeyChecking yes"]
    (SSH_DIR / "known_hosts").write_text("\n".join(known) + "\n")
    (SSH_DIR / "config").write_text("\n".join(config) + "\n")


# ---------------------------------------------------------------- containers


def _run_args(host: LabHost, tag: str) -> list[str]:
    hdir = SSH_DIR / "hosts" / host.name
    mounts = [
        (hdir / "sshd.conf", "/etc/ssh/sshd_config.d/10-lab.conf"),
        (hdir / "ssh_host_ed25519_key", "/etc/ssh/ssh_host_ed25519_key"),
        (hdir / "ssh_host_ed25519_key.pub", "/etc/ssh/ssh_host_ed25519_key.pub"),
        (SSH_DIR / "authorized_keys", "/root/.ssh/authorized_keys"),
    ]
    args = ["--name", host.container, "--hostname", host.name, "--network", "host",
            "--systemd", "always", "--label", f"{LABEL}=1", "--label", f"{LABEL}.host={host.name}"]
    for src, dst in mounts:
        args += ["-v", f"{src}:{dst}:ro"]
    return [*args, tag, "/sbin/init"]


def _config_hash(host: LabHost, tag: str) -> str:
    """Changes when the container must be made anew: image, mounts, or the sample app's
    sources (a release directory is never rewritten in place, so new code needs a new host)."""
    app = hashlib.sha256(b"".join((artifacts.APP_SRC / name).read_bytes() for name in artifacts.FILES))
    return hashlib.sha256(json.dumps([*_run_args(host, tag), app.hexdigest()]).encode()).hexdigest()[:16]


def containers() -> dict[str, dict[str, Any]]:
    """The lab's containers that exist, by host name, with state and config hash."""
    proc = podman("ps", "-a", "--filter", f"label={LABEL}=1", "--format", "json")
    out = {}
    for container in json.loads(proc.stdout or "[]"):
        labels = container.get("Labels") or {}
        host = labels.get(f"{LABEL}.host")
        if host:
            out[host] = {"state": container.get("State", ""), "config": labels.get(f"{LABEL}.config", ""),
                         "name": (container.get("Names") or [""])[0]}
    return out


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _who_listens(port: int) -> str:
    proc = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True,
                          check=False)
    return proc.stdout.strip().split("users:")[-1] if proc.stdout.strip() else "another process"


def _wait_ssh(hosts: list[LabHost], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    pending = {h.name: h.ssh_port for h in hosts}
    while pending and time.monotonic() < deadline:
        for name, port in list(pending.items()):
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    del pending[name]
        if pending:
            time.sleep(0.3)
    if pending:
        raise CutoverError(f"sshd did not start in {', '.join(sorted(pending))}",
                           "see `podman logs cutover-lab-HOST` and `podman exec cutover-lab-HOST systemctl "
                           "status ssh` (too low fs.inotify.max_user_instances for this many containers "
                           "leaves sshd down); then `invoke lab.down` and `lab.up`")


def _provision_hash(hosts: list[LabHost], tag: str, extravars: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(tag.encode())
    digest.update(json.dumps([host.name for host in hosts]).encode())
    digest.update(json.dumps(extravars, sort_keys=True).encode())
    # everything the provisioning reaches: a reset starts from the images of exactly these
    # sources, never from an older provisioning's (the roles it runs, the filters, the lab's
    # programs and how their tarballs are made)
    for base in ("inventories/lab", "inventories/lab-ops", "playbooks/lab", "roles/pg_data",
                 "roles/release_deploy", "filter_plugins", "lab", "ansible.cfg", "pyproject.toml",
                 "src/cutover/lab/artifacts.py"):
        top = ROOT / base
        for path in sorted(top.rglob("*")) if top.is_dir() else [top]:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def up(*, cities: int, scale: int, seed: int, faults: list[str], say=print,
       progress_factory=None, reset: bool = False, counties: int = 0) -> dict[str, Any]:
    """Bring the lab to the wanted state; return a summary (created, provisioned, seconds).

    `reset` provisions even when nothing changed: a rehearsal leaves the lab after the window
    (frozen, its snapshot kept as the window's way back), and provisioning puts it before."""
    started = time.monotonic()
    bad = [f for f in faults if f not in FAULTS]
    if bad:
        raise CutoverError(f"unknown --fault {', '.join(bad)}", f"choose from {', '.join(FAULTS)}")
    if scale < 1:
        raise CutoverError(f"--scale {scale} must be at least 1")
    all_hosts = every_lab_host()
    hosts = select(all_hosts, cities, counties)
    ensure_host_tools(say)
    ensure_inotify(len(hosts), say)
    tag = image.ensure_image(say)
    ensure_keys(hosts)
    artifacts.build()
    skipped = [h.name for h in all_hosts if h not in hosts]
    extravars = {"lab_data_scale": scale, "lab_data_seed": seed, "lab_data_faults": list(faults)}
    phash = _provision_hash(hosts, tag, extravars)
    state = {"cities": cities, "counties": counties, "scale": scale, "seed": seed, "faults": list(faults),
             "image": tag, "hosts": [h.name for h in hosts], "skipped_hosts": skipped}

    existing = containers()
    provisioned = (reset or bool(_to_recreate(hosts, tag, existing))
                   or lab_state().get("provisioned") != phash)
    # provisioned before with exactly these inputs: every window host starts from its image, on
    # a reset or when no window host is there at all (after lab.down); a plain lab.up with one
    # host to remake provisions in place, as ever, and leaves the others' state alone
    fresh = {h.name for h in _window_hosts(hosts)} <= {h.name for h in _to_recreate(hosts, tag, existing)}
    images = _snapshots(hosts, phash) if provisioned and (reset or fresh) else {}
    # a reset with no images of these inputs yet (the first after a change) provisions every
    # window host in a new container from the plain image: provisioning over the old ones would
    # keep what a window left there (a stop's record of the timed jobs it switched off, which
    # the next stop rightly refuses to overwrite)
    renew = _window_hosts(hosts) if reset and not images else []
    created = _reconcile_containers(hosts, tag, say, images=images, renew=renew)
    _wait_ssh(hosts)
    if provisioned:
        LAB_STATE_FILE.write_text(json.dumps({**state, "provisioned": None}, indent=2))
        _provision(len(hosts), extravars, say, progress_factory, reset=reset, ops_only=bool(images))
        if not images and not _snapshots(hosts, phash):  # kept once per provisioning's inputs
            _keep_snapshots(hosts, phash, say)
    if images or not DROP_CA.exists():
        _copy_drop_ca(hosts)
    if provisioned or not LAB_JOURNAL_PGPASS.exists() or LAB_JOURNAL_PGPASS.stat().st_mode & 0o077:
        _write_journal_pgpass()
    LAB_STATE_FILE.write_text(json.dumps({**state, "provisioned": phash}, indent=2))
    return {"created": created, "provisioned": provisioned, "from_images": bool(images),
            "seconds": round(time.monotonic() - started, 1)}


def _copy_drop_ca(hosts: list[LabHost]) -> None:
    """The drop's certificate into this checkout's lab state. The provisioned images belong to
    the machine and a checkout's .lab/ to that checkout: a second clone that starts the lab from
    the images must trust the drop too (its FTPS hand-off refused it)."""
    drop = next((h for h in hosts if "drop" in h.groups), None)
    if drop is None:
        return
    DROP_CA.parent.mkdir(parents=True, exist_ok=True)
    podman("cp", f"{drop.container}:{DROP_CERT}", str(DROP_CA))


def _to_recreate(hosts: list[LabHost], tag: str, existing: dict[str, dict[str, Any]]) -> list[LabHost]:
    """The hosts whose container is missing, not running, or made with other settings."""
    return [h for h in hosts
            if existing.get(h.name, {}).get("state") != "running"
            or existing[h.name]["config"] != _config_hash(h, tag)]


def _reconcile_containers(hosts: list[LabHost], tag: str, say, images: dict[str, str] | None = None,
                          renew: list[LabHost] | None = None) -> list[str]:
    """Keep what runs as wanted; remove the rest; (re)create what is missing, every host
    `images` names from that image (a provisioned one), and every host in `renew` from the
    plain image. Ports first."""
    images = images or {}
    existing = containers()
    renewed = {h.name for h in renew or []} | set(images)
    recreate = [h for h in hosts if h.name in renewed or h in _to_recreate(hosts, tag, existing)]
    busy = [(p, h.name) for h in recreate for p in h.ports()
            if not _port_free(p) and not _ours_on(p, existing, recreate)]
    if busy:
        lines = [f"port {p} (for {n}) is taken by {_who_listens(p)}" for p, n in busy]
        raise CutoverError("lab ports already in use; nothing was started:\n  " + "\n  ".join(lines),
                           "stop what uses them, or change the ports in inventories/lab/hosts.yml")
    keep = {h.name for h in hosts} - {h.name for h in recreate}
    for name, container in existing.items():
        if name not in keep:
            podman("rm", "-f", "-t", "5", container["name"] or f"cutover-lab-{name}", check=False)
    if recreate:
        said = " as provisioned before, from their images" if images else ""
        say(f"==> starting {len(recreate)} container(s){said}: {', '.join(h.name for h in recreate)}")

    def start(h: LabHost) -> None:
        podman("rm", "-f", "-t", "0", h.container, check=False)
        # labelled with the plain image's settings: the next lab.up keeps it
        podman("run", "-d", "--label", f"{LABEL}.config={_config_hash(h, tag)}",
               *_run_args(h, images.get(h.name, tag)))

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(start, recreate))
    return [h.name for h in recreate]


def _provision(count: int, extravars: dict[str, Any], say, progress_factory, *, reset: bool = False,
               ops_only: bool = False) -> None:
    if ops_only:
        say("==> the window's hosts started as provisioned; provisioning ops1 (playbooks/lab/ops.yml)")
    else:
        say(f"==> provisioning {count} host(s) (playbooks/lab/provision.yml, playbooks/lab/ops.yml)")
    if reset:
        say("    the shared journal on ops1 is emptied: the lab goes back to before any window")
    # the journal is emptied only by a reset (lab.rehearse, lab.up --reset), never by an
    # ordinary re-provisioning after a code change, which a team's lab window may be using
    ops_vars = {**extravars, "lab_ops_empty_journal": reset}
    for playbook, inventory, what, variables in (
            (PROVISION, LAB_INVENTORY, "lab provisioning", extravars),
            (PROVISION_OPS, LAB_OPS_INVENTORY, "lab provisioning: ops", ops_vars)):
        if ops_only and playbook == PROVISION:
            continue
        progress = progress_factory(what) if progress_factory else None
        with progress or contextlib.nullcontext():
            result = run_playbook(playbook, inventory, ident=f"{playbook.stem}-{int(time.time())}",
                                  artifacts_dir=LAB_STATE / "runs", extravars=variables,
                                  limit=active_limit(inventory),
                                  on_progress=progress.update if progress else None)
        if not result.ok:
            raise CutoverError(f"{what} failed:\n" + result.summary(),
                               f"full log: {result.artifact_dir / 'stdout'}")


# ---------------------------------------------------------------- provisioned images (#17)


def _snapshot_ref(host: LabHost, phash: str) -> str:
    return f"{SNAPSHOTS}:{host.name}-{phash[:16]}"


def _window_hosts(hosts: list[LabHost]) -> list[LabHost]:
    return [h for h in hosts if "ops" not in h.groups]


def _snapshot_refs() -> list[str]:
    """The provisioned images there are, newest first."""
    proc = podman("images", "--filter", f"reference={SNAPSHOTS}",
                  "--format", "{{.CreatedAt}}\t{{.Repository}}:{{.Tag}}", check=False)
    rows = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
    return [ref for _, ref in sorted(rows, reverse=True)]  # the times are UTC, written alike


def _snapshots(hosts: list[LabHost], phash: str) -> dict[str, str]:
    """The provisioned image of every window host, when each one was kept for exactly these
    inputs (image, hosts, data, the provisioning's sources); else none."""
    refs = set(_snapshot_refs())
    wanted = {h.name: _snapshot_ref(h, phash) for h in _window_hosts(hosts)}
    return wanted if all(ref in refs for ref in wanted.values()) else {}


def _keep_snapshots(hosts: list[LabHost], phash: str, say) -> None:
    """Keep every window host as provisioned (paused while it is copied: its databases as
    after a crash, which PostgreSQL recovers from); then only the newest provisionings' images.
    A host that cannot be kept leaves none of this provisioning: the next reset provisions."""
    window = _window_hosts(hosts)
    say(f"==> keeping the {len(window)} provisioned hosts as images: a reset starts from them")

    def keep(h: LabHost) -> bool:
        return podman("commit", "--pause=true", "--quiet", h.container, _snapshot_ref(h, phash),
                      check=False).returncode == 0

    mine = [_snapshot_ref(h, phash) for h in window]
    present = set(_snapshot_refs())
    replaced = [podman("image", "inspect", "--format", "{{.Id}}", ref, check=False).stdout.strip()
                for ref in mine if ref in present]  # this provisioning kept again: the earlier images go
    with ThreadPoolExecutor(max_workers=4) as pool:
        kept = list(pool.map(keep, window))
    if not all(kept):
        say("    a host could not be kept as an image (see `podman commit`); the next reset provisions")
        podman("rmi", *mine, check=False)
    # never forced: an image a lab container still runs from stays until that container goes
    for ref in [*stale_snapshots(_snapshot_refs()), *filter(None, replaced)]:
        podman("rmi", ref, check=False)


def stale_snapshots(refs_newest_first: list[str], kept: int = SNAPSHOTS_KEPT) -> list[str]:
    """The provisioned images beyond the `kept` newest provisionings (a tag is HOST-HASH)."""
    newest: list[str] = []
    for ref in refs_newest_first:
        key = ref.rsplit("-", 1)[-1]
        if key not in newest:
            newest.append(key)
    return [ref for ref in refs_newest_first if ref.rsplit("-", 1)[-1] not in newest[:kept]]


# ---------------------------------------------------------------- the shared journal (ops host)


def _journal_settings() -> dict[str, Any]:
    ops = next(h for h in every_lab_host() if "ops" in h.groups)
    return {"port": int(ops.vars["cutover_journal_port"]), "db": ops.vars["cutover_journal_db"],
            "user": ops.vars["cutover_journal_user"], "host": ops.name}


def _write_journal_pgpass() -> None:
    """The lab's own libpq password file for its journal (mode 0600, created so), so that the
    URL `journal_url()` gives holds no secret (N16)."""
    settings = _journal_settings()
    password = str(resolved_var(LAB_OPS_INVENTORY, settings["host"], "cutover_journal_password"))
    fields = ["127.0.0.1", str(settings["port"]), settings["db"], settings["user"], password]
    line = ":".join(field.replace("\\", "\\\\").replace(":", "\\:") for field in fields) + "\n"
    fd, tmp = tempfile.mkstemp(dir=LAB_STATE, prefix=".journal.pgpass.")  # made 0600; then one rename
    with os.fdopen(fd, "w") as out:
        out.write(line)
    os.replace(tmp, LAB_JOURNAL_PGPASS)


def journal_url() -> str | None:
    """The URL of the lab's shared journal on the ops host, or None when no lab is up. It holds
    no secret: libpq reads the password from the lab's password file, which `passfile` names."""
    if not lab_state() or not LAB_JOURNAL_PGPASS.exists():
        return None
    settings = _journal_settings()
    return (f"postgresql://{settings['user']}@127.0.0.1:{settings['port']}/{settings['db']}"
            f"?passfile={quote(str(LAB_JOURNAL_PGPASS), safe='/')}")


def is_lab_journal(url: str) -> bool:
    """Does a postgresql:// URL name the lab's own journal (ops1's database, on loopback)?"""
    settings = _journal_settings()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (parts.hostname in ("127.0.0.1", "localhost") and port == settings["port"]
            and parts.path.lstrip("/") == settings["db"])


def _ours_on(port: int, existing: dict[str, dict[str, Any]], recreate: list[LabHost]) -> bool:
    """A port held by one of our own containers that is about to be recreated is fine."""
    return any(port in h.ports() and existing.get(h.name, {}).get("state") == "running"
               for h in recreate)


def down(say=print) -> list[str]:
    """Remove the lab's containers (by label) and its generated state; keep the image cache.
    Without podman there is no lab to remove: a fresh machine's first `lab.rehearse` starts
    here, before `up` installs podman."""
    removed = []
    LAB_JOURNAL_PGPASS.unlink(missing_ok=True)  # the journal it opened goes with the ops host
    if shutil.which("podman") is None:
        LAB_STATE_FILE.unlink(missing_ok=True)
        say("no lab to remove (podman is not installed yet)")
        return removed
    for name, container in containers().items():
        podman("rm", "-f", "-t", "5", container["name"] or f"cutover-lab-{name}")
        removed.append(name)
    # The lab creates no volumes; anything labelled as ours is removed all the same.
    vols = podman("volume", "ls", "-q", "--filter", f"label={LABEL}=1", check=False).stdout.split()
    for volume in vols:
        podman("volume", "rm", "-f", volume, check=False)
    if LAB_STATE_FILE.exists():
        LAB_STATE_FILE.unlink()
    if removed:
        say(f"removed {len(removed)} container(s): {', '.join(sorted(removed))}")
    else:
        say("no lab containers to remove")
    return removed


# ---------------------------------------------------------------- status


def _http(url: str) -> tuple[bool, dict[str, Any] | str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 - loopback lab URL
            body = resp.read()
            try:
                return resp.status == 200, json.loads(body)
            except ValueError:
                return resp.status == 200, body.decode(errors="replace")[:200]
    except Exception as exc:
        return False, str(exc)


def _tcp(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _unit_states(container: str, units: list[str]) -> dict[str, tuple[str, str]]:
    if not units:
        return {}
    proc = podman("exec", container, "systemctl", "show", "--property=Id,ActiveState,UnitFileState",
                  *units, check=False, timeout=20)
    out: dict[str, tuple[str, str]] = {}
    for block in proc.stdout.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "Id" in props:
            out[props["Id"]] = (props.get("ActiveState", "?"), props.get("UnitFileState", "?"))
    return out


def host_status(host: LabHost, running: bool) -> dict[str, Any]:
    services = []
    units = [service.name if "." in service.name else f"{service.name}.service" for service in host.services
             if service.kind != "cron"]
    states = _unit_states(host.container, units) if running else {}
    for service in host.services:
        entry: dict[str, Any] = asdict(service) | {"url": service.url}
        if service.kind == "cron":
            cron_on = running and _cron_enabled(host.container, service.name)
            entry["state"] = "enabled" if cron_on else "disabled"
            entry["healthy"] = running and (entry["state"] == "enabled") == service.enabled
        else:
            unit = service.name if "." in service.name else f"{service.name}.service"
            active, enabled = states.get(unit, ("unknown", "unknown"))
            entry["state"], entry["unit_file"] = active, enabled
            if service.kind == "timer":
                entry["healthy"] = (active == "active") == service.enabled
            elif service.kind == "http" and running:
                ok, body = _http(service.url or "")
                entry["healthy"] = ok and active == "active"
                if isinstance(body, dict):
                    entry["version"] = body.get("version")
                else:
                    entry["detail"] = body
            else:
                entry["healthy"] = (running and active == "active" and service.port is not None
                                    and _tcp(service.port))
        services.append(entry)
    return {"host": host.name, "groups": host.groups, "container": host.container, "running": running,
            "ssh_port": host.ssh_port, "site": host.vars.get("cutover_site"), "services": services,
            "healthy": running and all(entry["healthy"] for entry in services)}


def _cron_enabled(container: str, name: str) -> bool:
    proc = podman("exec", container, "grep", "-Eq", r"^[^#].*si_job\.py", f"/etc/cron.d/{name}",
                  check=False, timeout=10)
    return proc.returncode == 0


def status(hosts: list[str] | None = None) -> dict[str, Any]:
    """Every host of the lab (or the named ones), every service: state, health, version."""
    state = lab_state()
    skipped = set(state.get("skipped_hosts") or [])
    every = every_lab_host()
    unknown = sorted(set(hosts or []) - {h.name for h in every})
    if unknown:
        raise CutoverError(f"no lab host named {', '.join(unknown)}",
                           f"lab hosts: {', '.join(h.name for h in every)}")
    chosen = [h for h in every if h.name not in skipped and (not hosts or h.name in hosts)]
    existing = containers() if podman_available() else {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        rows = list(pool.map(
            lambda h: host_status(h, existing.get(h.name, {}).get("state") == "running"), chosen))
    return {"lab": {k: state.get(k) for k in ("cities", "counties", "scale", "seed", "faults", "image")},
            "journal_url": journal_url(), "hosts": rows,
            "healthy": bool(rows) and all(row["healthy"] for row in rows)}


def podman_available() -> bool:
    try:
        return podman("version", "--format", "{{.Client.Version}}", check=False).returncode == 0
    except CutoverError:
        return False

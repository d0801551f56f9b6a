"""Fleet scale (#17): the shipped plan's stop, deploy and restore on labs of growing size, in
one session, each from a lab freshly provisioned to before the window (`lab.up --reset`,
timed apart from the verbs).

Sizes are given as county counters per city over the 11 cities (`lab.up --cities 11
--counties N`): 0 is the 23-host lab, 3 the 56-host one, 9 (the most the lab inventory has)
the 122-host one. For each size and verb it reports the wall time, the host-tasks Ansible ran
(one task on one host, skipped ones counted apart), the cost per host-task run, Ansible's CPU
time on the controller (roughly: the processes the engine waits for), the CPU time the lab's
containers used meanwhile (they share this machine's cores with the controller: together the
two bound the verb's time from below), and the verb's time
against the smallest lab's (#17's goal: at most 2x from 23 to about 120 hosts); then the
memory per window host (its container, podman's accounting) and the engine's own peak
memory. Where the time goes at the largest size: the costliest tasks summed over hosts.
`--chart FILE` draws the wall time per verb against the hosts as a small SVG; `--json FILE`
keeps every figure, also of the sizes done when a later one fails.

    .venv/bin/python bench/fleet.py [--counties 0,3,9] [--chart docs/fleet.svg]

Needs podman (it brings the lab up itself, and leaves it up at the largest size).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from cutover.engine.executor import Executor
from cutover.engine.session import RunOptions
from cutover.lab import lab as labmod
from cutover.lab.podman import podman
from cutover.lab.topology import every_lab_host, select
from cutover.paths import ROOT

PLAN = ROOT / "plans" / "shanxi-2023-11.yml"
VERBS = ["stop", "deploy", "restore"]
CITIES = 11
SCALE = 500
SEED = 20231118
RAN = {"runner_on_ok", "runner_on_failed", "runner_on_unreachable"}


def host_tasks(artifacts: Path, verb: str) -> tuple[int, int, Counter]:
    """(host-tasks run, host-tasks skipped, seconds per task summed over its hosts) of one
    verb's playbooks, from ansible-runner's own event files."""
    ran, skipped, cost = 0, 0, Counter()
    for run_dir in artifacts.glob(f"run-*-{verb}"):
        for event_file in run_dir.rglob("job_events/*.json"):
            event = json.loads(event_file.read_text())
            if event.get("event") == "runner_on_skipped":
                skipped += 1
            if event.get("event") not in RAN:
                continue
            ran += 1
            data = event.get("event_data", {})
            cost[f"{data.get('play', '')} / {data.get('task', '')}"] += float(data.get("duration") or 0)
    return ran, skipped, cost


def container_memory(names: set[str]) -> dict[str, float]:
    """MiB each of these lab containers uses now (podman's own accounting; {} if it cannot say)."""
    stats = podman("stats", "--no-stream", "--format", "json", check=False)
    rows = json.loads(stats.stdout or "[]") if stats.returncode == 0 else []
    return {row["name"]: _bytes(str(row.get("mem_usage", "0B"))) / 2**20 for row in rows
            if row.get("name") in names}


def _bytes(text: str) -> float:
    """'19.14MB / 25.28GB' -> bytes of the first figure."""
    figure = text.split("/", maxsplit=1)[0].strip()
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1)):
        if figure.endswith(unit):
            return float(figure[: -len(unit)]) * scale
    return 0.0


def window_hosts(counties: int) -> list:
    """The lab's window hosts at this size (the ops host, which no plan reaches, left out)."""
    return [h for h in select(every_lab_host(), CITIES, counties) if "ops" not in h.groups]


def one_size(counties: int, out: Path) -> dict:
    hosts = window_hosts(counties)
    print(f"lab: {CITIES} cities, {counties} county counters each: {len(hosts)} hosts; provisioning",
          flush=True)
    started = time.perf_counter()
    labmod.up(cities=CITIES, counties=counties, scale=SCALE, seed=SEED, faults=[], say=lambda *_: None,
              reset=True)
    lab_up = time.perf_counter() - started
    print(f"  lab.up --reset: {lab_up:.1f} s (not in the verbs' figures)", flush=True)
    out.mkdir(parents=True)
    result = {"counties": counties, "hosts": len(hosts), "lab_up_seconds": lab_up, "verbs": {}}
    for verb in VERBS:
        opts = RunOptions(plan=str(PLAN), journal=str(out / "journal.sqlite"), artifacts=str(out),
                          rehearsal=True, auto_confirm=True, say=lambda *_: None)
        cpu_before, hosts_before = children_cpu(), containers_cpu()
        started = time.perf_counter()
        Executor(verb, opts).run()
        seconds = time.perf_counter() - started
        cpu = children_cpu() - cpu_before
        hosts_cpu = containers_cpu() - hosts_before if hosts_before is not None else None
        ran, skipped, cost = host_tasks(out, verb)
        result["verbs"][verb] = {"seconds": seconds, "host_tasks": ran, "skipped": skipped,
                                 "controller_cpu_seconds": cpu, "hosts_cpu_seconds": hosts_cpu,
                                 "top": cost.most_common(6)}
        print(f"  cutover.{verb}: {seconds:.1f} s, {ran} host-tasks run ({skipped} skipped), "
              f"{1000 * seconds / max(ran, 1):.0f} ms per host-task run; Ansible on the controller "
              f"used {cpu:.0f} CPU-seconds ({cpu / seconds:.2f} of {os.cpu_count()} cores)"
              + (f", the lab's containers {hosts_cpu:.0f} ({hosts_cpu / seconds:.2f})" if hosts_cpu is not None
                 else ""), flush=True)
    memory = container_memory({h.container for h in hosts})
    result["memory_mib_per_host"] = sum(memory.values()) / len(memory) if memory else None
    result["engine_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def children_cpu() -> float:
    """CPU seconds (user and system) of this process's ended children: ansible-playbook and its
    workers, which ansible-runner starts and waits for, and any other child the engine reaps;
    not ssh's ControlPersist masters, which leave the process tree."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# every podman container's cgroup sits under libpod_parent (cgroupfs) or machine.slice (systemd)
CONTAINER_CGROUPS = [Path("/sys/fs/cgroup/cpuacct/libpod_parent/cpuacct.usage"),  # v1: nanoseconds
                     Path("/sys/fs/cgroup/libpod_parent/cpu.stat"),  # v2: usage_usec
                     Path("/sys/fs/cgroup/machine.slice/cpu.stat")]


def containers_cpu() -> float | None:
    """CPU seconds all of podman's containers have used so far (the lab's hosts: their modules,
    services and databases, which share this machine's cores with the controller), or None
    where this machine keeps them elsewhere."""
    for path in CONTAINER_CGROUPS:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.name == "cpuacct.usage":
            return int(text) / 1e9
        usage = dict(line.split() for line in text.splitlines() if line.count(" ") == 1)
        if "usage_usec" in usage:
            return int(usage["usage_usec"]) / 1e6
    return None


def chart(results: list[dict], path: Path) -> None:
    """Wall time per verb against hosts: one polyline per verb, axes labelled, no dependency."""
    width, height, pad = 480, 300, 50
    most_hosts = max(r["hosts"] for r in results)
    most_seconds = max(v["seconds"] for r in results for v in r["verbs"].values()) * 1.1

    def x(hosts: float) -> float:
        return pad + (width - 2 * pad) * hosts / most_hosts

    def y(seconds: float) -> float:
        return height - pad - (height - 2 * pad) * seconds / most_seconds

    colours = {"stop": "#b03a2e", "deploy": "#1f618d", "restore": "#1e8449"}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="sans-serif" font-size="11">',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#444"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#444"/>',
             f'<text x="{width / 2}" y="{height - 12}" text-anchor="middle">hosts</text>',
             f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" '
             'text-anchor="middle">seconds</text>']
    for r in results:
        parts.append(f'<text x="{x(r["hosts"]):.0f}" y="{height - pad + 14}" text-anchor="middle">{r["hosts"]}</text>')
    for index, verb in enumerate(VERBS):
        points = " ".join(f'{x(r["hosts"]):.1f},{y(r["verbs"][verb]["seconds"]):.1f}' for r in results)
        parts.append(f'<polyline fill="none" stroke="{colours[verb]}" stroke-width="2" points="{points}"/>')
        parts.append(f'<text x="{pad + 8}" y="{pad + 14 * index}" fill="{colours[verb]}">{verb}</text>')
        for r in results:
            seconds = r["verbs"][verb]["seconds"]
            parts.append(f'<text x="{x(r["hosts"]) + 3:.0f}" y="{y(seconds) - 3:.0f}" fill="{colours[verb]}">'
                         f'{seconds:.0f}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counties", default="0,3", help="county counters per city, one lab per figure")
    parser.add_argument("--chart", type=Path, help="draw the wall times per verb into this SVG file")
    parser.add_argument("--json", type=Path, help="write every figure into this file")
    args = parser.parse_args()
    sizes = sorted({int(n) for n in args.counties.split(",")})
    for counties in sizes:  # every size is checked before the first lab is touched
        window_hosts(counties)
    results: list[dict] = []
    keep = Path(tempfile.mkdtemp(prefix="fleet-"))
    try:
        for counties in sizes:
            try:
                results.append(one_size(counties, keep / f"counties-{counties}"))
            except Exception:
                print(f"the {counties}-county lab failed; its journal and Ansible's logs are kept in {keep}; "
                      "the lab is left mid-window: `./inv lab.up --reset` puts it back before the window",
                      flush=True)
                raise
        shutil.rmtree(keep)
    finally:
        if args.json and results:
            args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    report(results)
    if args.chart:
        chart(results, args.chart)
        print(f"chart: {args.chart}")
    return 0


def report(results: list[dict]) -> None:
    base = results[0]
    print(f"\n{'hosts':>5}  " + "  ".join(f"{verb:>24}" for verb in VERBS) + "  MiB/host")
    for r in results:
        cells = []
        for verb in VERBS:
            v, b = r["verbs"][verb], base["verbs"][verb]
            cells.append(f"{v['seconds']:6.1f} s {v['seconds'] / b['seconds']:4.2f}x "
                         f"{1000 * v['seconds'] / max(v['host_tasks'], 1):4.0f} ms")
        memory = r["memory_mib_per_host"]
        print(f"{r['hosts']:>5}  " + "  ".join(f"{c:>24}" for c in cells)
              + (f"  {memory:8.1f}" if memory is not None else "  (podman stats failed)"))
    print(f"(each cell: wall time, against the {base['hosts']}-host lab, per host-task run)")
    print("\nhosts  lab.up --reset   CPU-seconds per verb (stop, deploy, restore): Ansible on the controller; "
          "the lab's containers")
    for r in results:
        cpu = ", ".join(f"{r['verbs'][verb].get('controller_cpu_seconds', 0):.0f}" for verb in VERBS)
        hosts = ", ".join("?" if r["verbs"][verb].get("hosts_cpu_seconds") is None
                          else f"{r['verbs'][verb]['hosts_cpu_seconds']:.0f}" for verb in VERBS)
        print(f"{r['hosts']:>5}  {r.get('lab_up_seconds', 0):12.1f} s   {cpu}; {hosts}")
    largest = results[-1]
    print(f"\nwhere the time goes at {largest['hosts']} hosts (task seconds summed over hosts):")
    for verb in VERBS:
        for task, seconds in largest["verbs"][verb]["top"]:
            print(f"  {verb:8} {seconds:7.1f} s  {task}")
    print(f"engine (this process, ansible-runner's event handling included): peak "
          f"{largest['engine_peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())

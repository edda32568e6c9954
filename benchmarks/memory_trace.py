"""The whole job's memory, measured from outside: every process a run starts, in one cgroup.

    python benchmarks/memory_trace.py [--limit-gb 8] [--interval 1] [--out FILE] [-- COMMAND ...]

Summing each process's peak RSS (what a run's summary.json reports) counts every page that two
processes share once per process: torch's libraries, which each Python process maps, and Ray's object
store in /dev/shm, which the driver and the rollout actor both map while weights travel. This script
runs COMMAND (default: the smollm2-tools recipe) in a memory cgroup of its own, so that Ray's raylet,
actors and the sandboxes are inside it too, and samples once per `--interval`:

- per process: RSS and PSS (shared pages split between the processes that map them) from
  /proc/PID/smaps_rollup, labelled driver / rollout actor / ray system / sandbox / other;
- the cgroup: anonymous memory plus shmem (what cannot be dropped without swap; this machine has no
  swap), and the kernel's own peak of everything charged (page cache included).

With `--limit-gb`, the cgroup gets that hard limit: the run either finishes within it or the kernel's
OOM killer ends it (`oom_kills` > 0, a non-zero `rc`). That is the test of "fits in 8 GB".

JSON (default benchmarks/results/memory_trace.json): `peak_pss_sum_mb`, `peak_rss_sum_mb`,
`peak_anon_shmem_mb`, `cgroup_peak_mb`, `peak_pss_mb_by_role`, `limit_gb`, `rc`, `oom_kills`,
`wall_s`, `command`, and a `timeline` of samples.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from _results import write_json  # benchmarks/_results.py (scripts run from benchmarks/)

DEFAULT_COMMAND = ["toolgym", "train", "--recipe", "smollm2-tools", "--output", "runs/memory-trace"]
V1_ROOT = Path("/sys/fs/cgroup/memory")
V2_ROOT = Path("/sys/fs/cgroup")


class MemoryCgroup:
    """A fresh memory cgroup (v1 or v2, whichever this kernel mounts with the memory controller)."""

    def __init__(self, name: str, limit_bytes: int | None) -> None:
        if (V1_ROOT / "memory.usage_in_bytes").exists():
            self.version, self.path = 1, V1_ROOT / name
        elif "memory" in (V2_ROOT / "cgroup.controllers").read_text(errors="replace").split():
            self.version, self.path = 2, V2_ROOT / name
        else:
            raise SystemExit("no memory cgroup controller is mounted: run as root on Linux with cgroups")
        try:
            self.path.mkdir()
        except PermissionError as exc:
            raise SystemExit(f"cannot create {self.path} ({exc}): run as root") from exc
        if limit_bytes is not None:
            self._write("memory.limit_in_bytes" if self.version == 1 else "memory.max", str(limit_bytes))

    def _write(self, name: str, value: str) -> None:
        (self.path / name).write_text(value)

    def _read(self, name: str) -> str:
        return (self.path / name).read_text()

    def join(self) -> None:
        """Move the calling process into the cgroup (used in the child before exec)."""
        self._write("cgroup.procs", str(os.getpid()))

    def pids(self) -> list[int]:
        return [int(p) for p in self._read("cgroup.procs").split()]

    def stat(self) -> dict[str, int]:
        pairs = (line.split() for line in self._read("memory.stat").splitlines())
        return {k: int(v) for k, v in pairs}

    def anon_shmem_bytes(self) -> int:
        stat = self.stat()
        if self.version == 1:
            return stat.get("total_rss", stat.get("rss", 0)) + stat.get("total_shmem", stat.get("shmem", 0))
        return stat.get("anon", 0) + stat.get("shmem", 0)

    def peak_bytes(self) -> int:
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        return int(self._read(name)) if (self.path / name).exists() else 0

    def oom_kills(self) -> int:
        if self.version == 1:
            fields = dict(line.split() for line in self._read("memory.oom_control").splitlines())
            return int(fields.get("oom_kill", 0))
        fields = dict(line.split() for line in self._read("memory.events").splitlines())
        return int(fields.get("oom_kill", 0))

    def remove(self) -> None:
        """Remove the cgroup and what was made inside it (a killed run leaves its sandboxes' cgroups)."""
        inner = sorted((p for p in self.path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for path in [*inner, self.path]:
            for _ in range(50):  # the last processes may still be exiting
                try:
                    path.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def role_of(pid: int) -> str:
    """driver / rollout actor / ray agents / ray idle worker / ray system / sandbox / other, from
    the process's command line."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    text = b" ".join(argv).decode(errors="replace")
    if text.startswith("ray::"):
        if "Worker" in text or "Evaluator" in text:
            return "rollout actor"
        return "ray agents" if "Agent" in text else "ray idle worker"  # ray::IDLE: a worker process waiting
    if any(name in text for name in ("raylet", "gcs_server", "dashboard", "log_monitor", "ray/_private")):
        return "ray system"
    if "bwrap" in text or "toolgym_sandbox" in text or "sandbox" in text:
        return "sandbox"
    if "toolgym" in text and " train" in text:
        return "driver"
    return "other"


def rss_pss_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB from smaps_rollup; (0, 0) for a process that has gone."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return 0, 0
    return rss, pss


def sample(group: MemoryCgroup, started: float) -> dict:
    by_role: dict[str, float] = {}
    rss_sum = pss_sum = 0
    for pid in group.pids():
        rss, pss = rss_pss_kb(pid)
        rss_sum, pss_sum = rss_sum + rss, pss_sum + pss
        role = role_of(pid)
        by_role[role] = by_role.get(role, 0.0) + pss / 1024
    return {"t": round(time.monotonic() - started, 1), "rss_sum_mb": round(rss_sum / 1024, 1),
            "pss_sum_mb": round(pss_sum / 1024, 1),
            "anon_shmem_mb": round(group.anon_shmem_bytes() / 2**20, 1),
            "pss_mb_by_role": {k: round(v, 1) for k, v in sorted(by_role.items())}}


def trace(command: list[str], limit_gb: float | None, interval: float) -> dict:
    limit = int(limit_gb * 2**30) if limit_gb else None
    group = MemoryCgroup(f"toolgym-memory-trace-{os.getpid()}", limit)
    started = time.monotonic()
    timeline: list[dict] = []
    try:
        child = subprocess.Popen(command, preexec_fn=group.join)
        while child.poll() is None:
            timeline.append(sample(group, started))
            if len(timeline) % 30 == 1:
                last = timeline[-1]
                print(f"[{last['t']:7.0f}s] PSS {last['pss_sum_mb']:8.0f} MB"
                      f"  RSS {last['rss_sum_mb']:8.0f} MB  anon+shmem {last['anon_shmem_mb']:8.0f} MB"
                      f"  {last['pss_mb_by_role']}",
                      file=sys.stderr, flush=True)
            time.sleep(interval)
        rc = child.returncode
    except KeyboardInterrupt:
        child.terminate()
        rc = child.wait()
    finally:
        cgroup_peak, oom_kills = group.peak_bytes(), group.oom_kills()
        for pid in group.pids():  # Ray's daemons can outlive the driver for a moment
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        group.remove()
    roles = sorted({r for s in timeline for r in s["pss_mb_by_role"]})
    return {
        "command": shlex.join(command), "limit_gb": limit_gb, "rc": rc, "oom_kills": oom_kills,
        "wall_s": round(time.monotonic() - started, 1), "interval_s": interval,
        "peak_pss_sum_mb": max((s["pss_sum_mb"] for s in timeline), default=0.0),
        "peak_rss_sum_mb": max((s["rss_sum_mb"] for s in timeline), default=0.0),
        "peak_anon_shmem_mb": max((s["anon_shmem_mb"] for s in timeline), default=0.0),
        "cgroup_peak_mb": round(cgroup_peak / 2**20, 1),
        "peak_pss_mb_by_role": {r: max(s["pss_mb_by_role"].get(r, 0.0) for s in timeline) for r in roles},
        "timeline": timeline,
    }


def print_table(result: dict) -> None:
    rows = [("peak PSS, summed over processes", result["peak_pss_sum_mb"]),
            ("peak RSS, summed over processes", result["peak_rss_sum_mb"]),
            ("peak anonymous + shmem (cgroup)", result["peak_anon_shmem_mb"]),
            ("peak charged incl. page cache (cgroup)", result["cgroup_peak_mb"])]
    rows += [(f"  peak PSS: {role}", mb) for role, mb in result["peak_pss_mb_by_role"].items()]
    print(f"{'memory (MB)':<42} {'value':>9}")
    for name, mb in rows:
        print(f"{name:<42} {mb:9.0f}")
    limit = f"{result['limit_gb']} GB limit" if result["limit_gb"] else "no limit"
    print(f"rc {result['rc']}, OOM kills {result['oom_kills']} ({limit}), {result['wall_s']:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-gb", type=float, default=None, help="hard memory limit of the cgroup")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--out", default="benchmarks/results/memory_trace.json")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ... (default: the recipe)")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    result = trace(command or DEFAULT_COMMAND, args.limit_gb, args.interval)
    print_table(result)
    write_json(result, args.out)
    sys.exit(0 if result["rc"] == 0 else 1)


if __name__ == "__main__":
    main()

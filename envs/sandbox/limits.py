"""Per-session resource limits shared by the local and subprocess backends.

One small dataclass so that an environment config, a recipe and the benchmark all name limits the
same way. Values are enforced inside the session process (rlimits, the output cap) and by the
host (the wall timeout), see local.py for exactly how.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class SandboxLimits:
    """Limits for one session. `None` disables a limit (not recommended for untrusted code)."""

    timeout: float = 10.0  # wall seconds per `run` call; the session is killed when it fires
    memory_bytes: int | None = 2 << 30  # RLIMIT_AS: address space of each session process
    cpu_seconds: int | None = 600  # RLIMIT_CPU: CPU seconds over the session's whole life
    max_processes: int | None = 64  # RLIMIT_NPROC (and a pids cgroup when running as root)
    max_file_bytes: int | None = 64 << 20  # RLIMIT_FSIZE: largest file a session may write
    max_open_files: int | None = 256  # RLIMIT_NOFILE
    max_output_bytes: int = 64 << 10  # per stream (stdout, stderr) per call; the rest is dropped
    # memory cgroup of one session group (its processes, their children, its forks, and the memfd,
    # tmpfs and shared-memory pages they hold); only where the host lets us create cgroups (root)
    group_memory_bytes: int | None = 4 << 30
    workdir_bytes: int | None = 512 << 20  # work-dir tmpfs of a group, shared by its forks (root hosts)
    workdir_files: int | None = 100_000  # inodes (files + directories) of that tmpfs

    def __post_init__(self) -> None:
        if self.timeout is None or self.timeout <= 0:
            raise ValueError(
                f"SandboxLimits.timeout must be a positive number of seconds, got {self.timeout!r}"
            )
        if self.max_output_bytes < 64:
            raise ValueError(f"SandboxLimits.max_output_bytes must be >= 64, got {self.max_output_bytes!r}")
        for name in ("memory_bytes", "cpu_seconds", "max_processes", "max_file_bytes", "max_open_files",
                     "group_memory_bytes", "workdir_bytes", "workdir_files"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"SandboxLimits.{name} must be a positive integer or None, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_options(cls, limits: SandboxLimits | dict[str, Any] | None) -> SandboxLimits:
        """Accept a SandboxLimits, a dict of its fields, or None (defaults)."""
        if limits is None:
            return cls()
        if isinstance(limits, cls):
            return limits
        if isinstance(limits, dict):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(limits) - known)
            if unknown:
                raise ValueError(f"unknown sandbox limit(s) {unknown}; known limits: {sorted(known)}")
            return cls(**limits)
        raise TypeError(f"limits must be a SandboxLimits, a dict or None, got {type(limits).__name__}")

"""Sandbox latency: warm calls, new sessions through the pool, fork(), and the subprocess baseline.

    python benchmarks/sandbox_latency.py [--isolation auto|bwrap|none] [--out FILE]

Prints a table and writes JSON (default benchmarks/results/sandbox_latency.json) with the keys
warm_call_p50_ms, new_session_p50_ms, fork_p50_ms, subprocess_call_p50_ms, speedup_vs_subprocess,
isolation, their p90 companions and calls_per_s_2_cores_busy. Targets on a 2-core machine: warm
call p50 <= 1 ms, new session p50 <= 10 ms, fork p50 <= 10 ms, >= 20x faster than subprocess.

- warm call: `print(1)` in a live session, request to result.
- new session: a steady stream of requests (one every --interval ms); each acquires a session
  from a SessionPool and runs `print(1)`; time from request to first result. The pool refills in
  the background, so this is what an environment's reset() + first tool call sees. The raw cost
  of creating a session without a pool is reported as new_session_unpooled_p50_ms.
- fork: `Session.fork()` of a session holding some state, until the copy is ready to run.
- subprocess: the stateless baseline backend, `print(1)` per call (a fresh interpreter each).
- calls_per_s_2_cores_busy: warm `print(1)` calls per second from 2 x CPU threads on as many
  sessions, i.e. with both cores busy serving calls.
The machine load average is recorded: other jobs running at the same time inflate every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections.abc import Callable

from toolgym.envs.sandbox import SessionPool, describe_isolation, make_sandbox


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return p50 * 1000, p90 * 1000


def _time(fn: Callable[[], object], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def bench_warm(backend, n: int) -> list[float]:
    with backend.new_session() as session:
        _time(lambda: session.run("print(1)"), 20)  # warm-up
        return _time(lambda: session.run("print(1)"), n)


def bench_pool(backend, n: int, interval: float, size: int) -> list[float]:
    samples = []
    with SessionPool(backend, size=size) as pool:
        pool.start()
        time.sleep(1.0)  # let the pool fill, as it would between training steps
        next_at = time.perf_counter()
        for _ in range(n):
            next_at += interval
            start = time.perf_counter()
            session = pool.acquire()
            result = session.run("print(1)")
            samples.append(time.perf_counter() - start)
            assert result.stdout == "1\n", result
            pool.release(session)
            time.sleep(max(0.0, next_at - time.perf_counter()))
    return samples


def bench_unpooled(backend, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        session = backend.new_session()
        session.run("print(1)")
        samples.append(time.perf_counter() - start)
        session.close()
    return samples


def bench_fork(backend, n: int) -> list[float]:
    samples = []
    with backend.new_session() as parent:
        parent.run("import math\nstate = {i: math.sqrt(i) for i in range(100_000)}")
        for _ in range(n):
            start = time.perf_counter()
            child = parent.fork()
            samples.append(time.perf_counter() - start)
            child.close()
    return samples


def bench_throughput(backend, seconds: float, threads: int) -> float:
    sessions = [backend.new_session() for _ in range(threads)]
    count = [0] * threads
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        while time.perf_counter() < stop:
            sessions[i].run("print(1)")
            count[i] += 1

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for session in sessions:
        session.close()
    return sum(count) / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isolation", default="auto", choices=["auto", "bwrap", "none"])
    parser.add_argument("--preload", default="math,numpy", help="comma-separated modules for the zygote")
    parser.add_argument("--calls", type=int, default=500, help="warm calls to time")
    parser.add_argument("--sessions", type=int, default=200, help="pooled new-session requests to time")
    parser.add_argument("--interval", type=float, default=25.0, help="ms between new-session requests")
    parser.add_argument("--pool-size", type=int, default=4)
    parser.add_argument("--forks", type=int, default=200)
    parser.add_argument("--subprocess-calls", type=int, default=30)
    parser.add_argument("--out", default="benchmarks/results/sandbox_latency.json")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    backend = make_sandbox(
        "local", isolation=args.isolation, preload=tuple(filter(None, args.preload.split(",")))
    )
    try:
        backend.new_session().close()  # start the zygote outside the timings
        warm = _percentiles(bench_warm(backend, args.calls))
        pooled = _percentiles(bench_pool(backend, args.sessions, args.interval / 1000, args.pool_size))
        unpooled = _percentiles(bench_unpooled(backend, 50))
        forked = _percentiles(bench_fork(backend, args.forks))
        cpus = os.cpu_count() or 2
        throughput = bench_throughput(backend, 3.0, 2 * cpus)
        isolation = backend.isolation
        obtained = describe_isolation(backend).summary
    finally:
        backend.close()
    baseline = make_sandbox("subprocess")
    with_session = baseline.new_session()
    sub = _percentiles(_time(lambda: with_session.run("print(1)"), args.subprocess_calls))
    with_session.close()

    report = {
        "isolation": isolation,
        "isolation_obtained": obtained,
        "preload": args.preload,
        "warm_call_p50_ms": round(warm[0], 3),
        "warm_call_p90_ms": round(warm[1], 3),
        "new_session_p50_ms": round(pooled[0], 3),
        "new_session_p90_ms": round(pooled[1], 3),
        "new_session_unpooled_p50_ms": round(unpooled[0], 3),
        "new_session_unpooled_p90_ms": round(unpooled[1], 3),
        "fork_p50_ms": round(forked[0], 3),
        "fork_p90_ms": round(forked[1], 3),
        "subprocess_call_p50_ms": round(sub[0], 3),
        "subprocess_call_p90_ms": round(sub[1], 3),
        "speedup_vs_subprocess": round(sub[0] / warm[0], 1),
        "calls_per_s_2_cores_busy": round(throughput, 1),
        "cpu_count": os.cpu_count(),
        "loadavg_1m_before": round(load_before, 2),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
    }
    _print_table(report)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")
    print(f"wrote {args.out}")
    return 0


def _print_table(report: dict) -> None:
    rows = [
        ("warm call print(1)", "warm_call", "<= 1 ms"),
        ("new session via pool + first call", "new_session", "<= 10 ms"),
        ("new session without pool + first call", "new_session_unpooled", ""),
        ("Session.fork()", "fork", "<= 10 ms"),
        ("subprocess backend call", "subprocess_call", ""),
    ]
    print(
        f"isolation: {report['isolation']}   preload: {report['preload']}   "
        f"load avg: {report['loadavg_1m_before']} -> {report['loadavg_1m_after']}"
    )
    print(report["isolation_obtained"])
    print(f"{'measure':<40} {'p50 ms':>9} {'p90 ms':>9}  target")
    for label, key, target in rows:
        print(f"{label:<40} {report[key + '_p50_ms']:>9.3f} {report[key + '_p90_ms']:>9.3f}  {target}")
    print(f"{'speedup vs subprocess (p50)':<40} {report['speedup_vs_subprocess']:>9.1f}x {'':>9}  >= 20x")
    print(f"{'calls/s, 2 cores busy':<40} {report['calls_per_s_2_cores_busy']:>9.1f}")


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""The disk's commit floor, for issue 20's latency targets (docs/benchmarks.md): the
time to append 4 KiB to a file and fsync it, as SQLite's WAL does at each commit with
synchronous=FULL. Prints p50, p99 and max over N appends in DIR (default: a temporary
directory under target/, on the disk the store would use).

Usage: scripts/fsync-latency.py [N] [DIR]      (N = 2000)
"""
import os
import statistics
import sys
import tempfile
import time

def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    base = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "target")
    os.makedirs(base, exist_ok=True)
    block = os.urandom(4096)
    samples = []
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        path = os.path.join(tmp, "wal")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for _ in range(n):
                started = time.perf_counter()
                os.write(fd, block)
                os.fsync(fd)
                samples.append((time.perf_counter() - started) * 1000)
        finally:
            os.close(fd)
    samples.sort()
    p = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    print(f"fsync of a 4 KiB append: p50 {p(0.50):.3f} ms · p99 {p(0.99):.3f} ms · "
          f"max {samples[-1]:.3f} ms · mean {statistics.fmean(samples):.3f} ms ({n} samples)")
    return 0

if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Instructions per call of the service against the direct ledger call (not a test).

Time on this kind of machine swings by more than the service's own cost
(docs/performance.md, "Measuring on this machine"); instruction counts do
not. This runs payment-bench under `valgrind --tool=callgrind` and counts
the instructions of the service runtime's threads, which serve the calls in
the service phases and make the same ledger calls directly in the direct
phase.

For each kind of call (payments, balance reads, history pages, and health
checks, which show what any call costs the service's stack alone) it runs the
benchmark four times: with N and with 2N calls of that kind, each once
through the service only (--no-direct) and once with the direct phase too.
What a run does besides those calls (start-up, opening accounts, the
payments before reads) is the same in both sizes, so the difference of the
two sizes, divided by N, is the cost of one call:

  service  = (svc[2N] - svc[N]) / N
  direct   = ((both[2N] - svc[2N]) - (both[N] - svc[N])) / N

The service runtime's threads are told apart from the load generator's (the
benchmark's clients) by what they ran: a thread that ran the generated
PaymentServiceClient is a client; the process's first thread is main.

Usage (normally through scripts/bench-instructions.sh, which builds the
perf profile and starts DynamoDB Local):
  scripts/bench-instructions.py --bench target/perf/payment-bench \
      [--kinds payments,reads,pages,checks] [--calls 400] [--top 12] [--json] \
      [-- extra payment-bench arguments, e.g. --grpc-web]

Python 3.11 standard library only; valgrind and callgrind_annotate must be
on PATH.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

# Most calls of one kind per run, and fewest: under valgrind a payment
# costs the machine about 25 ms, so 2 x 2,000 keeps a kind within minutes.
CALLS_MIN, CALLS_MAX = 50, 2000
# Most lines of the per-crate table.
TOP_MAX = 100
# How long one valgrind run may take before it is stopped.
RUN_TIMEOUT_S = 1200

# The bench arguments of each kind at `n` calls: the other kinds fixed.
# History pages need accounts with at least a page (50 entries) of history:
# 200 payments over 4 accounts give each about 100.
KINDS = {
    "payments": lambda n: ["--payments", str(n), "--reads", "0", "--history-pages", "0"],
    "reads": lambda n: ["--payments", "100", "--reads", str(n), "--history-pages", "0"],
    "pages": lambda n: [
        "--accounts", "4", "--payments", "200", "--reads", "0", "--history-pages", str(n),
    ],
    "checks": lambda n: [
        "--payments", "50", "--reads", "0", "--history-pages", "0", "--health-checks", str(n),
    ],
}
NAMES = {
    "payments": "payment",
    "reads": "balance read",
    "pages": "history page (50 entries)",
    "checks": "health check (nothing behind it; no direct call)",
}


def run_bench(bench: str, args: list[str], out_dir: pathlib.Path, name: str) -> None:
    out = out_dir / f"{name}.out"
    command = [
        "valgrind", "--tool=callgrind", "--separate-threads=yes",
        f"--callgrind-out-file={out}", bench, *args,
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise SystemExit(f"bench-instructions: {' '.join(args)} failed:\n{tail}")


def service_threads(out_dir: pathlib.Path, name: str) -> list[pathlib.Path]:
    """The service runtime's threads of one run (see the module's doc)."""
    files = sorted(out_dir.glob(f"{name}.out-*"))
    if len(files) < 2:
        raise SystemExit(f"bench-instructions: no per-thread profiles for {name}")
    service = []
    for path in files[1:]:
        text = path.read_text(errors="replace")
        if "PaymentServiceClient" not in text and "payment::" in text:
            service.append(path)
    if not service:
        raise SystemExit(f"bench-instructions: no service thread found in {name}")
    return service


def self_costs(paths: list[pathlib.Path]) -> collections.Counter:
    """Instructions per function (self cost), summed over `paths`."""
    costs: collections.Counter = collections.Counter()
    line = re.compile(r"\s*([\d,]+) \([ \d.]+%\)\s+(.*)")
    for path in paths:
        report = subprocess.run(
            ["callgrind_annotate", "--threshold=100", str(path)],
            capture_output=True, text=True, check=True,
        ).stdout
        for text in report.splitlines():
            match = line.match(text)
            if match and "PROGRAM TOTALS" not in match.group(2):
                costs[match.group(2)] += int(match.group(1).replace(",", ""))
    return costs


def group(symbol: str) -> str:
    """The crate (or libc part) a function belongs to."""
    name = re.sub(r"^[^ ]*?:(?=[<A-Za-z_&])", "", symbol, count=1).lstrip("<&")
    if "memcpy" in name or "memmove" in name:
        return "memcpy/memmove"
    if re.search(r"malloc|free|realloc|_int_|tcache|unlink_chunk|consolidate", name):
        return "allocator (glibc)"
    return re.split(r"::|\s|<", name)[0] or name[:30]


def measure(bench: str, kind: str, n: int, extra: list[str], out_dir: pathlib.Path) -> dict:
    common = ["--callers", "16", "--warmup", "0", *extra]
    profiles = {}
    for size in (n, 2 * n):
        for mode, flags in (("svc", ["--no-direct"]), ("both", [])):
            name = f"{kind}-{mode}-{size}"
            print(f"bench-instructions: {kind}, {mode}, {size} calls", file=sys.stderr)
            run_bench(bench, [*common, *KINDS[kind](size), *flags], out_dir, name)
            profiles[(mode, size)] = self_costs(service_threads(out_dir, name))
    svc1, svc2 = profiles[("svc", n)], profiles[("svc", 2 * n)]
    both1, both2 = profiles[("both", n)], profiles[("both", 2 * n)]
    service: collections.Counter = collections.Counter()
    direct: collections.Counter = collections.Counter()
    for symbol in set(svc1) | set(svc2) | set(both1) | set(both2):
        crate = group(symbol)
        service[crate] += (svc2[symbol] - svc1[symbol]) / n
        direct[crate] += ((both2[symbol] - svc2[symbol]) - (both1[symbol] - svc1[symbol])) / n
    crates = set(service) | set(direct)
    added = {c: service[c] - direct[c] for c in crates}
    return {
        "kind": kind,
        "calls": n,
        "service": round(sum(service.values())),
        "direct": round(sum(direct.values())),
        "added_by_crate": {
            c: {"added": round(added[c]), "service": round(service[c]), "direct": round(direct[c])}
            for c in sorted(crates, key=lambda c: -abs(added[c]))
        },
    }


def print_text(result: dict, top: int) -> None:
    service, direct = result["service"], result["direct"]
    added = service - direct
    if result["kind"] == "checks":
        # No direct call: what is left of `direct` is the runs' noise.
        print(
            f"{NAMES['checks']}: service {service / 1e3:,.1f} K instructions per call "
            f"(the runs' noise: {direct / 1e3:+,.1f} K)"
        )
        for crate, row in list(result["added_by_crate"].items())[:top]:
            print(f"  {row['service'] / 1e3:8.1f} K  {crate}")
        return
    share = f"{100 * added / direct:+.0f} %" if direct else "n/a"
    print(
        f"{NAMES[result['kind']]}: service {service / 1e3:,.1f} K, direct {direct / 1e3:,.1f} K "
        f"instructions per call; the service adds {added / 1e3:,.1f} K ({share})"
    )
    for crate, row in list(result["added_by_crate"].items())[:top]:
        print(
            f"  {row['added'] / 1e3:+8.1f} K  {crate}  "
            f"(service {row['service'] / 1e3:,.1f} K, direct {row['direct'] / 1e3:,.1f} K)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", required=True, help="the payment-bench binary")
    parser.add_argument("--kinds", default="payments,reads,pages,checks")
    parser.add_argument("--calls", type=int, default=400, help=f"N ({CALLS_MIN}-{CALLS_MAX})")
    parser.add_argument("--top", type=int, default=12, help=f"crates listed (0-{TOP_MAX})")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("extra", nargs="*", help="after --: more payment-bench arguments")
    args = parser.parse_args()
    if not CALLS_MIN <= args.calls <= CALLS_MAX:
        parser.error(f"--calls must be {CALLS_MIN}-{CALLS_MAX}")
    if not 0 <= args.top <= TOP_MAX:
        parser.error(f"--top must be 0-{TOP_MAX}")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        parser.error(f"--kinds: one or more of {', '.join(KINDS)}")
    os.environ.setdefault("RUST_LOG", "warn")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        for kind in kinds:
            results.append(measure(args.bench, kind, args.calls, args.extra, pathlib.Path(tmp)))
    if args.json:
        print(json.dumps({"extra_args": args.extra, "results": results}, indent=2))
    else:
        for result in results:
            print_text(result, args.top)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Cold-start benchmark for the payment-lambda binary (not a test).

Emulates the AWS Lambda Runtime API on 127.0.0.1
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html), runs the
binary against it the way Lambda runs a provided.al2023 `bootstrap`, with
DynamoDB Local behind it, and measures:

  init duration    process spawn -> its first GET .../runtime/invocation/next
                   (what Lambda reports as "Init Duration")
  first request    the cold process: event handed out -> its response POST
  warm requests    the same, on an already initialised process

Each of the --runs cold starts is a fresh process (and a fresh Runtime API
server); the --warm requests run in the last one. Before measuring, one
unmeasured process creates an account (events/add-account-alice.json) and
warms DynamoDB Local's JVM, so the measured requests do a real read of an
existing account. Every reply must be HTTP 200 with a gRPC status from
--accept-status (default 0 OK and 5 NOT_FOUND): an error (or a crash, an
init error or a timeout) fails the run.

Usage:
  scripts/bench-cold-start.py --binary target/bench/release/payment-lambda \
      --dynamodb-endpoint http://127.0.0.1:PORT [--runs 20] [--warm 200] [--json]
Normally run through scripts/bench-cold-start.sh, which builds the binary,
starts DynamoDB Local and creates the tables with the crate's own
`Ledger::create_tables` (payment-client create-tables), indexes included.

Python 3.11 standard library only. Everything listens on 127.0.0.1, every
wait is bounded, and everything started here is stopped at the end.
"""
from __future__ import annotations

import argparse
import base64
import datetime
import http.server
import json
import math
import os
import pathlib
import platform
import queue
import shlex
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
API = "/2018-06-01/runtime"
REGION = "us-east-1"
FUNCTION_NAME = "payment-ledger-bench-PaymentFunction"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:{FUNCTION_NAME}"
MEMORY_MB = 256
# The tables, which bench-cold-start.sh creates (payment-client create-tables).
ACCOUNTS_TABLE = os.environ.get("PAYMENT_ACCOUNTS_TABLE", "bench-accounts")
LEDGER_TABLE = os.environ.get("PAYMENT_LEDGER_TABLE", "bench-ledger")
# Under active tracing Lambda runs the X-Ray daemon and names it in
# AWS_XRAY_DAEMON_ADDRESS; here a UDP socket on loopback stands in for it
# (bound in main), and --sampled marks every invocation sampled, as Lambda
# does for the ones it traces.
XRAY_DAEMON = {"address": "", "sampled": "0"}
# Targets from issue 19: init median at most 5 ms, the binary under 10 MB.
INIT_TARGET_MS = 5.0
SIZE_TARGET_MB = 10.0
GRPC_STATUS_NAMES = {
    0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
    13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}


class BenchError(Exception):
    pass


def now_ms() -> float:
    return time.perf_counter_ns() / 1e6


# --------------------------------------------------------------------------
# The Lambda Runtime API, as Lambda serves it to a custom runtime.
# --------------------------------------------------------------------------

class RuntimeApi:
    """One sandbox's Runtime API: a fresh one per process, so that a killed
    process's pending long poll can never take the next process's event."""

    def __init__(self, deadline_s: float):
        self.deadline_s = deadline_s
        self.events: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.results: queue.Queue[dict] = queue.Queue()
        self.first_next_ms: float | None = None
        self.first_next = threading.Event()
        self.handed_out: dict[str, float] = {}
        self.closed = threading.Event()
        self.lock = threading.Lock()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the runtime client expects

            def log_message(self, *args):  # quiet
                pass

            def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def read_body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    return self.rfile.read(length)
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return bytes(data)
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return b""

            def do_GET(self):
                t = now_ms()
                if self.path != f"{API}/invocation/next":
                    self.reply(404, b'{"errorType":"NotFound"}')
                    return
                with api.lock:
                    if api.first_next_ms is None:
                        api.first_next_ms = t
                        api.first_next.set()
                # Long poll: Lambda answers only when there is an event.
                while True:
                    if api.closed.is_set():
                        self.close_connection = True
                        return
                    try:
                        request_id, event = api.events.get(timeout=0.05)
                        break
                    except queue.Empty:
                        continue
                deadline = int(time.time() * 1000 + api.deadline_s * 1000)
                trace = (f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};"
                         f"Parent={uuid.uuid4().hex[:16]};Sampled={XRAY_DAEMON['sampled']}")
                # Stamped before the write (a few kB to a local socket), so
                # that the response can never arrive before the stamp.
                api.handed_out[request_id] = now_ms()
                self.reply(200, event, {
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline),
                    "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                    "Lambda-Runtime-Trace-Id": trace,
                })

            def do_POST(self):
                body = self.read_body()
                t = now_ms()
                parts = self.path.split("/")
                # /2018-06-01/runtime/invocation/{id}/response|error, /2018-06-01/runtime/init/error
                if self.path == f"{API}/init/error":
                    api.results.put({"kind": "init-error", "body": body, "t": t,
                                     "error_type": self.headers.get("Lambda-Runtime-Function-Error-Type")})
                    self.reply(202, b'{"status":"OK"}')
                elif len(parts) == 6 and self.path.startswith(f"{API}/invocation/") and parts[5] in ("response", "error"):
                    request_id = parts[4]
                    if request_id not in api.handed_out:
                        self.reply(400, b'{"errorMessage":"unknown request id","errorType":"InvalidRequestID"}')
                        return
                    api.results.put({"kind": parts[5], "id": request_id, "body": body, "t": t,
                                     "error_type": self.headers.get("Lambda-Runtime-Function-Error-Type")})
                    self.reply(202, b'{"status":"OK"}')
                else:
                    self.reply(404, b'{"errorType":"NotFound"}')

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 64

            def handle_error(self, request, client_address):
                # A killed process's connection resets: expected, not news.
                if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def invoke(self, event: bytes, timeout: float, alive) -> tuple[float, dict]:
        """Queues one event and waits for its response: (duration ms, result)."""
        request_id = str(uuid.uuid4())
        self.events.put((request_id, event))
        deadline = time.monotonic() + timeout
        while True:
            try:
                result = self.results.get(timeout=0.01)
                break
            except queue.Empty:
                if not alive():
                    raise BenchError(f"the function exited before answering event {request_id}") from None
                if time.monotonic() > deadline:
                    raise BenchError(f"no response to event {request_id} within {timeout:.0f} s") from None
        if result["kind"] == "init-error":
            raise BenchError(f"init error: {result['body'][:500]!r}")
        if result.get("id") != request_id:
            raise BenchError(f"response for {result.get('id')}, expected {request_id}")
        return result["t"] - self.handed_out[request_id], result

    def close(self):
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------
# Replies: API Gateway HTTP API (payload 2.0) responses carrying gRPC-Web.
# --------------------------------------------------------------------------

def grpc_status_of(result: dict) -> int:
    """The gRPC status of a function response, or BenchError if it is not a
    well-formed 200 gRPC-Web reply."""
    if result["kind"] == "error":
        raise BenchError(f"function error ({result.get('error_type')}): {result['body'][:500]!r}")
    try:
        reply = json.loads(result["body"])
    except ValueError:
        raise BenchError(f"response is not JSON: {result['body'][:200]!r}") from None
    if reply.get("statusCode") != 200:
        raise BenchError(f"HTTP status {reply.get('statusCode')}: {json.dumps(reply)[:500]}")
    headers = {k.lower(): v for k, v in (reply.get("headers") or {}).items()}
    for k, v in (reply.get("multiValueHeaders") or {}).items():
        headers.setdefault(k.lower(), v[0] if isinstance(v, list) and v else v)
    status = headers.get("grpc-status")  # trailers-only reply
    raw = reply.get("body") or ""
    body = base64.b64decode(raw) if reply.get("isBase64Encoded") else raw.encode()
    if "grpc-web-text" in headers.get("content-type", ""):
        body = base64.b64decode(body)
    # gRPC-Web frames: flag byte, 4-byte length; flag 0x80 marks the trailers.
    i = 0
    while i + 5 <= len(body):
        flag, length = body[i], struct.unpack(">I", body[i + 1:i + 5])[0]
        payload = body[i + 5:i + 5 + length]
        if flag & 0x80:
            for line in payload.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "grpc-status":
                    status = value.strip()
        i += 5 + length
    if status is None:
        raise BenchError(f"no grpc-status in reply: {json.dumps(reply)[:500]}")
    return int(status)


def check_status(result: dict, accept: set[int], what: str) -> int:
    status = grpc_status_of(result)
    if status not in accept:
        raise BenchError(f"{what}: grpc-status {status} {GRPC_STATUS_NAMES.get(status, '')}, "
                         f"expected one of {sorted(accept)}: {result['body'][:500]!r}")
    return status


# --------------------------------------------------------------------------
# One sandbox: spawn the binary against a fresh Runtime API.
# --------------------------------------------------------------------------

def lambda_env(runtime_port: int, dynamodb_endpoint: str, home: pathlib.Path) -> dict[str, str]:
    """The environment Lambda gives a provided.al2023 function (reserved
    variables), plus the function's own variables from template.yaml."""
    stream = f"{datetime.date.today():%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
    return {
        "PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "HOME": str(home),  # empty: no ~/.aws files, as in Lambda
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_HANDLER": "bootstrap",
        "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{runtime_port}",
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(MEMORY_MB),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION_NAME}",
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "ASIABENCHDUMMYKEY000",
        "AWS_SECRET_ACCESS_KEY": "bench-dummy-secret",
        "AWS_SESSION_TOKEN": "bench-dummy-session-token",
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "PAYMENT_ACCOUNTS_TABLE": ACCOUNTS_TABLE,
        "PAYMENT_LEDGER_TABLE": LEDGER_TABLE,
        "PAYMENT_LOG_FORMAT": "json",
        "RUST_LOG": "info",
        "PAYMENT_AUTH_MODE": "apigateway",
        **({"AWS_XRAY_DAEMON_ADDRESS": XRAY_DAEMON["address"]} if XRAY_DAEMON["address"] else {}),
    }


def cpu_ms_and_faults(pid: int) -> tuple[float | None, int | None]:
    """CPU time used so far by all the process's threads (from their
    schedstat, in ns: unaffected by waiting for a CPU on a busy machine) and
    its minor page faults."""
    cpu_ns, faults = 0, None
    try:
        for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
            try:
                cpu_ns += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                pass
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        faults = int(stat[stat.rindex(")") + 2:].split()[7])  # field 10, minflt
    except (OSError, ValueError, IndexError):
        return None, None
    return cpu_ns / 1e6, faults


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class Sandbox:
    """One execution environment: a process of the binary and its Runtime API."""

    def __init__(self, binary: pathlib.Path, dynamodb_endpoint: str, workdir: pathlib.Path,
                 log_name: str, timeout: float, wrapper: list[str]):
        self.api = RuntimeApi(deadline_s=20)
        self.timeout = timeout
        home = workdir / "home"
        home.mkdir(exist_ok=True)
        self.log_path = workdir / log_name
        self.log = open(self.log_path, "wb")
        env = lambda_env(self.api.port, dynamodb_endpoint, home)
        self.spawn_ms = now_ms()
        try:
            self.proc = subprocess.Popen(wrapper + [str(binary)], env=env, cwd=str(home),
                                         stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        except OSError as e:  # e.g. an arm64 binary on an x86_64 host
            self.api.close()
            self.log.close()
            raise BenchError(f"cannot run {binary}: {e}") from None

    def wait_init(self) -> float:
        deadline = time.monotonic() + self.timeout
        while not self.api.first_next.wait(0.01):
            if self.proc.poll() is not None:
                raise BenchError(f"the function exited ({self.proc.returncode}) during init; "
                                 f"log:\n{self.log_text()}")
            if not self.api.results.empty():
                raise BenchError(f"init error: {self.api.results.get()['body'][:500]!r}")
            if time.monotonic() > deadline:
                raise BenchError(f"no GET .../invocation/next within {self.timeout:.0f} s; log:\n{self.log_text()}")
        # The process now waits in its long poll: what it used so far is init's.
        self.init_cpu_ms, self.init_faults = cpu_ms_and_faults(self.proc.pid)
        return self.api.first_next_ms - self.spawn_ms

    def invoke(self, event: bytes, accept: set[int], what: str) -> tuple[float, int, dict]:
        try:
            duration, result = self.api.invoke(event, self.timeout, lambda: self.proc.poll() is None)
        except BenchError as e:
            raise BenchError(f"{what}: {e}; exit code {self.proc.poll()}; log:\n{self.log_text()}") from None
        return duration, check_status(result, accept, what), result

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> float | None:
        rss = peak_rss_mb(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.kill()  # Lambda ends an environment without notice to a runtime with no extensions
        try:
            self.proc.wait(timeout=10)
        finally:
            self.api.close()
            self.log.close()
        return rss


# --------------------------------------------------------------------------
# Statistics and the binary.
# --------------------------------------------------------------------------

def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p% of the
    values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict:
    return {"n": len(values), "min": min(values), "p50": percentile(values, 50),
            "p90": percentile(values, 90), "p99": percentile(values, 99), "max": max(values),
            "mean": sum(values) / len(values)}


def elf_info(path: pathlib.Path) -> dict:
    """Architecture and whether the ELF file still has a symbol table."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return {"arch": "unknown", "stripped": None}
    machine = struct.unpack_from("<H", data, 18)[0]
    shoff, = struct.unpack_from("<Q", data, 40)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 58)
    sections = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names = set()
    if sections and shstrndx < len(sections):
        str_off, str_size = sections[shstrndx][4], sections[shstrndx][5]
        table = data[str_off:str_off + str_size]
        for name_off, *_ in sections:
            names.add(table[name_off:table.index(b"\0", name_off)].decode())
    return {"arch": {62: "x86_64", 183: "aarch64"}.get(machine, str(machine)),
            "stripped": ".symtab" not in names}


# --------------------------------------------------------------------------

def init_instructions(binary: pathlib.Path, endpoint: str, workdir: pathlib.Path, timeout: float) -> int:
    """Instructions the process runs in user space from exec to its first
    GET .../invocation/next, counted by callgrind in one start. The process
    then waits in its long poll, so ending it there (SIGTERM, on which
    callgrind writes its counts) adds nothing."""
    out = workdir / "callgrind.out"
    wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    # Under valgrind a start takes a second or two, not milliseconds.
    box = Sandbox(binary, endpoint, workdir, "callgrind.log", max(timeout, 60.0), wrapper)
    try:
        box.wait_init()
        box.proc.terminate()
        box.proc.wait(timeout=30)
    except OSError as e:
        raise BenchError(f"valgrind: {e}") from None
    finally:
        box.stop()
    for line in out.read_text().splitlines() if out.exists() else []:
        if line.startswith("summary:"):
            return int(line.split()[1])
    log = (workdir / "callgrind.log").read_text(errors="replace")[-3000:]
    raise BenchError(f"callgrind wrote no count; log:\n{log}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=pathlib.Path, default=ROOT / "target/bench/release/payment-lambda",
                        help="the payment-lambda binary (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=20, help="cold starts (default: %(default)s)")
    parser.add_argument("--warm", type=int, default=200, help="warm requests (default: %(default)s)")
    parser.add_argument("--event", type=pathlib.Path, default=ROOT / "events/get-account-balance.json",
                        help="the measured event (default: %(default)s)")
    parser.add_argument("--seed-event", type=pathlib.Path, default=ROOT / "events/add-account-alice.json",
                        help="event sent once before measuring, e.g. to create the account the measured "
                             "event reads; 'none' for no seeding (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=50,
                        help="unmeasured requests before measuring, to warm DynamoDB Local's JVM (default: %(default)s)")
    parser.add_argument("--accept-status", default="0,5",
                        help="gRPC statuses that count as a real answer (default: %(default)s)")
    parser.add_argument("--dynamodb-endpoint", required=True,
                        help="DynamoDB Local (http://127.0.0.1:PORT) holding the tables PAYMENT_ACCOUNTS_TABLE and "
                             "PAYMENT_LEDGER_TABLE (bench-accounts and bench-ledger by default)")
    parser.add_argument("--timeout", type=float, default=15.0, help="bound on each wait, seconds (default: %(default)s)")
    parser.add_argument("--wrapper", default="",
                        help="command the binary is run under, for diagnosis, e.g. 'strace -f -tt -o /tmp/trace' "
                             "(it is timed too)")
    parser.add_argument("--sampled", action="store_true",
                        help="mark every invocation sampled (Sampled=1), so that each call sends its X-Ray "
                             "subsegments to the stand-in daemon (default: Sampled=0)")
    parser.add_argument("--instructions", action="store_true",
                        help="also count init's user-space instructions in one more start under valgrind's "
                             "callgrind: the same count for the same binary whatever else the machine is doing, "
                             "to compare builds where init's wall and CPU times move by tens of percent")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 when init p50 > {INIT_TARGET_MS:g} ms or the binary >= {SIZE_TARGET_MB:g} MB")
    args = parser.parse_args()
    # The stand-in X-Ray daemon: a socket that receives and never reads
    # (the kernel drops what its buffer cannot hold, as UDP may).
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    XRAY_DAEMON["address"] = f"127.0.0.1:{daemon.getsockname()[1]}"
    XRAY_DAEMON["sampled"] = "1" if args.sampled else "0"
    if args.runs < 1 or args.warm < 0 or args.warmup < 0:
        parser.error("--runs must be >= 1, --warm and --warmup >= 0")
    if args.runs > 1000 or args.warm > 100000:
        parser.error("--runs <= 1000 and --warm <= 100000")
    binary = args.binary.resolve()
    if not os.access(binary, os.X_OK):
        parser.error(f"{binary}: not an executable; build it with scripts/bench-cold-start.sh")
    wrapper = shlex.split(args.wrapper)
    accept = {int(s) for s in args.accept_status.split(",") if s.strip()}
    event = args.event.read_bytes()
    json.loads(event)
    seed = None if str(args.seed_event) == "none" else args.seed_event.read_bytes()

    def progress(msg: str):
        if not args.json:
            print(msg, file=sys.stderr, flush=True)

    # SIGTERM/SIGHUP end the run through the finally blocks, like Ctrl-C.
    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    load_before = os.getloadavg()[0]
    size = binary.stat().st_size
    info = elf_info(binary)
    inits, firsts, totals, warms, rss, init_cpu, init_faults = [], [], [], [], [], [], []
    statuses: dict[str, set[int]] = {"first": set(), "warm": set()}
    with tempfile.TemporaryDirectory(prefix="bench-cold-start.") as tmp:
        workdir = pathlib.Path(tmp)
        try:
            endpoint = args.dynamodb_endpoint.rstrip("/")
            if seed is not None or args.warmup:
                progress(f"bench: warm-up (seed event and {args.warmup} unmeasured requests)")
                box = Sandbox(binary, endpoint, workdir, "warmup.log", args.timeout, wrapper)
                try:
                    box.wait_init()
                    if seed is not None:
                        box.invoke(seed, {0, 6}, "seed event")  # 6: ALREADY_EXISTS
                    for _ in range(args.warmup):
                        box.invoke(event, accept, "warm-up request")
                finally:
                    box.stop()

            for run in range(args.runs):
                box = Sandbox(binary, endpoint, workdir, f"run-{run}.log", args.timeout, wrapper)
                try:
                    inits.append(box.wait_init())
                    if box.init_cpu_ms is not None:
                        init_cpu.append(box.init_cpu_ms)
                        init_faults.append(box.init_faults)
                    duration, status, result = box.invoke(event, accept, f"run {run + 1}: first request")
                    firsts.append(duration)
                    totals.append(result["t"] - box.spawn_ms)
                    statuses["first"].add(status)
                    if run == args.runs - 1:
                        for _ in range(args.warm):
                            duration, status, _ = box.invoke(event, accept, f"run {run + 1}: warm request")
                            warms.append(duration)
                            statuses["warm"].add(status)
                finally:
                    r = box.stop()
                    if r is not None:
                        rss.append(r)
                progress(f"bench: cold start {run + 1}/{args.runs}: init {inits[-1]:.2f} ms, "
                         f"first request {firsts[-1]:.2f} ms")
            instructions = None
            if args.instructions:
                progress("bench: one more start under valgrind --tool=callgrind")
                instructions = init_instructions(binary, endpoint, workdir, args.timeout)
        except BenchError as e:
            print(f"bench-cold-start: FAILED: {e}", file=sys.stderr)
            return 2

    init, first, total = summary(inits), summary(firsts), summary(totals)
    warm = summary(warms) if warms else None
    size_mb = size / 1e6
    result = {
        "binary": str(binary), "arch": info["arch"], "stripped": info["stripped"],
        "binary_bytes": size, "binary_mb": round(size_mb, 2),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "kernel": platform.release(),
                 "loadavg_1m_before": load_before, "loadavg_1m_after": os.getloadavg()[0]},
        "event": str(args.event), "runs": args.runs, "warm_requests": args.warm,
        "grpc_status": {k: sorted(v) for k, v in statuses.items()},
        "init_ms": init, "first_request_ms": first, "spawn_to_first_response_ms": total,
        "warm_request_ms": warm,
        "init_cpu_ms": summary(init_cpu) if init_cpu else None,
        "init_minor_faults": summary(init_faults) if init_faults else None,
        "peak_rss_mb": summary(rss) if rss else None,
        "init_instructions": instructions,
        "samples": {"init_ms": inits, "init_cpu_ms": init_cpu, "first_request_ms": firsts,
                    "warm_request_ms": warms},
        "targets": {"init_ms": INIT_TARGET_MS, "binary_mb": SIZE_TARGET_MB,
                    "init_p50_met": init["p50"] <= INIT_TARGET_MS, "binary_met": size_mb < SIZE_TARGET_MB},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        def ok(met: bool) -> str:
            return "ok" if met else "OVER TARGET"
        names = lambda s: ", ".join(f"{c} {GRPC_STATUS_NAMES.get(c, '')}" for c in sorted(s))
        print(f"payment-lambda cold start: {args.runs} cold starts, {args.warm} warm requests, "
              f"event {args.event.name} (grpc-status {names(statuses['first'] | statuses['warm'])})")
        print(f"  host: {platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
              f"load average {load_before:.2f} before / {os.getloadavg()[0]:.2f} after; "
              f"DynamoDB Local on 127.0.0.1")
        print(f"  binary: {binary} ({info['arch']}, {'stripped' if info['stripped'] else 'NOT stripped'})")
        print(f"  binary size      {size_mb:7.2f} MB ({size} bytes)          "
              f"target < {SIZE_TARGET_MB:g} MB: {ok(size_mb < SIZE_TARGET_MB)}")
        print(f"  init duration    min {init['min']:6.2f}  p50 {init['p50']:6.2f}  p90 {init['p90']:6.2f}  "
              f"max {init['max']:6.2f} ms   target p50 <= {INIT_TARGET_MS:g} ms: {ok(init['p50'] <= INIT_TARGET_MS)}")
        if init_cpu:
            c = summary(init_cpu)
            print(f"  init CPU time    min {c['min']:6.2f}  p50 {c['p50']:6.2f}  p90 {c['p90']:6.2f}  "
                  f"max {c['max']:6.2f} ms   (all threads; {percentile(init_faults, 50):.0f} page faults)")
        print(f"  first request    min {first['min']:6.2f}  p50 {first['p50']:6.2f}  p90 {first['p90']:6.2f}  "
              f"max {first['max']:6.2f} ms")
        print(f"  spawn->response  min {total['min']:6.2f}  p50 {total['p50']:6.2f}  p90 {total['p90']:6.2f}  "
              f"max {total['max']:6.2f} ms")
        if warm:
            print(f"  warm request     p50 {warm['p50']:6.2f}  p99 {warm['p99']:6.2f}  "
                  f"(min {warm['min']:.2f}, max {warm['max']:.2f}) ms")
        if rss:
            print(f"  peak RSS         p50 {percentile(rss, 50):6.1f} MB")
        if instructions is not None:
            print(f"  init instructions {instructions / 1e6:5.2f} M  (user space, exec -> first /next, callgrind)")
    if args.check and not (result["targets"]["init_p50_met"] and result["targets"]["binary_met"]):
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("bench-cold-start: interrupted", file=sys.stderr)
        sys.exit(130)

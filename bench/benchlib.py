"""What bench/load.py and bench/search_bench.py share (Python 3.11 stdlib only).

The loopback-only target check, the keep-alive HTTP client, the per-worker error tally, the
measuring window that every phase/query runs in, percentiles, and the text helpers of the
reports and --compare tables. The two scripts import it from their own directory (Python puts
a script's directory first on sys.path), so both stay runnable as `python3 bench/NAME.py`.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import math
import socket
import sys
import threading
import time
import urllib.parse

FHIR_JSON = "application/fhir+json"
# Command-line bounds common to both benchmarks: every loop stays bounded in time and count.
MAX_SECONDS = 600.0
MAX_CONCURRENCY = 256
ERROR_SAMPLES = 5  # distinct (status, body) samples kept per phase
BODY_SAMPLE_CHARS = 400
BUSY_CPU_PCT = 85.0  # client CPU over the wall time above which the figure is the client's limit


# ---------------------------------------------------------------------------- target checks


def loopback_base(base: str, prog: str) -> urllib.parse.SplitResult:
    """Parses --base and refuses anything that is not http:// on a loopback address
    (`prog` names the script in the messages)."""
    url = urllib.parse.urlsplit(base)
    if url.scheme != "http":
        raise SystemExit(f"{prog}: --base must be an http:// URL, not {base!r}")
    host = url.hostname
    if not host:
        raise SystemExit(f"{prog}: --base has no host: {base!r}")
    try:
        port = url.port or 80
    except ValueError as e:
        raise SystemExit(f"{prog}: --base has a bad port: {e}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise SystemExit(f"{prog}: cannot resolve {host!r}: {e}")
    addrs = {info[4][0] for info in infos}
    # Every address the name resolves to must be loopback: one public address is enough to refuse.
    bad = sorted(a for a in addrs if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
    if not addrs or bad:
        raise SystemExit(f"{prog}: refusing a non-loopback --base {base!r} (resolves to {', '.join(bad) or 'nothing'}); "
                         "this benchmark only targets servers on this machine")
    return url


# ---------------------------------------------------------------------------- one client


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects after a failure or a server close."""

    def __init__(self, url: urllib.parse.SplitResult, timeout: float):
        self.host = url.hostname
        self.port = url.port or 80
        self.prefix = url.path.rstrip("/")
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None
        self.connects = 0

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, dict[str, str]]:
        """Returns (status, body, selected headers); status 0 is a transport failure (body says why)."""
        headers = {"Accept": FHIR_JSON}
        if body is not None:
            headers["Content-Type"] = FHIR_JSON
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                self.connects += 1
            self.conn.request(method, self.prefix + path, body=body, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
            if response.will_close:
                self.close()
            keep = {k: response.getheader(k) or "" for k in ("x-request-id", "location")}
            return response.status, data, keep
        except (OSError, http.client.HTTPException) as e:
            # A failed exchange leaves the connection in an unknown state: start afresh next time.
            self.close()
            return 0, f"{type(e).__name__}: {e}".encode(), {}

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None


def probe_server(url: urllib.parse.SplitResult, base: str, timeout: float, prog: str) -> str | None:
    """GET /metadata before anything is measured: the server's name and version for the report,
    or None (after saying why on stderr) when it does not answer 200."""
    probe = Client(url, timeout)
    status, body, _ = probe.request("GET", "/metadata")
    probe.close()
    if status != 200:
        print(f"{prog}: GET {base}/metadata answered {status or 'nothing'}: {body[:300]!r}", file=sys.stderr)
        return None
    try:
        cap = json.loads(body)
        software = cap.get("software", {})
        return f"{software.get('name', '?')} {software.get('version', '?')} (FHIR {cap.get('fhirVersion', '?')})"
    except (ValueError, AttributeError):  # not JSON, or JSON but not an object
        return "?"


# ---------------------------------------------------------------------------- measuring


class Tally:
    """What one worker saw (merged after the phase); the scripts subclass it for their own counts."""

    def __init__(self) -> None:
        self.ok = 0
        self.latencies: list[float] = []  # seconds, successful and failed requests alike
        self.errors_by_status: dict[str, int] = {}
        self.samples: list[dict] = []  # first distinct error samples
        self.seen: set[tuple[str, str]] = set()

    def record_error(self, status: int, body: bytes, headers: dict[str, str], method: str, path: str) -> None:
        key = str(status) if status else "transport"
        self.errors_by_status[key] = self.errors_by_status.get(key, 0) + 1
        text = body.decode("utf-8", "replace")[:BODY_SAMPLE_CHARS]
        # Samples are told apart by status and the start of the body, so one error repeated a
        # thousand times does not crowd out a rarer one.
        sig = (key, text[:120])
        if sig not in self.seen and len(self.samples) < ERROR_SAMPLES:
            self.seen.add(sig)
            self.samples.append({"status": status, "request": f"{method} {path}", "body": text,
                                 "x-request-id": headers.get("x-request-id", "")})


def merge_errors(tallies: list[Tally]) -> tuple[dict[str, int], list[dict]]:
    """The workers' errors by status, summed, and their samples, still distinct across workers."""
    errors_by_status: dict[str, int] = {}
    samples: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for t in tallies:
        for k, v in t.errors_by_status.items():
            errors_by_status[k] = errors_by_status.get(k, 0) + v
        for s in t.samples:
            sig = (str(s["status"]), s["body"][:120])
            if sig not in seen and len(samples) < ERROR_SAMPLES:
                seen.add(sig)
                samples.append(s)
    return errors_by_status, samples


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def ms(v):
    """Seconds to milliseconds for the JSON (None stays None)."""
    return None if v is None else round(v * 1000.0, 2)


def run_workers(label: str, concurrency: int, warmup: float, seconds: float, timeout: float, work) -> tuple[int, float]:
    """Runs work(i, start, end) on `concurrency` threads released together; [start, end) is the
    measuring window on time.perf_counter(), opening `warmup` seconds after the release. Each
    worker must stop starting requests at `end`. Returns (workers still busy at the hard stop,
    the client's CPU seconds over the phase)."""
    ready = threading.Barrier(concurrency + 1)
    window: dict[str, float] = {}

    def worker(i: int) -> None:
        try:
            ready.wait(timeout=30)
        except threading.BrokenBarrierError:
            return
        work(i, window["start"], window["end"])

    threads = [threading.Thread(target=worker, args=(i,), name=f"{label}-{i}", daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    # The window is fixed before the barrier lets the workers read it.
    now = time.perf_counter()
    window["start"] = now + warmup
    window["end"] = now + warmup + seconds
    cpu0 = time.process_time()
    ready.wait(timeout=30)
    hard_stop = window["end"] + timeout + 10  # a hung request cannot hold the phase forever
    for t in threads:
        t.join(timeout=max(0.0, hard_stop - time.perf_counter()))
    hung = sum(t.is_alive() for t in threads)
    return hung, time.process_time() - cpu0


# ---------------------------------------------------------------------------- output


def fmt(v, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}{unit}" if abs(v) >= 10 else f"{v:.2f}{unit}"
    return f"{v:,}{unit}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table: the first column left-aligned, the figures right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def ratio(a, b):
    """a / b to 4 significant digits (searches can be 1,000x slower than a read: 0.00081; a fixed
    number of decimals would round that to 0), None when either side is missing or b is 0."""
    return float(f"{a / b:.4g}") if a is not None and b else None


def sample_line(s: dict) -> str:
    """One error sample: status, request, x-request-id (to find it in the server log), body."""
    return f"  {s['status'] or 'transport'} {s['request']} x-request-id={s['x-request-id'] or '-'}\n    {s['body']}"


def error_lines(name: str, p: dict) -> list[str]:
    """The ERRORS paragraph of one phase or query (nothing when it had none)."""
    if not p["errors"]:
        return []
    by_status = ", ".join(f"{k}: {v}" for k, v in sorted(p["errors_by_status"].items()))
    return [f"ERRORS in {name}: {p['errors']} of {p['requests']} (by status: {by_status})",
            *(sample_line(s) for s in p["error_samples"])]


def hung_lines(name: str, p: dict) -> list[str]:
    if not p["hung_workers"]:
        return []
    return [f"WARNING: {name}: {p['hung_workers']} worker(s) still waiting on a request at the hard stop"]


def bound_lines(name: str, p: dict) -> list[str]:
    if not p["count_bound_hit"]:
        return []
    return [f"note: {name} hit the --max-requests bound before the time was up"]


def busy_lines(cpu_by_name: list[tuple[str, float]]) -> list[str]:
    """A note naming the phases where the one-core (GIL) client, not the server, was the limit."""
    busy = [name for name, pct in cpu_by_name if pct >= BUSY_CPU_PCT]
    if not busy:
        return []
    return [f"note: the client used most of a core in {', '.join(busy)}: those figures may be the client's limit, not the server's"]


# ---------------------------------------------------------------------------- --compare


def read_runs(specs: list[str], prog: str) -> list[tuple[str, dict]]:
    """The --json outputs named NAME=FILE, in order (the first is the reference)."""
    runs = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"{prog}: --compare wants NAME=FILE, got {spec!r}")
        with open(path, encoding="utf-8") as f:
            runs.append((name, json.load(f)))
    return runs


def relative_rows(runs: list[tuple[str, dict]], names: list[str], baseline: str, rps, show) -> list[list[str]]:
    """Each run against the first: per column the raw req/s ratio and, except for the baseline,
    [the ratio of the two runs' own baseline ratios], which cancels most of the machine's drift
    between runs. rps(run, name) gives a figure; show(ratio) formats one."""
    ref = runs[0][1]
    rows = []
    for n, r in runs:
        cells = [n]
        for name in names:
            raw = ratio(rps(r, name), rps(ref, name))
            if name == baseline:
                cells.append(show(raw))
            else:
                norm = ratio(ratio(rps(r, name), rps(r, baseline)), ratio(rps(ref, name), rps(ref, baseline)))
                cells.append(f"{show(raw)} [{show(norm)}]")
        rows.append(cells)
    return rows


def latency_cell(p: dict | None) -> str:
    return "-" if p is None else f"{fmt(p['p50_ms'])} / {fmt(p['p95_ms'])} / {fmt(p['p99_ms'])}"


# ---------------------------------------------------------------------------- command line


def positive(kind, upper):
    """An argparse type: `kind` (int or float) in (0, upper]."""
    def parse(text: str):
        v = kind(text)
        if not (0 < v <= upper):
            raise argparse.ArgumentTypeError(f"must be > 0 and <= {upper}")
        return v
    return parse

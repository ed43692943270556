#!/usr/bin/env python3
"""A small load benchmark for a running providercard server (Python 3.11 stdlib only).

    python3 bench/load.py --base http://127.0.0.1:8080 [--seconds 10] [--concurrency 8]
                          [--seed 200] [--warmup 1] [--json]
    python3 bench/load.py --compare sqlite=A.json postgres=B.json

Seeds --seed practitioners (PUT /Practitioner/{id}), then runs four phases, each for
--seconds with --concurrency threads, every thread on its own keep-alive connection:

    baseline  GET /metadata                       (no database work: the server's floor)
    reads     GET /Practitioner/{random seeded id}
    writes    PUT /Practitioner/{random seeded id} (an update: a new version each time)
    creates   POST /Practitioner                  (server-assigned id)

Each phase first runs --warmup seconds whose requests are not counted, then counts the
requests that complete inside the measuring window. Reported per phase: requests/s, p50/p95/
p99 latency in ms, errors (any non-2xx answer, or a transport failure) with the first few
distinct error statuses and bodies. Then the ratios reads/baseline, writes/baseline and
creates/baseline, which are what to compare between runs on a shared, noisy machine.

Only loopback servers are accepted. Every loop is bounded in time and in count.

Exit status: 0 when every request succeeded, 3 when any request failed (the figures are still
printed), 2 on bad usage or when the server cannot be reached or seeded.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import math
import os
import random
import socket
import sys
import threading
import time
import urllib.parse
import uuid

PHASES = ("baseline", "reads", "writes", "creates")
FHIR_JSON = "application/fhir+json"
MAX_SECONDS = 600.0
MAX_CONCURRENCY = 256
MAX_SEED = 100_000
ERROR_SAMPLES = 5  # distinct (status, body) samples kept per phase
BODY_SAMPLE_CHARS = 400


# ---------------------------------------------------------------------------- target checks


def loopback_base(base: str) -> urllib.parse.SplitResult:
    """Parses --base and refuses anything that is not http:// on a loopback address."""
    url = urllib.parse.urlsplit(base)
    if url.scheme != "http":
        raise SystemExit(f"load.py: --base must be an http:// URL, not {base!r}")
    host = url.hostname
    if not host:
        raise SystemExit(f"load.py: --base has no host: {base!r}")
    try:
        port = url.port or 80
    except ValueError as e:
        raise SystemExit(f"load.py: --base has a bad port: {e}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise SystemExit(f"load.py: cannot resolve {host!r}: {e}")
    addrs = {info[4][0] for info in infos}
    bad = sorted(a for a in addrs if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
    if not addrs or bad:
        raise SystemExit(f"load.py: refusing a non-loopback --base {base!r} (resolves to {', '.join(bad) or 'nothing'}); "
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
            self.close()
            return 0, f"{type(e).__name__}: {e}".encode(), {}

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None


# ---------------------------------------------------------------------------- request makers


def practitioner(pid: str | None, family: str, given: str) -> bytes:
    resource = {"resourceType": "Practitioner"}
    if pid is not None:
        resource["id"] = pid
    resource.update({
        "active": True,
        "name": [{"family": family, "given": [given]}],
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
    })
    return json.dumps(resource, separators=(",", ":")).encode()


FAMILIES = ("Smith", "Jones", "Garcia", "Nguyen", "Okafor", "Rossi", "Kowalski", "Haddad")


def make_request(phase: str, ids: list[str], rng: random.Random, counter: int):
    """(method, path, body, expected statuses) for one request of a phase."""
    if phase == "baseline":
        return "GET", "/metadata", None, (200,)
    if phase == "reads":
        return "GET", f"/Practitioner/{rng.choice(ids)}", None, (200,)
    if phase == "writes":
        pid = rng.choice(ids)
        return "PUT", f"/Practitioner/{pid}", practitioner(pid, rng.choice(FAMILIES), f"W{counter}"), (200, 201)
    if phase == "creates":
        return "POST", "/Practitioner", practitioner(None, rng.choice(FAMILIES), f"C{counter}"), (201,)
    raise ValueError(phase)


# ---------------------------------------------------------------------------- measuring


class Tally:
    """What one worker saw inside the measuring window (merged after the phase)."""

    def __init__(self) -> None:
        self.ok = 0
        self.latencies: list[float] = []  # seconds, successful and failed requests alike
        self.errors_by_status: dict[str, int] = {}
        self.samples: list[dict] = []  # first distinct error samples
        self.seen: set[tuple[str, str]] = set()
        self.unexpected_2xx: dict[str, int] = {}

    def record_error(self, status: int, body: bytes, headers: dict[str, str], method: str, path: str) -> None:
        key = str(status) if status else "transport"
        self.errors_by_status[key] = self.errors_by_status.get(key, 0) + 1
        text = body.decode("utf-8", "replace")[:BODY_SAMPLE_CHARS]
        sig = (key, text[:120])
        if sig not in self.seen and len(self.samples) < ERROR_SAMPLES:
            self.seen.add(sig)
            self.samples.append({"status": status, "request": f"{method} {path}", "body": text,
                                 "x-request-id": headers.get("x-request-id", "")})

    @property
    def errors(self) -> int:
        return sum(self.errors_by_status.values())


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def run_phase(phase: str, url, ids: list[str], seconds: float, warmup: float, concurrency: int,
              max_requests: int, timeout: float, seed: int) -> dict:
    """Runs one phase with `concurrency` threads; returns its figures."""
    tallies = [Tally() for _ in range(concurrency)]
    clients = [Client(url, timeout) for _ in range(concurrency)]
    issued = [0] * concurrency
    budget = max(1, max_requests // concurrency)  # per worker: the count bound
    ready = threading.Barrier(concurrency + 1)
    window: dict[str, float] = {}
    landed: list[dict[str, int]] = [{} for _ in range(concurrency)]  # writes: successful PUTs per id
    ambiguous = [0] * concurrency  # writes: transport failures (may or may not have landed)

    def worker(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        client, tally = clients[i], tallies[i]
        try:
            ready.wait(timeout=30)
        except threading.BrokenBarrierError:
            return
        start, end = window["start"], window["end"]
        n = 0
        while n < budget:
            t0 = time.perf_counter()
            if t0 >= end:
                break
            method, path, body, expected = make_request(phase, ids, rng, n)
            status, data, headers = client.request(method, path, body)
            t1 = time.perf_counter()
            n += 1
            if phase == "writes":  # every answer counts here, warm-up included (lost-update check)
                target = path.rsplit("/", 1)[1]
                if 200 <= status < 300:
                    landed[i][target] = landed[i].get(target, 0) + 1
                elif status == 0:
                    ambiguous[i] += 1
            if t0 < start or t1 > end:  # warm-up, or finished after the window closed
                continue
            tally.latencies.append(t1 - t0)
            if 200 <= status < 300:
                tally.ok += 1
                if status not in expected:
                    tally.unexpected_2xx[str(status)] = tally.unexpected_2xx.get(str(status), 0) + 1
            else:
                tally.record_error(status, data, headers, method, path)
        issued[i] = n
        client.close()

    threads = [threading.Thread(target=worker, args=(i,), name=f"{phase}-{i}", daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    now = time.perf_counter()
    window["start"] = now + warmup
    window["end"] = now + warmup + seconds
    cpu0 = time.process_time()
    ready.wait(timeout=30)
    hard_stop = window["end"] + timeout + 10  # a hung request cannot hold the phase forever
    for t in threads:
        t.join(timeout=max(0.0, hard_stop - time.perf_counter()))
    hung = sum(t.is_alive() for t in threads)
    cpu = time.process_time() - cpu0

    latencies = sorted(x for t in tallies for x in t.latencies)
    ok = sum(t.ok for t in tallies)
    errors_by_status: dict[str, int] = {}
    unexpected: dict[str, int] = {}
    samples: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for t in tallies:
        for k, v in t.errors_by_status.items():
            errors_by_status[k] = errors_by_status.get(k, 0) + v
        for k, v in t.unexpected_2xx.items():
            unexpected[k] = unexpected.get(k, 0) + v
        for s in t.samples:
            sig = (str(s["status"]), s["body"][:120])
            if sig not in seen and len(samples) < ERROR_SAMPLES:
                seen.add(sig)
                samples.append(s)
    errors = sum(errors_by_status.values())
    extra = {}
    if phase == "writes":
        puts: dict[str, int] = {}
        for d in landed:
            for k, v in d.items():
                puts[k] = puts.get(k, 0) + v
        if hung:
            extra["lost_update_check"] = {"ids_checked": 0, "puts_counted": sum(puts.values()), "mismatches": 0,
                                          "mismatch_samples": [], "read_failures": 0, "transport_failures": sum(ambiguous),
                                          "verdict": "skipped (workers still hung)"}
        else:
            extra["lost_update_check"] = check_versions(url, puts, sum(ambiguous), timeout)
    ms = lambda v: None if v is None else round(v * 1000.0, 2)  # noqa: E731
    return {
        "phase": phase,
        "seconds": seconds,
        "requests": ok + errors,
        "ok": ok,
        "errors": errors,
        "rps": round(ok / seconds, 1),
        "p50_ms": ms(percentile(latencies, 50)),
        "p95_ms": ms(percentile(latencies, 95)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(latencies[-1] if latencies else None),
        "errors_by_status": errors_by_status,
        "error_samples": samples,
        "unexpected_2xx": unexpected,
        "connections_opened": sum(c.connects for c in clients),
        "issued_including_warmup": sum(issued),
        "count_bound_hit": any(n >= budget for n in issued),
        "hung_workers": hung,
        "client_cpu_pct": round(100.0 * cpu / (seconds + warmup), 1),
        **extra,
    }


MAX_VERSION_CHECKS = 2000


def check_versions(url, puts: dict[str, int], ambiguous: int, timeout: float) -> dict:
    """After the writes phase: each seeded id was created at version 1, so its versionId must now be
    1 + the successful PUTs it got; less means an acknowledged update was lost (or overwritten
    without a new version)."""
    client = Client(url, timeout)
    checked, mismatches, failures = 0, [], 0
    for pid, n in sorted(puts.items())[:MAX_VERSION_CHECKS]:
        status, body, _ = client.request("GET", f"/Practitioner/{pid}")
        if status != 200:
            failures += 1
            continue
        checked += 1
        try:
            version = int(json.loads(body)["meta"]["versionId"])
        except (ValueError, KeyError, TypeError):
            failures += 1
            continue
        if version != 1 + n:
            mismatches.append({"id": pid, "successful_puts": n, "expected_version": 1 + n, "versionId": version})
    client.close()
    verdict = "ok" if not mismatches and not failures else "MISMATCH" if mismatches else "read failures"
    if ambiguous and verdict != "ok":
        verdict += f" (inconclusive: {ambiguous} PUTs failed in transport)"
    return {"ids_checked": checked, "puts_counted": sum(puts.values()), "mismatches": len(mismatches),
            "mismatch_samples": mismatches[:ERROR_SAMPLES], "read_failures": failures,
            "transport_failures": ambiguous, "verdict": verdict}


# ---------------------------------------------------------------------------- seeding


def seed_practitioners(url, count: int, concurrency: int, timeout: float, run_id: str) -> tuple[list[str], dict]:
    """PUTs `count` practitioners with ids bench-RUN-N; returns the ids stored and a report."""
    ids = [f"bench-{run_id}-{n}" for n in range(count)]
    stored: list[list[str]] = [[] for _ in range(concurrency)]
    tallies = [Tally() for _ in range(concurrency)]
    deadline = time.perf_counter() + max(60.0, count * timeout / max(1, concurrency))

    def worker(i: int) -> None:
        client = Client(url, timeout)
        for pid in ids[i::concurrency]:
            if time.perf_counter() > deadline:
                break
            body = practitioner(pid, FAMILIES[hash(pid) % len(FAMILIES)], "Seed")
            status, data, headers = client.request("PUT", f"/Practitioner/{pid}", body)
            if 200 <= status < 300:
                stored[i].append(pid)
            else:
                tallies[i].record_error(status, data, headers, "PUT", f"/Practitioner/{pid}")
        client.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, deadline + timeout + 5 - time.perf_counter()))
    elapsed = time.perf_counter() - t0
    ok_ids = [pid for s in stored for pid in s]
    samples = [s for t in tallies for s in t.samples][:ERROR_SAMPLES]
    errors_by_status: dict[str, int] = {}
    for t in tallies:
        for k, v in t.errors_by_status.items():
            errors_by_status[k] = errors_by_status.get(k, 0) + v
    return ok_ids, {"requested": count, "stored": len(ok_ids), "seconds": round(elapsed, 2),
                    "errors": sum(errors_by_status.values()), "errors_by_status": errors_by_status,
                    "error_samples": samples}


# ---------------------------------------------------------------------------- output


def fmt(v, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}{unit}" if abs(v) >= 10 else f"{v:.2f}{unit}"
    return f"{v:,}{unit}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def report_text(result: dict) -> str:
    out = []
    cfg = result["config"]
    out.append(f"providercard load: {cfg['base']}  server {result.get('server', '?')}  "
               f"{cfg['seconds']}s/phase (+{cfg['warmup']}s warm-up), concurrency {cfg['concurrency']}, "
               f"{result['seed']['stored']}/{result['seed']['requested']} seeded in {result['seed']['seconds']}s")
    rows = []
    for p in result["phases"]:
        rows.append([p["phase"], fmt(p["rps"]), fmt(p["p50_ms"]), fmt(p["p95_ms"]), fmt(p["p99_ms"]), fmt(p["max_ms"]),
                     fmt(p["ok"]), fmt(p["errors"]), fmt(p["connections_opened"]), fmt(p["client_cpu_pct"], "%")])
    out.append(table(["phase", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "ok", "errors", "conns", "client cpu"], rows))
    r = result["ratios"]
    out.append("ratios to baseline (GET /metadata): "
               + ", ".join(f"{k} {fmt(r[k])}" for k in ("reads/baseline", "writes/baseline", "creates/baseline")))
    for p in result["phases"]:
        if p["errors"]:
            out.append(f"ERRORS in {p['phase']}: {p['errors']} of {p['requests']} "
                       f"(by status: {', '.join(f'{k}: {v}' for k, v in sorted(p['errors_by_status'].items()))})")
            for s in p["error_samples"]:
                out.append(f"  {s['status'] or 'transport'} {s['request']} x-request-id={s['x-request-id'] or '-'}\n    {s['body']}")
        if p["unexpected_2xx"]:
            out.append(f"note: {p['phase']} got unexpected 2xx statuses {p['unexpected_2xx']}")
        if p["hung_workers"]:
            out.append(f"WARNING: {p['phase']}: {p['hung_workers']} worker(s) still waiting on a request at the hard stop")
        check = p.get("lost_update_check")
        if check:
            out.append(f"{p['phase']}: version check of {check['ids_checked']} ids after {check['puts_counted']:,} successful PUTs "
                       f"(warm-up included): {check['verdict']}")
            for m in check["mismatch_samples"]:
                out.append(f"  {m['id']}: {m['successful_puts']} successful PUTs, expected versionId {m['expected_version']}, got {m['versionId']}")
        if p["count_bound_hit"]:
            out.append(f"note: {p['phase']} hit the --max-requests bound before the time was up")
    if result["seed"]["errors"]:
        out.append(f"ERRORS while seeding: {result['seed']['errors_by_status']}")
        for s in result["seed"]["error_samples"]:
            out.append(f"  {s['status'] or 'transport'} {s['request']}\n    {s['body']}")
    busy = [p["phase"] for p in result["phases"] if p["client_cpu_pct"] >= 85.0]
    if busy:
        out.append(f"note: the client used most of a core in {', '.join(busy)}: those figures may be the client's limit, not the server's")
    return "\n".join(out)


def compare(specs: list[str]) -> int:
    """Prints the cross-store table from several --json outputs (NAME=FILE each; the first is the reference)."""
    runs = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"load.py: --compare wants NAME=FILE, got {spec!r}")
        with open(path, encoding="utf-8") as f:
            runs.append((name, json.load(f)))
    ref_name, ref = runs[0]
    rps = lambda run, phase: next((p["rps"] for p in run["phases"] if p["phase"] == phase), None)  # noqa: E731
    errs = lambda run: sum(p["errors"] for p in run["phases"]) + run["seed"]["errors"]  # noqa: E731
    check = lambda run: next((p["lost_update_check"]["verdict"] for p in run["phases"] if "lost_update_check" in p), "-")  # noqa: E731

    print("\nthroughput (requests/s)")
    print(table(["store", "baseline/s", "reads/s", "writes/s", "creates/s", "errors", "version check"],
                [[n, *(fmt(rps(r, ph)) for ph in PHASES), fmt(errs(r)), check(r)] for n, r in runs]))

    print(f"\nrelative to its own baseline (GET /metadata in the same run)")
    print(table(["store", "reads", "writes", "creates"],
                [[n, *(fmt(ratio(rps(r, ph), rps(r, "baseline"))) for ph in PHASES[1:])] for n, r in runs]))

    print(f"\nrelative to {ref_name}: raw req/s ratio, and [baseline-normalised ratio]")
    rows = []
    for n, r in runs:
        cells = [n]
        for ph in PHASES:
            raw = ratio(rps(r, ph), rps(ref, ph))
            if ph == "baseline":
                cells.append(fmt(raw))
            else:
                norm = ratio(ratio(rps(r, ph), rps(r, "baseline")), ratio(rps(ref, ph), rps(ref, "baseline")))
                cells.append(f"{fmt(raw)} [{fmt(norm)}]")
        rows.append(cells)
    print(table(["store", "baseline", "reads", "writes", "creates"], rows))

    print("\nlatency p50 / p95 / p99 (ms)")
    rows = []
    for n, r in runs:
        cells = [n]
        for ph in PHASES:
            p = next((p for p in r["phases"] if p["phase"] == ph), None)
            cells.append("-" if p is None else f"{fmt(p['p50_ms'])} / {fmt(p['p95_ms'])} / {fmt(p['p99_ms'])}")
        rows.append(cells)
    print(table(["store", *PHASES], rows))
    return 3 if any(errs(r) or check(r) not in ("ok", "-") for _, r in runs) else 0


# ---------------------------------------------------------------------------- main


def positive(kind, upper):
    def parse(text: str):
        v = kind(text)
        if not (0 < v <= upper):
            raise argparse.ArgumentTypeError(f"must be > 0 and <= {upper}")
        return v
    return parse


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Phases: baseline (GET /metadata), reads, writes (PUT updates), creates (POST).")
    ap.add_argument("--base", default="http://127.0.0.1:8080", help="server base URL (loopback only)")
    ap.add_argument("--seconds", type=positive(float, MAX_SECONDS), default=10.0, help="measured seconds per phase (default 10)")
    ap.add_argument("--warmup", type=float, default=1.0, help="uncounted seconds before each phase's window (default 1)")
    ap.add_argument("--concurrency", type=positive(int, MAX_CONCURRENCY), default=8, help="concurrent keep-alive clients (default 8)")
    ap.add_argument("--seed", type=positive(int, MAX_SEED), default=200, help="practitioners to seed (default 200)")
    ap.add_argument("--max-requests", type=positive(int, 10_000_000), default=1_000_000,
                    help="upper bound on requests per phase, warm-up included (default 1,000,000)")
    ap.add_argument("--timeout", type=positive(float, 120.0), default=15.0, help="per-request socket timeout in s (default 15)")
    ap.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    ap.add_argument("--label", default="", help="a name for this run, kept in the JSON")
    ap.add_argument("--json", action="store_true", help="print the result as JSON on stdout (the table goes to stderr)")
    ap.add_argument("--compare", nargs="+", metavar="NAME=FILE",
                    help="instead of running: compare --json outputs of earlier runs (the first is the reference)")
    args = ap.parse_args(argv)

    if args.compare:
        return compare(args.compare)
    if not (0 <= args.warmup <= 60):
        ap.error("--warmup must be between 0 and 60")
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = [p for p in phases if p not in PHASES]
    if unknown or not phases:
        ap.error(f"--phases: unknown {unknown}; choose from {','.join(PHASES)}")
    url = loopback_base(args.base)
    text_out = sys.stderr if args.json else sys.stdout

    # The server must answer before anything is measured.
    probe = Client(url, args.timeout)
    status, body, _ = probe.request("GET", "/metadata")
    probe.close()
    if status != 200:
        print(f"load.py: GET {args.base}/metadata answered {status or 'nothing'}: {body[:300]!r}", file=sys.stderr)
        return 2
    try:
        cap = json.loads(body)
        server = f"{cap.get('software', {}).get('name', '?')} {cap.get('software', {}).get('version', '?')} (FHIR {cap.get('fhirVersion', '?')})"
    except ValueError:
        server = "?"

    run_id = uuid.uuid4().hex[:8]
    ids, seed_report = seed_practitioners(url, args.seed, args.concurrency, args.timeout, run_id)
    if not ids and any(p in ("reads", "writes") for p in phases):
        print(f"load.py: seeding failed: {json.dumps(seed_report)}", file=sys.stderr)
        return 2
    probe = Client(url, args.timeout)
    status, body, _ = probe.request("GET", f"/Practitioner/{ids[0]}") if ids else (200, b'{"resourceType":"Practitioner"}', {})
    probe.close()
    if status != 200 or json.loads(body).get("resourceType") != "Practitioner":
        print(f"load.py: reading back a seeded practitioner failed: {status} {body[:300]!r}", file=sys.stderr)
        return 2

    results = []
    for i, phase in enumerate(phases):
        print(f"  {phase}: {args.seconds}s with {args.concurrency} clients ...", file=sys.stderr, flush=True)
        results.append(run_phase(phase, url, ids, args.seconds, args.warmup, args.concurrency,
                                 args.max_requests, args.timeout, seed=hash(run_id) % 100_000 + i))
    by = {p["phase"]: p["rps"] for p in results}
    result = {
        "label": args.label,
        "server": server,
        "config": {"base": args.base, "seconds": args.seconds, "warmup": args.warmup, "concurrency": args.concurrency,
                   "seed": args.seed, "max_requests": args.max_requests, "timeout": args.timeout, "phases": phases,
                   "python": sys.version.split()[0], "cpus": os.cpu_count()},
        "seed": seed_report,
        "phases": results,
        "ratios": {f"{k}/baseline": ratio(by.get(k), by.get("baseline")) for k in ("reads", "writes", "creates")},
    }
    print(report_text(result), file=text_out, flush=True)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    failed = (seed_report["errors"] + sum(p["errors"] for p in results) + sum(p["hung_workers"] for p in results)
              + sum(p["lost_update_check"]["verdict"] != "ok" for p in results if "lost_update_check" in p))
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

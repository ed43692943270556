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
import json
import os
import random
import sys
import threading
import time
import uuid

from benchlib import (MAX_CONCURRENCY, MAX_SECONDS, ERROR_SAMPLES, Client, Tally, bound_lines, busy_lines, error_lines,
                      fmt, hung_lines, latency_cell, loopback_base, merge_errors, ms, percentile, positive, probe_server,
                      ratio, read_runs, relative_rows, run_workers, sample_line, table)

PROG = "load.py"
PHASES = ("baseline", "reads", "writes", "creates")
MAX_SEED = 100_000


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


class PhaseTally(Tally):
    """What one worker saw inside the measuring window, and 2xx answers other than the expected ones."""

    def __init__(self) -> None:
        super().__init__()
        self.unexpected_2xx: dict[str, int] = {}


def run_phase(phase: str, url, ids: list[str], seconds: float, warmup: float, concurrency: int,
              max_requests: int, timeout: float, seed: int) -> dict:
    """Runs one phase with `concurrency` threads; returns its figures."""
    tallies = [PhaseTally() for _ in range(concurrency)]
    clients = [Client(url, timeout) for _ in range(concurrency)]
    issued = [0] * concurrency
    budget = max(1, max_requests // concurrency)  # per worker: the count bound
    landed: list[dict[str, int]] = [{} for _ in range(concurrency)]  # writes: successful PUTs per id
    ambiguous = [0] * concurrency  # writes: transport failures (may or may not have landed)

    def work(i: int, start: float, end: float) -> None:
        rng = random.Random(seed * 1000 + i)
        client, tally = clients[i], tallies[i]
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

    hung, cpu = run_workers(phase, concurrency, warmup, seconds, timeout, work)

    latencies = sorted(x for t in tallies for x in t.latencies)
    ok = sum(t.ok for t in tallies)
    errors_by_status, samples = merge_errors(tallies)
    unexpected: dict[str, int] = {}
    for t in tallies:
        for k, v in t.unexpected_2xx.items():
            unexpected[k] = unexpected.get(k, 0) + v
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
    errors_by_status, samples = merge_errors(tallies)
    return ok_ids, {"requested": count, "stored": len(ok_ids), "seconds": round(elapsed, 2),
                    "errors": sum(errors_by_status.values()), "errors_by_status": errors_by_status,
                    "error_samples": samples}


# ---------------------------------------------------------------------------- output


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
        out += error_lines(p["phase"], p)
        if p["unexpected_2xx"]:
            out.append(f"note: {p['phase']} got unexpected 2xx statuses {p['unexpected_2xx']}")
        out += hung_lines(p["phase"], p)
        check = p.get("lost_update_check")
        if check:
            out.append(f"{p['phase']}: version check of {check['ids_checked']} ids after {check['puts_counted']:,} successful PUTs "
                       f"(warm-up included): {check['verdict']}")
            for m in check["mismatch_samples"]:
                out.append(f"  {m['id']}: {m['successful_puts']} successful PUTs, expected versionId {m['expected_version']}, got {m['versionId']}")
        out += bound_lines(p["phase"], p)
    if result["seed"]["errors"]:
        out.append(f"ERRORS while seeding: {result['seed']['errors_by_status']}")
        out += [sample_line(s) for s in result["seed"]["error_samples"]]
    out += busy_lines([(p["phase"], p["client_cpu_pct"]) for p in result["phases"]])
    return "\n".join(out)


def compare(specs: list[str]) -> int:
    """Prints the cross-store table from several --json outputs (NAME=FILE each; the first is the reference)."""
    runs = read_runs(specs, PROG)
    ref_name = runs[0][0]
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
    print(table(["store", "baseline", "reads", "writes", "creates"], relative_rows(runs, list(PHASES), "baseline", rps, fmt)))

    print("\nlatency p50 / p95 / p99 (ms)")
    rows = [[n, *(latency_cell(next((p for p in r["phases"] if p["phase"] == ph), None)) for ph in PHASES)] for n, r in runs]
    print(table(["store", *PHASES], rows))
    return 3 if any(errs(r) or check(r) not in ("ok", "-") for _, r in runs) else 0


# ---------------------------------------------------------------------------- main


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
    url = loopback_base(args.base, PROG)
    text_out = sys.stderr if args.json else sys.stdout

    # The server must answer before anything is measured.
    server = probe_server(url, args.base, args.timeout, PROG)
    if server is None:
        return 2

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

"""Typical payer searches on an imported NPPES set, one client: p50/p95 per query.

Pools of real values (NPIs, family names, taxonomy + state pairs) are read from the server
first, then each query runs --queries times with values drawn from them.
"""

import argparse
import json
import random
import sys
import time
import urllib.parse

from benchlib import Client, loopback_base, percentile

NPI = "http://hl7.org/fhir/sid/us-npi"
NUCC = "http://nucc.org/provider-taxonomy"


def get(client: Client, path: str) -> dict:
    status, body, _ = client.request("GET", path)
    if status != 200:
        raise SystemExit(f"nppes_import.py: GET {path} answered {status}: {body[:300]!r}")
    return json.loads(body)


def pools(client: Client) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    bundle = get(client, "/PractitionerRole?_count=300&_include=PractitionerRole:practitioner"
                         "&_include=PractitionerRole:location")
    npis, names, pairs = set(), set(), set()
    locations = {}
    roles = []
    for entry in bundle.get("entry", []):
        r = entry["resource"]
        if r["resourceType"] == "Practitioner":
            for i in r.get("identifier", []):
                if i.get("system") == NPI:
                    npis.add(i["value"])
            for n in r.get("name", []):
                if n.get("family"):
                    names.add(n["family"])
        elif r["resourceType"] == "Location":
            locations[f"Location/{r['id']}"] = r.get("address", {}).get("state")
        elif r["resourceType"] == "PractitionerRole":
            roles.append(r)
    for r in roles:
        codes = [c["code"] for s in r.get("specialty", []) for c in s.get("coding", []) if c.get("system") == NUCC]
        states = [locations.get(l.get("reference")) for l in r.get("location", [])]
        for code in codes[:1]:
            for state in states[:1]:
                if state:
                    pairs.add((code, state))
    if not (npis and names and pairs):
        raise SystemExit("nppes_import.py: the imported set has no practitioners with roles to query")
    return sorted(npis), sorted(names), sorted(pairs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    client = Client(loopback_base(args.base, "nppes_import.py"), 60.0)
    npis, names, pairs = pools(client)
    rng = random.Random(7)
    queries = {
        "by NPI": lambda: f"/Practitioner?identifier={urllib.parse.quote(NPI + '|' + rng.choice(npis))}",
        "by family name": lambda: f"/Practitioner?family={urllib.parse.quote(rng.choice(names))}",
        "by taxonomy + state": lambda: (lambda p: f"/PractitionerRole?specialty={urllib.parse.quote(NUCC + '|' + p[0])}"
                                                 f"&location.address-state={p[1]}")(rng.choice(pairs)),
    }
    baseline = lambda: f"/Practitioner/npi-{rng.choice(npis)}"
    failed_any = False
    for name, make in [("read by id (baseline)", baseline), *queries.items()]:
        took, failures = [], []
        for _ in range(args.queries):
            path = make()
            started = time.perf_counter()
            status, body, _ = client.request("GET", path)
            took.append((time.perf_counter() - started) * 1000)
            if status != 200:
                failures.append(f"GET {path} answered {status}: {body[:200]!r}")
        took.sort()
        # A query that failed (e.g. the server's 30 s request timeout) is kept in the
        # percentiles with the time it took, and counted.
        failed = f"   failed {len(failures)}/{args.queries}: {failures[0]}" if failures else ""
        print(f"{args.label} {name:24} p50 {percentile(took, 50):8.2f} ms   p95 {percentile(took, 95):8.2f} ms{failed}",
              flush=True)
        failed_any = failed_any or bool(failures)
    return 1 if failed_any else 0


if __name__ == "__main__":
    sys.exit(main())

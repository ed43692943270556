#!/usr/bin/env python3
"""A search benchmark for a running providercard server (Python 3.11 stdlib only).

    python3 bench/search_bench.py --base http://127.0.0.1:8080 [--practitioners 100000]
                                  [--seconds 10] [--concurrency 4] [--loaders 3] [--json]
    python3 bench/search_bench.py --compare sqlite=A.json postgres=B.json

Load: creates 3 network Organizations (PUT /Organization/{id}), then --practitioners
Practitioners, each with one PractitionerRole and one Location (3 resources per practitioner),
posted as transaction Bundles of --batch practitioners (3 x --batch entries, urn:uuid
references) by --loaders concurrent clients; a transaction answered 409 or 503 (both say
"retry") is sent again up to --load-retries times, and those answers are reported apart.
Then every type is counted (_summary=count): fewer than acknowledged is a lost write. The
data is realistic and reproducible (--data-seed): NPIs with a valid Luhn check digit (80840
prefix), names from skewed lists (some accented), ~50 real US city/state pairs and ~40 real
NUCC taxonomy codes, both skewed, and a Plan-Net network-reference extension on about half
the roles.

Then measures, each for --seconds with --concurrency keep-alive clients (after --warmup
uncounted seconds), with values drawn at random from what was loaded (so every query has at
least one match):

    read            GET /Practitioner/{id}                                 (the baseline)
    npi             GET /Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|{npi}
    name            GET /Practitioner?name={family prefix, 4+ chars}&_count=20
    specialty_city  GET /PractitionerRole?specialty={code}&location.address-city={city}
                        &location.address-state={state}&_count=20
    network         GET /PractitionerRole?network=Organization/{id}&_count=20
    include         GET /PractitionerRole?specialty={code}&location.address-state={state}
                        &_include=PractitionerRole:practitioner&_include=PractitionerRole:location&_count=20

Reported per query: requests/s (answers started and finished inside the window), p50/p95/
p99/max latency in ms (of every request that finished after the window opened, so a search
slower than the window still shows), mean matches (and included
resources) per page, errors (any non-200 answer or transport failure, with the first bodies),
and wrong answers (a 200 whose content cannot be right: no match for values that were loaded,
the NPI's practitioner missing, _include without the referenced resources). Then each query's
requests/s over the baseline's in the same run, the figure to compare on a noisy machine.

Only loopback servers are accepted. Every loop is bounded in time and in count.

Exit status: 0 when every request succeeded and every answer was plausible, 3 otherwise (the
figures are still printed), 2 on bad usage or when the server cannot be reached or loaded.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import threading
import time
import urllib.parse
import uuid

from benchlib import (MAX_CONCURRENCY, MAX_SECONDS, ERROR_SAMPLES, Client, Tally, bound_lines, busy_lines, error_lines,
                      fmt, hung_lines, latency_cell, loopback_base, merge_errors, ms, percentile, positive, probe_server,
                      ratio, read_runs, relative_rows, run_workers, sample_line, table)

PROG = "search_bench.py"
MAX_PRACTITIONERS = 1_000_000
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
NUCC_SYSTEM = "http://nucc.org/provider-taxonomy"
NETWORK_EXT = "http://hl7.org/fhir/us/davinci-pdex-plan-net/StructureDefinition/network-reference"
NUCC_CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "profiles", "nucc", "nucc_taxonomy_251.csv")
PAGE = 20

QUERIES = ("read", "npi", "name", "specialty_city", "network", "include")
DESCRIBE = {
    "read": "GET /Practitioner/{id}",
    "npi": "GET /Practitioner?identifier=us-npi|{npi}",
    "name": "GET /Practitioner?name={prefix}&_count=20",
    "specialty_city": "GET /PractitionerRole?specialty&location.address-city&-state&_count=20",
    "network": "GET /PractitionerRole?network=Organization/{id}&_count=20",
    "include": "GET /PractitionerRole?specialty&location.address-state&_include x2&_count=20",
}


# ---------------------------------------------------------------------------- the data

# Family names: a US mix, most common first (the draw is skewed towards the head of the list).
FAMILIES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "García", "Miller", "Davis", "Rodríguez", "Martínez",
    "Hernández", "López", "González", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Pérez", "Thompson", "White", "Harris", "Sánchez", "Clark", "Ramírez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "Patel", "Shah", "Kim", "Chen", "Wang", "Singh", "Kumar", "Cohen", "Murphy", "O'Brien",
    "Sullivan", "Kowalski", "Nowak", "Müller", "Schröder", "Dubois", "Lefèvre", "Núñez", "Peña", "Gonçalves",
    "Björklund", "Sørensen", "Öztürk", "Çelik", "Trần", "Okafor", "Adeyemi", "Mensah", "Haddad", "Khoury",
    "Nakamura", "Tanaka", "Yamamoto", "Rossi", "Russo", "Esposito", "Ferreira", "Costa", "Dvořák", "Novák",
    "Jovanović", "Petrović", "Ivanov", "Volkov", "Kaplan", "Friedman", "Goldberg", "Schwartz", "Fitzgerald", "MacDonald",
    "Nakashima", "Abernathy", "Villanueva", "Castañeda", "Ibáñez", "Bélanger", "Gagné", "Lindqvist", "Søgaard", "Weiß",
)
GIVEN_MALE = (
    "James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas", "Christopher",
    "Daniel", "Matthew", "Anthony", "Mark", "José", "Luis", "Carlos", "Juan", "André", "François",
    "Jürgen", "Søren", "Raúl", "Ramón", "Wei", "Hiroshi", "Rajesh", "Arjun", "Ahmed", "Mohammed",
    "Chinedu", "Kwame", "Dmitri", "Ömer", "Nicolás", "Andrés", "Tomás", "Björn", "Zoltán", "Kevin",
)
GIVEN_FEMALE = (
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen",
    "Emily", "Ashley", "María", "Sofía", "Lucía", "Inés", "Chloé", "Zoë", "Renée", "Noémie",
    "Ana", "Priya", "Ananya", "Mei", "Yuki", "Fatima", "Aisha", "Ngozi", "Ama", "Olga",
    "Małgorzata", "Ingrid", "Siobhán", "Gabriela", "Mónica", "Hannah", "Rachel", "Lauren", "Nicole", "Michelle",
)
MIDDLE_INITIALS = "ABCDEFGHJKLMNPRSTW"

# (city, state, first ZIP, weight ~ population in 100k): real pairs, skewed; some city names
# repeat across states (Portland, Springfield, Kansas City), so city alone is ambiguous.
CITIES = (
    ("New York", "NY", 10001, 83), ("Los Angeles", "CA", 90001, 39), ("Chicago", "IL", 60601, 27),
    ("Houston", "TX", 77001, 23), ("Phoenix", "AZ", 85001, 16), ("Philadelphia", "PA", 19102, 16),
    ("San Antonio", "TX", 78201, 15), ("San Diego", "CA", 92101, 14), ("Dallas", "TX", 75201, 13),
    ("Austin", "TX", 78701, 10), ("Jacksonville", "FL", 32202, 9), ("San Jose", "CA", 95110, 10),
    ("Fort Worth", "TX", 76102, 9), ("Columbus", "OH", 43215, 9), ("Charlotte", "NC", 28202, 9),
    ("Indianapolis", "IN", 46204, 9), ("San Francisco", "CA", 94102, 8), ("Seattle", "WA", 98101, 7),
    ("Denver", "CO", 80202, 7), ("Washington", "DC", 20001, 7), ("Nashville", "TN", 37201, 7),
    ("Oklahoma City", "OK", 73102, 7), ("El Paso", "TX", 79901, 7), ("Boston", "MA", 2108, 7),
    ("Portland", "OR", 97201, 6), ("Las Vegas", "NV", 89101, 6), ("Detroit", "MI", 48201, 6),
    ("Memphis", "TN", 38103, 6), ("Louisville", "KY", 40202, 6), ("Baltimore", "MD", 21201, 6),
    ("Milwaukee", "WI", 53202, 6), ("Albuquerque", "NM", 87102, 6), ("Tucson", "AZ", 85701, 5),
    ("Fresno", "CA", 93721, 5), ("Sacramento", "CA", 95814, 5), ("Kansas City", "MO", 64105, 5),
    ("Atlanta", "GA", 30303, 5), ("Miami", "FL", 33128, 4), ("Omaha", "NE", 68102, 5),
    ("Raleigh", "NC", 27601, 5), ("Minneapolis", "MN", 55401, 4), ("Cleveland", "OH", 44113, 4),
    ("New Orleans", "LA", 70112, 4), ("Honolulu", "HI", 96813, 3), ("Anchorage", "AK", 99501, 3),
    ("Boise", "ID", 83702, 2), ("Kansas City", "KS", 66101, 2), ("Springfield", "IL", 62701, 1),
    ("Springfield", "MA", 1103, 2), ("Portland", "ME", 4101, 1), ("Burlington", "VT", 5401, 1),
    ("Santa Fe", "NM", 87501, 1), ("Española", "NM", 87532, 1),
)
STREETS = ("Main", "Oak", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park", "Pine", "Walnut",
           "Sunset", "Lincoln", "Jefferson", "Madison", "Franklin", "Highland", "Church", "River", "Market",
           "Broadway", "Spring", "Center", "Union", "Prospect", "Chestnut", "Riverside", "Medical Center")
SUFFIXES = ("St", "Ave", "Blvd", "Rd", "Dr", "Ln", "Way", "Pkwy", "Ct")
CLINIC_KINDS = ("Medical Group", "Health Center", "Clinic", "Family Practice", "Medical Associates",
                "Specialty Care", "Physicians", "Community Health", "Health Partners", "Care Center")

# NUCC taxonomy codes, most common first (displays are read from profiles/nucc/).
NUCC_CODES = (
    "207Q00000X", "207R00000X", "363L00000X", "208000000X", "363LF0000X", "363A00000X", "225100000X",
    "207V00000X", "1041C0700X", "101YM0800X", "103T00000X", "122300000X", "1223G0001X", "2084P0800X",
    "207RC0000X", "152W00000X", "111N00000X", "207P00000X", "207L00000X", "207X00000X", "2085R0202X",
    "208600000X", "363AM0700X", "367500000X", "207N00000X", "207W00000X", "207RG0100X", "225X00000X",
    "2084N0400X", "207Y00000X", "235Z00000X", "208800000X", "207RE0101X", "207RH0003X", "207RP1001X",
    "207RN0300X", "213E00000X", "133V00000X", "208D00000X", "207RI0200X", "207RR0500X", "2080P0204X",
)
# The three network Organizations (fixed ids: PUT is idempotent) and the share of roles in each;
# the rest (about half) have no network extension.
NETWORKS = (("acme-gold-network", "Acme Gold Network", 0.25),
            ("acme-silver-network", "Acme Silver Network", 0.15),
            ("acme-bronze-network", "Acme Bronze Network", 0.10))


def zipf_weights(n: int, s: float) -> list[float]:
    return [1.0 / (rank + 1) ** s for rank in range(n)]


def npi_check_digit(base9: str) -> int:
    """Luhn check digit of a 9-digit NPI base, computed over the card-issuer prefix 80840 + base."""
    total = 0
    for i, ch in enumerate(reversed("80840" + base9)):
        d = int(ch)
        if i % 2 == 0:  # the rightmost payload digit is doubled (the check digit will sit to its right)
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def npi_valid(npi: str) -> bool:
    if len(npi) != 10 or not npi.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed("80840" + npi)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def load_nucc(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = {r["Code"]: r["Display Name"] for r in csv.DictReader(f)}
    missing = [c for c in NUCC_CODES if c not in rows]
    if missing:
        raise SystemExit(f"{PROG}: NUCC codes not in {path}: {missing}")
    return {c: rows[c] for c in NUCC_CODES}


class Dataset:
    """The generated directory, in columns (one entry per practitioner; its role and location share the index)."""

    def __init__(self, n: int, seed: int, nucc: dict[str, str]):
        rng = random.Random(seed)
        self.n = n
        self.nucc = nucc
        bases = rng.sample(range(100_000_000, 300_000_000), n)  # NPIs start with 1 or 2
        self.npi = [f"{b}{npi_check_digit(str(b))}" for b in bases]
        self.family = rng.choices(FAMILIES, weights=zipf_weights(len(FAMILIES), 0.9), k=n)
        self.gender = rng.choices(("female", "male", "unknown"), weights=(50, 49, 1), k=n)
        male_w, female_w = zipf_weights(len(GIVEN_MALE), 0.6), zipf_weights(len(GIVEN_FEMALE), 0.6)
        self.given: list[list[str]] = []
        for g in self.gender:
            pool, w = (GIVEN_MALE, male_w) if g == "male" else (GIVEN_FEMALE, female_w) if g == "female" else \
                (GIVEN_MALE + GIVEN_FEMALE, male_w + female_w)
            given = [rng.choices(pool, weights=w)[0]]
            if rng.random() < 0.4:
                given.append(rng.choice(MIDDLE_INITIALS) + ".")
            self.given.append(given)
        self.city = rng.choices(range(len(CITIES)), weights=[c[3] for c in CITIES], k=n)
        self.code = rng.choices(NUCC_CODES, weights=zipf_weights(len(NUCC_CODES), 1.0), k=n)
        net_w = [w for _, _, w in NETWORKS] + [1.0 - sum(w for _, _, w in NETWORKS)]
        self.network = rng.choices([nid for nid, _, _ in NETWORKS] + [None], weights=net_w, k=n)
        self.street = [(rng.randint(1, 9899), rng.choice(STREETS), rng.choice(SUFFIXES),
                        rng.choice((None, None, None, f"Suite {rng.randint(1, 9)}{rng.randint(0, 4)}0")),
                        rng.randint(0, 40), rng.choice(CLINIC_KINDS)) for _ in range(n)]
        # filled in by the load: the ids the server assigned (None until loaded)
        self.practitioner_id: list[str | None] = [None] * n
        self.role_id: list[str | None] = [None] * n
        self.location_id: list[str | None] = [None] * n

    def resources(self, i: int) -> tuple[dict, dict, dict]:
        city, state, zip0, _ = CITIES[self.city[i]]
        number, street, suffix, suite, zip_off, kind = self.street[i]
        line = [f"{number} {street} {suffix}"] + ([suite] if suite else [])
        practitioner = {
            "resourceType": "Practitioner",
            "identifier": [{"system": NPI_SYSTEM, "value": self.npi[i]}],
            "active": True,
            "name": [{"family": self.family[i], "given": self.given[i]}],
            "gender": self.gender[i],
        }
        location = {
            "resourceType": "Location",
            "status": "active",
            "name": f"{street} {kind}" if i % 3 else f"{city} {kind}",
            "address": {"line": line, "city": city, "state": state, "postalCode": f"{zip0 + zip_off:05d}"},
        }
        code = self.code[i]
        role = {
            "resourceType": "PractitionerRole",
            "active": True,
            "practitioner": {"reference": "Practitioner/?"},  # replaced by the caller (urn:uuid)
            "location": [{"reference": "Location/?"}],
            "specialty": [{"coding": [{"system": NUCC_SYSTEM, "code": code, "display": self.nucc[code]}]}],
        }
        if self.network[i]:
            role["extension"] = [{"url": NETWORK_EXT, "valueReference": {"reference": f"Organization/{self.network[i]}"}}]
        return practitioner, role, location


def transaction(data: Dataset, indexes: range) -> bytes:
    entries = []
    for i in indexes:
        practitioner, role, location = data.resources(i)
        p_url, l_url = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
        role["practitioner"] = {"reference": p_url}
        role["location"] = [{"reference": l_url}]
        entries.append({"fullUrl": p_url, "resource": practitioner, "request": {"method": "POST", "url": "Practitioner"}})
        entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": role, "request": {"method": "POST", "url": "PractitionerRole"}})
        entries.append({"fullUrl": l_url, "resource": location, "request": {"method": "POST", "url": "Location"}})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    return json.dumps(bundle, separators=(",", ":"), ensure_ascii=False).encode()


# ---------------------------------------------------------------------------- error tally


class QueryTally(Tally):
    """What one search worker saw: besides errors, what the window counts and what the answers held."""

    def __init__(self) -> None:
        super().__init__()
        self.ok_in_window = 0  # successes that also finished inside the window (what req/s counts)
        self.late = 0  # requests that finished after the window closed
        self.abandoned = 0  # requests given up at the socket timeout (the client then stops)
        self.matches = 0
        self.includes = 0
        self.wrong = 0
        self.wrong_samples: list[dict] = []

    def record_wrong(self, path: str, why: str, headers: dict[str, str]) -> None:
        self.wrong += 1
        if len(self.wrong_samples) < ERROR_SAMPLES:
            self.wrong_samples.append({"request": f"GET {path}", "why": why, "x-request-id": headers.get("x-request-id", "")})


# ---------------------------------------------------------------------------- loading


def put_networks(url, timeout: float) -> dict:
    client = Client(url, timeout)
    tally = Tally()
    for nid, name, _ in NETWORKS:
        org = {"resourceType": "Organization", "id": nid, "active": True, "name": name,
               "type": [{"coding": [{"system": "http://hl7.org/fhir/us/davinci-pdex-plan-net/CodeSystem/OrgTypeCS",
                                     "code": "ntwk", "display": "Network"}]}]}
        status, data, headers = client.request("PUT", f"/Organization/{nid}", json.dumps(org).encode())
        if 200 <= status < 300:
            tally.ok += 1
        else:
            tally.record_error(status, data, headers, "PUT", f"/Organization/{nid}")
    client.close()
    return {"stored": tally.ok, "errors": len(NETWORKS) - tally.ok, "error_samples": tally.samples}


RETRY_STATUSES = (409, 503)  # "being changed by other writers; retry", "unavailable; retry later"


def load(url, data: Dataset, batch: int, loaders: int, timeout: float, load_timeout: float, retries: int,
         progress) -> dict:
    """Posts the dataset as transactions of `batch` practitioners; records the assigned ids. A transaction
    answered 409 or 503 (both say "retry") is sent again, up to `retries` times, after a jittered back-off;
    those answers are counted and sampled apart from the final failures."""
    batches = [range(s, min(s + batch, data.n)) for s in range(0, data.n, batch)]
    next_batch = [0]
    lock = threading.Lock()
    tallies = [Tally() for _ in range(loaders)]
    retried = [Tally() for _ in range(loaders)]  # the 409/503 answers that were retried
    done = [0]  # practitioners stored
    t0 = time.perf_counter()
    deadline = t0 + load_timeout
    last_report = [t0]

    def worker(i: int) -> None:
        client, tally = Client(url, timeout), tallies[i]
        while time.perf_counter() < deadline:
            with lock:
                if next_batch[0] >= len(batches):
                    break
                indexes = batches[next_batch[0]]
                next_batch[0] += 1
            body = transaction(data, indexes)
            rng = random.Random(indexes.start)
            for attempt in range(retries + 1):
                s0 = time.perf_counter()
                status, answer, headers = client.request("POST", "/", body)
                tally.latencies.append(time.perf_counter() - s0)
                if status not in RETRY_STATUSES or attempt == retries or time.perf_counter() >= deadline:
                    break
                retried[i].record_error(status, answer, headers, "POST", f"/ (transaction of {3 * len(indexes)} entries)")
                # A fresh connection for the retry: the server may close one left idle during the
                # back-off, and a POST on a closed keep-alive connection fails with a broken pipe.
                client.close()
                time.sleep(min(8.0, 0.25 * 2 ** attempt) * (0.5 + rng.random()))
            if status != 200:
                tally.record_error(status, answer, headers, "POST", f"/ (transaction of {3 * len(indexes)} entries)")
                continue
            try:
                entries = json.loads(answer)["entry"]
                locations = [e["response"]["location"] for e in entries]
                if len(locations) != 3 * len(indexes):
                    raise ValueError(f"{len(locations)} response entries for {3 * len(indexes)}")
                ids = [loc.split("/")[1] for loc in locations]  # Type/id/_history/v
                kinds = [loc.split("/")[0] for loc in locations]
                if kinds != ["Practitioner", "PractitionerRole", "Location"] * len(indexes):
                    raise ValueError("response entries not in request order")
            except (ValueError, KeyError, TypeError, IndexError) as e:
                tally.record_error(status, f"unreadable transaction-response: {e}: ".encode() + answer[:300], headers,
                                   "POST", "/ (transaction)")
                continue
            for k, idx in enumerate(indexes):
                data.practitioner_id[idx], data.role_id[idx], data.location_id[idx] = ids[3 * k: 3 * k + 3]
            tally.ok += 1
            with lock:
                done[0] += len(indexes)
                now = time.perf_counter()
                if now - last_report[0] >= 30:
                    last_report[0] = now
                    progress(f"    loaded {done[0]:,}/{data.n:,} practitioners in {now - t0:,.0f}s "
                             f"({3 * done[0] / (now - t0):,.0f} resources/s)")
        client.close()

    threads = [threading.Thread(target=worker, args=(i,), name=f"loader-{i}", daemon=True) for i in range(loaders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, deadline + timeout + 10 - time.perf_counter()))
    elapsed = time.perf_counter() - t0
    errors_by_status, samples = merge_errors(tallies)
    retried_by_status, retried_samples = merge_errors(retried)
    latencies = sorted(x for t in tallies for x in t.latencies)
    stored = sum(1 for x in data.practitioner_id if x is not None)
    return {
        "practitioners_requested": data.n,
        "practitioners_stored": stored,
        "resources_stored": 3 * stored,
        "batch_practitioners": batch,
        "loaders": loaders,
        "transactions_ok": sum(t.ok for t in tallies),
        "transactions_failed": sum(errors_by_status.values()),
        "seconds": round(elapsed, 2),
        "resources_per_s": round(3 * stored / elapsed, 1) if elapsed else None,
        "transaction_attempts": len(latencies),
        "transaction_p50_ms": ms(percentile(latencies, 50)),
        "transaction_p95_ms": ms(percentile(latencies, 95)),
        "transaction_max_ms": ms(latencies[-1] if latencies else None),
        "timed_out": next_batch[0] < len(batches),
        "hung_loaders": sum(t.is_alive() for t in threads),
        "errors_by_status": errors_by_status,
        "error_samples": samples,
        "retried": sum(retried_by_status.values()),
        "retried_by_status": retried_by_status,
        "retried_samples": retried_samples,
    }


def count_stored(url, timeout: float) -> dict:
    """GET /{type}?_summary=count for the three types (a check that every acknowledged write is there)."""
    client = Client(url, timeout)
    out = {}
    for rt in ("Practitioner", "PractitionerRole", "Location"):
        status, body, _ = client.request("GET", f"/{rt}?_summary=count")
        try:
            out[rt] = json.loads(body)["total"] if status == 200 else f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"
        except (ValueError, KeyError):
            out[rt] = f"no total: {body[:200].decode('utf-8', 'replace')}"
    client.close()
    return out


# ---------------------------------------------------------------------------- queries


def q(params: list[tuple[str, str]]) -> str:
    return urllib.parse.urlencode(params, quote_via=urllib.parse.quote, safe=":/")


class Pools:
    """Indexes of loaded practitioners to draw query values from (so every query has a match)."""

    def __init__(self, data: Dataset):
        self.loaded = [i for i in range(data.n) if data.practitioner_id[i] is not None]
        self.long_family = [i for i in self.loaded if len(data.family[i]) >= 4]
        self.networked = [i for i in self.loaded if data.network[i]]


def make_query(name: str, data: Dataset, pools: Pools, rng: random.Random):
    """(path, check) for one request; check(parsed body) -> (matches, includes, why-wrong or None)."""
    i = rng.choice(pools.loaded)
    if name == "read":
        pid = data.practitioner_id[i]

        def check(body):
            ok = body.get("resourceType") == "Practitioner" and body.get("id") == pid
            return 1, 0, None if ok else f"read back {body.get('resourceType')}/{body.get('id')}"
        return f"/Practitioner/{pid}", check

    if name == "npi":
        pid = data.practitioner_id[i]
        path = "/Practitioner?" + q([("identifier", f"{NPI_SYSTEM}|{data.npi[i]}")])

        def check(body):
            ids = match_ids(body)
            return len(ids), 0, None if pid in ids else f"practitioner {pid} not among the {len(ids)} match(es)"
        return path, check

    if name == "name":
        i = rng.choice(pools.long_family)
        family = data.family[i]
        prefix = family[:rng.randint(4, len(family))]
        return "/Practitioner?" + q([("name", prefix), ("_count", str(PAGE))]), plain_check

    if name == "specialty_city":
        city, state, _, _ = CITIES[data.city[i]]
        return "/PractitionerRole?" + q([("specialty", data.code[i]), ("location.address-city", city),
                                         ("location.address-state", state), ("_count", str(PAGE))]), plain_check

    if name == "network":
        i = rng.choice(pools.networked)
        return "/PractitionerRole?" + q([("network", f"Organization/{data.network[i]}"), ("_count", str(PAGE))]), plain_check

    if name == "include":
        _, state, _, _ = CITIES[data.city[i]]
        path = "/PractitionerRole?" + q([("specialty", data.code[i]), ("location.address-state", state),
                                         ("_include", "PractitionerRole:practitioner"),
                                         ("_include", "PractitionerRole:location"), ("_count", str(PAGE))])

        def check(body):
            matches, includes = 0, set()
            wanted = set()
            for e in body.get("entry") or ():
                r = e.get("resource") or {}
                if (e.get("search") or {}).get("mode") == "include":
                    includes.add(f"{r.get('resourceType')}/{r.get('id')}")
                else:
                    matches += 1
                    wanted.add((r.get("practitioner") or {}).get("reference"))
                    wanted.update(loc.get("reference") for loc in r.get("location") or ())
            missing = {w for w in wanted if w} - includes
            why = "no match" if not matches else f"{len(missing)} referenced resource(s) not included, e.g. {sorted(missing)[0]}" if missing else None
            return matches, len(includes), why
        return path, check
    raise ValueError(name)


def match_ids(body) -> list[str]:
    return [(e.get("resource") or {}).get("id") for e in body.get("entry") or ()
            if (e.get("search") or {}).get("mode", "match") == "match"]


def plain_check(body):
    n = len(match_ids(body))
    return n, 0, None if n else "no match (the values were drawn from loaded data)"


def run_query(name: str, url, data: Dataset, pools: Pools, seconds: float, warmup: float, concurrency: int,
              max_requests: int, timeout: float, seed: int) -> dict:
    """Runs one query for the window with `concurrency` threads; returns its figures."""
    tallies = [QueryTally() for _ in range(concurrency)]
    clients = [Client(url, timeout) for _ in range(concurrency)]
    issued = [0] * concurrency
    budget = max(1, max_requests // concurrency)  # per worker: the count bound

    def work(i: int, start: float, end: float) -> None:
        rng = random.Random(seed * 1000 + i)
        client, tally = clients[i], tallies[i]
        n = 0
        while n < budget:
            t0 = time.perf_counter()
            if t0 >= end:
                break
            path, check = make_query(name, data, pools, rng)
            status, body, headers = client.request("GET", path)
            t1 = time.perf_counter()
            n += 1
            timed_out = status == 0 and "timeout" in body.decode("utf-8", "replace").lower()
            if t1 < start and not timed_out:  # finished during the warm-up
                continue
            # Every request that finished after the window opened counts for latency and errors,
            # also one started in the warm-up or finishing after the window closed (slow searches
            # would otherwise vanish from the figures); req/s only counts those inside the window.
            tally.latencies.append(t1 - t0)
            if t1 > end:
                tally.late += 1
            if status != 200:
                tally.record_error(status, body, headers, "GET", path)
                if timed_out:
                    # The server is likely still working on it: stop this client rather than pile
                    # more abandoned searches onto the server (they would slow the later queries).
                    tally.abandoned += 1
                    break
                continue
            tally.ok += 1
            if t0 >= start and t1 <= end:
                tally.ok_in_window += 1
            try:
                matches, includes, why = check(json.loads(body))
            except (ValueError, AttributeError, TypeError) as e:
                matches, includes, why = 0, 0, f"unreadable body ({e}): {body[:200]!r}"
            tally.matches += matches
            tally.includes += includes
            if why:
                tally.record_wrong(path, why, headers)
        issued[i] = n
        client.close()

    hung, cpu = run_workers(name, concurrency, warmup, seconds, timeout, work)

    latencies = sorted(x for t in tallies for x in t.latencies)
    ok = sum(t.ok for t in tallies)
    errors_by_status, samples = merge_errors(tallies)
    errors = sum(errors_by_status.values())
    wrong_samples = [s for t in tallies for s in t.wrong_samples][:ERROR_SAMPLES]
    return {
        "query": name,
        "request": DESCRIBE[name],
        "example": make_query(name, data, pools, random.Random(seed))[0],
        "seconds": seconds,
        "requests": ok + errors,
        "ok": ok,
        "errors": errors,
        "rps": round(sum(t.ok_in_window for t in tallies) / seconds, 1),
        "finished_after_window": sum(t.late for t in tallies),
        "timed_out": sum(t.abandoned for t in tallies),
        "p50_ms": ms(percentile(latencies, 50)),
        "p95_ms": ms(percentile(latencies, 95)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(latencies[-1] if latencies else None),
        "matches_per_page": round(sum(t.matches for t in tallies) / ok, 2) if ok else None,
        "includes_per_page": round(sum(t.includes for t in tallies) / ok, 2) if ok and name == "include" else None,
        "wrong": sum(t.wrong for t in tallies),
        "wrong_samples": wrong_samples,
        "errors_by_status": errors_by_status,
        "error_samples": samples,
        "connections_opened": sum(c.connects for c in clients),
        "issued_including_warmup": sum(issued),
        "count_bound_hit": any(n >= budget for n in issued),
        "hung_workers": hung,
        "client_cpu_pct": round(100.0 * cpu / (seconds + warmup), 1),
    }


# ---------------------------------------------------------------------------- output


def fmt_ratio(v) -> str:
    return "-" if v is None else f"{v:.2f}" if abs(v) >= 0.1 else f"{v:.3g}"


def load_line(ld: dict) -> str:
    return (f"load: {ld['practitioners_stored']:,}/{ld['practitioners_requested']:,} practitioners "
            f"({ld['resources_stored']:,} resources) in {ld['seconds']:,.1f}s = {fmt(ld['resources_per_s'])} resources/s; "
            f"{ld['transactions_ok']:,} transactions of {3 * ld['batch_practitioners']} entries by {ld['loaders']} loaders, "
            f"p50 {fmt(ld['transaction_p50_ms'])} ms, p95 {fmt(ld['transaction_p95_ms'])} ms, max {fmt(ld['transaction_max_ms'])} ms")


def report_text(result: dict) -> str:
    out = []
    cfg = result["config"]
    out.append(f"providercard search: {cfg['base']}  server {result.get('server', '?')}  "
               f"{cfg['seconds']}s/query (+{cfg['warmup']}s warm-up), concurrency {cfg['concurrency']}")
    ld = result["load"]
    out.append(load_line(ld))
    out.append(f"stored afterwards (_summary=count): {result['stored_counts']}")
    if result["stored_counts_short"]:
        out.append(f"WRONG COUNTS: fewer stored than acknowledged ({ld['practitioners_stored']:,} each): {result['stored_counts_short']}")
    t = result["timings"]
    out.append(f"phases: generate {t['generate_s']}s, load {t['load_s']}s, count {t['count_s']}s, queries {t['queries_s']}s")
    rows = []
    for p in result["queries"]:
        rows.append([p["query"], fmt(p["rps"]), fmt_ratio(ratio(p["rps"], result["queries"][0]["rps"])),
                     fmt(p["p50_ms"]), fmt(p["p95_ms"]), fmt(p["p99_ms"]), fmt(p["max_ms"]),
                     fmt(p["matches_per_page"]), fmt(p["includes_per_page"]), fmt(p["ok"]), fmt(p["errors"]), fmt(p["wrong"]),
                     fmt(p["client_cpu_pct"], "%")])
    out.append(table(["query", "req/s", "x read", "p50 ms", "p95 ms", "p99 ms", "max ms", "matches/page", "incl/page",
                      "ok", "errors", "wrong", "client cpu"], rows))
    out.append("x read = req/s over the baseline's (GET /Practitioner/{id}) in the same run")
    for p in result["queries"]:
        out.append(f"  {p['query']}: e.g. {p['example']}")
    for p in result["queries"]:
        out += error_lines(p["query"], p)
        if p["wrong"]:
            out.append(f"WRONG ANSWERS in {p['query']}: {p['wrong']} of {p['ok']}")
            for s in p["wrong_samples"]:
                out.append(f"  {s['request']} x-request-id={s['x-request-id'] or '-'}\n    {s['why']}")
        out += hung_lines(p["query"], p)
        if p.get("timed_out"):
            out.append(f"WARNING: {p['query']}: {p['timed_out']} search(es) given up after --timeout {cfg['timeout']}s (those clients "
                       "stopped); the server may still be running them, which slows the queries measured after this one")
        out += bound_lines(p["query"], p)
    if ld["errors_by_status"] or result["networks"]["errors"]:
        out.append(f"ERRORS while loading: transactions {ld['errors_by_status']}, network PUTs {result['networks']['errors']}")
        out += [sample_line(s) for s in ld["error_samples"] + result["networks"]["error_samples"]]
    if ld["retried"]:
        out.append(f"RETRIED while loading: {ld['retried']} transaction answer(s) {ld['retried_by_status']} "
                   f"(sent again; the load still counts as complete if they then succeeded)")
        out += [sample_line(s) for s in ld["retried_samples"]]  # always 409/503, never a transport failure
    if ld["timed_out"]:
        out.append(f"WARNING: the load stopped at --load-timeout ({cfg['load_timeout']}s) before every batch was sent")
    out += busy_lines([(p["query"], p["client_cpu_pct"]) for p in result["queries"]])
    return "\n".join(out)


def compare(specs: list[str]) -> int:
    """Prints the cross-store tables from several --json outputs (NAME=FILE each; the first is the reference)."""
    runs = read_runs(specs, PROG)
    ref_name, ref = runs[0]
    get = lambda run, qn: next((p for p in run["queries"] if p["query"] == qn), None)  # noqa: E731
    rps = lambda run, qn: (get(run, qn) or {}).get("rps")  # noqa: E731
    names = [qn for qn in QUERIES if any(get(r, qn) for _, r in runs)]

    print("\nload")
    print(table(["store", "practitioners", "resources", "seconds", "resources/s", "tx p50 ms", "tx p95 ms", "retried", "failed tx"],
                [[n, fmt(r["load"]["practitioners_stored"]), fmt(r["load"]["resources_stored"]), fmt(r["load"]["seconds"]),
                  fmt(r["load"]["resources_per_s"]), fmt(r["load"]["transaction_p50_ms"]), fmt(r["load"]["transaction_p95_ms"]),
                  fmt(r["load"].get("retried", 0)), fmt(r["load"]["transactions_failed"])] for n, r in runs]))
    if len(runs) > 1:
        print(f"  resources/s relative to {ref_name}: "
              + ", ".join(f"{n} {fmt_ratio(ratio(r['load']['resources_per_s'], ref['load']['resources_per_s']))}" for n, r in runs))

    print("\nthroughput (searches/s)")
    print(table(["store", *names, "errors", "wrong"],
                [[n, *(fmt(rps(r, qn)) for qn in names), fmt(sum(p["errors"] for p in r["queries"])),
                  fmt(sum(p["wrong"] for p in r["queries"]))] for n, r in runs]))

    print("\nrelative to its own baseline (read = GET /Practitioner/{id} in the same run)")
    print(table(["store", *names[1:]], [[n, *(fmt_ratio(ratio(rps(r, qn), rps(r, "read"))) for qn in names[1:])] for n, r in runs]))

    if len(runs) > 1:
        print(f"\nrelative to {ref_name}: raw req/s ratio, and [baseline-normalised ratio]")
        print(table(["store", *names], relative_rows(runs, names, "read", rps, fmt_ratio)))

    print("\nlatency p50 / p95 / p99 (ms)")
    print(table(["query", *(n for n, _ in runs)], [[qn, *(latency_cell(get(r, qn)) for _, r in runs)] for qn in names]))

    print("\nmatches per page (included resources per page)")
    rows = []
    for qn in names:
        cells = [qn]
        for _, r in runs:
            p = get(r, qn)
            extra = f" ({fmt(p['includes_per_page'])})" if p and p.get("includes_per_page") is not None else ""
            cells.append("-" if p is None else fmt(p["matches_per_page"]) + extra)
        rows.append(cells)
    print(table(["query", *(n for n, _ in runs)], rows))
    bad = False
    for n, r in runs:
        ld = r["load"]
        if ld["transactions_failed"] or ld["timed_out"] or r["networks"]["errors"] or r["stored_counts_short"]:
            bad = True
        for p in r["queries"]:
            if p["errors"] or p["wrong"] or p["hung_workers"]:
                bad = True
                print(f"{n}: {p['query']}: {p['errors']} error(s) {p['errors_by_status']}, {p['wrong']} wrong answer(s)")
    return 3 if bad else 0


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Queries: " + ", ".join(QUERIES) + " (read is the baseline).")
    ap.add_argument("--base", default="http://127.0.0.1:8080", help="server base URL (loopback only)")
    ap.add_argument("--practitioners", type=positive(int, MAX_PRACTITIONERS), default=100_000,
                    help="practitioners to generate and load, each with a PractitionerRole and a Location (default 100,000)")
    ap.add_argument("--batch", type=positive(int, 1000), default=100, help="practitioners per transaction (x3 entries; default 100)")
    ap.add_argument("--loaders", type=positive(int, 32), default=3, help="concurrent transaction posters (default 3)")
    ap.add_argument("--load-retries", type=int, choices=range(0, 21), metavar="0..20", default=10,
                    help="times a transaction answered 409/503 (\"retry\") is sent again (default 10)")
    ap.add_argument("--load-timeout", type=positive(float, 86_400.0), default=3600.0,
                    help="stop sending batches after this many seconds (default 3600)")
    ap.add_argument("--seconds", type=positive(float, MAX_SECONDS), default=10.0, help="measured seconds per query (default 10)")
    ap.add_argument("--warmup", type=float, default=1.0, help="uncounted seconds before each query's window (default 1)")
    ap.add_argument("--concurrency", type=positive(int, MAX_CONCURRENCY), default=4, help="concurrent keep-alive clients (default 4)")
    ap.add_argument("--max-requests", type=positive(int, 10_000_000), default=1_000_000,
                    help="upper bound on requests per query, warm-up included (default 1,000,000)")
    ap.add_argument("--timeout", type=positive(float, 600.0), default=120.0,
                    help="per-search socket timeout in s (default 120); a client that hits it stops for that query")
    ap.add_argument("--load-request-timeout", type=positive(float, 1800.0), default=300.0,
                    help="socket timeout in s of the set-up requests: transactions, counts (default 300)")
    ap.add_argument("--data-seed", type=int, default=1, help="seed of the generated data (default 1)")
    ap.add_argument("--queries", default=",".join(QUERIES), help=f"comma-separated subset of {','.join(QUERIES)} (read is always run first)")
    ap.add_argument("--label", default="", help="a name for this run, kept in the JSON")
    ap.add_argument("--json", action="store_true", help="print the result as JSON on stdout (the text goes to stderr)")
    ap.add_argument("--compare", nargs="+", metavar="NAME=FILE",
                    help="instead of running: compare --json outputs of earlier runs (the first is the reference)")
    args = ap.parse_args(argv)

    if args.compare:
        return compare(args.compare)
    if not (0 <= args.warmup <= 60):
        ap.error("--warmup must be between 0 and 60")
    queries = [x.strip() for x in args.queries.split(",") if x.strip()]
    unknown = [x for x in queries if x not in QUERIES]
    if unknown:
        ap.error(f"--queries: unknown {unknown}; choose from {','.join(QUERIES)}")
    queries = ["read"] + [x for x in QUERIES[1:] if x in queries]
    url = loopback_base(args.base, PROG)
    text_out = sys.stderr if args.json else sys.stdout
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    assert npi_check_digit("123456789") == 3 and npi_valid("1234567893")  # the CMS example

    server = probe_server(url, args.base, args.load_request_timeout, PROG)
    if server is None:
        return 2

    t_gen = time.perf_counter()
    data = Dataset(args.practitioners, args.data_seed, load_nucc(NUCC_CSV))
    assert all(npi_valid(x) for x in data.npi[:1000])
    t_gen_s = time.perf_counter() - t_gen
    say(f"  generated {data.n:,} practitioners (+ roles, locations) in {t_gen_s:.1f}s")

    networks = put_networks(url, args.load_request_timeout)
    if networks["errors"]:
        say(f"{PROG}: creating the network Organizations failed: {json.dumps(networks['error_samples'])}")
    say(f"  loading {3 * data.n:,} resources in transactions of {3 * args.batch} entries with {args.loaders} loaders ...")
    load_report = load(url, data, args.batch, args.loaders, args.load_request_timeout, args.load_timeout,
                       args.load_retries, say)
    say("  " + load_line(load_report))
    t_count = time.perf_counter()
    counts = count_stored(url, args.load_request_timeout)
    count_s = time.perf_counter() - t_count
    say(f"  stored (_summary=count, {count_s:.1f}s): {counts}")
    # A fresh database holds exactly what was acknowledged; a reused one holds more. Fewer is a lost write.
    short = {rt: c for rt, c in counts.items() if not isinstance(c, int) or c < load_report["practitioners_stored"]}
    pools = Pools(data)
    if not pools.loaded or not pools.long_family or not pools.networked:
        print(f"{PROG}: nothing (or too little) was loaded: {json.dumps(load_report)[:2000]}", file=sys.stderr)
        return 2

    results = []
    t_queries = time.perf_counter()
    run_seed = random.Random().randrange(1 << 30)
    for k, name in enumerate(queries):
        say(f"  {name}: {args.seconds}s with {args.concurrency} clients ...")
        results.append(run_query(name, url, data, pools, args.seconds, args.warmup, args.concurrency,
                                 args.max_requests, args.timeout, seed=run_seed + k))
    base_rps = results[0]["rps"]
    timings = {"generate_s": round(t_gen_s, 1), "load_s": load_report["seconds"], "count_s": round(count_s, 1),
               "queries_s": round(time.perf_counter() - t_queries, 1)}
    result = {
        "label": args.label,
        "server": server,
        "config": {"base": args.base, "practitioners": args.practitioners, "batch": args.batch, "loaders": args.loaders,
                   "load_timeout": args.load_timeout, "load_retries": args.load_retries, "seconds": args.seconds, "warmup": args.warmup,
                   "concurrency": args.concurrency, "max_requests": args.max_requests, "timeout": args.timeout,
                   "data_seed": args.data_seed, "queries": queries, "python": sys.version.split()[0], "cpus": os.cpu_count()},
        "networks": networks,
        "load": load_report,
        "stored_counts": counts,
        "stored_counts_short": short,
        "timings": timings,
        "queries": results,
        "ratios": {f"{p['query']}/read": ratio(p["rps"], base_rps) for p in results[1:]},
    }
    print(report_text(result), file=text_out, flush=True)
    if args.json:
        json.dump(result, sys.stdout, indent=2, ensure_ascii=False)
        print()
    failed = (networks["errors"] + load_report["transactions_failed"] + load_report["timed_out"] + len(short)
              + load_report["hung_loaders"]
              + sum(p["errors"] + p["wrong"] + p["hung_workers"] for p in results))
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

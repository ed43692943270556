//! A fake of the CMS NPI Registry API v2.1 (`GET /api/?version=2.1&...`), served on loopback for tests,
//! with a directory the tests shape and faults they inject.
//!
//! It is a hand-rolled HTTP/1.1 server on std sockets, one thread per connection, so that it can do what
//! a framework would not: reset a connection mid-request, or answer with a truncated body. The contract it
//! keeps is the real registry's: every refusal is HTTP 200 with an `Errors` array, an unknown NPI is an
//! empty `results`, deactivated NPIs are error 15 on lookup and absent from searches.
#![allow(dead_code)] // The product's NPPES tests will use parts of this as they arrive.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

/// What the fake does instead of (or before) answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429 with `Retry-After: {retry_after_secs}`.
    RateLimited { retry_after_secs: u64 },
    /// An HTML error page with this status (500, 502, 503), as an edge proxy sends.
    Status(u16),
    /// The correct answer, after this delay.
    Slow(Duration),
    /// HTTP 200, `application/json`, but the body is the correct answer cut in half.
    MalformedJson,
    /// The request is read, then the connection closed with a TCP reset and no answer.
    Reset,
    /// HTTP 200 with an HTML maintenance page.
    Html200,
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Query parameters, decoded; a repeated name keeps its last value.
    pub query: BTreeMap<String, String>,
    pub at: Instant,
    /// The fault applied to this request, if any.
    pub fault: Option<Fault>,
}

impl RecordedRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct State {
    /// In insertion order, which is the order searches return them in.
    records: Vec<Value>,
    deactivated: HashSet<String>,
    queued: VecDeque<Fault>,
    persistent: Option<Fault>,
    down: Option<Fault>,
    requests: Vec<RecordedRequest>,
}

impl State {
    /// Down beats queued faults (they wait until it is up), which beat the persistent one.
    fn next_fault(&mut self) -> Option<Fault> {
        if let Some(fault) = &self.down {
            return Some(fault.clone());
        }
        self.queued.pop_front().or_else(|| self.persistent.clone())
    }

    fn record_mut(&mut self, npi: &str) -> Option<&mut Value> {
        self.records.iter_mut().find(|r| npi_of(r) == npi)
    }
}

struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
    /// Open connections, so that Drop can close idle keep-alive ones.
    connections: Mutex<BTreeMap<u64, TcpStream>>,
    next_connection: AtomicU64,
}

/// The fake registry. Stops (closing every connection) when dropped.
pub struct FakeNppes {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeNppes {
    /// Starts the fake on a free loopback port, with an empty directory and no faults.
    pub fn start() -> FakeNppes {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake NPPES");
        let addr = listener.local_addr().expect("fake NPPES address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
            connections: Mutex::new(BTreeMap::new()),
            next_connection: AtomicU64::new(0),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("fake-nppes".into())
                .spawn(move || accept_loop(listener, shared))
                .expect("start the fake NPPES")
        };
        FakeNppes {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// What `integrations.nppes.base_url` should be: the registry's `/api/` path.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    // --- The directory ---

    /// Adds a record (in whatever shape it is given), replacing any with the same NPI.
    pub fn add(&self, record: Value) {
        let npi = npi_of(&record);
        assert!(!npi.is_empty(), "an NPPES record needs a number: {record}");
        let mut state = self.state();
        match state.record_mut(&npi) {
            Some(existing) => *existing = record,
            None => state.records.push(record),
        }
    }

    /// Deactivates an NPI, known to the directory or not: lookups get error 15, searches skip it.
    pub fn deactivate(&self, npi: &str) {
        self.state().deactivated.insert(npi.to_string());
    }

    /// Puts an NPI back in service; its record then carries `basic.reactivation_date`, as NPPES shows it.
    pub fn reactivate(&self, npi: &str) {
        let mut state = self.state();
        state.deactivated.remove(npi);
        if let Some(record) = state.record_mut(npi) {
            record["basic"]["reactivation_date"] = json!(today());
        }
    }

    /// Changes a record as NPPES would after the provider updates it: `last_updated` becomes today, then
    /// `f` edits the record (and may set the dates itself).
    pub fn update(&self, npi: &str, f: impl FnOnce(&mut Value)) {
        let mut state = self.state();
        let record = state
            .record_mut(npi)
            .unwrap_or_else(|| panic!("the fake NPPES has no record {npi} to update"));
        let now = chrono::Utc::now().timestamp();
        // Keep the record's own shape: string milliseconds now, integer seconds in 2019.
        record["last_updated_epoch"] = match record["last_updated_epoch"] {
            Value::Number(_) => json!(now),
            _ => json!((now * 1000).to_string()),
        };
        record["basic"]["last_updated"] = json!(today());
        f(record);
    }

    /// The record as served, if the directory has it (deactivated or not).
    pub fn record(&self, npi: &str) -> Option<Value> {
        self.state().record_mut(npi).map(|r| r.clone())
    }

    // --- Faults ---

    /// The next `n` requests get `fault`, after any already queued.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        self.state().queued.extend(std::iter::repeat_n(fault, n));
    }

    /// Every request (once the queued ones are spent) gets this fault; `None` heals.
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.state().persistent = fault;
    }

    /// NPPES is down: every request gets a 503 page until `up()`.
    pub fn down(&self) {
        self.down_with(Fault::Status(503));
    }

    /// NPPES is down in this way (e.g. `Fault::Reset`) until `up()`.
    pub fn down_with(&self, fault: Fault) {
        self.state().down = Some(fault);
    }

    pub fn up(&self) {
        self.state().down = None;
    }

    // --- Observation ---

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    pub fn request_count(&self) -> usize {
        self.state().requests.len()
    }

    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    // --- Records ---

    /// An individual (NPI-1) in the current shape, with NPPES's usual defaults.
    pub fn individual(npi: &str, first: &str, last: &str) -> RecordBuilder {
        RecordBuilder::new(
            npi,
            Kind::Individual {
                first: first.to_string(),
                last: last.to_string(),
            },
        )
    }

    /// An organization (NPI-2) in the current shape, with NPPES's usual defaults.
    pub fn organization(npi: &str, name: &str) -> RecordBuilder {
        RecordBuilder::new(npi, Kind::Organization { name: name.to_string() })
    }
}

impl Drop for FakeNppes {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor, which is blocked in accept().
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for connection in self.shared.connections.lock().unwrap().values() {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }
}

// --- NPIs ---

/// Whether a 10-digit NPI passes its check digit (Luhn over the digits prefixed with 80840).
pub fn npi_is_valid(npi: &str) -> bool {
    npi.len() == 10
        && npi.bytes().all(|b| b.is_ascii_digit())
        && luhn_check_digit(&format!("80840{}", &npi[..9])) == npi.as_bytes()[9] - b'0'
}

/// The valid NPI that begins with these nine digits: for inventing providers.
pub fn npi_from(first_nine: &str) -> String {
    assert!(first_nine.len() == 9 && first_nine.bytes().all(|b| b.is_ascii_digit()));
    format!("{first_nine}{}", luhn_check_digit(&format!("80840{first_nine}")))
}

fn luhn_check_digit(payload: &str) -> u8 {
    let sum: u32 = payload
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let doubled = d * 2;
                doubled / 10 + doubled % 10
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// A record's NPI, whether `number` is a string (now) or an integer (2019).
fn npi_of(record: &Value) -> String {
    match &record["number"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

// --- Record builder ---

enum Kind {
    Individual { first: String, last: String },
    Organization { name: String },
}

/// Builds an NPPES record. Optional keys are omitted unless set, as NPPES omits them.
pub struct RecordBuilder {
    npi: String,
    kind: Kind,
    middle_name: Option<String>,
    credential: Option<String>,
    sex: Option<String>,
    location: Option<Value>,
    mailing: Option<Value>,
    practice_locations: Vec<Value>,
    taxonomies: Vec<Value>,
    identifiers: Vec<Value>,
    other_names: Vec<Value>,
    official: Option<(String, String, String, String)>,
    legacy: bool,
}

fn address(purpose: &str, address_1: &str, city: &str, state: &str, zip: &str, phone: &str) -> Value {
    json!({
        "country_code": "US",
        "country_name": "United States",
        "address_purpose": purpose,
        "address_type": "DOM",
        "address_1": address_1,
        "city": city,
        "state": state,
        "postal_code": zip,
        "telephone_number": phone,
    })
}

impl RecordBuilder {
    fn new(npi: &str, kind: Kind) -> RecordBuilder {
        RecordBuilder {
            npi: npi.to_string(),
            kind,
            middle_name: None,
            credential: None,
            sex: None,
            location: None,
            mailing: None,
            practice_locations: Vec::new(),
            taxonomies: Vec::new(),
            identifiers: Vec::new(),
            other_names: Vec::new(),
            official: None,
            legacy: false,
        }
    }

    pub fn middle_name(mut self, middle: &str) -> Self {
        self.middle_name = Some(middle.to_string());
        self
    }

    pub fn credential(mut self, credential: &str) -> Self {
        self.credential = Some(credential.to_string());
        self
    }

    /// "F", "M" (or "U"): `basic.sex`, or `basic.gender` in the 2019 shape.
    pub fn sex(mut self, sex: &str) -> Self {
        self.sex = Some(sex.to_string());
        self
    }

    /// The practice location; also the mailing address unless `mailing` is given.
    pub fn location(mut self, address_1: &str, city: &str, state: &str, zip: &str, phone: &str) -> Self {
        self.location = Some(address("LOCATION", address_1, city, state, zip, phone));
        self
    }

    pub fn mailing(mut self, address_1: &str, city: &str, state: &str, zip: &str, phone: &str) -> Self {
        self.mailing = Some(address("MAILING", address_1, city, state, zip, phone));
        self
    }

    /// Sets `address_2` on the practice location (set the location first).
    pub fn address_2(mut self, address_2: &str) -> Self {
        let location = self.location.as_mut().expect("set the location before its address_2");
        insert_after(location, "address_1", "address_2", json!(address_2));
        self
    }

    /// Sets `fax_number` on the practice location (set the location first).
    pub fn fax(mut self, fax: &str) -> Self {
        let location = self.location.as_mut().expect("set the location before its fax");
        location["fax_number"] = json!(fax);
        self
    }

    /// A secondary practice location (`practiceLocations`).
    pub fn practice_location(mut self, address_1: &str, city: &str, state: &str, zip: &str, phone: &str) -> Self {
        self.practice_locations
            .push(address("LOCATION", address_1, city, state, zip, phone));
        self
    }

    pub fn taxonomy(mut self, code: &str, desc: &str, primary: bool) -> Self {
        let state = self.location_state();
        self.taxonomies.push(json!({
            "code": code,
            "taxonomy_group": "",
            "desc": desc,
            "state": state,
            "license": "12345",
            "primary": primary,
        }));
        self
    }

    /// An `identifiers` entry, e.g. `("05", "MEDICAID", "1234567", "GA")`.
    pub fn identifier(mut self, code: &str, desc: &str, identifier: &str, state: &str) -> Self {
        self.identifiers.push(json!({
            "code": code,
            "desc": desc,
            "issuer": null,
            "identifier": identifier,
            "state": state,
        }));
        self
    }

    /// A "Doing Business As" name (`other_names`), as organizations have.
    pub fn dba(mut self, name: &str) -> Self {
        self.other_names
            .push(json!({"organization_name": name, "type": "Doing Business As", "code": "3"}));
        self
    }

    /// The organization's authorized official; `phone` is ten bare digits, as NPPES has it.
    pub fn authorized_official(mut self, first: &str, last: &str, title: &str, phone: &str) -> Self {
        self.official = Some((first.into(), last.into(), title.into(), phone.into()));
        self
    }

    /// Emits the 2019 shape: integer `number`, epochs in integer seconds, `basic.gender` for `sex`,
    /// `basic.name`, no `endpoints`, and `practiceLocations` only when there are some (with `update_date`).
    pub fn gender_legacy(mut self) -> Self {
        self.legacy = true;
        self
    }

    fn location_state(&self) -> String {
        self.location
            .as_ref()
            .and_then(|l| l["state"].as_str())
            .unwrap_or("GA")
            .to_string()
    }

    pub fn build(self) -> Value {
        let location = self.location.clone().unwrap_or_else(|| {
            address(
                "LOCATION",
                "100 PEACHTREE ST NW",
                "ATLANTA",
                "GA",
                "303084213",
                "404-555-0100",
            )
        });
        // NPPES always has both addresses; most providers' mailing address is their practice.
        let mailing = self.mailing.clone().unwrap_or_else(|| {
            let mut mailing = location.clone();
            mailing["address_purpose"] = json!("MAILING");
            mailing.as_object_mut().unwrap().remove("fax_number");
            mailing
        });
        let mut taxonomies = self.taxonomies.clone();
        if taxonomies.is_empty() {
            let (code, desc) = match self.kind {
                Kind::Individual { .. } => ("207R00000X", "Internal Medicine"),
                Kind::Organization { .. } => ("261QP2300X", "Clinic/Center, Primary Care"),
            };
            taxonomies.push(
                json!({"code": code, "taxonomy_group": "", "desc": desc, "state": location["state"],
                "license": "12345", "primary": true}),
            );
        }

        let mut basic = Map::new();
        let (enumeration_type, display_name) = match &self.kind {
            Kind::Individual { first, last } => {
                basic.insert("first_name".into(), json!(first));
                basic.insert("last_name".into(), json!(last));
                if let Some(middle) = &self.middle_name {
                    basic.insert("middle_name".into(), json!(middle));
                }
                if let Some(credential) = &self.credential {
                    basic.insert("credential".into(), json!(credential));
                }
                let sex_key = if self.legacy { "gender" } else { "sex" };
                basic.insert(sex_key.into(), json!(self.sex.as_deref().unwrap_or("U")));
                basic.insert("sole_proprietor".into(), json!("NO"));
                ("NPI-1", format!("{first} {last}"))
            }
            Kind::Organization { name } => {
                basic.insert("organization_name".into(), json!(name));
                basic.insert("organizational_subpart".into(), json!("NO"));
                ("NPI-2", name.clone())
            }
        };
        basic.insert("enumeration_date".into(), json!("2006-03-16"));
        basic.insert("last_updated".into(), json!("2024-02-22"));
        basic.insert("certification_date".into(), json!("2024-02-22"));
        basic.insert("status".into(), json!("A"));
        match &self.kind {
            Kind::Individual { .. } => {
                basic.insert("name_prefix".into(), json!("--"));
                basic.insert("name_suffix".into(), json!("--"));
            }
            Kind::Organization { .. } => {
                let (first, last, title, phone) = self.official.clone().unwrap_or_else(|| {
                    (
                        "PAT".into(),
                        "SMITH".into(),
                        "ADMINISTRATOR".into(),
                        "4045550100".into(),
                    )
                });
                basic.insert("authorized_official_first_name".into(), json!(first));
                basic.insert("authorized_official_last_name".into(), json!(last));
                basic.insert("authorized_official_title_or_position".into(), json!(title));
                basic.insert("authorized_official_telephone_number".into(), json!(phone));
            }
        }
        if self.legacy {
            basic.insert("name".into(), json!(display_name));
        }

        let mut record = Map::new();
        if self.legacy {
            record.insert("created_epoch".into(), json!(1142467200u64));
            record.insert("enumeration_type".into(), json!(enumeration_type));
            record.insert("last_updated_epoch".into(), json!(1708560000u64));
            let number: u64 = self.npi.parse().expect("an NPI is digits");
            record.insert("number".into(), json!(number));
        } else {
            record.insert("created_epoch".into(), json!("1142467200000"));
            record.insert("enumeration_type".into(), json!(enumeration_type));
            record.insert("last_updated_epoch".into(), json!("1708560000000"));
            record.insert("number".into(), json!(self.npi));
        }
        record.insert("addresses".into(), json!([mailing, location]));
        if !self.legacy {
            record.insert("practiceLocations".into(), json!(self.practice_locations));
        } else if !self.practice_locations.is_empty() {
            let dated: Vec<Value> = self
                .practice_locations
                .iter()
                .map(|l| {
                    let mut l = l.clone();
                    l["update_date"] = json!("2019-06-11");
                    l
                })
                .collect();
            record.insert("practiceLocations".into(), json!(dated));
        }
        record.insert("basic".into(), Value::Object(basic));
        record.insert("taxonomies".into(), json!(taxonomies));
        record.insert("identifiers".into(), json!(self.identifiers));
        if !self.legacy {
            record.insert("endpoints".into(), json!([]));
        }
        record.insert("other_names".into(), json!(self.other_names));
        Value::Object(record)
    }
}

/// Inserts `key` right after `after` in a JSON object, keeping NPPES's key order.
fn insert_after(object: &mut Value, after: &str, key: &str, value: Value) {
    let old = std::mem::take(object.as_object_mut().expect("an object"));
    let mut new = Map::new();
    for (k, v) in old {
        let here = k == after;
        new.insert(k, v);
        if here {
            new.insert(key.to_string(), value.clone());
        }
    }
    new.entry(key.to_string()).or_insert(value);
    *object = Value::Object(new);
}

// --- The API ---

/// The search criteria NPPES accepts; anything else in the query is ignored, as NPPES ignores it.
const CRITERIA: [&str; 9] = [
    "number",
    "enumeration_type",
    "taxonomy_description",
    "first_name",
    "last_name",
    "organization_name",
    "city",
    "state",
    "postal_code",
];

/// Criteria that take a trailing `*`.
const WILDCARD_FIELDS: [&str; 6] = [
    "first_name",
    "last_name",
    "organization_name",
    "taxonomy_description",
    "city",
    "postal_code",
];

fn error(description: &str, field: &str, number: &str) -> Value {
    json!({"Errors": [{"description": description, "field": field, "number": number}]})
}

/// The registry's answer to a query: always a JSON body (served with HTTP 200).
fn answer(state: &State, query: &BTreeMap<String, String>) -> Value {
    if query.get("version").map(String::as_str) != Some("2.1") {
        return error("Unsupported Version", "version", "17");
    }
    // An empty parameter is no criterion at all.
    let given = |name: &str| query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let criteria: Vec<&str> = CRITERIA.iter().copied().filter(|c| given(c).is_some()).collect();
    if criteria.is_empty() {
        return error("No valid search criteria provided", "generic", "04");
    }
    if let Some(number) = given("number") {
        if number.len() != 10 || !number.bytes().all(|b| b.is_ascii_digit()) {
            return error("NPI must be 10 digits", "number", "06");
        }
    }
    for field in WILDCARD_FIELDS {
        if let Some(prefix) = given(field).and_then(|v| v.strip_suffix('*')) {
            if prefix.chars().count() < 2 {
                return error("Wildcards require at least two leading characters", field, "03");
            }
        }
    }
    if criteria.iter().all(|c| *c == "state" || *c == "enumeration_type") {
        return if criteria.contains(&"state") {
            error("Field state requires additional search criteria", "state", "07")
        } else {
            error(
                "Enumeration_type requires additional search criteria",
                "enumeration_type",
                "09",
            )
        };
    }
    if let Some(number) = given("number") {
        if state.deactivated.contains(number) {
            return error(
                &format!(
                    "CMS deactivated NPI {number}. The provider can no longer use this NPI. Our public registry does \
                     not display provider information about NPIs that are not in service."
                ),
                "number",
                "15",
            );
        }
    }

    // Nonsense paging falls back to the defaults; out-of-range paging is clamped, not refused.
    let limit = match query.get("limit").and_then(|l| l.trim().parse::<usize>().ok()) {
        None | Some(0) => 10,
        Some(l) => l.min(200),
    };
    let skip = query
        .get("skip")
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(1000);
    let page: Vec<Value> = state
        .records
        .iter()
        .filter(|r| !state.deactivated.contains(&npi_of(r)))
        .filter(|r| matches(r, &given))
        .skip(skip)
        .take(limit)
        .cloned()
        .collect();
    json!({"result_count": page.len(), "results": page})
}

/// Case-insensitive equality, or prefix match for a trailing `*`.
fn text_matches(pattern: &str, value: &str) -> bool {
    let value = value.to_uppercase();
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(&prefix.to_uppercase()),
        None => value == pattern.to_uppercase(),
    }
}

/// A five-digit postal code matches nine-digit ones in that area.
fn postal_matches(pattern: &str, zip: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => zip.starts_with(prefix),
        None => zip == pattern || (pattern.len() == 5 && zip.starts_with(pattern)),
    }
}

/// All criteria hold (they are ANDed); the address criteria must hold for one and the same address.
fn matches<'a>(record: &Value, given: &impl Fn(&str) -> Option<&'a str>) -> bool {
    let text = |value: &Value, pattern: &str| value.as_str().is_some_and(|v| text_matches(pattern, v));
    let basic = &record["basic"];
    if let Some(number) = given("number") {
        if npi_of(record) != number {
            return false;
        }
    }
    if let Some(kind) = given("enumeration_type") {
        if !record["enumeration_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case(kind))
        {
            return false;
        }
    }
    if let Some(first) = given("first_name") {
        if !text(&basic["first_name"], first) {
            return false;
        }
    }
    if let Some(last) = given("last_name") {
        if !text(&basic["last_name"], last) {
            return false;
        }
    }
    if let Some(name) = given("organization_name") {
        let other_names = record["other_names"].as_array().into_iter().flatten();
        if !text(&basic["organization_name"], name)
            && !other_names.into_iter().any(|o| text(&o["organization_name"], name))
        {
            return false;
        }
    }
    if let Some(desc) = given("taxonomy_description") {
        if !record["taxonomies"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| text(&t["desc"], desc))
        {
            return false;
        }
    }
    let (city, state, zip) = (given("city"), given("state"), given("postal_code"));
    if city.is_some() || state.is_some() || zip.is_some() {
        let mut addresses = record["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(record["practiceLocations"].as_array().into_iter().flatten());
        let found = addresses.any(|a| {
            city.is_none_or(|c| text(&a["city"], c))
                && state.is_none_or(|s| a["state"].as_str().is_some_and(|v| v.eq_ignore_ascii_case(s)))
                && zip.is_none_or(|z| a["postal_code"].as_str().is_some_and(|v| postal_matches(z, v)))
        });
        if !found {
            return false;
        }
    }
    true
}

// --- HTTP ---

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let id = shared.next_connection.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            shared.connections.lock().unwrap().insert(id, clone);
        }
        let shared = shared.clone();
        let _ = std::thread::Builder::new()
            .name("fake-nppes-conn".into())
            .spawn(move || {
                let _ = serve_connection(&stream, &shared);
                // The last handle must go for a close with unread data to become a reset.
                shared.connections.lock().unwrap().remove(&id);
                drop(stream);
            });
    }
}

/// A request head that has arrived but whose last `unread` bytes are still in the socket.
struct PendingHead {
    head: Vec<u8>,
    unread: usize,
}

/// Waits for the next request head. Its tail is only peeked at, so that closing the socket
/// before consuming it makes the kernel send a reset (which is how `Fault::Reset` resets).
fn peek_head(mut stream: &TcpStream) -> io::Result<Option<PendingHead>> {
    let mut consumed = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.peek(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        let mut all = consumed.clone();
        all.extend_from_slice(&buf[..n]);
        if let Some(at) = all.windows(4).position(|w| w == b"\r\n\r\n") {
            let end = at + 4;
            return Ok(Some(PendingHead {
                unread: end - consumed.len(),
                head: all[..end].to_vec(),
            }));
        }
        if all.len() > 64 * 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request head too large"));
        }
        stream.read_exact(&mut buf[..n])?;
        consumed.extend_from_slice(&buf[..n]);
    }
}

fn serve_connection(mut stream: &TcpStream, shared: &Shared) -> io::Result<()> {
    loop {
        let Some(pending) = peek_head(stream)? else {
            return Ok(());
        };
        if shared.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&pending.head).into_owned();
        let mut lines = text.split("\r\n");
        let mut request_line = lines.next().unwrap_or("").split(' ');
        let method = request_line.next().unwrap_or("").to_string();
        let target = request_line.next().unwrap_or("/");
        let (path, raw_query) = target.split_once('?').unwrap_or((target, ""));
        let query: BTreeMap<String, String> = serde_urlencoded::from_str::<Vec<(String, String)>>(raw_query)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut content_length = 0usize;
        let mut close = false;
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
                if name == "content-length" {
                    content_length = value.parse().unwrap_or(0);
                } else if name == "connection" && value.eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }

        let fault = {
            let mut state = shared.state.lock().unwrap();
            let fault = state.next_fault();
            state.requests.push(RecordedRequest {
                method: method.clone(),
                path: path.to_string(),
                query: query.clone(),
                at: Instant::now(),
                fault: fault.clone(),
            });
            fault
        };
        if fault == Some(Fault::Reset) {
            // Return without reading the rest of the head: the caller's close resets the connection.
            return Ok(());
        }
        let mut rest = vec![0u8; pending.unread + content_length];
        stream.read_exact(&mut rest)?;

        if let Some(Fault::Slow(delay)) = &fault {
            let until = Instant::now() + *delay;
            while Instant::now() < until {
                if shared.stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                std::thread::sleep((until - Instant::now()).min(Duration::from_millis(20)));
            }
        }
        let response = match fault {
            Some(Fault::RateLimited { retry_after_secs }) => {
                Response::html(429, "Too Many Requests").header("Retry-After", &retry_after_secs.to_string())
            }
            Some(Fault::Status(status)) => Response::html(status, reason(status)),
            Some(Fault::Html200) => Response {
                status: 200,
                content_type: "text/html",
                headers: Vec::new(),
                body: MAINTENANCE_PAGE.as_bytes().to_vec(),
            },
            _ if method != "GET" => Response::html(405, "Method Not Allowed"),
            _ if path != "/api/" && path != "/api" => Response::html(404, "Not Found"),
            fault => {
                let body = serde_json::to_vec(&answer(&shared.state.lock().unwrap(), &query)).unwrap();
                let body = if fault == Some(Fault::MalformedJson) {
                    body[..body.len() / 2].to_vec()
                } else {
                    body
                };
                Response {
                    status: 200,
                    content_type: "application/json",
                    headers: Vec::new(),
                    body,
                }
            }
        };
        response.write_to(&mut stream, close)?;
        if close {
            return Ok(());
        }
    }
}

const MAINTENANCE_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>NPPES NPI Registry - Maintenance</title></head>\n\
<body><h1>The NPI Registry is temporarily unavailable</h1>\n\
<p>The system is undergoing scheduled maintenance. Please try again later.</p></body></html>\n";

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

struct Response {
    status: u16,
    content_type: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// An edge proxy's error page.
    fn html(status: u16, title: &str) -> Response {
        let title = format!("{status} {title}");
        Response {
            status,
            content_type: "text/html",
            headers: Vec::new(),
            body: format!(
                "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n\
                 </body>\r\n</html>\r\n"
            )
            .into_bytes(),
        }
    }

    fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    fn write_to(&self, mut out: impl Write, close: bool) -> io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        out.write_all(&bytes)?;
        out.flush()
    }
}

// ---- The fake's own tests: it keeps the registry's contract ----------------------------

mod contract {
    use super::*;
    use reqwest::blocking::{Client, Response};

    const JANE: &str = "1720377294";
    const CLINIC: &str = "1568946812";
    const UNKNOWN: &str = "1760485387";
    const DEACTIVATED: &str = "1669463816";

    fn client() -> Client {
        Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
    }

    fn get(fake: &FakeNppes, query: &str) -> Response {
        client()
            .get(format!("{}?{query}", fake.base_url()))
            .send()
            .expect("GET the fake NPPES")
    }

    /// A JSON answer: always HTTP 200 and `application/json`, refusals included.
    fn get_json(fake: &FakeNppes, query: &str) -> Value {
        let response = get(fake, query);
        assert_eq!(response.status(), 200, "?{query}");
        assert_eq!(response.headers()["content-type"], "application/json", "?{query}");
        response.json().expect("JSON")
    }

    fn lookup(fake: &FakeNppes, npi: &str) -> Value {
        get_json(fake, &format!("version=2.1&number={npi}"))
    }

    fn assert_refused(body: &Value, number: &str, field: &str, description: &str) {
        assert_eq!(
            body,
            &json!({"Errors": [{"description": description, "field": field, "number": number}]}),
        );
    }

    fn jane() -> Value {
        FakeNppes::individual(JANE, "JANE", "DOE")
            .credential("MD")
            .sex("F")
            .location("1 PARK PL NE", "ATLANTA", "GA", "303084213", "404-555-0100")
            .fax("404-555-0199")
            .taxonomy("207R00000X", "Internal Medicine", true)
            .identifier("05", "MEDICAID", "1234567", "GA")
            .build()
    }

    fn npis(body: &Value) -> Vec<String> {
        body["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(npi_of)
            .collect()
    }

    /// The error an io failure underneath reqwest carried, if any.
    fn io_error_kind(error: &reqwest::Error) -> Option<io::ErrorKind> {
        let mut source: Option<&dyn std::error::Error> = Some(error);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                return Some(io.kind());
            }
            source = e.source();
        }
        None
    }

    #[test]
    fn the_npis_given_pass_their_check_digit_and_invented_ones_do_too() {
        for npi in [
            "1720377294",
            "1568946812",
            "1760485387",
            "1437410099",
            "1518425099",
            "1225701881",
            "1174270805",
            "1234567893",
            "1669463816",
            "1407954555",
            "1659781227",
        ] {
            assert!(npi_is_valid(npi), "{npi}");
        }
        assert!(!npi_is_valid("1720377295"));
        assert!(!npi_is_valid("172037729"));
        assert_eq!(npi_from("123456789"), "1234567893");
        assert!(npi_is_valid(&npi_from("199999001")));
    }

    #[test]
    fn a_lookup_finds_a_record_in_the_current_shape() {
        let fake = FakeNppes::start();
        fake.add(jane());
        let body = lookup(&fake, JANE);
        assert_eq!(body["result_count"], 1);
        let record = &body["results"][0];
        assert_eq!(record["number"], JANE, "number is a string");
        assert_eq!(record["enumeration_type"], "NPI-1");
        assert_eq!(
            record["created_epoch"], "1142467200000",
            "epochs are strings of milliseconds"
        );
        assert_eq!(record["last_updated_epoch"], "1708560000000");
        let basic = &record["basic"];
        assert_eq!(
            (&basic["first_name"], &basic["last_name"]),
            (&json!("JANE"), &json!("DOE"))
        );
        assert_eq!(basic["credential"], "MD");
        assert_eq!(basic["sex"], "F");
        assert_eq!(basic["status"], "A");
        assert_eq!(basic["name_prefix"], "--");
        for absent in ["gender", "name", "middle_name", "reactivation_date"] {
            assert!(basic.get(absent).is_none(), "no basic.{absent}");
        }
        let addresses = record["addresses"].as_array().unwrap();
        assert_eq!(addresses[0]["address_purpose"], "MAILING");
        assert_eq!(addresses[1]["address_purpose"], "LOCATION");
        assert_eq!(addresses[1]["postal_code"], "303084213");
        assert_eq!(addresses[1]["telephone_number"], "404-555-0100");
        assert_eq!(addresses[1]["fax_number"], "404-555-0199");
        assert!(addresses[0].get("fax_number").is_none() && addresses[1].get("address_2").is_none());
        assert_eq!(
            record["taxonomies"],
            json!([{"code": "207R00000X", "taxonomy_group": "", "desc": "Internal Medicine", "state": "GA",
                "license": "12345", "primary": true}])
        );
        assert_eq!(record["identifiers"][0]["issuer"], Value::Null);
        assert_eq!(record["practiceLocations"], json!([]));
        assert_eq!(record["endpoints"], json!([]));
        assert_eq!(record["other_names"], json!([]));
    }

    #[test]
    fn a_lookup_serves_the_2019_shape_when_asked_to() {
        let fake = FakeNppes::start();
        fake.add(
            FakeNppes::individual(JANE, "JANE", "DOE")
                .sex("F")
                .gender_legacy()
                .build(),
        );
        let legacy_with_locations = FakeNppes::individual("1437410099", "JOHN", "ROE")
            .sex("M")
            .practice_location("2 ELM ST", "MACON", "GA", "31201", "478-555-0100")
            .gender_legacy()
            .build();
        fake.add(legacy_with_locations);

        let record = &lookup(&fake, JANE)["results"][0];
        assert_eq!(record["number"], json!(1720377294u64), "number is an integer");
        assert_eq!(
            record["created_epoch"],
            json!(1142467200u64),
            "epochs are integer seconds"
        );
        assert_eq!(record["last_updated_epoch"], json!(1708560000u64));
        assert_eq!(record["basic"]["gender"], "F");
        assert!(record["basic"].get("sex").is_none());
        assert_eq!(record["basic"]["name"], "JANE DOE");
        assert!(record.get("endpoints").is_none());
        assert!(record.get("practiceLocations").is_none(), "only when there are some");

        let record = &lookup(&fake, "1437410099")["results"][0];
        assert_eq!(record["practiceLocations"][0]["city"], "MACON");
        assert!(record["practiceLocations"][0]["update_date"].is_string());
    }

    #[test]
    fn an_organization_has_its_name_official_and_other_names() {
        let fake = FakeNppes::start();
        fake.add(
            FakeNppes::organization(CLINIC, "PEACHTREE FAMILY MEDICINE LLC")
                .authorized_official("ANN", "LEE", "PRACTICE MANAGER", "4045550123")
                .dba("PEACHTREE CLINIC")
                .build(),
        );
        let record = &lookup(&fake, CLINIC)["results"][0];
        assert_eq!(record["enumeration_type"], "NPI-2");
        let basic = &record["basic"];
        assert_eq!(basic["organization_name"], "PEACHTREE FAMILY MEDICINE LLC");
        assert_eq!(basic["organizational_subpart"], "NO");
        assert_eq!(basic["authorized_official_first_name"], "ANN");
        assert_eq!(basic["authorized_official_last_name"], "LEE");
        assert_eq!(basic["authorized_official_title_or_position"], "PRACTICE MANAGER");
        assert_eq!(basic["authorized_official_telephone_number"], "4045550123");
        assert!(basic.get("first_name").is_none() && basic.get("sex").is_none());
        assert_eq!(
            record["other_names"],
            json!([{"organization_name": "PEACHTREE CLINIC", "type": "Doing Business As", "code": "3"}])
        );
        // Its other names are searchable too.
        let body = get_json(&fake, "version=2.1&organization_name=peachtree%20clinic");
        assert_eq!(npis(&body), [CLINIC]);
    }

    #[test]
    fn an_unknown_npi_or_a_bad_check_digit_is_an_empty_result_not_an_error() {
        let fake = FakeNppes::start();
        fake.add(jane());
        assert_eq!(lookup(&fake, UNKNOWN).to_string(), r#"{"result_count":0,"results":[]}"#);
        assert_eq!(
            lookup(&fake, "1720377295").to_string(),
            r#"{"result_count":0,"results":[]}"#
        );
    }

    #[test]
    fn a_deactivated_npi_is_error_15_on_lookup_and_absent_from_searches() {
        let fake = FakeNppes::start();
        fake.add(jane());
        fake.deactivate(JANE);
        fake.deactivate(DEACTIVATED);
        for npi in [JANE, DEACTIVATED] {
            assert_refused(
                &lookup(&fake, npi),
                "15",
                "number",
                &format!(
                    "CMS deactivated NPI {npi}. The provider can no longer use this NPI. Our public registry does \
                     not display provider information about NPIs that are not in service."
                ),
            );
        }
        let search = get_json(&fake, "version=2.1&last_name=DOE");
        assert_eq!(search, json!({"result_count": 0, "results": []}));

        fake.reactivate(JANE);
        let record = &lookup(&fake, JANE)["results"][0];
        assert_eq!(record["basic"]["reactivation_date"], today());
        assert_eq!(npis(&get_json(&fake, "version=2.1&last_name=DOE")), [JANE]);
    }

    #[test]
    fn every_refusal_is_http_200_with_errors_and_no_results() {
        let fake = FakeNppes::start();
        fake.add(jane());
        let wildcard = "Wildcards require at least two leading characters";
        let cases = [
            ("number=1720377294", "17", "version", "Unsupported Version"),
            ("version=2.0&number=1720377294", "17", "version", "Unsupported Version"),
            ("version=2.1", "04", "generic", "No valid search criteria provided"),
            (
                "version=2.1&first_name=&last_name=",
                "04",
                "generic",
                "No valid search criteria provided",
            ),
            (
                "version=2.1&limit=5&pretty=on",
                "04",
                "generic",
                "No valid search criteria provided",
            ),
            ("version=2.1&number=172037729", "06", "number", "NPI must be 10 digits"),
            (
                "version=2.1&number=17203772941",
                "06",
                "number",
                "NPI must be 10 digits",
            ),
            ("version=2.1&number=172037729X", "06", "number", "NPI must be 10 digits"),
            (
                "version=2.1&state=GA",
                "07",
                "state",
                "Field state requires additional search criteria",
            ),
            (
                "version=2.1&state=GA&enumeration_type=NPI-1",
                "07",
                "state",
                "Field state requires additional search criteria",
            ),
            (
                "version=2.1&enumeration_type=NPI-1",
                "09",
                "enumeration_type",
                "Enumeration_type requires additional search criteria",
            ),
            ("version=2.1&first_name=j*", "03", "first_name", wildcard),
            ("version=2.1&last_name=D*&state=GA", "03", "last_name", wildcard),
            ("version=2.1&organization_name=*", "03", "organization_name", wildcard),
        ];
        for (query, number, field, description) in cases {
            let body = get_json(&fake, query);
            assert!(body.get("results").is_none(), "?{query}: {body}");
            assert_refused(&body, number, field, description);
        }
    }

    #[test]
    fn search_criteria_are_anded_case_insensitive_and_take_a_trailing_wildcard() {
        let fake = FakeNppes::start();
        fake.add(jane());
        fake.add(
            FakeNppes::individual("1437410099", "JANET", "DOE")
                .location("2 ELM ST", "MACON", "GA", "31201", "478-555-0100")
                .taxonomy("208D00000X", "General Practice", true)
                .build(),
        );
        fake.add(FakeNppes::organization(CLINIC, "DOE FAMILY CLINIC").build());
        let search = |query: &str| npis(&get_json(&fake, &format!("version=2.1&{query}")));

        assert_eq!(search("last_name=doe"), [JANE, "1437410099"]);
        assert_eq!(search("first_name=jane&last_name=doe"), [JANE]);
        assert_eq!(search("first_name=ja*&last_name=doe"), [JANE, "1437410099"]);
        assert_eq!(search("last_name=doe&city=macon"), ["1437410099"]);
        assert_eq!(
            search("last_name=doe&state=ga&postal_code=30308"),
            [JANE],
            "5 digits match 9"
        );
        assert_eq!(search("last_name=doe&postal_code=312*"), ["1437410099"]);
        assert_eq!(
            search("last_name=doe&city=macon&postal_code=30308"),
            Vec::<String>::new(),
            "one address"
        );
        assert_eq!(search("taxonomy_description=internal%20medicine"), [JANE]);
        assert_eq!(
            search("taxonomy_description=internal"),
            Vec::<String>::new(),
            "not a substring match"
        );
        assert_eq!(search("organization_name=doe*"), [CLINIC]);
        assert_eq!(search("city=atlanta&enumeration_type=NPI-2"), [CLINIC]);
        assert_eq!(search("number=1720377294&last_name=ROE"), Vec::<String>::new());
        assert_eq!(
            search("first_name=jane&unknown_parameter=1"),
            [JANE],
            "unknown parameters are ignored"
        );
    }

    #[test]
    fn pages_hold_at_most_limit_results_and_result_count_is_this_page() {
        let fake = FakeNppes::start();
        let smiths: Vec<String> = (0..205).map(|i| npi_from(&format!("{}", 150_000_000 + i))).collect();
        for npi in &smiths {
            fake.add(FakeNppes::individual(npi, "ALEX", "SMITH").build());
        }
        let page = |query: &str| get_json(&fake, &format!("version=2.1&last_name=SMITH&{query}"));

        let first = page("");
        assert_eq!(first["result_count"], 10, "limit defaults to 10");
        assert_eq!(npis(&first), smiths[..10]);
        assert_eq!(npis(&page("limit=0"))[..], smiths[..10], "limit 0 is the default");
        let second = page("limit=50&skip=50");
        assert_eq!(second["result_count"], 50);
        assert_eq!(npis(&second), smiths[50..100]);
        let last = page("limit=50&skip=200");
        assert_eq!(last["result_count"], 5, "a short last page");
        assert_eq!(npis(&last), smiths[200..]);
        assert_eq!(page("limit=500")["result_count"], 200, "limit is clamped to 200");
        assert_eq!(page("skip=205"), json!({"result_count": 0, "results": []}));
    }

    #[test]
    fn an_update_changes_the_record_and_its_last_updated_date() {
        let fake = FakeNppes::start();
        fake.add(jane());
        fake.update(JANE, |r| {
            r["addresses"][1]["telephone_number"] = json!("404-555-0222");
            r["basic"]["last_name"] = json!("DOE-SMITH");
        });
        let record = &lookup(&fake, JANE)["results"][0];
        assert_eq!(record["addresses"][1]["telephone_number"], "404-555-0222");
        assert_eq!(record["basic"]["last_name"], "DOE-SMITH");
        assert_eq!(record["basic"]["last_updated"], today());
        assert_ne!(record["last_updated_epoch"], "1708560000000");
        assert!(record["last_updated_epoch"].is_string(), "the shape is kept");
    }

    #[test]
    fn rate_limiting_is_429_with_retry_after_and_the_gap_before_a_retry_is_observable() {
        let fake = FakeNppes::start();
        fake.add(jane());
        fake.fail_next(1, Fault::RateLimited { retry_after_secs: 1 });
        let refused = get(&fake, "version=2.1&number=1720377294");
        assert_eq!(refused.status(), 429);
        assert_eq!(refused.headers()["retry-after"], "1");
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(
            lookup(&fake, JANE)["result_count"],
            1,
            "only the next request was limited"
        );

        let requests = fake.requests();
        assert_eq!(fake.request_count(), 2);
        assert_eq!(requests[0].fault, Some(Fault::RateLimited { retry_after_secs: 1 }));
        assert_eq!(requests[1].fault, None);
        assert!(requests[1].at - requests[0].at >= Duration::from_secs(1));
        assert_eq!(requests[1].path, "/api/");
        assert_eq!(requests[1].param("version"), Some("2.1"));
        assert_eq!(requests[1].param("number"), Some(JANE));
    }

    #[test]
    fn server_errors_are_html_pages_like_an_edge_proxys() {
        let fake = FakeNppes::start();
        for status in [500, 502, 503] {
            fake.fail_next(1, Fault::Status(status));
            let response = get(&fake, "version=2.1&number=1720377294");
            assert_eq!(response.status(), status);
            assert_eq!(response.headers()["content-type"], "text/html");
            assert!(response.text().unwrap().contains(&format!("<title>{status} ")));
        }
    }

    #[test]
    fn a_slow_answer_is_correct_but_late() {
        let fake = FakeNppes::start();
        fake.add(jane());
        fake.fail_next(1, Fault::Slow(Duration::from_millis(400)));
        let started = Instant::now();
        assert_eq!(lookup(&fake, JANE)["result_count"], 1);
        assert!(started.elapsed() >= Duration::from_millis(400));

        fake.fail_next(1, Fault::Slow(Duration::from_secs(5)));
        let impatient = Client::builder().timeout(Duration::from_millis(200)).build().unwrap();
        let error = impatient
            .get(format!("{}?version=2.1&number={JANE}", fake.base_url()))
            .send()
            .unwrap_err();
        assert!(error.is_timeout(), "{error:?}");
    }

    #[test]
    fn malformed_json_is_a_200_json_answer_cut_short() {
        let fake = FakeNppes::start();
        fake.add(jane());
        fake.fail_next(1, Fault::MalformedJson);
        let response = get(&fake, "version=2.1&number=1720377294");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        let text = response.text().unwrap();
        assert!(text.starts_with(r#"{"result_count":1,"results":[{"#), "{text}");
        assert!(serde_json::from_str::<Value>(&text).is_err());
    }

    #[test]
    fn a_reset_closes_the_connection_without_an_answer() {
        let fake = FakeNppes::start();
        fake.add(jane());
        fake.fail_next(1, Fault::Reset);
        let error = get_error(&fake);
        assert_eq!(io_error_kind(&error), Some(io::ErrorKind::ConnectionReset), "{error:?}");
        assert_eq!(fake.request_count(), 1, "the request arrived, and was not retried");
        assert_eq!(lookup(&fake, JANE)["result_count"], 1);
    }

    #[test]
    fn a_reset_on_a_kept_alive_connection_reaches_the_client_too() {
        let fake = FakeNppes::start();
        fake.add(jane());
        let client = client();
        let url = format!("{}?version=2.1&number={JANE}", fake.base_url());
        assert_eq!(client.get(&url).send().unwrap().status(), 200);
        fake.fail_next(1, Fault::Reset);
        let error = client.get(&url).send().expect_err("no answer");
        assert_eq!(io_error_kind(&error), Some(io::ErrorKind::ConnectionReset), "{error:?}");
        assert_eq!(fake.request_count(), 2, "not retried on a fresh connection");
    }

    fn get_error(fake: &FakeNppes) -> reqwest::Error {
        client()
            .get(format!("{}?version=2.1&number={JANE}", fake.base_url()))
            .send()
            .expect_err("no answer")
    }

    #[test]
    fn a_maintenance_page_can_come_with_200() {
        let fake = FakeNppes::start();
        fake.set_fault(Some(Fault::Html200));
        let response = get(&fake, "version=2.1&number=1720377294");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/html");
        assert!(response.text().unwrap().contains("maintenance"));
    }

    #[test]
    fn queued_faults_come_first_then_the_persistent_one_until_healed() {
        let fake = FakeNppes::start();
        fake.add(jane());
        fake.fail_next(2, Fault::Status(502));
        fake.set_fault(Some(Fault::Status(500)));
        let statuses: Vec<u16> = (0..4)
            .map(|_| get(&fake, "version=2.1&number=1720377294").status().as_u16())
            .collect();
        assert_eq!(statuses, [502, 502, 500, 500]);
        fake.set_fault(None);
        assert_eq!(lookup(&fake, JANE)["result_count"], 1);
    }

    #[test]
    fn while_down_every_request_fails_until_up() {
        let fake = FakeNppes::start();
        fake.add(jane());
        fake.fail_next(1, Fault::Status(502));
        fake.down();
        for _ in 0..3 {
            assert_eq!(get(&fake, "version=2.1&number=1720377294").status(), 503);
        }
        fake.down_with(Fault::Reset);
        assert_eq!(io_error_kind(&get_error(&fake)), Some(io::ErrorKind::ConnectionReset));
        fake.up();
        assert_eq!(
            get(&fake, "version=2.1&number=1720377294").status(),
            502,
            "queued faults waited"
        );
        assert_eq!(lookup(&fake, JANE)["result_count"], 1);
        assert_eq!(fake.request_count(), 6);
    }

    #[test]
    fn only_the_api_path_answers_and_a_dropped_fake_refuses_connections() {
        let fake = FakeNppes::start();
        assert_eq!(
            client()
                .get(format!("http://{}/other/?version=2.1", fake.addr()))
                .send()
                .unwrap()
                .status(),
            404
        );
        let addr = fake.addr();
        drop(fake);
        assert!(TcpStream::connect(addr).is_err());
    }
}

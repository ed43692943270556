//! `providercard import nppes`: the NPPES Data Dissemination files into Plan-Net resources,
//! checked field by field and by the validator; re-imports change nothing; a weekly file
//! updates only what changed; the deactivation report withdraws and a reactivated row brings
//! back; bad rows are reported and skipped; an interrupted import resumes.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use providercard::integrations::nppes::bulk::headers::{
    ENDPOINT_COLUMNS_V2, NPIDATA_COLUMNS_V2, OTHERNAME_COLUMNS_V2, PL_COLUMNS_V2,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{providercard, Backend, TestApp, TestDatabase};

const JOSE: &str = "1720377294";
const HARBOR: &str = "1568946812";
const GONE: &str = "1760485387";

/// The resource types an NPPES import writes.
const IMPORTED_TYPES: [&str; 5] = [
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "Endpoint",
];

/// One CSV record as CMS writes them: every value quoted, in ISO-8859-1.
fn record(columns: &[&str], values: &[(&str, &str)]) -> Vec<u8> {
    for (name, _) in values {
        assert!(columns.contains(name), "no column {name:?}");
    }
    let fields: Vec<String> = columns
        .iter()
        .map(|c| values.iter().find(|(n, _)| n == c).map_or("", |(_, v)| v).to_string())
        .map(|v| format!("\"{v}\""))
        .collect();
    let line = fields.join(",") + "\n";
    line.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("a Latin-1 character"))
        .collect()
}

fn file(dir: &Path, prefix: &str, columns: &[&str], rows: &[Vec<(&str, &str)>]) {
    let mut bytes = record(columns, &columns.iter().map(|c| (*c, *c)).collect::<Vec<_>>());
    for row in rows {
        bytes.extend(record(columns, row));
    }
    std::fs::write(dir.join(format!("{prefix}_20260316-20260322.csv")), bytes).unwrap();
}

fn jose(phone: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("NPI", JOSE),
        ("Entity Type Code", "1"),
        ("Provider Last Name (Legal Name)", "MUÑOZ"),
        ("Provider First Name", "JOSÉ"),
        ("Provider Middle Name", "A"),
        ("Provider Credential Text", "M.D."),
        ("Provider First Line Business Mailing Address", "PO BOX 12"),
        ("Provider Business Mailing Address City Name", "ATLANTA"),
        ("Provider Business Mailing Address State Name", "GA"),
        ("Provider Business Mailing Address Postal Code", "30301"),
        (
            "Provider First Line Business Practice Location Address",
            "100 PEACHTREE ST NW",
        ),
        ("Provider Business Practice Location Address City Name", "ATLANTA"),
        ("Provider Business Practice Location Address State Name", "GA"),
        ("Provider Business Practice Location Address Postal Code", "303031234"),
        ("Provider Business Practice Location Address Telephone Number", phone),
        ("Provider Enumeration Date", "03/16/2006"),
        ("Last Update Date", "02/22/2024"),
        ("Provider Sex Code", "M"),
        ("Healthcare Provider Taxonomy Code_1", "207RC0000X"),
        ("Provider License Number_1", "L456"),
        ("Provider License Number State Code_1", "FL"),
        ("Healthcare Provider Primary Taxonomy Switch_1", "N"),
        ("Healthcare Provider Taxonomy Code_2", "207R00000X"),
        ("Provider License Number_2", "L123"),
        ("Provider License Number State Code_2", "GA"),
        ("Healthcare Provider Primary Taxonomy Switch_2", "Y"),
    ]
}

fn harbor() -> Vec<(&'static str, &'static str)> {
    vec![
        ("NPI", HARBOR),
        ("Entity Type Code", "2"),
        ("Provider Organization Name (Legal Business Name)", "HARBOR CLINIC LLC"),
        ("Provider First Line Business Practice Location Address", "5 HARBOR WAY"),
        ("Provider Business Practice Location Address City Name", "SAVANNAH"),
        ("Provider Business Practice Location Address State Name", "GA"),
        ("Provider Business Practice Location Address Postal Code", "31401"),
        (
            "Provider Business Practice Location Address Telephone Number",
            "9125550100",
        ),
        ("Provider Enumeration Date", "01/02/2010"),
        ("Last Update Date", "05/06/2025"),
        ("Authorized Official Last Name", "REYES"),
        ("Authorized Official First Name", "ANA"),
        ("Authorized Official Title or Position", "CEO"),
        ("Authorized Official Telephone Number", "9125550101"),
        ("Healthcare Provider Taxonomy Code_1", "261QP2300X"),
        ("Healthcare Provider Primary Taxonomy Switch_1", "Y"),
        ("Is Organization Subpart", "N"),
    ]
}

/// The deactivated NPI as CMS publishes it: the NPI and the date, nothing else.
fn gone() -> Vec<(&'static str, &'static str)> {
    vec![("NPI", GONE), ("NPI Deactivation Date", "01/15/2024")]
}

fn monthly(dir: &Path) {
    file(
        dir,
        "npidata_pfile",
        &NPIDATA_COLUMNS_V2,
        &[jose("4045550100"), harbor(), gone()],
    );
    file(
        dir,
        "pl_pfile",
        &PL_COLUMNS_V2,
        &[vec![
            ("NPI", JOSE),
            (
                "Provider Secondary Practice Location Address- Address Line 1",
                "200 OAK ST",
            ),
            ("Provider Secondary Practice Location Address - City Name", "DECATUR"),
            ("Provider Secondary Practice Location Address - State Name", "GA"),
            ("Provider Secondary Practice Location Address - Postal Code", "30030"),
            (
                "Provider Secondary Practice Location Address - Telephone Number",
                "4045550111",
            ),
        ]],
    );
    file(
        dir,
        "othername_pfile",
        &OTHERNAME_COLUMNS_V2,
        &[vec![
            ("NPI", HARBOR),
            ("Provider Other Organization Name", "HARBOR FAMILY MEDICINE"),
            ("Provider Other Organization Name Type Code", "3"),
        ]],
    );
    file(
        dir,
        "endpoint_pfile",
        &ENDPOINT_COLUMNS_V2,
        &[vec![
            ("NPI", HARBOR),
            ("Endpoint Type", "DIRECT"),
            ("Endpoint Type Description", "Direct Messaging Address"),
            ("Endpoint", "clinic@direct.harbor.example"),
            ("Affiliation", "N"),
        ]],
    );
}

fn import(db: &TestDatabase, path: &Path, extra: &[&str]) -> String {
    let out: Output = providercard(&db.url)
        .args(["import", "nppes"])
        .arg(path)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn line_of<'a>(stdout: &'a str, file: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(file))
        .unwrap_or_else(|| panic!("no {file} line in {stdout}"))
}

fn assert_valid(app: &TestApp, resource: &Value) {
    let kind = resource["resourceType"].as_str().unwrap();
    let outcome: Value = app
        .post(
            &format!("{kind}/$validate"),
            &json!({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": resource}]}),
        )
        .json()
        .unwrap();
    let errors: Vec<&Value> = outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["severity"] == "error")
        .collect();
    assert!(errors.is_empty(), "{kind}/{}: {errors:#?}", resource["id"]);
    assert!(
        resource["meta"]["profile"][0]
            .as_str()
            .unwrap()
            .contains("davinci-pdex-plan-net"),
        "{kind} claims its Plan-Net profile"
    );
}

fn the_monthly_file_becomes_valid_plan_net_resources_field_by_field(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    monthly(dir.path());
    let db = Arc::new(TestDatabase::new(backend));
    let stdout = import(&db, dir.path(), &[]);
    assert!(line_of(&stdout, "npidata_pfile").contains("3 rows"), "{stdout}");
    let app = TestApp::serve(db.clone(), &[]);

    let p = app.read(&format!("Practitioner/npi-{JOSE}"));
    assert_eq!(p["name"][0]["family"], "MUÑOZ", "ISO-8859-1 decoded");
    assert_eq!(p["name"][0]["given"][0], "JOSÉ");
    assert_eq!(p["gender"], "male");
    assert!(p["identifier"].as_array().unwrap().iter().any(|i| i["value"] == JOSE));
    let licenses: Vec<&str> = p["qualification"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|q| q["identifier"].as_array().into_iter().flatten())
        .filter_map(|i| i["value"].as_str())
        .collect();
    assert!(licenses.contains(&"L123") && licenses.contains(&"L456"), "{licenses:?}");

    let role = app.read(&format!("PractitionerRole/npi-{JOSE}-role"));
    let codes: Vec<&str> = role["specialty"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["coding"][0]["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["207R00000X", "207RC0000X"], "primary first");
    assert!(role["specialty"][1]["coding"][0]["display"]
        .as_str()
        .unwrap()
        .contains("Cardiovascular"));
    assert_eq!(role["practitioner"]["reference"], format!("Practitioner/npi-{JOSE}"));
    assert_eq!(role["telecom"][0]["value"], "404-555-0100");
    let locations: Vec<&str> = role["location"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["reference"].as_str().unwrap())
        .collect();
    assert!(locations.contains(&format!("Location/npi-{JOSE}-location").as_str()));
    assert_eq!(
        locations.len(),
        2,
        "the practice location and the secondary one: {locations:?}"
    );

    let location = app.read(&format!("Location/npi-{JOSE}-location"));
    assert_eq!(location["address"]["city"], "ATLANTA");
    assert_eq!(location["address"]["postalCode"], "30303-1234");
    let secondary = app.read(locations.iter().find(|l| !l.ends_with("-location")).unwrap());
    assert_eq!(secondary["address"]["city"], "DECATUR");

    let org = app.read(&format!("Organization/npi-{HARBOR}"));
    assert_eq!(org["name"], "HARBOR CLINIC LLC");
    assert!(org["alias"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "HARBOR FAMILY MEDICINE"));
    assert_eq!(org["contact"][0]["name"]["family"], "REYES");
    let endpoint_ref = org["endpoint"][0]["reference"]
        .as_str()
        .expect("the organization's endpoint");
    let endpoint = app.read(endpoint_ref);
    assert_eq!(endpoint["connectionType"]["code"], "direct-project");

    for resource in [&p, &role, &location, &secondary, &org, &endpoint] {
        assert_valid(&app, resource);
    }
    // A deactivated NPI never imported before leaves nothing to serve.
    assert_eq!(
        app.get(&format!("Practitioner/npi-{GONE}")).status(),
        StatusCode::NOT_FOUND
    );
    // Payers find them with the usual searches.
    let by_npi = app.read(&format!(
        "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|{JOSE}"
    ));
    assert_eq!(by_npi["total"], 1);
    let by_specialty = app.read("PractitionerRole?specialty=http://nucc.org/provider-taxonomy|207RC0000X");
    assert_eq!(by_specialty["total"], 1);
}

fn importing_again_changes_nothing_and_a_weekly_file_only_what_changed(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    monthly(dir.path());
    let db = Arc::new(TestDatabase::new(backend));
    import(&db, dir.path(), &[]);
    let again = import(&db, dir.path(), &[]);
    for f in ["npidata_pfile", "pl_pfile", "othername_pfile", "endpoint_pfile"] {
        assert!(line_of(&again, f).contains("0 new, 0 updated"), "{again}");
    }
    // The weekly file: JOSÉ's practice phone changed; nobody else is in it.
    let app = TestApp::serve(db.clone(), &[]);
    let org_version = app.read(&format!("Organization/npi-{HARBOR}"))["meta"]["versionId"].clone();
    let weekly = tempfile::tempdir().unwrap();
    file(
        weekly.path(),
        "npidata_pfile",
        &NPIDATA_COLUMNS_V2,
        &[jose("4045550199")],
    );
    let out = import(&db, weekly.path(), &[]);
    assert!(line_of(&out, "npidata_pfile").contains("0 new"), "{out}");
    let role = app.read(&format!("PractitionerRole/npi-{JOSE}-role"));
    assert_eq!(role["telecom"][0]["value"], "404-555-0199");
    assert_eq!(
        role["location"].as_array().unwrap().len(),
        2,
        "the secondary location kept"
    );
    let org = app.read(&format!("Organization/npi-{HARBOR}"));
    assert_eq!(org["meta"]["versionId"], org_version, "untouched");
}

fn the_deactivation_report_withdraws_and_a_reactivated_row_brings_back(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    monthly(dir.path());
    let db = Arc::new(TestDatabase::new(backend));
    import(&db, dir.path(), &[]);
    let report = dir.path().join("deactivated.csv");
    std::fs::write(
        &report,
        format!("\"NPI\",\"NPPES Deactivation Date\"\n\"{JOSE}\",\"03/01/2026\"\n\"12\",\"x\"\n"),
    )
    .unwrap();
    let out = import(&db, dir.path(), &["--deactivations", report.to_str().unwrap()]);
    assert!(out.contains("1 bad"), "the malformed report row is reported: {out}");
    let app = TestApp::serve(db.clone(), &[]);
    let p = app.read(&format!("Practitioner/npi-{JOSE}"));
    assert_eq!(p["active"], false);
    assert!(p["meta"]["tag"].to_string().contains("withdrawn"));
    assert_eq!(p["name"][0]["family"], "MUÑOZ", "kept, not blanked");
    let by_npi = format!("Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|{JOSE}");
    assert_eq!(app.read(&by_npi)["total"], 0, "left out of default searches");
    assert_eq!(app.read(&format!("PractitionerRole/npi-{JOSE}-role"))["active"], false);

    // A weekly file carries the NPI again, reactivated.
    let weekly = tempfile::tempdir().unwrap();
    let mut row = jose("4045550100");
    row.push(("NPI Deactivation Date", "03/01/2026"));
    row.push(("NPI Reactivation Date", "04/01/2026"));
    file(weekly.path(), "npidata_pfile", &NPIDATA_COLUMNS_V2, &[row]);
    import(&db, weekly.path(), &[]);
    let back = app.read(&format!("Practitioner/npi-{JOSE}"));
    assert_eq!(back["active"], true);
    assert!(!back["meta"].to_string().contains("withdrawn"));
    assert_eq!(app.read(&by_npi)["total"], 1);
}

/// Every current resource of the store, without what differs between two imports of the
/// same data (when and in how many versions it was written).
fn every_resource(db: &TestDatabase) -> Vec<Value> {
    let store = providercard::store::Store::open(&db.url, 1, Arc::new(providercard::store::NoIndex)).unwrap();
    let mut all = Vec::new();
    for resource_type in IMPORTED_TYPES {
        let mut after: Option<String> = None;
        loop {
            let page = store.list(resource_type, after.as_deref(), 500).unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for current in page {
                let mut resource: Value = serde_json::from_str(current.content.as_deref().unwrap()).unwrap();
                let meta = resource["meta"].as_object_mut().unwrap();
                meta.remove("versionId");
                meta.remove("lastUpdated");
                all.push(resource);
            }
        }
    }
    all
}

fn companion_rows_go_with_their_provider_or_to_the_owner_already_stored(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let generated = providercard("sqlite::memory:")
        .args(["nppes", "generate"])
        .arg(dir.path())
        .args(["--rows", "3000", "--seed", "11"])
        .output()
        .unwrap();
    assert!(generated.status.success());
    // Read ahead (the default), each companion row goes out with its provider's batch...
    let ahead = TestDatabase::new(backend);
    let out = import(&ahead, dir.path(), &[]);
    for f in ["pl_pfile", "othername_pfile", "endpoint_pfile"] {
        let line = line_of(&out, f);
        assert!(
            line.contains("resources 0 new, 0 updated") && line.contains("written with their provider"),
            "{out}"
        );
    }
    // ...and gives exactly what streaming each file in its own pass gives.
    let streamed = TestDatabase::new(backend);
    let out = import(&streamed, dir.path(), &["--companions-in-memory-mib", "0"]);
    assert!(!out.contains("written with their provider"), "{out}");
    assert!(!line_of(&out, "pl_pfile").contains(" 0 new"), "{out}");
    let (a, b) = (every_resource(&ahead), every_resource(&streamed));
    assert!(
        a.iter().any(|r| r["resourceType"] == "Endpoint"),
        "the bundle has endpoints"
    );
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(a, b);
    }

    // A weekly bundle whose secondary location and endpoint belong to a provider not in its
    // providers file: both are linked from the role already stored.
    let monthly_dir = tempfile::tempdir().unwrap();
    monthly(monthly_dir.path());
    let db = Arc::new(TestDatabase::new(backend));
    import(&db, monthly_dir.path(), &[]);
    let weekly = tempfile::tempdir().unwrap();
    file(weekly.path(), "npidata_pfile", &NPIDATA_COLUMNS_V2, &[harbor()]);
    file(
        weekly.path(),
        "pl_pfile",
        &PL_COLUMNS_V2,
        &[vec![
            ("NPI", JOSE),
            (
                "Provider Secondary Practice Location Address- Address Line 1",
                "9 ELM ST",
            ),
            ("Provider Secondary Practice Location Address - City Name", "MARIETTA"),
            ("Provider Secondary Practice Location Address - State Name", "GA"),
            ("Provider Secondary Practice Location Address - Postal Code", "30060"),
        ]],
    );
    file(
        weekly.path(),
        "endpoint_pfile",
        &ENDPOINT_COLUMNS_V2,
        &[vec![
            ("NPI", JOSE),
            ("Endpoint Type", "FHIR"),
            ("Endpoint", "https://fhir.jose.example/r4"),
            ("Affiliation", "N"),
        ]],
    );
    let out = import(&db, weekly.path(), &[]);
    for f in ["pl_pfile", "endpoint_pfile"] {
        assert!(line_of(&out, f).contains("resources 1 new, 1 updated"), "{out}");
    }
    let app = TestApp::serve(db.clone(), &[]);
    let role = app.read(&format!("PractitionerRole/npi-{JOSE}-role"));
    assert_eq!(role["location"].as_array().unwrap().len(), 3, "{role}");
    let endpoint = app.read(role["endpoint"][0]["reference"].as_str().expect("the role's endpoint"));
    assert_eq!(endpoint["address"], "https://fhir.jose.example/r4");
}

crate::on_both_backends!(
    the_monthly_file_becomes_valid_plan_net_resources_field_by_field,
    importing_again_changes_nothing_and_a_weekly_file_only_what_changed,
    the_deactivation_report_withdraws_and_a_reactivated_row_brings_back,
    companion_rows_go_with_their_provider_or_to_the_owner_already_stored,
);

fn count(app: &TestApp, resource_type: &str) -> u64 {
    app.read(&format!("{resource_type}?_summary=count"))["total"]
        .as_u64()
        .unwrap()
}

#[test]
fn bad_rows_are_reported_with_their_line_and_an_interrupted_import_resumes_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let generated = providercard("sqlite::memory:")
        .args(["nppes", "generate"])
        .arg(dir.path())
        .args(["--rows", "6000", "--seed", "7", "--bad-row-every", "1000"])
        .output()
        .unwrap();
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );

    // The whole file at once, as the reference.
    let whole = Arc::new(TestDatabase::new(Backend::Sqlite));
    let out = import(&whole, dir.path(), &[]);
    let providers = line_of(&out, "npidata_pfile");
    assert!(providers.contains("6 bad"), "{out}");
    let skipped: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("skipped line "))
        .collect();
    assert_eq!(skipped.len(), 6, "each bad row named by its line: {out}");

    // The same file, killed mid-import, then run again.
    let resumed = Arc::new(TestDatabase::new(Backend::Sqlite));
    let mut child = providercard(&resumed.url)
        .args(["import", "nppes"])
        .arg(dir.path())
        .args(["--batch-rows", "100"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once a batch has committed (its checkpoint is stored), however loaded the machine.
    let store = providercard::store::Store::open(&resumed.url, 1, Arc::new(providercard::store::NoIndex)).unwrap();
    let checkpointed = || {
        store
            .snapshot(|tx| {
                tx.search(
                    "SELECT name AS id, '' AS k0, '' AS k1, '' AS k2, NULL AS total FROM bulk_import_checkpoints",
                    &[],
                )
            })
            .is_ok_and(|rows| !rows.is_empty())
    };
    let started = std::time::Instant::now();
    while !checkpointed() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no batch committed in 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let out = import(&resumed, dir.path(), &["--batch-rows", "100"]);
    assert!(line_of(&out, "npidata_pfile").contains("resumed after line"), "{out}");
    for db in [&whole, &resumed] {
        // Dropped for the load, the search indexes are back once the import ends (or resumes).
        let plan = crate::search::plan_of(&db.url, "family=smith", "Practitioner");
        assert!(plan.contains("search_string_norm"), "{plan}");
    }

    let (a, b) = (TestApp::serve(whole, &[]), TestApp::serve(resumed, &[]));
    for resource_type in IMPORTED_TYPES {
        assert_eq!(count(&a, resource_type), count(&b, resource_type), "{resource_type}");
    }
    let history = b.read("Practitioner/_history?_summary=count");
    assert_eq!(
        history["total"].as_u64(),
        Some(count(&b, "Practitioner")),
        "one version each: no batch written twice"
    );
}

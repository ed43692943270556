//! Issue 4: Plan-Net search. Every parameter of every type is found by a value the IG's
//! examples carry and not by one they do not (a sweep over the registry), then the modifiers,
//! prefixes, chains, includes, result controls, paging and errors, on both stores.

use std::collections::BTreeSet;
use std::path::Path;

use reqwest::Method;
use serde_json::{json, Value};

use providercard::fhir::types::SUPPORTED_TYPES;
use providercard::search::Registry;
use providercard::store::{IndexRow, Indexer};

use crate::common::*;
use crate::on_both_stores;

on_both_stores!(
    every_parameter_finds_an_example_by_its_value_and_not_by_another,
    practitioners_are_found_by_npi,
    strings_match_prefixes_without_case_or_accents,
    name_and_address_match_any_of_their_parts,
    tokens_take_every_form_and_modifier,
    references_take_every_form,
    dates_honour_prefixes_and_precision,
    commas_or_and_repeats_and,
    chains_follow_references_forward_and_back,
    a_chained_search_counts_every_match_on_each_page,
    includes_add_referenced_and_referring_resources,
    result_controls_shape_the_bundle,
    sorting_orders_by_parameters,
    parameters_the_examples_do_not_carry_find_and_exclude,
    paging_returns_every_match_once_despite_writes_between_pages,
    post_search_equals_get,
    unknown_parameters_warn_or_fail_when_strict,
    malformed_values_are_400_naming_the_parameter,
    search_values_never_reach_sql,
);

/// The server's registry, loaded once per test binary (the definitions are large).
fn registry() -> std::sync::Arc<Registry> {
    static REGISTRY: std::sync::OnceLock<std::sync::Arc<Registry>> = std::sync::OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            let definitions = providercard::validation::definitions::Definitions::load(&profiles_dir()).unwrap();
            let fhirpath = std::sync::Arc::new(providercard::fhirpath::FhirPath::new(&definitions));
            std::sync::Arc::new(
                Registry::load(&profiles_dir(), &providercard::fhir::types::SEARCHABLE_TYPES, fhirpath).unwrap(),
            )
        })
        .clone()
}

fn examples() -> Vec<Value> {
    let dir = profiles_dir().join("plan-net/example");
    let mut out: Vec<Value> = std::fs::read_dir(dir)
        .unwrap()
        .map(|f| serde_json::from_str(&std::fs::read_to_string(f.unwrap().path()).unwrap()).unwrap())
        .collect();
    out.sort_by_key(|e| e["id"].as_str().unwrap().to_string());
    out
}

fn load_examples(app: &TestApp) {
    for example in examples() {
        let path = format!(
            "{}/{}",
            example["resourceType"].as_str().unwrap(),
            example["id"].as_str().unwrap()
        );
        assert!(app.put(&path, &example).status().is_success(), "{path}");
    }
}

/// Ids a search returns (matches only).
fn ids(app: &TestApp, query: &str) -> Vec<String> {
    let response = app.get(query);
    assert_eq!(response.status(), 200, "{query}");
    let bundle: Value = response.json().unwrap();
    bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["search"]["mode"] == "match")
                .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn enc(value: &str) -> String {
    serde_urlencoded::to_string([("v", value)])
        .unwrap()
        .trim_start_matches("v=")
        .to_string()
}

/// A search value that matches an index row, and one that matches nothing.
fn values_for(row: &IndexRow) -> Option<(String, String)> {
    Some(match row {
        IndexRow::Token { system, code, .. } if !code.is_empty() => {
            let positive = if system.is_empty() {
                code.clone()
            } else {
                format!("{system}|{code}")
            };
            (positive, "no-such-code-7781".into())
        }
        IndexRow::String { norm, .. } if !norm.is_empty() => (norm.chars().take(4).collect(), "zzqx-nothing".into()),
        IndexRow::Reference {
            target_type, target_id, ..
        } if !target_type.is_empty() => (
            format!("{target_type}/{target_id}"),
            format!("{target_type}/no-such-id"),
        ),
        IndexRow::Date { low, high, .. } => {
            let positive = if low.starts_with("0001") {
                format!("le{}", &high[..10])
            } else {
                format!("ge{}", &low[..10])
            };
            (positive, "eb1800-01-01".into())
        }
        IndexRow::Uri { uri, .. } => (uri.clone(), "http://example.org/no-such-uri".into()),
        _ => return None,
    })
}

fn param_of(row: &IndexRow) -> &str {
    match row {
        IndexRow::Token { param, .. }
        | IndexRow::String { param, .. }
        | IndexRow::Reference { param, .. }
        | IndexRow::Date { param, .. }
        | IndexRow::Uri { param, .. }
        | IndexRow::Number { param, .. } => param,
    }
}

fn every_parameter_finds_an_example_by_its_value_and_not_by_another(app: &TestApp) {
    load_examples(app);
    let registry = registry();
    let mut covered: BTreeSet<(String, String)> = BTreeSet::new();
    for example in examples() {
        let resource_type = example["resourceType"].as_str().unwrap();
        let id = example["id"].as_str().unwrap();
        let stored = app.read(&format!("{resource_type}/{id}"));
        // Parameters the stored resource itself answers (no index rows).
        let by_resource = [
            ("_id", id.to_string(), "no-such-id".to_string()),
            (
                "_lastUpdated",
                stored["meta"]["lastUpdated"].as_str().unwrap().to_string(),
                "eb1800-01-01".to_string(),
            ),
        ];
        // `param` finds the example by `positive` and not by `negative`.
        let finds_only_by = |param: &str, positive: &str, negative: &str| {
            let found = ids(app, &format!("{resource_type}?_id={id}&{param}={}", enc(positive)));
            assert_eq!(found, [id], "{resource_type}?{param}={positive} finds {id}");
            let not_found = ids(app, &format!("{resource_type}?_id={id}&{param}={}", enc(negative)));
            assert!(
                not_found.is_empty(),
                "{resource_type}?{param}={negative} does not find {id}"
            );
        };
        for (param, positive, negative) in by_resource {
            assert!(registry.get(resource_type, param).unwrap().rows_code().is_none());
            finds_only_by(param, &positive, &negative);
            covered.insert((resource_type.to_string(), param.to_string()));
        }
        for row in registry.index_rows(resource_type, &stored) {
            let Some((positive, negative)) = values_for(&row) else {
                continue;
            };
            // The row's own parameter, and those that read its rows (`phonetic` reads `name`'s).
            let readers = registry
                .of_type(resource_type)
                .filter(|p| p.rows_code() == Some(param_of(&row)))
                .map(|p| p.code.clone());
            for param in readers.collect::<Vec<_>>() {
                if covered.contains(&(resource_type.to_string(), param.clone())) {
                    continue;
                }
                finds_only_by(&param, &positive, &negative);
                covered.insert((resource_type.to_string(), param));
            }
        }
    }
    // Every parameter the Plan-Net CapabilityStatement names must have been exercised.
    let capability: Value = serde_json::from_str(
        &std::fs::read_to_string(profiles_dir().join("plan-net/CapabilityStatement-plan-net.json")).unwrap(),
    )
    .unwrap();
    let mut missing = Vec::new();
    for resource in capability["rest"][0]["resource"].as_array().unwrap() {
        let t = resource["type"].as_str().unwrap();
        for p in resource["searchParam"].as_array().into_iter().flatten() {
            let code = p["name"].as_str().unwrap();
            assert!(registry.get(t, code).is_some(), "{t}:{code} is searchable");
            if !covered.contains(&(t.to_string(), code.to_string())) {
                missing.push(format!("{t}:{code}"));
            }
        }
    }
    // The examples carry no values for these; hand-written tests below cover them.
    let uncovered_by_examples: BTreeSet<&str> = [
        "HealthcareService:coverage-area",
        "HealthcareService:delivery-method",
        "InsurancePlan:coverage-area",
        "Location:partof",
        "Organization:coverage-area",
        "Organization:partof",
        "Organization:endpoint",
        "OrganizationAffiliation:endpoint",
        "OrganizationAffiliation:service",
        "Practitioner:identifier",
        "PractitionerRole:service",
        "Location:endpoint",
        "HealthcareService:endpoint",
        "InsurancePlan:administered-by",
        "PractitionerRole:endpoint",
        "InsurancePlan:identifier",
        "Endpoint:organization",
        "HealthcareService:service-type",
    ]
    .into_iter()
    .collect();
    let unexpected: Vec<&String> = missing
        .iter()
        .filter(|m| !uncovered_by_examples.contains(m.as_str()))
        .collect();
    assert!(unexpected.is_empty(), "parameters no example exercised: {unexpected:?}");
    assert!(covered.len() > 60, "{} parameters exercised", covered.len());
    let _ = SUPPORTED_TYPES;
}

fn practitioners_are_found_by_npi(app: &TestApp) {
    let a = app
        .post("Practitioner", &practitioner_with_npi("Smith", "1234567893"))
        .json::<Value>()
        .unwrap();
    app.post("Practitioner", &practitioner_with_npi("Jones", "1497758544"));
    let found = ids(app, "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|1234567893");
    assert_eq!(found, [a["id"].as_str().unwrap()]);
    assert_eq!(
        ids(app, "Practitioner?identifier=1234567893").len(),
        1,
        "a bare value matches any system"
    );
    assert!(
        ids(app, "Practitioner?identifier=http://example.org/other|1234567893").is_empty(),
        "the system must match"
    );
}

fn strings_match_prefixes_without_case_or_accents(app: &TestApp) {
    let mut muller = practitioner("Müller");
    muller["name"][0]["given"] = json!(["Jürgen"]);
    let id = app.post("Practitioner", &muller).json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.post("Practitioner", &practitioner("Miller"));
    assert_eq!(
        ids(app, "Practitioner?family=mul"),
        [id.clone()],
        "starts-with, case and accents ignored"
    );
    assert_eq!(
        ids(app, "Practitioner?name=JURG"),
        [id.clone()],
        "name covers given names"
    );
    assert!(ids(app, "Practitioner?family=ller").is_empty(), "not a prefix");
    assert_eq!(ids(app, "Practitioner?family:contains=ll").len(), 2, ":contains");
    assert_eq!(
        ids(app, &format!("Practitioner?family:exact={}", enc("Müller"))),
        [id.clone()]
    );
    assert!(
        ids(app, "Practitioner?family:exact=muller").is_empty(),
        ":exact is exact"
    );
    assert_eq!(ids(app, "Practitioner?family:missing=false").len(), 2);
    assert!(ids(app, "Practitioner?family:missing=true").is_empty());
}

/// `name` and `address` match any part of a HumanName or Address
/// (<https://hl7.org/fhir/R4/search.html#string>). The parts `family`, `given` and
/// `address-city|state|postalcode|country` index are stored once, under those parameters: each
/// modifier, `:missing` and `_sort` of `name` and `address` must read them there.
fn name_and_address_match_any_of_their_parts(app: &TestApp) {
    let tag = new_id().replace('-', "");
    let town = format!("Town{tag}");
    let post = |resource: Value| -> String {
        let created: Value = app
            .post(&resource["resourceType"].as_str().unwrap().to_string(), &resource)
            .json()
            .unwrap();
        created["id"].as_str().unwrap().to_string()
    };
    let site = post(json!({
        "resourceType": "Location", "name": format!("Site {tag}"),
        "address": {"line": [format!("12 Elm {tag} St")], "city": town, "state": "VT",
                    "postalCode": format!("Z{tag}"), "country": format!("Land{tag}")}
    }));
    for query in [
        format!("address={}", town.to_lowercase()),
        format!("address=z{tag}"),
        format!("address=land{tag}"),
        format!("address=12%20elm%20{tag}"),
        format!("address:exact={town}"),
        format!("address:contains={}", &tag[4..12]),
        format!("address={town}&address-state=vt"),
    ] {
        assert_eq!(ids(app, &format!("Location?{query}")), [site.clone()], "{query}");
    }
    assert!(ids(app, &format!("Location?address:exact={}", town.to_lowercase())).is_empty());

    // Only a city: `address` is not missing, though no row is stored under `address` itself.
    let city_only = post(json!({"resourceType": "Location", "name": format!("Depot {tag}"),
                                "address": {"city": format!("Vale{tag}")}}));
    assert_eq!(
        ids(app, &format!("Location?name=depot%20{tag}&address:missing=false")),
        [city_only.clone()]
    );
    assert!(ids(app, &format!("Location?name=depot%20{tag}&address:missing=true")).is_empty());

    let mut ann = practitioner(&format!("Zed{tag}"));
    ann["name"][0]["given"] = json!([format!("Ann{tag}")]);
    let ann = post(ann);
    let mut bea = practitioner(&format!("Abe{tag}"));
    bea["name"][0]["given"] = json!([format!("Bea{tag}")]);
    bea["name"][0]["prefix"] = json!([format!("Dr{tag}")]);
    let bea = post(bea);
    assert_eq!(
        ids(app, &format!("Practitioner?name=ann{tag}")),
        [ann.clone()],
        "a given name"
    );
    assert_eq!(
        ids(app, &format!("Practitioner?name=zed{tag}")),
        [ann.clone()],
        "a family name"
    );
    assert_eq!(
        ids(app, &format!("Practitioner?name=dr{tag}")),
        [bea.clone()],
        "a prefix"
    );
    assert_eq!(
        ids(app, &format!("Practitioner?phonetic=abe{tag}")),
        [bea.clone()],
        "phonetic shares name"
    );
    assert_eq!(ids(app, &format!("Practitioner?name:exact=Bea{tag}")), [bea.clone()]);
    let sorted: Value = app
        .get(&format!("Practitioner?name:contains={tag}&_sort=name"))
        .json()
        .unwrap();
    let order: Vec<&str> = sorted["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap())
        .collect();
    // The smallest part sorts: Ann… < Bea… (Abe… is Bea's, so Bea first).
    assert_eq!(order, [bea.as_str(), ann.as_str()]);
}

fn coded(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [{"system": system, "code": code, "display": display}]})
}

const NUCC: &str = "http://nucc.org/provider-taxonomy";

fn role(practitioner: &str, specialty: &str, location: Option<&str>) -> Value {
    let mut r = json!({
        "resourceType": "PractitionerRole", "active": true,
        "practitioner": {"reference": format!("Practitioner/{practitioner}")},
        "specialty": [coded(NUCC, specialty, "Specialist")],
    });
    if let Some(l) = location {
        r["location"] = json!([{"reference": format!("Location/{l}")}]);
    }
    r
}

fn tokens_take_every_form_and_modifier(app: &TestApp) {
    let cardiology = app
        .post(
            "PractitionerRole",
            &json!({
                "resourceType": "PractitionerRole", "active": true,
                "specialty": [coded(NUCC, "207RC0000X", "Cardiovascular Disease Physician")],
            }),
        )
        .json::<Value>()
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let local = app
        .post(
            "PractitionerRole",
            &json!({
                "resourceType": "PractitionerRole", "active": false,
                "specialty": [{"coding": [{"code": "207RC0000X"}]}],
            }),
        )
        .json::<Value>()
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        ids(app, "PractitionerRole?specialty=207RC0000X").len(),
        2,
        "code alone: any system"
    );
    assert_eq!(
        ids(app, &format!("PractitionerRole?specialty={NUCC}|207RC0000X")),
        [cardiology.clone()],
        "system|code"
    );
    assert_eq!(
        ids(app, "PractitionerRole?specialty=|207RC0000X"),
        [local.clone()],
        "|code: no system"
    );
    assert_eq!(
        ids(app, &format!("PractitionerRole?specialty={NUCC}|")),
        [cardiology.clone()],
        "system|: any code of it"
    );
    assert_eq!(
        ids(app, "PractitionerRole?active=true"),
        [cardiology.clone()],
        "booleans are tokens"
    );
    assert_eq!(ids(app, "PractitionerRole?active:not=true"), [local.clone()], ":not");
    assert_eq!(
        ids(app, "PractitionerRole?specialty:text=cardio"),
        [cardiology.clone()],
        ":text searches the display"
    );
    assert_eq!(ids(app, "PractitionerRole?specialty:missing=false").len(), 2);
    assert!(
        ids(app, "PractitionerRole?location:missing=false").is_empty(),
        ":missing on a reference"
    );
    assert_eq!(ids(app, "PractitionerRole?location:missing=true").len(), 2);
}

fn references_take_every_form(app: &TestApp) {
    let prac = new_id();
    app.put(&format!("Practitioner/{prac}"), &with_id(practitioner("Ref"), &prac));
    let role_id = app
        .post("PractitionerRole", &role(&prac, "207Q00000X", None))
        .json::<Value>()
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.post("PractitionerRole", &role("someone-else", "207Q00000X", None));
    assert_eq!(
        ids(app, &format!("PractitionerRole?practitioner={prac}")),
        [role_id.clone()],
        "id"
    );
    assert_eq!(
        ids(app, &format!("PractitionerRole?practitioner=Practitioner/{prac}")),
        [role_id.clone()],
        "Type/id"
    );
    assert_eq!(
        ids(
            app,
            &format!(
                "PractitionerRole?practitioner={}",
                enc(&app.url(&format!("Practitioner/{prac}")))
            )
        ),
        [role_id.clone()],
        "absolute URL"
    );
    assert_eq!(
        ids(app, &format!("PractitionerRole?practitioner:Practitioner={prac}")),
        [role_id.clone()],
        ":Type"
    );
    assert!(ids(app, "PractitionerRole?practitioner=Practitioner/nobody").is_empty());
}

fn dates_honour_prefixes_and_precision(app: &TestApp) {
    let make = |start: &str, end: &str| {
        let mut r = json!({"resourceType": "PractitionerRole", "active": true, "period": {"start": start, "end": end}});
        if end.is_empty() {
            r["period"] = json!({"start": start});
        }
        app.post("PractitionerRole", &r).json::<Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let y2020 = make("2020-01-01", "2020-12-31");
    let march = make("2021-03-01", "2021-03-31");
    let open = make("2022-06-15", "");
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        ids(app, "PractitionerRole?date=2020"),
        [y2020.clone()],
        "eq: within the year"
    );
    assert_eq!(
        ids(app, "PractitionerRole?date=eq2021-03"),
        [march.clone()],
        "eq: within the month"
    );
    assert!(
        ids(app, "PractitionerRole?date=2021-03-05").is_empty(),
        "a month is not within a day"
    );
    assert_eq!(
        sorted(ids(app, "PractitionerRole?date=ne2020")),
        sorted(vec![march.clone(), open.clone()])
    );
    assert_eq!(
        sorted(ids(app, "PractitionerRole?date=gt2021-01-01")),
        sorted(vec![march.clone(), open.clone()])
    );
    assert_eq!(ids(app, "PractitionerRole?date=lt2021-01-01"), [y2020.clone()]);
    assert_eq!(
        sorted(ids(app, "PractitionerRole?date=ge2021-03-31")),
        sorted(vec![march.clone(), open.clone()])
    );
    assert_eq!(
        sorted(ids(app, "PractitionerRole?date=le2021-03-01")),
        sorted(vec![y2020.clone(), march.clone()])
    );
    assert_eq!(
        ids(app, "PractitionerRole?date=sa2021-12-31"),
        [open.clone()],
        "starts after"
    );
    assert_eq!(
        ids(app, "PractitionerRole?date=eb2021-01-01"),
        [y2020.clone()],
        "ends before"
    );
    // ap: within a tenth of the distance from now (about seven months here).
    assert_eq!(
        sorted(ids(app, "PractitionerRole?date=ap2021-03-15")),
        sorted(vec![y2020.clone(), march.clone()]),
        "approximately"
    );
    assert_eq!(
        ids(app, "PractitionerRole?date=2030-01-01T10:00:00Z"),
        Vec::<String>::new(),
        "an open end is not within an instant"
    );
    assert_eq!(
        ids(app, "PractitionerRole?date=gt2030-01-01T10:00:00Z"),
        [open.clone()],
        "but reaches past it"
    );
    // `_id` and `_lastUpdated` are answered by the stored resource itself, not index rows.
    let everything = ids(app, "PractitionerRole?_lastUpdated=gt2000-01-01");
    assert_eq!(everything.len(), 3, "_lastUpdated");
    assert!(ids(app, "PractitionerRole?_lastUpdated=lt2000-01-01").is_empty());
    let stamped = app.read(&format!("PractitionerRole/{march}"))["meta"]["lastUpdated"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        ids(
            app,
            &format!("PractitionerRole?_lastUpdated={}&date=2021-03", enc(&stamped))
        ),
        [march.clone()],
        "_lastUpdated at the stamped instant"
    );
    let stamped_otherwise: Vec<String> = everything
        .iter()
        .filter(|id| app.read(&format!("PractitionerRole/{id}"))["meta"]["lastUpdated"] != stamped.as_str())
        .cloned()
        .collect();
    assert_eq!(
        sorted(ids(app, &format!("PractitionerRole?_lastUpdated=ne{}", enc(&stamped)))),
        sorted(stamped_otherwise),
        "ne the stamped instant"
    );
    assert_eq!(ids(app, "PractitionerRole?_lastUpdated:missing=false").len(), 3);
    assert!(ids(app, "PractitionerRole?_lastUpdated:missing=true").is_empty());
    assert_eq!(
        sorted(ids(app, &format!("PractitionerRole?_id:not={march}"))),
        sorted(everything.iter().filter(|id| **id != march).cloned().collect()),
        "_id:not"
    );
}

fn commas_or_and_repeats_and(app: &TestApp) {
    let a = app
        .post(
            "Location",
            &json!({"resourceType": "Location", "name": "A", "address": {"city": "Hartford", "state": "CT"}}),
        )
        .json::<Value>()
        .unwrap();
    let b = app
        .post(
            "Location",
            &json!({"resourceType": "Location", "name": "B", "address": {"city": "Boston", "state": "MA"}}),
        )
        .json::<Value>()
        .unwrap();
    app.post(
        "Location",
        &json!({"resourceType": "Location", "name": "C", "address": {"city": "Hartland", "state": "VT"}}),
    );
    assert_eq!(ids(app, "Location?address-city=hartford,boston").len(), 2, "comma: OR");
    assert_eq!(
        ids(app, "Location?address-city=hart&address-state=CT"),
        [a["id"].as_str().unwrap()],
        "repeat: AND"
    );
    assert_eq!(ids(app, "Location?address-state=MA&address-state=CT").len(), 0);
    assert_eq!(ids(app, "Location?name=a,b&address-postalcode:missing=true").len(), 2);
    let _ = b;
}

fn chains_follow_references_forward_and_back(app: &TestApp) {
    let parent = new_id();
    app.put(
        &format!("Organization/{parent}"),
        &json!({"resourceType": "Organization", "id": parent, "active": true, "name": "Acme Health System"}),
    );
    let org = new_id();
    app.put(&format!("Organization/{org}"), &json!({"resourceType": "Organization", "id": org, "active": true, "name": "Acme Clinic", "partOf": {"reference": format!("Organization/{parent}")}}));
    let network = new_id();
    app.put(
        &format!("Organization/{network}"),
        &json!({"resourceType": "Organization", "id": network, "active": true, "name": "Gold Network"}),
    );
    let loc = new_id();
    app.put(
        &format!("Location/{loc}"),
        &json!({"resourceType": "Location", "id": loc, "name": "Main", "address": {"city": "Hartford", "state": "CT"}}),
    );
    let prac = new_id();
    app.put(
        &format!("Practitioner/{prac}"),
        &with_id(practitioner("Skywalker"), &prac),
    );
    let mut r = role(&prac, "207RC0000X", Some(&loc));
    r["organization"] = json!({"reference": format!("Organization/{org}")});
    r["extension"] = json!([{
        "url": "http://hl7.org/fhir/us/davinci-pdex-plan-net/StructureDefinition/network-reference",
        "valueReference": {"reference": format!("Organization/{network}")}
    }]);
    let role_id = app.post("PractitionerRole", &r).json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.post("PractitionerRole", &role("other", "207RC0000X", None));
    for query in [
        "PractitionerRole?practitioner.name=skywalker",
        "PractitionerRole?location.address-city=hartford",
        "PractitionerRole?location.address-state=CT&specialty=207RC0000X",
        "PractitionerRole?network.name=gold",
        &format!("PractitionerRole?organization.partof={parent}"),
        "PractitionerRole?organization.partof.name=acme%20health",
        "PractitionerRole?organization:Organization.name=acme%20clinic",
        // Chains come first in the statement (a CTE each): a sort's own values must still
        // bind to its own placeholders.
        "PractitionerRole?_sort=-specialty&location.address-state=CT&specialty=207RC0000X",
    ] {
        assert_eq!(ids(app, query), [role_id.clone()], "{query}");
    }
    assert!(ids(app, "PractitionerRole?practitioner.name=vader").is_empty());
    assert_eq!(
        ids(
            app,
            "Practitioner?_has:PractitionerRole:practitioner:specialty=207RC0000X"
        ),
        [prac.clone()],
        "_has"
    );
    assert!(ids(app, "Practitioner?_has:PractitionerRole:practitioner:specialty=0000").is_empty());
    assert_eq!(
        ids(
            app,
            "Organization?_has:PractitionerRole:network:location.address-city=hartford"
        ),
        [network.clone()],
        "_has with a chain"
    );
    assert_eq!(
        ids(
            app,
            "Organization?_sort=name&_has:PractitionerRole:network:location.address-city=hartford&name=gold"
        ),
        [network.clone()],
        "_has with a chain, another criterion and a sort"
    );

    // A deleted target matches no chain, whether the chain reads its index rows or its id.
    assert_eq!(
        ids(app, &format!("PractitionerRole?location._id={loc}")),
        [role_id.clone()]
    );
    app.delete(&format!("Location/{loc}"));
    for query in [
        "PractitionerRole?location.address-city=hartford".to_string(),
        format!("PractitionerRole?location._id={loc}"),
    ] {
        assert!(ids(app, &query).is_empty(), "{query} after the location was deleted");
    }
}

fn includes_add_referenced_and_referring_resources(app: &TestApp) {
    let org = new_id();
    app.put(
        &format!("Organization/{org}"),
        &json!({"resourceType": "Organization", "id": org, "active": true, "name": "Acme"}),
    );
    let loc = new_id();
    app.put(&format!("Location/{loc}"), &json!({"resourceType": "Location", "id": loc, "name": "Main", "managingOrganization": {"reference": format!("Organization/{org}")}}));
    let prac = new_id();
    app.put(&format!("Practitioner/{prac}"), &with_id(practitioner("Kenobi"), &prac));
    let role_id = app
        .post("PractitionerRole", &role(&prac, "207RC0000X", Some(&loc)))
        .json::<Value>()
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let entries = |query: &str| -> Vec<(String, String)> {
        let bundle: Value = app.get(query).json().unwrap();
        bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    format!(
                        "{}/{}",
                        e["resource"]["resourceType"].as_str().unwrap(),
                        e["resource"]["id"].as_str().unwrap()
                    ),
                    e["search"]["mode"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let got = entries(&format!(
        "PractitionerRole?_id={role_id}&_include=PractitionerRole:practitioner&_include=PractitionerRole:location"
    ));
    assert!(
        got.contains(&(format!("Practitioner/{prac}"), "include".into())),
        "{got:?}"
    );
    assert!(got.contains(&(format!("Location/{loc}"), "include".into())), "{got:?}");
    assert!(
        !got.iter().any(|(r, _)| r.starts_with("Organization")),
        "no iterate, no Organization"
    );
    let iterated = entries(&format!(
        "PractitionerRole?_id={role_id}&_include=PractitionerRole:location&_include:iterate=Location:organization"
    ));
    assert!(
        iterated.contains(&(format!("Organization/{org}"), "include".into())),
        ":iterate follows on: {iterated:?}"
    );
    let all = entries(&format!("PractitionerRole?_id={role_id}&_include=*"));
    assert_eq!(all.len(), 3, "_include=* adds every referenced resource: {all:?}");
    let rev = entries(&format!(
        "Practitioner?_id={prac}&_revinclude=PractitionerRole:practitioner"
    ));
    assert_eq!(
        rev,
        [
            (format!("Practitioner/{prac}"), "match".into()),
            (format!("PractitionerRole/{role_id}"), "include".into())
        ]
    );
    let bad = app.get("PractitionerRole?_include=PractitionerRole:specialty");
    assert_eq!(bad.status(), 400, "a non-reference parameter cannot be included");
}

fn result_controls_shape_the_bundle(app: &TestApp) {
    for n in 0..5 {
        app.post("Practitioner", &practitioner(&format!("Controls{n}")));
    }
    let count_only: Value = app.get("Practitioner?_summary=count").json().unwrap();
    assert_eq!(count_only["total"], 5);
    assert!(count_only.get("entry").is_none());
    let page: Value = app.get("Practitioner?_count=2").json().unwrap();
    assert_eq!(page["entry"].as_array().unwrap().len(), 2);
    assert_eq!(page["total"], 5);
    let no_total: Value = app.get("Practitioner?_total=none").json().unwrap();
    assert!(no_total.get("total").is_none());
    let capped: Value = app.get("Practitioner?_count=100000").json().unwrap();
    assert_eq!(
        capped["entry"].as_array().unwrap().len(),
        5,
        "the maximum caps, it does not fail"
    );
    let elements: Value = app.get("Practitioner?_elements=name&_count=1").json().unwrap();
    let r = &elements["entry"][0]["resource"];
    assert!(r.get("name").is_some() && r.get("active").is_none() && r.get("id").is_some());
    assert_eq!(r["meta"]["tag"][0]["code"], "SUBSETTED");
    let summary: Value = app.get("Practitioner?_summary=true&_count=1").json().unwrap();
    let r = &summary["entry"][0]["resource"];
    assert!(
        r.get("name").is_some() && r.get("active").is_some(),
        "summary elements kept"
    );
    let mut with_text = practitioner("Narrated");
    with_text["text"] = json!({"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"});
    let id = app.post("Practitioner", &with_text).json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let data: Value = app.get(&format!("Practitioner?_id={id}&_summary=data")).json().unwrap();
    assert!(
        data["entry"][0]["resource"].get("text").is_none(),
        "_summary=data drops the narrative"
    );
}

fn sorting_orders_by_parameters(app: &TestApp) {
    for family in ["Baker", "adams", "Clark"] {
        app.post("Practitioner", &practitioner(family));
    }
    let families = |query: &str| -> Vec<String> {
        let bundle: Value = app.get(query).json().unwrap();
        bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["name"][0]["family"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(families("Practitioner?_sort=family"), ["adams", "Baker", "Clark"]);
    assert_eq!(families("Practitioner?_sort=-family"), ["Clark", "Baker", "adams"]);
    assert_eq!(families("Practitioner?_sort=_lastUpdated"), ["Baker", "adams", "Clark"]);
    assert_eq!(
        families("Practitioner?_sort=-_lastUpdated"),
        ["Clark", "adams", "Baker"]
    );
    let by_id: Value = app.get("Practitioner?_sort=_id").json().unwrap();
    let ids: Vec<&str> = by_id["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert_eq!(app.get("Practitioner?_sort=nonsense").status(), 400);
}

fn paging_returns_every_match_once_despite_writes_between_pages(app: &TestApp) {
    let mut expected = BTreeSet::new();
    for n in 0..9 {
        let id = format!("page-{n:02}");
        app.put(
            &format!("Location/{id}"),
            &json!({"resourceType": "Location", "id": id, "name": format!("Site {n}")}),
        );
        expected.insert(id);
    }
    for sort in ["", "&_sort=-name", "&_sort=_lastUpdated"] {
        let mut seen = Vec::new();
        let mut next = Some(app.url(&format!("Location?name=site&_count=2{sort}")));
        let mut pages = 0;
        while let Some(url) = next {
            let page: Value = app.client.get(&url).send().unwrap().json().unwrap();
            for e in page["entry"].as_array().into_iter().flatten() {
                seen.push(e["resource"]["id"].as_str().unwrap().to_string());
            }
            next = next_link(&page);
            pages += 1;
            if pages == 2 {
                // A resource inserted before the cursor and one deleted after it must not shift pages.
                app.put(
                    "Location/page-aa",
                    &json!({"resourceType": "Location", "id": "page-aa", "name": "Site new"}),
                );
                app.delete("Location/page-aa");
            }
        }
        let unique: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "no match twice ({sort}): {seen:?}");
        assert_eq!(unique, expected, "every match once ({sort})");
        assert_eq!(pages, 5, "9 matches at 2 a page, and no empty last page");
    }
}

fn post_search_equals_get(app: &TestApp) {
    app.post("Practitioner", &practitioner_with_npi("Posted", "1234567893"));
    app.post("Practitioner", &practitioner("Other"));
    let get = ids(app, "Practitioner?name=post&identifier=1234567893");
    let post: Value = app
        .request(Method::POST, "Practitioner/_search")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("name=post&identifier=1234567893")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let post_ids: Vec<String> = post["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(get.len(), 1);
    assert_eq!(post_ids, get);
}

fn unknown_parameters_warn_or_fail_when_strict(app: &TestApp) {
    app.post("Practitioner", &practitioner("Known"));
    let bundle: Value = app.get("Practitioner?favourite-colour=blue").json().unwrap();
    let outcome = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["search"]["mode"] == "outcome")
        .expect("a warning entry");
    assert_outcome(
        &outcome["resource"],
        "warning",
        "not-supported",
        Some("favourite-colour"),
    );
    assert_eq!(bundle["total"], 1, "the unknown parameter was ignored");
    let strict = app
        .request(Method::GET, "Practitioner?favourite-colour=blue")
        .header("Prefer", "handling=strict")
        .send()
        .unwrap();
    assert_eq!(strict.status(), 400);
    assert_outcome(
        &strict.json().unwrap(),
        "error",
        "not-supported",
        Some("favourite-colour"),
    );
    let modifier = app
        .request(Method::GET, "Practitioner?name:sounds-like=x")
        .header("Prefer", "handling=strict")
        .send()
        .unwrap();
    assert_eq!(modifier.status(), 400, "an unknown modifier too");
}

fn malformed_values_are_400_naming_the_parameter(app: &TestApp) {
    for (query, param) in [
        ("PractitionerRole?date=yesterday", "date"),
        ("PractitionerRole?date=xx2020", "date"),
        ("PractitionerRole?date=2020-13-01", "date"),
        ("Practitioner?_count=many", "_count"),
        ("Practitioner?name:missing=perhaps", "name:missing"),
        ("Practitioner?_summary=some", "_summary"),
    ] {
        let response = app.get(query);
        assert_eq!(response.status(), 400, "{query}");
        assert_outcome(&response.json().unwrap(), "error", "invalid", Some(param));
    }
}

fn search_values_never_reach_sql(app: &TestApp) {
    app.post("Practitioner", &practitioner("O'Brien"));
    for value in ["x' OR '1'='1", "'; DROP TABLE resources; --", "%", "_", "a\\,b"] {
        let found = ids(app, &format!("Practitioner?name={}", enc(value)));
        assert!(found.is_empty(), "{value} matched {found:?}");
        assert!(
            ids(app, &format!("Practitioner?name:contains={}", enc(value))).is_empty(),
            ":contains {value}"
        );
    }
    assert_eq!(
        ids(app, &format!("Practitioner?name={}", enc("o'b"))).len(),
        1,
        "quotes are data"
    );
    assert_eq!(app.read("Practitioner")["total"], 1, "the table is still there");
}

// ---- index use and re-indexing ------------------------------------------------------------

pub(crate) fn plan_of(db_url: &str, query: &str, resource_type: &str) -> String {
    use providercard::search::{query as q, sql};
    let registry = registry();
    let store = providercard::store::Store::open(db_url, 1, registry.clone()).unwrap();
    let params = providercard::fhir::request::parse_query(query);
    let parsed = q::parse(
        &registry,
        resource_type,
        &params,
        &q::Limits {
            default_count: 50,
            max_count: 500,
        },
        true,
    )
    .unwrap();
    let statement = sql::page(&parsed);
    store
        .snapshot(|tx| tx.explain(&statement.sql, &statement.binds))
        .unwrap()
}

fn common_payer_queries_use_indexes(backend: Backend) {
    let app = TestApp::spawn(backend);
    load_examples(&app);
    for (resource_type, query) in [
        ("Practitioner", "identifier=http://hl7.org/fhir/sid/us-npi|1234567893"),
        ("Practitioner", "name=solo"),
        ("Location", "address=hartford"),
        ("Practitioner", "family:exact=Solo"),
        (
            "PractitionerRole",
            "specialty=207RC0000X&location.address-city=hartford&location.address-state=CT",
        ),
        ("PractitionerRole", "network=Organization/AcmeofCTStdNet"),
        ("PractitionerRole", "specialty:text=internal"),
        ("PractitionerRole", "network.name=acme"),
    ] {
        let plan = plan_of(&app.db.url, query, resource_type);
        match backend {
            Backend::Sqlite => {
                for line in plan.lines() {
                    // Scans of derived tables (`t`, `d`) and of materialized chains (`linked…`)
                    // read sets built through indexes.
                    let scans_a_table = line.contains("SCAN ")
                        && !line.contains("USING")
                        && !line.contains("SCAN t")
                        && !line.contains("SCAN d")
                        && !line.contains("SCAN linked")
                        && !line.contains("SUBQUERY");
                    assert!(!scans_a_table, "{resource_type}?{query} scans a table:\n{plan}");
                }
                assert!(plan.contains("search_"), "{plan}");
            }
            Backend::Postgres => {
                assert!(
                    !plan.contains("Seq Scan"),
                    "{resource_type}?{query} scans a table:\n{plan}"
                );
                assert!(plan.contains("Index"), "{plan}");
            }
        }
    }
}

/// A chained search's first page counts in the statement that selects it (the linked set is
/// computed once); later pages count apart. Either way `total` is every match.
fn a_chained_search_counts_every_match_on_each_page(app: &TestApp) {
    let city = format!("Town{}", new_id().replace('-', ""));
    let loc = new_id();
    app.put(
        &format!("Location/{loc}"),
        &json!({"resourceType": "Location", "id": loc, "name": "Clinic", "address": {"city": city, "state": "CT"}}),
    );
    let mut matching: Vec<String> = (0..3)
        .map(|n| {
            let prac = new_id();
            app.put(
                &format!("Practitioner/{prac}"),
                &with_id(practitioner(&format!("Counted{n}")), &prac),
            );
            let created: Value = app
                .post("PractitionerRole", &role(&prac, "207RC0000X", Some(&loc)))
                .json()
                .unwrap();
            created["id"].as_str().unwrap().to_string()
        })
        .collect();
    matching.sort();
    app.post("PractitionerRole", &role("other", "208D00000X", Some(&loc)));
    app.post("PractitionerRole", &role("other", "207RC0000X", None));

    let query = format!("PractitionerRole?specialty=207RC0000X&location.address-city={city}");
    let mut seen = Vec::new();
    let mut next = Some(app.url(&format!("{query}&_count=2")));
    while let Some(url) = next {
        let page: Value = app.client.get(&url).send().unwrap().json().unwrap();
        assert_eq!(page["total"], 3, "{url}");
        seen.extend(
            page["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["resource"]["id"].as_str().unwrap().to_string()),
        );
        next = next_link(&page);
    }
    assert_eq!(seen, matching, "two pages, every match once, in id order");

    let count_only: Value = app.get(&format!("{query}&_summary=count")).json().unwrap();
    assert_eq!(count_only["total"], 3);
    let empty: Value = app.get(&format!("{query}&_count=0")).json().unwrap();
    assert_eq!(empty["total"], 3, "a page of none still counts");
    let none: Value = app
        .get(&format!("PractitionerRole?specialty=0000&location.address-city={city}"))
        .json()
        .unwrap();
    assert_eq!(none["total"], 0);
    assert!(none.get("entry").is_none());
    let uncounted: Value = app.get(&format!("{query}&_total=none")).json().unwrap();
    assert!(uncounted.get("total").is_none());
}

/// A chain's linked set is read once through its own indexes, not probed once per candidate
/// the other criteria leave: PostgreSQL, misjudging that count, took 25 s at a million
/// providers for `specialty` + `location.address-state`.
fn a_chain_is_read_once_per_search(backend: Backend) {
    let app = TestApp::spawn(backend);
    load_examples(&app);
    let plan = plan_of(
        &app.db.url,
        "specialty=207RC0000X&location.address-state=CT",
        "PractitionerRole",
    );
    let materialized = match backend {
        Backend::Sqlite => "MATERIALIZE linked",
        Backend::Postgres => "CTE linked",
    };
    assert!(plan.contains(materialized), "{plan}");
}

/// The plans of searches, on each store (`on_both_stores!` above already made `sqlite` and
/// `postgres` here).
mod plans {
    use super::{a_chain_is_read_once_per_search, common_payer_queries_use_indexes};
    crate::on_both_backends!(a_chain_is_read_once_per_search, common_payer_queries_use_indexes);
}

#[test]
fn a_search_parameter_dropped_into_profiles_becomes_searchable_after_reindex() {
    // A profiles folder like the repository's, plus one new SearchParameter.
    let dir = tempfile::tempdir().unwrap();
    for entry in ["r4", "plan-net", "nucc"] {
        std::os::unix::fs::symlink(profiles_dir().join(entry), dir.path().join(entry)).unwrap();
    }
    std::fs::create_dir(dir.path().join("local")).unwrap();
    let db = std::sync::Arc::new(TestDatabase::new(Backend::Sqlite));
    let before = TestApp::serve(db.clone(), &[]);
    let mut p = practitioner("Gender");
    p["gender"] = json!("female");
    p["birthDate"] = json!("1970-05-01");
    before.post("Practitioner", &p);
    drop(before);
    std::fs::write(
        dir.path().join("local/SearchParameter-practitioner-birthdate.json"),
        json!({
            "resourceType": "SearchParameter", "id": "practitioner-birthdate", "url": "http://example.org/SearchParameter/practitioner-birthdate",
            "name": "birthdate", "status": "active", "code": "birthdate", "base": ["Practitioner"], "type": "date",
            "expression": "Practitioner.birthDate", "description": "A local parameter"
        }).to_string(),
    ).unwrap();
    let output = providercard(&db.url)
        .env("PROVIDERCARD_PROFILES", dir.path())
        .arg("reindex")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // The Practitioner, and the Provenance the server wrote for it (the audit trail).
    assert!(String::from_utf8_lossy(&output.stdout).contains("2 resource(s) reindexed"));
    let mut command = providercard(&db.url);
    command
        .env("PROVIDERCARD_PROFILES", dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let after = TestApp::start(command, db);
    assert_eq!(ids(&after, "Practitioner?birthdate=1970").len(), 1);
    assert!(ids(&after, "Practitioner?birthdate=1971").is_empty());
    let statement = after.read("metadata");
    let practitioner_params = statement["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Practitioner")
        .unwrap()["searchParam"]
        .clone();
    assert!(
        practitioner_params
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "birthdate"),
        "and the CapabilityStatement lists it"
    );
    let _ = Path::new("");
}

/// The Plan-Net parameters no IG example has a value for, each with a resource that does.
fn parameters_the_examples_do_not_carry_find_and_exclude(app: &TestApp) {
    let reference = |t: &str| json!({"reference": format!("{t}/target-1")});
    let endpoint = json!({
        "resourceType": "Endpoint", "status": "active", "address": "https://example.org/fhir",
        "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
        "payloadType": [{"text": "any"}], "managingOrganization": reference("Organization"),
    });
    let delivery = json!([{
        "url": "http://hl7.org/fhir/us/davinci-pdex-plan-net/StructureDefinition/delivery-method",
        "extension": [{"url": "type", "valueCodeableConcept": coded("http://hl7.org/fhir/us/davinci-pdex-plan-net/CodeSystem/DeliveryMethodCS", "virtual", "Virtual")}]
    }]);
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        ("Endpoint", "organization", endpoint, "Organization/target-1"),
        (
            "HealthcareService",
            "coverage-area",
            json!({"resourceType": "HealthcareService", "coverageArea": [reference("Location")]}),
            "Location/target-1",
        ),
        (
            "HealthcareService",
            "delivery-method",
            json!({"resourceType": "HealthcareService", "extension": delivery}),
            "virtual",
        ),
        (
            "HealthcareService",
            "endpoint",
            json!({"resourceType": "HealthcareService", "endpoint": [reference("Endpoint")]}),
            "Endpoint/target-1",
        ),
        (
            "HealthcareService",
            "service-type",
            json!({"resourceType": "HealthcareService", "type": [coded("http://example.org/types", "dental", "Dental")]}),
            "dental",
        ),
        (
            "InsurancePlan",
            "coverage-area",
            json!({"resourceType": "InsurancePlan", "coverageArea": [reference("Location")]}),
            "Location/target-1",
        ),
        (
            "InsurancePlan",
            "administered-by",
            json!({"resourceType": "InsurancePlan", "administeredBy": reference("Organization")}),
            "Organization/target-1",
        ),
        (
            "InsurancePlan",
            "identifier",
            json!({"resourceType": "InsurancePlan", "identifier": [{"system": "http://example.org/plans", "value": "GOLD-1"}]}),
            "http://example.org/plans|GOLD-1",
        ),
        (
            "Location",
            "partof",
            json!({"resourceType": "Location", "name": "Suite 2", "partOf": reference("Location")}),
            "Location/target-1",
        ),
        (
            "Location",
            "endpoint",
            json!({"resourceType": "Location", "name": "Suite 3", "endpoint": [reference("Endpoint")]}),
            "Endpoint/target-1",
        ),
        (
            "Organization",
            "coverage-area",
            json!({"resourceType": "Organization", "name": "Covered", "extension": [{
            "url": "http://hl7.org/fhir/us/davinci-pdex-plan-net/StructureDefinition/location-reference", "valueReference": reference("Location")}]}),
            "Location/target-1",
        ),
        (
            "Organization",
            "partof",
            json!({"resourceType": "Organization", "name": "Branch", "partOf": reference("Organization")}),
            "Organization/target-1",
        ),
        (
            "Organization",
            "endpoint",
            json!({"resourceType": "Organization", "name": "Connected", "endpoint": [reference("Endpoint")]}),
            "Endpoint/target-1",
        ),
        (
            "OrganizationAffiliation",
            "endpoint",
            json!({"resourceType": "OrganizationAffiliation", "endpoint": [reference("Endpoint")]}),
            "Endpoint/target-1",
        ),
        (
            "OrganizationAffiliation",
            "service",
            json!({"resourceType": "OrganizationAffiliation", "healthcareService": [reference("HealthcareService")]}),
            "HealthcareService/target-1",
        ),
        (
            "PractitionerRole",
            "service",
            json!({"resourceType": "PractitionerRole", "healthcareService": [reference("HealthcareService")]}),
            "HealthcareService/target-1",
        ),
        (
            "PractitionerRole",
            "endpoint",
            json!({"resourceType": "PractitionerRole", "endpoint": [reference("Endpoint")]}),
            "Endpoint/target-1",
        ),
    ];
    for (resource_type, param, resource, value) in cases {
        let created = app.post(resource_type, &resource);
        assert_eq!(created.status(), 201, "{resource_type}: {}", created.text().unwrap());
        let id = created.json::<Value>().unwrap()["id"].as_str().unwrap().to_string();
        assert_eq!(
            ids(app, &format!("{resource_type}?{param}={}", enc(value))),
            [id.clone()],
            "{resource_type}?{param}={value}"
        );
        let other = if value.contains("target-1") {
            value.replace("target-1", "target-2")
        } else {
            format!("{value}-not")
        };
        assert!(
            ids(app, &format!("{resource_type}?{param}={}", enc(&other))).is_empty(),
            "{resource_type}?{param}={other}"
        );
    }
}

#[test]
fn the_capability_statement_lists_every_search_parameter_and_include() {
    let app = TestApp::spawn(Backend::Sqlite);
    let statement = app.read("metadata");
    assert_eq!(
        statement["instantiates"][0],
        "http://hl7.org/fhir/us/davinci-pdex-plan-net/CapabilityStatement/plan-net"
    );
    let registry = registry();
    let plan_net: Value = serde_json::from_str(
        &std::fs::read_to_string(profiles_dir().join("plan-net/CapabilityStatement-plan-net.json")).unwrap(),
    )
    .unwrap();
    for required in plan_net["rest"][0]["resource"].as_array().unwrap() {
        let t = required["type"].as_str().unwrap();
        let ours = statement["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == t)
            .unwrap_or_else(|| panic!("{t}"));
        for p in required["searchParam"].as_array().into_iter().flatten() {
            let listed = ours["searchParam"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["name"] == p["name"]);
            let listed = listed.unwrap_or_else(|| panic!("{t}:{} listed", p["name"]));
            assert_eq!(listed["type"], p["type"], "{t}:{}", p["name"]);
            assert_eq!(
                listed["definition"],
                registry.get(t, p["name"].as_str().unwrap()).unwrap().url.as_str()
            );
        }
        for (key, ours_key) in [
            ("searchInclude", "searchInclude"),
            ("searchRevInclude", "searchRevInclude"),
        ] {
            for value in required[key].as_array().into_iter().flatten() {
                let listed = ours[ours_key].as_array().unwrap();
                assert!(listed.contains(value), "{t} {key} {value}");
            }
        }
    }
}

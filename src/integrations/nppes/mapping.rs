//! An NPPES record onto Plan-Net resources. The provider's own data wins: NPPES only fills
//! elements the resource leaves empty, and where both sides hold a value that differs the
//! difference is reported as a [`Discrepancy`], never written over.

use serde_json::{json, Map, Value};

use super::model::{Address, Gender, NppesRecord};
use super::taxonomy::{NuccCodeSet, NUCC_SYSTEM};

pub const PLANNET_PRACTITIONER_ROLE: &str =
    "http://hl7.org/fhir/us/davinci-pdex-plan-net/StructureDefinition/plannet-PractitionerRole";
pub(crate) const CONTACT_ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/contactentity-type";

/// One element on which the resource and NPPES disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discrepancy {
    /// FHIRPath-like location in the resource, e.g. `Practitioner.name[0].family`.
    pub element: String,
    pub provider_value: String,
    pub nppes_value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enrichment {
    /// The elements filled from NPPES, e.g. `Practitioner.gender`.
    pub filled: Vec<String>,
    pub discrepancies: Vec<Discrepancy>,
}

impl Enrichment {
    pub fn is_empty(&self) -> bool {
        self.filled.is_empty() && self.discrepancies.is_empty()
    }
}

/// Fills a Practitioner's empty name, gender, work address, work phone and `active` from its
/// NPPES record, and reports where the two disagree.
pub fn enrich_practitioner(resource: &mut Value, record: &NppesRecord) -> Enrichment {
    let mut e = Enricher::new("Practitioner");
    let Some(fields) = resource.as_object_mut() else {
        return e.done();
    };
    if let Some(basic) = &record.basic {
        let nppes_name = HumanName {
            first: basic.first_name.as_deref(),
            middle: basic.middle_name.as_deref(),
            last: basic.last_name.as_deref(),
            prefix: basic.name_prefix.as_deref(),
            suffixes: [basic.name_suffix.as_deref(), basic.credential.as_deref()],
        };
        e.name(fields, "name", &nppes_name);
    }
    if let Some(gender) = record.gender() {
        let nppes = match gender {
            Gender::Female => "female",
            Gender::Male => "male",
        };
        match fields.get("gender") {
            None | Some(Value::Null) => e.fill(fields, "gender", json!(nppes)),
            Some(Value::String(provider)) if provider != nppes => e.differs("gender".to_string(), provider, nppes),
            Some(_) => {}
        }
    }
    e.contact_details(fields, record);
    e.active(fields, record);
    e.done()
}

/// Fills an Organization's empty name, address, phone, `active` and administrative contact
/// (the NPPES authorized official), and reports where the two disagree.
pub fn enrich_organization(resource: &mut Value, record: &NppesRecord) -> Enrichment {
    let mut e = Enricher::new("Organization");
    let Some(fields) = resource.as_object_mut() else {
        return e.done();
    };
    let basic = record.basic.clone().unwrap_or_default();
    if let Some(nppes) = basic.organization_name.as_deref() {
        match fields.get("name") {
            None | Some(Value::Null) => e.fill(fields, "name", json!(nppes)),
            Some(Value::String(provider)) if !same_text(provider, nppes) => {
                e.differs("name".to_string(), provider, nppes)
            }
            Some(_) => {}
        }
    }
    e.contact_details(fields, record);
    e.active(fields, record);
    let official = HumanName {
        first: basic.authorized_official_first_name.as_deref(),
        middle: basic.authorized_official_middle_name.as_deref(),
        last: basic.authorized_official_last_name.as_deref(),
        prefix: basic.authorized_official_name_prefix.as_deref(),
        suffixes: [None, basic.authorized_official_credential.as_deref()],
    };
    if is_empty(fields.get("contact")) && official.last.is_some() {
        let title = basic.authorized_official_title_or_position.as_deref();
        let mut contact = json!({
            "purpose": {
                "coding": [{"system": CONTACT_ENTITY_TYPE, "code": "ADMIN", "display": "Administrative"}],
                "text": match title {
                    Some(title) => format!("Authorized official: {title}"),
                    None => "Authorized official".to_string(),
                },
            },
            "name": official.to_fhir(),
        });
        if let Some(phone) = basic.authorized_official_telephone_number.as_deref() {
            contact["telecom"] = json!([{"system": "phone", "value": format_phone(phone), "use": "work"}]);
        }
        e.fill(fields, "contact", json!([contact]));
    }
    e.done()
}

/// One CodeableConcept per distinct NPPES taxonomy, the primary first, displayed as NUCC
/// displays it (NPPES's own description for a code this NUCC release does not hold).
pub fn specialty_codings(record: &NppesRecord, codes: &NuccCodeSet) -> Vec<Value> {
    record
        .distinct_taxonomies()
        .into_iter()
        .filter_map(|t| {
            let code = t.code.as_deref()?;
            let display = codes.display(code).or_else(|| t.desc.clone());
            let mut coding = json!({"system": NUCC_SYSTEM, "code": code});
            if let Some(display) = display {
                coding["display"] = json!(display);
            }
            Some(json!({"coding": [coding]}))
        })
        .collect()
}

/// A Plan-Net PractitionerRole for the practitioner `practitioner_ref` (e.g.
/// "Practitioner/123") with its NPPES specialties and practice-location phone.
///
/// The profile requires `active`, one of practitioner/organization/healthcareService/location,
/// and (US Core pd-1) a telecom or an endpoint: the LOCATION phone is the telecom, so a record
/// without one gives a role that needs contact details before it conforms. The `newpatients`
/// (0..*) and `network-reference` (0..1) extensions are optional and NPPES says nothing about
/// new patients or networks, so neither is set rather than guessed; nor is `code` (NPPES has no
/// role codes). The `specialty` binding is required to IndividualAndGroupSpecialtiesVS, which
/// lists an older NUCC release: a code NUCC added since is not in it, and a role holding one
/// will not conform until the IG catches up.
pub fn practitioner_role_for(practitioner_ref: &str, record: &NppesRecord, codes: &NuccCodeSet) -> Value {
    let mut role = json!({
        "resourceType": "PractitionerRole",
        "meta": {"profile": [PLANNET_PRACTITIONER_ROLE]},
        "active": record.is_active(),
        "practitioner": {"reference": practitioner_ref},
    });
    if let Some(phone) = record.location_address().and_then(|a| a.telephone_number.as_deref()) {
        role["telecom"] = json!([{"system": "phone", "value": format_phone(phone), "use": "work"}]);
    }
    let specialties = specialty_codings(record, codes);
    if !specialties.is_empty() {
        role["specialty"] = Value::Array(specialties);
    }
    role
}

/// Adds the NPPES specialties a role lacks (by NUCC code), keeping every specialty it has;
/// returns the codes added.
pub fn merge_specialties(role: &mut Value, record: &NppesRecord, codes: &NuccCodeSet) -> Vec<String> {
    let Some(fields) = role.as_object_mut() else {
        return Vec::new();
    };
    if is_empty(fields.get("specialty")) {
        fields.insert("specialty".to_string(), json!([]));
    }
    let Some(existing) = fields.get_mut("specialty").and_then(Value::as_array_mut) else {
        return Vec::new();
    };
    let has = |existing: &[Value], code: &str| {
        existing.iter().any(|concept| {
            concept["coding"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["system"] == NUCC_SYSTEM && c["code"] == code)
        })
    };
    let mut added = Vec::new();
    for concept in specialty_codings(record, codes) {
        let code = concept["coding"][0]["code"].as_str().unwrap_or_default().to_string();
        if !has(existing, &code) {
            existing.push(concept);
            added.push(code);
        }
    }
    if existing.is_empty() {
        fields.remove("specialty");
    }
    added
}

pub(crate) struct HumanName<'a> {
    pub(crate) first: Option<&'a str>,
    pub(crate) middle: Option<&'a str>,
    pub(crate) last: Option<&'a str>,
    pub(crate) prefix: Option<&'a str>,
    /// Name suffix ("JR.") then credential ("MD"), as FHIR puts both in `suffix`.
    pub(crate) suffixes: [Option<&'a str>; 2],
}

impl HumanName<'_> {
    pub(crate) fn to_fhir(&self) -> Value {
        let mut name = Map::new();
        name.insert("use".to_string(), json!("official"));
        if let Some(last) = self.last {
            name.insert("family".to_string(), json!(last));
        }
        let given: Vec<&str> = [self.first, self.middle].into_iter().flatten().collect();
        if !given.is_empty() {
            name.insert("given".to_string(), json!(given));
        }
        if let Some(prefix) = self.prefix {
            name.insert("prefix".to_string(), json!([prefix]));
        }
        let suffixes: Vec<&str> = self.suffixes.into_iter().flatten().collect();
        if !suffixes.is_empty() {
            name.insert("suffix".to_string(), json!(suffixes));
        }
        Value::Object(name)
    }
}

struct Enricher {
    resource_type: &'static str,
    out: Enrichment,
}

impl Enricher {
    fn new(resource_type: &'static str) -> Enricher {
        Enricher {
            resource_type,
            out: Enrichment::default(),
        }
    }

    fn done(self) -> Enrichment {
        self.out
    }

    fn fill(&mut self, fields: &mut Map<String, Value>, element: &str, value: Value) {
        fields.insert(element.to_string(), value);
        self.out.filled.push(format!("{}.{element}", self.resource_type));
    }

    fn differs(&mut self, element: String, provider: &str, nppes: &str) {
        self.out.discrepancies.push(Discrepancy {
            element: format!("{}.{element}", self.resource_type),
            provider_value: provider.to_string(),
            nppes_value: nppes.to_string(),
        });
    }

    /// Compares one text element when both sides have it.
    fn compare(
        &mut self,
        element: String,
        provider: Option<&Value>,
        nppes: Option<&str>,
        same: fn(&str, &str) -> bool,
    ) {
        if let (Some(provider), Some(nppes)) = (provider.and_then(Value::as_str), nppes) {
            if !same(provider, nppes) {
                self.differs(element, provider, nppes);
            }
        }
    }

    fn name(&mut self, fields: &mut Map<String, Value>, element: &str, nppes: &HumanName) {
        if nppes.last.is_none() && nppes.first.is_none() {
            return;
        }
        if is_empty(fields.get(element)) {
            self.fill(fields, element, json!([nppes.to_fhir()]));
            return;
        }
        let Some(names) = fields.get(element).and_then(Value::as_array) else {
            return;
        };
        // The official name is the one NPPES holds; without one, the first.
        let Some((i, name)) = names
            .iter()
            .enumerate()
            .find(|(_, n)| n["use"] == "official")
            .or_else(|| names.iter().enumerate().find(|(_, n)| n["use"].is_null()))
            .or_else(|| names.iter().enumerate().next())
        else {
            return;
        };
        let name = name.clone();
        self.compare(
            format!("{element}[{i}].family"),
            name.get("family"),
            nppes.last,
            same_text,
        );
        self.compare(
            format!("{element}[{i}].given[0]"),
            name["given"].get(0),
            nppes.first,
            same_text,
        );
        self.compare(
            format!("{element}[{i}].given[1]"),
            name["given"].get(1),
            nppes.middle,
            same_given,
        );
    }

    /// The LOCATION address and its phone.
    fn contact_details(&mut self, fields: &mut Map<String, Value>, record: &NppesRecord) {
        let Some(location) = record.location_address() else {
            return;
        };
        if location.address_1.is_some() || location.city.is_some() {
            if is_empty(fields.get("address")) {
                self.fill(fields, "address", json!([fhir_address(location)]));
            } else if let Some((i, address)) = work_entry(fields.get("address"), |_| true) {
                let nppes_lines = [location.address_1.as_deref(), location.address_2.as_deref()];
                for (n, nppes_line) in nppes_lines.into_iter().enumerate() {
                    self.compare(
                        format!("address[{i}].line[{n}]"),
                        address["line"].get(n),
                        nppes_line,
                        same_text,
                    );
                }
                self.compare(
                    format!("address[{i}].city"),
                    address.get("city"),
                    location.city.as_deref(),
                    same_text,
                );
                self.compare(
                    format!("address[{i}].state"),
                    address.get("state"),
                    location.state.as_deref(),
                    same_text,
                );
                let postal_code = location.postal_code.as_deref().map(format_postal_code);
                self.compare(
                    format!("address[{i}].postalCode"),
                    address.get("postalCode"),
                    postal_code.as_deref(),
                    same_postal_code,
                );
            }
        }
        if let Some(phone) = location.telephone_number.as_deref() {
            let phone = format_phone(phone);
            match work_entry(fields.get("telecom"), |t| t["system"] == "phone") {
                None => {
                    let entry = json!({"system": "phone", "value": phone, "use": "work"});
                    match fields.get_mut("telecom").and_then(Value::as_array_mut) {
                        Some(telecom) => {
                            telecom.push(entry);
                            self.out.filled.push(format!("{}.telecom", self.resource_type));
                        }
                        None => self.fill(fields, "telecom", json!([entry])),
                    }
                }
                Some((i, provider)) => self.compare(
                    format!("telecom[{i}].value"),
                    provider.get("value"),
                    Some(&phone),
                    same_phone,
                ),
            }
        }
    }

    fn active(&mut self, fields: &mut Map<String, Value>, record: &NppesRecord) {
        let nppes = record.is_active();
        match fields.get("active") {
            None | Some(Value::Null) => self.fill(fields, "active", json!(nppes)),
            Some(Value::Bool(provider)) if *provider != nppes => {
                self.differs("active".to_string(), &provider.to_string(), &nppes.to_string())
            }
            Some(_) => {}
        }
    }
}

/// An absent, null or empty-array element.
fn is_empty(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Array(items)) => items.is_empty(),
        Some(_) => false,
    }
}

/// (index, entry) of the first entry of an address or telecom list that passes `keep` and is
/// for work (or says nothing of its use): NPPES holds practice locations, not homes.
fn work_entry(list: Option<&Value>, keep: impl Fn(&Value) -> bool) -> Option<(usize, Value)> {
    let list = list?.as_array()?;
    let candidates = || list.iter().enumerate().filter(|(_, v)| keep(v));
    candidates()
        .find(|(_, v)| v["use"] == "work")
        .or_else(|| candidates().find(|(_, v)| v["use"].is_null()))
        .map(|(i, v)| (i, v.clone()))
}

fn fhir_address(a: &Address) -> Value {
    let mut address = Map::new();
    address.insert("use".to_string(), json!("work"));
    address.insert("type".to_string(), json!("physical"));
    let lines: Vec<&str> = [a.address_1.as_deref(), a.address_2.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if !lines.is_empty() {
        address.insert("line".to_string(), json!(lines));
    }
    for (key, value) in [
        ("city", a.city.clone()),
        ("state", a.state.clone()),
        ("postalCode", a.postal_code.as_deref().map(format_postal_code)),
        ("country", a.country_code.clone()),
    ] {
        if let Some(value) = value {
            address.insert(key.to_string(), json!(value));
        }
    }
    Value::Object(address)
}

/// NPPES writes ZIP+4 as nine bare digits; FHIR (US Core) writes 12345-6789.
pub(crate) fn format_postal_code(code: &str) -> String {
    if code.len() == 9 && code.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}", &code[..5], &code[5..])
    } else {
        code.to_string()
    }
}

/// NPPES mostly writes NNN-NNN-NNNN, but the authorized official's number comes as ten bare digits.
pub(crate) fn format_phone(phone: &str) -> String {
    if phone.len() == 10 && phone.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &phone[..3], &phone[3..6], &phone[6..])
    } else {
        phone.to_string()
    }
}

/// Case, punctuation and spacing aside ("JANE" is "Jane", "Harbor Health, Inc." is "HARBOR HEALTH INC").
fn same_text(a: &str, b: &str) -> bool {
    let normal = |s: &str| {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
    };
    normal(a) == normal(b)
}

/// A middle initial agrees with the middle name it begins.
fn same_given(a: &str, b: &str) -> bool {
    let initial = |s: &str| s.trim().trim_end_matches('.').chars().count() == 1;
    if initial(a) || initial(b) {
        let first = |s: &str| s.trim().chars().next().map(|c| c.to_lowercase().to_string());
        first(a) == first(b)
    } else {
        same_text(a, b)
    }
}

/// ZIP codes agree on their first five digits when one side has no +4.
fn same_postal_code(a: &str, b: &str) -> bool {
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let (a, b) = (digits(a), digits(b));
    if a.len() == 5 || b.len() == 5 {
        a.get(..5) == b.get(..5)
    } else {
        a == b
    }
}

/// The same ten digits, whatever the punctuation or a leading country code 1.
fn same_phone(a: &str, b: &str) -> bool {
    let digits = |s: &str| {
        let d: String = s.chars().filter(char::is_ascii_digit).collect();
        match d.strip_prefix('1') {
            Some(rest) if d.len() == 11 => rest.to_string(),
            _ => d,
        }
    };
    digits(a) == digits(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::nppes::model::RegistryAnswer;
    use std::path::Path;
    use std::sync::OnceLock;

    fn codes() -> &'static NuccCodeSet {
        static CODES: OnceLock<NuccCodeSet> = OnceLock::new();
        CODES.get_or_init(|| {
            NuccCodeSet::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/nucc/nucc_taxonomy_251.csv"))
                .unwrap()
        })
    }

    fn record(json: Value) -> NppesRecord {
        let answer = json!({"result_count": 1, "results": [json]});
        match RegistryAnswer::parse(answer.to_string().as_bytes()).unwrap() {
            RegistryAnswer::Results(mut records) => records.remove(0),
            other => panic!("{other:?}"),
        }
    }

    fn jane() -> NppesRecord {
        record(json!({
            "number": "1234567893", "enumeration_type": "NPI-1",
            "basic": {"first_name": "JANE", "middle_name": "QUINN", "last_name": "DOE", "credential": "MD",
                      "name_prefix": "DR.", "name_suffix": "--", "sex": "F", "status": "A"},
            "addresses": [
                {"address_purpose": "MAILING", "address_1": "PO BOX 12", "city": "SPRINGFIELD", "state": "IL",
                 "postal_code": "627010012", "country_code": "US", "telephone_number": "217-555-0199"},
                {"address_purpose": "LOCATION", "address_1": "100 MAIN ST", "address_2": "SUITE 2",
                 "city": "SPRINGFIELD", "state": "IL", "postal_code": "627010001", "country_code": "US",
                 "telephone_number": "217-555-0101"}],
            "taxonomies": [
                {"code": "207R00000X", "desc": "Internal Medicine", "primary": false, "state": "IL", "license": "1"},
                {"code": "2085R0202X", "desc": "Radiology, Diagnostic Radiology", "primary": true, "state": "IL",
                 "license": "1"},
                {"code": "207R00000X", "desc": "Internal Medicine", "primary": false, "state": "MO", "license": "2"}]
        }))
    }

    fn filled(e: &Enrichment) -> Vec<&str> {
        e.filled.iter().map(String::as_str).collect()
    }

    fn discrepancy(element: &str, provider: &str, nppes: &str) -> Discrepancy {
        Discrepancy {
            element: element.to_string(),
            provider_value: provider.to_string(),
            nppes_value: nppes.to_string(),
        }
    }

    #[test]
    fn fills_an_empty_practitioner() {
        let mut practitioner = json!({"resourceType": "Practitioner", "name": []});
        let e = enrich_practitioner(&mut practitioner, &jane());
        assert_eq!(
            filled(&e),
            [
                "Practitioner.name",
                "Practitioner.gender",
                "Practitioner.address",
                "Practitioner.telecom",
                "Practitioner.active"
            ]
        );
        assert!(e.discrepancies.is_empty());
        assert_eq!(
            practitioner,
            json!({
                "resourceType": "Practitioner",
                "name": [{"use": "official", "family": "DOE", "given": ["JANE", "QUINN"], "prefix": ["DR."],
                          "suffix": ["MD"]}],
                "gender": "female",
                "address": [{"use": "work", "type": "physical", "line": ["100 MAIN ST", "SUITE 2"],
                             "city": "SPRINGFIELD", "state": "IL", "postalCode": "62701-0001", "country": "US"}],
                "telecom": [{"system": "phone", "value": "217-555-0101", "use": "work"}],
                "active": true
            })
        );
    }

    #[test]
    fn never_overwrites_and_reports_what_differs() {
        let provider = json!({
            "resourceType": "Practitioner",
            "active": false,
            "name": [{"use": "usual", "given": ["Janie"]},
                     {"use": "official", "family": "Smith", "given": ["Jane", "R."]}],
            "gender": "male",
            "address": [{"use": "home", "line": ["9 Home Rd"], "city": "Peoria"},
                        {"use": "work", "line": ["200 Oak St", "Suite 2"], "city": "Springfield", "state": "MO",
                         "postalCode": "62702"}],
            "telecom": [{"system": "email", "value": "jane@example.org"},
                        {"system": "phone", "value": "(217) 555-0111", "use": "work"}]
        });
        let mut practitioner = provider.clone();
        let e = enrich_practitioner(&mut practitioner, &jane());
        assert_eq!(practitioner, provider, "nothing the provider gave is overwritten");
        assert!(e.filled.is_empty());
        assert_eq!(
            e.discrepancies,
            [
                discrepancy("Practitioner.name[1].family", "Smith", "DOE"),
                discrepancy("Practitioner.name[1].given[1]", "R.", "QUINN"),
                discrepancy("Practitioner.gender", "male", "female"),
                discrepancy("Practitioner.address[1].line[0]", "200 Oak St", "100 MAIN ST"),
                discrepancy("Practitioner.address[1].state", "MO", "IL"),
                discrepancy("Practitioner.address[1].postalCode", "62702", "62701-0001"),
                discrepancy("Practitioner.telecom[1].value", "(217) 555-0111", "217-555-0101"),
                discrepancy("Practitioner.active", "false", "true"),
            ]
        );
    }

    #[test]
    fn the_same_values_written_differently_are_not_discrepancies() {
        let mut practitioner = json!({
            "resourceType": "Practitioner",
            "active": true,
            "name": [{"family": "Doe", "given": ["Jane", "Q"]}],
            "gender": "female",
            "address": [{"line": ["100 Main St.", "Suite 2"], "city": "Springfield", "state": "il",
                         "postalCode": "62701"}],
            "telecom": [{"system": "phone", "value": "+1 217 555 0101"}]
        });
        let e = enrich_practitioner(&mut practitioner, &jane());
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn adds_a_work_phone_beside_other_telecoms() {
        let mut practitioner = json!({
            "resourceType": "Practitioner",
            "name": [{"family": "Doe", "given": ["Jane"]}],
            "telecom": [{"system": "email", "value": "jane@example.org"},
                        {"system": "phone", "value": "309-555-0000", "use": "home"}]
        });
        let e = enrich_practitioner(&mut practitioner, &jane());
        assert!(filled(&e).contains(&"Practitioner.telecom"));
        assert_eq!(practitioner["telecom"].as_array().unwrap().len(), 3);
        assert_eq!(practitioner["telecom"][1]["value"], "309-555-0000", "kept");
        assert_eq!(
            practitioner["telecom"][2],
            json!({"system": "phone", "value": "217-555-0101", "use": "work"})
        );
        assert!(e.discrepancies.is_empty(), "{e:?}");
    }

    #[test]
    fn fills_nothing_nppes_does_not_have() {
        let bare = record(json!({"number": "1234567893", "enumeration_type": "NPI-1",
                                 "basic": {"first_name": "JO", "last_name": "LEE", "status": "A"}}));
        let mut practitioner = json!({"resourceType": "Practitioner", "gender": "unknown"});
        let e = enrich_practitioner(&mut practitioner, &bare);
        assert_eq!(filled(&e), ["Practitioner.name", "Practitioner.active"]);
        assert!(e.discrepancies.is_empty());
        assert_eq!(
            practitioner["name"],
            json!([{"use": "official", "family": "LEE", "given": ["JO"]}])
        );
        assert_eq!(practitioner["gender"], "unknown");
        assert!(practitioner.get("address").is_none());
    }

    fn harbor() -> NppesRecord {
        record(json!({
            "number": "1437410099", "enumeration_type": "NPI-2",
            "basic": {"organization_name": "HARBOR FAMILY HEALTH, INC.", "status": "A",
                      "authorized_official_first_name": "MARIA", "authorized_official_last_name": "SILVA",
                      "authorized_official_middle_name": "--", "authorized_official_credential": "MBA",
                      "authorized_official_name_prefix": "MS.", "authorized_official_title_or_position": "CEO",
                      "authorized_official_telephone_number": "6175550141"},
            "addresses": [{"address_purpose": "LOCATION", "address_1": "900 CLINIC WAY", "city": "BOSTON",
                           "state": "MA", "postal_code": "02115", "country_code": "US",
                           "telephone_number": "617-555-0140"}],
            "other_names": [{"organization_name": "HARBOR HEALTH", "type": "Doing Business As", "code": "3"}]
        }))
    }

    #[test]
    fn fills_an_organization_and_its_authorized_official() {
        let mut organization = json!({"resourceType": "Organization"});
        let e = enrich_organization(&mut organization, &harbor());
        assert_eq!(
            filled(&e),
            [
                "Organization.name",
                "Organization.address",
                "Organization.telecom",
                "Organization.active",
                "Organization.contact"
            ]
        );
        assert_eq!(organization["name"], "HARBOR FAMILY HEALTH, INC.");
        assert_eq!(organization["address"][0]["postalCode"], "02115");
        assert_eq!(
            organization["contact"],
            json!([{
                "purpose": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/contactentity-type",
                                        "code": "ADMIN", "display": "Administrative"}],
                            "text": "Authorized official: CEO"},
                "name": {"use": "official", "family": "SILVA", "given": ["MARIA"], "prefix": ["MS."],
                         "suffix": ["MBA"]},
                "telecom": [{"system": "phone", "value": "617-555-0141", "use": "work"}]
            }])
        );
    }

    #[test]
    fn keeps_an_organizations_own_name_and_contact() {
        let provider = json!({
            "resourceType": "Organization",
            "name": "Harbor Health Center",
            "active": true,
            "contact": [{"name": {"text": "Front desk"}}],
            "address": [{"line": ["900 Clinic Way"], "city": "Boston", "state": "MA", "postalCode": "02115-0001"}]
        });
        let mut organization = provider.clone();
        let e = enrich_organization(&mut organization, &harbor());
        assert_eq!(filled(&e), ["Organization.telecom"]);
        assert_eq!(organization["contact"], provider["contact"]);
        assert_eq!(organization["name"], provider["name"]);
        assert_eq!(
            e.discrepancies,
            [discrepancy(
                "Organization.name",
                "Harbor Health Center",
                "HARBOR FAMILY HEALTH, INC."
            )]
        );
        // Punctuation and case are not differences.
        let mut organization = json!({"resourceType": "Organization", "name": "Harbor Family Health Inc"});
        assert!(enrich_organization(&mut organization, &harbor())
            .discrepancies
            .is_empty());
    }

    #[test]
    fn specialties_follow_nucc_primary_first_without_repeats() {
        let specialties = specialty_codings(&jane(), codes());
        assert_eq!(
            specialties,
            [
                json!({"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": "2085R0202X",
                                   "display": "Diagnostic Radiology Physician"}]}),
                json!({"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": "207R00000X",
                                   "display": "Internal Medicine Physician"}]}),
            ]
        );
        // A code this NUCC release does not hold keeps NPPES's description.
        let retired = record(json!({"number": "1234567893",
            "taxonomies": [{"code": "999ZZ0000X", "desc": "Retired Thing", "primary": true}]}));
        assert_eq!(
            specialty_codings(&retired, codes()),
            [json!({"coding": [{"system": NUCC_SYSTEM, "code": "999ZZ0000X", "display": "Retired Thing"}]})]
        );
    }

    #[test]
    fn builds_a_practitioner_role() {
        let role = practitioner_role_for("Practitioner/jane", &jane(), codes());
        assert_eq!(role["resourceType"], "PractitionerRole");
        assert_eq!(role["meta"]["profile"], json!([PLANNET_PRACTITIONER_ROLE]));
        assert_eq!(role["active"], true);
        assert_eq!(role["practitioner"], json!({"reference": "Practitioner/jane"}));
        assert_eq!(role["specialty"], json!(specialty_codings(&jane(), codes())));
        assert_eq!(
            role["telecom"],
            json!([{"system": "phone", "value": "217-555-0101", "use": "work"}])
        );
        assert!(role.get("extension").is_none(), "nothing NPPES does not say");
    }

    #[test]
    fn the_practitioner_role_conforms_to_plan_net() {
        use crate::validation::{definitions::Definitions, Validator};
        let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let definitions = Definitions::load(&profiles).unwrap();
        let fhirpath = std::sync::Arc::new(crate::fhirpath::FhirPath::new(&definitions));
        let validator = Validator::load(&profiles, &definitions, fhirpath).unwrap();
        let role = practitioner_role_for("Practitioner/jane", &jane(), codes());
        let report = validator.validate("PractitionerRole", &role, true, None);
        assert!(!report.has_errors(), "{report:?}");
        assert_eq!(report.conforms_to.as_deref(), Some(PLANNET_PRACTITIONER_ROLE));
        // The check has teeth: without `active`, or without any contact details, it does not conform.
        for element in ["active", "telecom"] {
            let mut lacking = role.clone();
            lacking.as_object_mut().unwrap().remove(element);
            let report = validator.validate("PractitionerRole", &lacking, true, None);
            assert!(report.has_errors(), "{element}");
        }
    }

    #[test]
    fn merging_adds_missing_specialties_and_removes_none() {
        let mut role = json!({
            "resourceType": "PractitionerRole",
            "specialty": [
                {"coding": [{"system": NUCC_SYSTEM, "code": "207R00000X"}], "text": "Internist"},
                {"coding": [{"system": "http://example.org/local", "code": "2085R0202X"}]}
            ]
        });
        let added = merge_specialties(&mut role, &jane(), codes());
        assert_eq!(
            added,
            ["2085R0202X"],
            "the same code in another system is not the NUCC one"
        );
        let specialty = role["specialty"].as_array().unwrap();
        assert_eq!(specialty.len(), 3);
        assert_eq!(specialty[0]["text"], "Internist", "kept as the provider wrote it");
        assert_eq!(specialty[2]["coding"][0]["code"], "2085R0202X");
        assert!(
            merge_specialties(&mut role, &jane(), codes()).is_empty(),
            "merging twice adds nothing"
        );

        let mut bare = json!({"resourceType": "PractitionerRole"});
        assert_eq!(
            merge_specialties(&mut bare, &jane(), codes()),
            ["2085R0202X", "207R00000X"]
        );
        let none = record(json!({"number": "1234567893"}));
        let mut untouched = json!({"resourceType": "PractitionerRole"});
        assert!(merge_specialties(&mut untouched, &none, codes()).is_empty());
        assert_eq!(untouched, json!({"resourceType": "PractitionerRole"}));
    }

    #[test]
    fn formats() {
        assert_eq!(format_postal_code("627010001"), "62701-0001");
        assert_eq!(format_postal_code("62701"), "62701");
        assert_eq!(format_postal_code("K1A0B1"), "K1A0B1");
        assert_eq!(format_phone("6175550141"), "617-555-0141");
        assert_eq!(format_phone("617-555-0141"), "617-555-0141");
        assert!(same_postal_code("62701", "62701-0001"));
        assert!(!same_postal_code("62701-0002", "62701-0001"));
        assert!(same_phone("1 (617) 555-0141", "617-555-0141"));
        assert!(!same_phone("617-555-0142", "617-555-0141"));
        assert!(same_given("Q.", "QUINN"));
        assert!(!same_given("R", "QUINN"));
    }
}

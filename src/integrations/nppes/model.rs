//! The NPI Registry API v2.1 answer, read tolerantly: the registry has changed shapes over the
//! years without changing its version (number as integer or string, epochs in seconds or
//! milliseconds, `gender` renamed `sex`, "--" for an absent name part) and answers refusals
//! with HTTP 200 and an `Errors` array. Unknown keys are ignored; nulls are absent values.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The registry's error number for an NPI that CMS deactivated.
pub const ERROR_DEACTIVATED: &str = "15";

#[derive(Debug, Clone, PartialEq)]
pub enum RegistryAnswer {
    Results(Vec<NppesRecord>),
    Errors(Vec<ApiError>),
}

impl RegistryAnswer {
    pub fn parse(bytes: &[u8]) -> Result<RegistryAnswer, serde_json::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(rename = "Errors", default, deserialize_with = "nullable")]
            errors: Option<Vec<ApiError>>,
            #[serde(default, deserialize_with = "nullable")]
            results: Option<Vec<Value>>,
            #[serde(default, deserialize_with = "nullable")]
            result_count: Option<Value>,
        }
        let raw: Raw = serde_json::from_slice(bytes)?;
        match (raw.errors, raw.results) {
            (Some(errors), _) => Ok(RegistryAnswer::Errors(errors)),
            (None, Some(results)) => Ok(RegistryAnswer::Results(
                results
                    .into_iter()
                    .map(NppesRecord::from_raw)
                    .collect::<Result<_, _>>()?,
            )),
            // `{"result_count": 0}` without `results` has been seen as an empty answer.
            (None, None) if raw.result_count.is_some() => Ok(RegistryAnswer::Results(Vec::new())),
            (None, None) => Err(serde::de::Error::custom(
                "neither `results` nor `Errors` in the NPI Registry answer",
            )),
        }
    }
}

/// One entry of the registry's `Errors` array.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiError {
    #[serde(default, deserialize_with = "text")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub field: Option<String>,
    /// Zero-padded ("07"), kept as sent.
    #[serde(default, deserialize_with = "text")]
    pub number: Option<String>,
}

impl ApiError {
    /// The error number without its zero padding, for comparisons.
    pub fn code(&self) -> Option<&str> {
        let n = self.number.as_deref()?.trim();
        let unpadded = n.trim_start_matches('0');
        Some(if unpadded.is_empty() && !n.is_empty() {
            "0"
        } else {
            unpadded
        })
    }

    pub fn is_deactivated(&self) -> bool {
        self.code() == Some(ERROR_DEACTIVATED)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let description = self.description.as_deref().unwrap_or("no description");
        match (&self.number, &self.field) {
            (Some(n), Some(field)) => write!(f, "error {n} on {field}: {description}"),
            (Some(n), None) => write!(f, "error {n}: {description}"),
            (None, Some(field)) => write!(f, "{field}: {description}"),
            (None, None) => f.write_str(description),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnumerationType {
    /// NPI-1: an individual.
    Individual,
    /// NPI-2: an organization.
    Organization,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Female,
    Male,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressPurpose {
    Location,
    Mailing,
    /// Any other value: kept rather than failing the whole record.
    Other,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NppesRecord {
    #[serde(deserialize_with = "number_text")]
    pub number: String,
    #[serde(default, deserialize_with = "text")]
    pub enumeration_type: Option<String>,
    /// Milliseconds since the epoch (the registry has sent integer seconds and string milliseconds).
    #[serde(default, deserialize_with = "epoch_ms")]
    pub created_epoch: Option<i64>,
    #[serde(default, deserialize_with = "epoch_ms")]
    pub last_updated_epoch: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    pub basic: Option<Basic>,
    #[serde(default, deserialize_with = "list")]
    pub addresses: Vec<Address>,
    #[serde(rename = "practiceLocations", default, deserialize_with = "list")]
    pub practice_locations: Vec<Address>,
    #[serde(default, deserialize_with = "list")]
    pub taxonomies: Vec<Taxonomy>,
    #[serde(default, deserialize_with = "list")]
    pub identifiers: Vec<OtherIdentifier>,
    #[serde(default, deserialize_with = "list")]
    pub other_names: Vec<OtherName>,
    #[serde(default, deserialize_with = "list")]
    pub endpoints: Vec<Endpoint>,
    /// The record exactly as the registry sent it (what the lookup cache keeps).
    #[serde(skip)]
    pub raw: Value,
}

impl NppesRecord {
    /// Reads one record of a `results` array, keeping its raw JSON.
    pub fn from_raw(raw: Value) -> Result<NppesRecord, serde_json::Error> {
        let mut record = NppesRecord::deserialize(&raw)?;
        record.raw = raw;
        Ok(record)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Basic {
    #[serde(deserialize_with = "name_part")]
    pub first_name: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub last_name: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub middle_name: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub credential: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub name_prefix: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub name_suffix: Option<String>,
    /// Older answers carry `name` (a copy of the full name) for individuals.
    #[serde(deserialize_with = "name_part")]
    pub name: Option<String>,
    #[serde(deserialize_with = "text")]
    pub gender: Option<String>,
    /// Newer answers say `sex` where older ones said `gender`.
    #[serde(deserialize_with = "text")]
    pub sex: Option<String>,
    #[serde(deserialize_with = "text")]
    pub sole_proprietor: Option<String>,
    #[serde(deserialize_with = "text")]
    pub status: Option<String>,
    #[serde(deserialize_with = "text")]
    pub enumeration_date: Option<String>,
    #[serde(deserialize_with = "text")]
    pub last_updated: Option<String>,
    #[serde(deserialize_with = "text")]
    pub reactivation_date: Option<String>,
    #[serde(deserialize_with = "text")]
    pub certification_date: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub organization_name: Option<String>,
    #[serde(deserialize_with = "text")]
    pub organizational_subpart: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub authorized_official_first_name: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub authorized_official_last_name: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub authorized_official_middle_name: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub authorized_official_name_prefix: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub authorized_official_credential: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub authorized_official_title_or_position: Option<String>,
    #[serde(deserialize_with = "text")]
    pub authorized_official_telephone_number: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(default)]
pub struct Address {
    #[serde(deserialize_with = "text")]
    pub address_purpose: Option<String>,
    #[serde(deserialize_with = "text")]
    pub address_type: Option<String>,
    #[serde(deserialize_with = "text")]
    pub address_1: Option<String>,
    #[serde(deserialize_with = "text")]
    pub address_2: Option<String>,
    #[serde(deserialize_with = "text")]
    pub city: Option<String>,
    #[serde(deserialize_with = "text")]
    pub state: Option<String>,
    /// 5 or 9 digits, no hyphen.
    #[serde(deserialize_with = "text")]
    pub postal_code: Option<String>,
    #[serde(deserialize_with = "text")]
    pub country_code: Option<String>,
    #[serde(deserialize_with = "text")]
    pub country_name: Option<String>,
    #[serde(deserialize_with = "text")]
    pub telephone_number: Option<String>,
    #[serde(deserialize_with = "text")]
    pub fax_number: Option<String>,
    /// Practice locations only.
    #[serde(deserialize_with = "text")]
    pub update_date: Option<String>,
}

impl Address {
    pub fn purpose(&self) -> Option<AddressPurpose> {
        let purpose = self.address_purpose.as_deref()?;
        Some(if purpose.eq_ignore_ascii_case("LOCATION") {
            AddressPurpose::Location
        } else if purpose.eq_ignore_ascii_case("MAILING") {
            AddressPurpose::Mailing
        } else {
            AddressPurpose::Other
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Taxonomy {
    #[serde(deserialize_with = "text")]
    pub code: Option<String>,
    #[serde(deserialize_with = "text")]
    pub desc: Option<String>,
    #[serde(deserialize_with = "flag")]
    pub primary: bool,
    #[serde(deserialize_with = "text")]
    pub state: Option<String>,
    #[serde(deserialize_with = "text")]
    pub license: Option<String>,
    /// "" or missing when the provider is in no group.
    #[serde(deserialize_with = "text")]
    pub taxonomy_group: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct OtherIdentifier {
    #[serde(deserialize_with = "text")]
    pub code: Option<String>,
    #[serde(deserialize_with = "text")]
    pub desc: Option<String>,
    #[serde(deserialize_with = "text")]
    pub identifier: Option<String>,
    #[serde(deserialize_with = "text")]
    pub issuer: Option<String>,
    #[serde(deserialize_with = "text")]
    pub state: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct OtherName {
    #[serde(deserialize_with = "text")]
    pub r#type: Option<String>,
    #[serde(deserialize_with = "text")]
    pub code: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub organization_name: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub first_name: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub last_name: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub middle_name: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub prefix: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub suffix: Option<String>,
    #[serde(deserialize_with = "name_part")]
    pub credential: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Endpoint {
    #[serde(deserialize_with = "text")]
    pub endpoint: Option<String>,
    #[serde(rename = "endpointType", deserialize_with = "text")]
    pub endpoint_type: Option<String>,
    #[serde(rename = "endpointTypeDescription", deserialize_with = "text")]
    pub endpoint_type_description: Option<String>,
    #[serde(rename = "endpointDescription", deserialize_with = "text")]
    pub endpoint_description: Option<String>,
    #[serde(deserialize_with = "text")]
    pub affiliation: Option<String>,
    #[serde(deserialize_with = "text")]
    pub use_description: Option<String>,
    #[serde(rename = "contentType", deserialize_with = "text")]
    pub content_type: Option<String>,
}

impl NppesRecord {
    pub fn enumeration(&self) -> Option<EnumerationType> {
        match self.enumeration_type.as_deref()?.trim() {
            "NPI-1" => Some(EnumerationType::Individual),
            "NPI-2" => Some(EnumerationType::Organization),
            _ => None,
        }
    }

    pub fn is_organization(&self) -> bool {
        match self.enumeration() {
            Some(kind) => kind == EnumerationType::Organization,
            // Without the type, an organization name is the tell.
            None => self.basic.as_ref().is_some_and(|b| b.organization_name.is_some()),
        }
    }

    fn address_for(&self, purpose: AddressPurpose) -> Option<&Address> {
        self.addresses.iter().find(|a| a.purpose() == Some(purpose))
    }

    /// The primary practice location (the address whose purpose is LOCATION).
    pub fn location_address(&self) -> Option<&Address> {
        self.address_for(AddressPurpose::Location)
    }

    pub fn mailing_address(&self) -> Option<&Address> {
        self.address_for(AddressPurpose::Mailing)
    }

    /// Secondary practice locations without the exact duplicates the registry sometimes sends.
    pub fn distinct_practice_locations(&self) -> Vec<&Address> {
        let mut out: Vec<&Address> = Vec::new();
        for location in &self.practice_locations {
            if !out.contains(&location) {
                out.push(location);
            }
        }
        out
    }

    pub fn gender(&self) -> Option<Gender> {
        let basic = self.basic.as_ref()?;
        match basic.sex.as_deref().or(basic.gender.as_deref())?.trim() {
            "F" | "f" => Some(Gender::Female),
            "M" | "m" => Some(Gender::Male),
            _ => None,
        }
    }

    pub fn primary_taxonomy(&self) -> Option<&Taxonomy> {
        self.taxonomies.iter().find(|t| t.primary && t.code.is_some())
    }

    /// One taxonomy per code (the registry repeats a code once per state license), the primary first.
    pub fn distinct_taxonomies(&self) -> Vec<&Taxonomy> {
        let mut out: Vec<&Taxonomy> = Vec::new();
        let primary = self.primary_taxonomy();
        for taxonomy in primary.into_iter().chain(&self.taxonomies) {
            let Some(code) = taxonomy.code.as_deref() else {
                continue;
            };
            if !out.iter().any(|t| t.code.as_deref() == Some(code)) {
                out.push(taxonomy);
            }
        }
        out
    }

    /// Whether the registry says the NPI is active ("A"); a missing status counts as active
    /// because the registry only displays NPIs in service.
    pub fn is_active(&self) -> bool {
        self.basic
            .as_ref()
            .and_then(|b| b.status.as_deref())
            .is_none_or(|s| s.trim().eq_ignore_ascii_case("A"))
    }
}

fn nullable<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A scalar as text: strings trimmed, blank strings absent, numbers and booleans written out.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_string())
        }
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

/// Name parts: the registry writes "--" for a part that has no value.
fn name_part<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(text(d)?.filter(|s| s.chars().any(|c| c != '-')))
}

fn number_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) if n.is_u64() => Ok(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        other => Err(serde::de::Error::custom(format!(
            "`number` is neither an integer nor a string: {other}"
        ))),
    }
}

fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::String(s) => matches!(s.trim(), "true" | "Y" | "y" | "True"),
        _ => false,
    })
}

/// Epochs came as integer seconds (older answers) and as strings of milliseconds (newer ones).
fn epoch_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    // Below this an integer is seconds: 10^11 s is year 5138, 10^11 ms is 1973.
    const SECONDS_BELOW: i64 = 100_000_000_000;
    let raw = match Value::deserialize(d)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    Ok(raw.map(|n| if n.abs() < SECONDS_BELOW { n * 1000 } else { n }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(json: &str) -> Vec<NppesRecord> {
        match RegistryAnswer::parse(json.as_bytes()).unwrap() {
            RegistryAnswer::Results(records) => records,
            other => panic!("not results: {other:?}"),
        }
    }

    fn errors(json: &str) -> Vec<ApiError> {
        match RegistryAnswer::parse(json.as_bytes()).unwrap() {
            RegistryAnswer::Errors(errors) => errors,
            other => panic!("not errors: {other:?}"),
        }
    }

    const STYLE_2019: &str = r#"{"result_count":1,"results":[{
        "enumeration_type":"NPI-1","number":1234567893,
        "last_updated_epoch":1183953600,"created_epoch":1117584000,
        "basic":{"name_prefix":"DR.","first_name":"JANE","last_name":"DOE","middle_name":"Q",
                 "credential":"M.D.","sole_proprietor":"NO","gender":"F",
                 "enumeration_date":"2005-06-01","last_updated":"2007-07-08","status":"A",
                 "name":"DOE JANE"},
        "other_names":[],
        "addresses":[
          {"country_code":"US","country_name":"United States","address_purpose":"MAILING","address_type":"DOM",
           "address_1":"PO BOX 12","address_2":"","city":"SPRINGFIELD","state":"IL","postal_code":"627010012",
           "telephone_number":"217-555-0100"},
          {"country_code":"US","country_name":"United States","address_purpose":"LOCATION","address_type":"DOM",
           "address_1":"100 MAIN ST","address_2":"SUITE 2","city":"SPRINGFIELD","state":"IL","postal_code":"62701",
           "telephone_number":"217-555-0101","fax_number":"217-555-0102"}],
        "taxonomies":[{"code":"207R00000X","desc":"Internal Medicine","primary":true,"state":"IL","license":"036-099999"}],
        "identifiers":[{"code":"05","desc":"MEDICAID","issuer":"","identifier":"12345","state":"IL"}]
    }]}"#;

    #[test]
    fn reads_the_2019_shape() {
        let r = &records(STYLE_2019)[0];
        assert_eq!(r.number, "1234567893");
        assert_eq!(r.enumeration(), Some(EnumerationType::Individual));
        assert!(!r.is_organization());
        assert_eq!(r.created_epoch, Some(1_117_584_000_000));
        assert_eq!(r.last_updated_epoch, Some(1_183_953_600_000));
        let basic = r.basic.as_ref().unwrap();
        assert_eq!(basic.first_name.as_deref(), Some("JANE"));
        assert_eq!(basic.name.as_deref(), Some("DOE JANE"));
        assert_eq!(basic.credential.as_deref(), Some("M.D."));
        assert_eq!(r.gender(), Some(Gender::Female));
        assert!(r.endpoints.is_empty());
        assert!(r.practice_locations.is_empty());
        // Order in the array does not decide which is which.
        assert_eq!(r.location_address().unwrap().address_1.as_deref(), Some("100 MAIN ST"));
        assert_eq!(
            r.location_address().unwrap().fax_number.as_deref(),
            Some("217-555-0102")
        );
        assert_eq!(r.mailing_address().unwrap().address_2, None);
        assert_eq!(r.mailing_address().unwrap().postal_code.as_deref(), Some("627010012"));
        assert_eq!(r.primary_taxonomy().unwrap().code.as_deref(), Some("207R00000X"));
        assert_eq!(r.identifiers[0].issuer, None);
        assert!(r.is_active());
    }

    const STYLE_2022: &str = r#"{"result_count":1,"results":[{
        "created_epoch":"1154563200000","enumeration_type":"NPI-1","last_updated_epoch":"1653955200000",
        "number":"1720377294",
        "addresses":[
          {"address_1":"1 HOSPITAL DR","address_purpose":"LOCATION","address_type":"DOM","city":"COLUMBIA",
           "country_code":"US","country_name":"United States","postal_code":"652120001","state":"MO",
           "telephone_number":"573-555-0110"},
          {"address_1":"1 HOSPITAL DR","address_purpose":"MAILING","address_type":"DOM","city":"COLUMBIA",
           "country_code":"US","country_name":"United States","postal_code":"652120001","state":"MO",
           "telephone_number":"573-555-0110"}],
        "practiceLocations":[],
        "basic":{"credential":"MD","enumeration_date":"2006-08-03","first_name":"JOHN","gender":"M",
                 "last_name":"ROE","last_updated":"2022-05-31","middle_name":"--","name_prefix":"--",
                 "name_suffix":"--","sole_proprietor":"NO","status":"A"},
        "taxonomies":[
          {"code":"2085R0202X","taxonomy_group":"","desc":"Radiology, Diagnostic Radiology","state":"MO",
           "license":"R1234","primary":false},
          {"code":"2085R0202X","taxonomy_group":"","desc":"Radiology, Diagnostic Radiology","state":"KS",
           "license":"K77","primary":true},
          {"code":"207R00000X","taxonomy_group":"","desc":"Internal Medicine","state":"MO",
           "license":"R1234","primary":false}],
        "identifiers":[{"code":"05","desc":"MEDICAID","issuer":null,"identifier":"998877","state":"MO"}],
        "endpoints":[],
        "other_names":[]
    }]}"#;

    #[test]
    fn reads_the_2022_shape() {
        let r = &records(STYLE_2022)[0];
        assert_eq!(r.number, "1720377294");
        assert_eq!(r.created_epoch, Some(1_154_563_200_000));
        assert_eq!(r.last_updated_epoch, Some(1_653_955_200_000));
        let basic = r.basic.as_ref().unwrap();
        assert_eq!(basic.middle_name, None, "\"--\" means absent");
        assert_eq!(basic.name_prefix, None);
        assert_eq!(basic.name_suffix, None);
        assert_eq!(basic.credential.as_deref(), Some("MD"));
        assert_eq!(r.gender(), Some(Gender::Male));
        assert_eq!(r.identifiers[0].issuer, None);
        assert_eq!(r.taxonomies[0].taxonomy_group, None);
        // The same code once per state license: one entry, the primary one first.
        let distinct: Vec<_> = r
            .distinct_taxonomies()
            .iter()
            .map(|t| (t.code.clone().unwrap(), t.state.clone().unwrap()))
            .collect();
        assert_eq!(
            distinct,
            vec![
                ("2085R0202X".to_string(), "KS".to_string()),
                ("207R00000X".to_string(), "MO".to_string())
            ]
        );
        assert_eq!(r.primary_taxonomy().unwrap().state.as_deref(), Some("KS"));
    }

    const STYLE_2025: &str = r#"{"result_count":1,"results":[{
        "created_epoch":"1311897600000","enumeration_type":"NPI-1","last_updated_epoch":"1735689600000",
        "number":"1568946812",
        "addresses":[
          {"address_1":"20 ELM ST","address_purpose":"LOCATION","address_type":"DOM","city":"AUSTIN",
           "country_code":"US","country_name":"United States","postal_code":"78701","state":"TX",
           "telephone_number":"512-555-0120","fax_number":null,"unexpected":"kept out"},
          {"address_1":"PO BOX 9","address_2":null,"address_purpose":"MAILING","address_type":"DOM","city":"AUSTIN",
           "country_code":"US","country_name":"United States","postal_code":"787010009","state":"TX",
           "telephone_number":null}],
        "practiceLocations":[
          {"address_1":"5 OAK AVE","address_purpose":"LOCATION","address_type":"DOM","city":"ROUND ROCK",
           "country_code":"US","country_name":"United States","postal_code":"78664","state":"TX",
           "telephone_number":"512-555-0130","update_date":"2024-03-01"},
          {"address_1":"5 OAK AVE","address_purpose":"LOCATION","address_type":"DOM","city":"ROUND ROCK",
           "country_code":"US","country_name":"United States","postal_code":"78664","state":"TX",
           "telephone_number":"512-555-0130","update_date":"2024-03-01"}],
        "basic":{"first_name":"ANA","last_name":"LIMA","sex":"F","credential":"NP","sole_proprietor":"YES",
                 "enumeration_date":"2011-07-29","last_updated":"2025-01-01","certification_date":"2025-01-01",
                 "status":"A","name_suffix":"--"},
        "taxonomies":[
          {"code":"363LF0000X","taxonomy_group":"193200000X - Multi-Specialty Group",
           "desc":"Nurse Practitioner, Family","state":"TX","license":null,"primary":true}],
        "identifiers":[],
        "endpoints":[{"endpointType":"DIRECT","endpointTypeDescription":"Direct Messaging Address",
                      "endpoint":"ana@direct.example.org","affiliation":"N","use":"DIRECT"}],
        "other_names":[]
    }]}"#;

    #[test]
    fn reads_the_2024_to_2026_shape() {
        let r = &records(STYLE_2025)[0];
        assert_eq!(r.gender(), Some(Gender::Female), "basic.sex");
        let basic = r.basic.as_ref().unwrap();
        assert_eq!(basic.certification_date.as_deref(), Some("2025-01-01"));
        assert_eq!(basic.reactivation_date, None);
        let t = r.primary_taxonomy().unwrap();
        assert_eq!(t.license, None);
        assert_eq!(t.taxonomy_group.as_deref(), Some("193200000X - Multi-Specialty Group"));
        assert_eq!(r.practice_locations.len(), 2);
        assert_eq!(r.distinct_practice_locations().len(), 1);
        assert_eq!(r.practice_locations[0].update_date.as_deref(), Some("2024-03-01"));
        assert_eq!(r.location_address().unwrap().fax_number, None);
        assert_eq!(r.mailing_address().unwrap().telephone_number, None);
        assert_eq!(r.endpoints[0].endpoint.as_deref(), Some("ana@direct.example.org"));
    }

    const ORGANIZATION: &str = r#"{"result_count":1,"results":[{
        "created_epoch":"1160006400000","enumeration_type":"NPI-2","last_updated_epoch":"1700006400000",
        "number":"1437410099",
        "addresses":[{"address_1":"900 CLINIC WAY","address_purpose":"LOCATION","address_type":"DOM",
           "city":"BOSTON","country_code":"US","country_name":"United States","postal_code":"021150001",
           "state":"MA","telephone_number":"617-555-0140"}],
        "practiceLocations":[],
        "basic":{"organization_name":"HARBOR FAMILY HEALTH, INC.","organizational_subpart":"NO",
                 "enumeration_date":"2006-10-05","last_updated":"2023-11-15","status":"A",
                 "authorized_official_first_name":"MARIA","authorized_official_last_name":"SILVA",
                 "authorized_official_middle_name":"--","authorized_official_credential":"MBA",
                 "authorized_official_name_prefix":"MS.","authorized_official_title_or_position":"CEO",
                 "authorized_official_telephone_number":"6175550141"},
        "taxonomies":[{"code":"261QF0400X","taxonomy_group":"",
           "desc":"Clinic/Center, Federally Qualified Health Center (FQHC)","state":"MA","license":"","primary":true}],
        "identifiers":[],"endpoints":[],
        "other_names":[{"organization_name":"HARBOR HEALTH","type":"Doing Business As","code":"3"}]
    }]}"#;

    #[test]
    fn reads_an_organization_with_its_authorized_official() {
        let r = &records(ORGANIZATION)[0];
        assert!(r.is_organization());
        assert_eq!(r.gender(), None);
        let basic = r.basic.as_ref().unwrap();
        assert_eq!(basic.organization_name.as_deref(), Some("HARBOR FAMILY HEALTH, INC."));
        assert_eq!(
            basic.authorized_official_telephone_number.as_deref(),
            Some("6175550141")
        );
        assert_eq!(basic.authorized_official_middle_name, None);
        assert_eq!(basic.authorized_official_title_or_position.as_deref(), Some("CEO"));
        assert_eq!(r.primary_taxonomy().unwrap().license, None, "blank license is absent");
        assert_eq!(r.other_names[0].r#type.as_deref(), Some("Doing Business As"));
        assert_eq!(r.other_names[0].organization_name.as_deref(), Some("HARBOR HEALTH"));
    }

    #[test]
    fn reads_errors_whatever_the_key_order() {
        let e = errors(
            r#"{"Errors":[
                {"description":"No valid search criteria","field":"generic","number":"04"},
                {"number":"07","field":"state","description":"Field state requires additional search criteria"}]}"#,
        );
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].code(), Some("4"));
        assert_eq!(e[1].number.as_deref(), Some("07"));
        assert_eq!(e[1].field.as_deref(), Some("state"));
        assert!(!e[0].is_deactivated());
        assert_eq!(
            e[1].to_string(),
            "error 07 on state: Field state requires additional search criteria"
        );
    }

    #[test]
    fn reads_the_deactivated_error() {
        let e = errors(
            r#"{"Errors":[{"description":"CMS deactivated NPI 1669463816. The provider can no longer use this NPI. Our public registry does not display provider information about NPIs that are not in service.","field":"number","number":"15"}]}"#,
        );
        assert_eq!(e.len(), 1);
        assert!(e[0].is_deactivated());
        assert!(e[0]
            .description
            .as_deref()
            .unwrap()
            .starts_with("CMS deactivated NPI 1669463816."));
    }

    #[test]
    fn reads_an_empty_answer() {
        assert!(records(r#"{"result_count":0,"results":[]}"#).is_empty());
        assert!(records(r#"{"result_count":0}"#).is_empty());
    }

    #[test]
    fn refuses_what_is_not_an_answer() {
        assert!(RegistryAnswer::parse(b"<html>busy</html>").is_err());
        assert!(RegistryAnswer::parse(b"{}").is_err());
        assert!(
            RegistryAnswer::parse(br#"{"results":[{"basic":{}}]}"#).is_err(),
            "a record needs its number"
        );
        assert!(RegistryAnswer::parse(br#"{"results":[{"number":null}]}"#).is_err());
    }
}

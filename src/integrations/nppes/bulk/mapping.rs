//! NPPES Data Dissemination rows onto Plan-Net resources: pure functions, no store and no I/O.
//!
//! One `npidata_pfile` row gives, for an individual (NPI-1), a Practitioner, the Location of its
//! primary practice address and one PractitionerRole; for an organization (NPI-2), an
//! Organization and the Location of its practice address. The companion files add secondary
//! Locations, Endpoints and aliases, merged onto their owner by idempotent functions.
//!
//! Ids come from the NPI alone (`npi-1234567893`, `npi-1234567893-location`,
//! `npi-1234567893-role`, …) so a re-import of the same NPI updates its resources rather than
//! adding new ones. A resource claims its Plan-Net profile only when the data it was built
//! from is enough for it to conform; a deactivated NPI's resources are withdrawn
//! ([`crate::fhir::withdrawal::mark_withdrawn`]) and claim none.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use super::row::{
    AuthorizedOfficial, BulkAddress, BulkIdentifier, BulkTaxonomy, EndpointRow, EntityType, OtherNameRow, ProviderRow,
    SecondaryLocationRow,
};
use crate::fhir::withdrawal::mark_withdrawn;
use crate::integrations::nppes::mapping::{format_phone, format_postal_code, HumanName, CONTACT_ENTITY_TYPE};
use crate::integrations::nppes::{Npi, NuccCodeSet, NPI_SYSTEM, NUCC_SYSTEM};
use crate::validation::terminology::{Membership, Terminology};

const PLAN_NET: &str = "http://hl7.org/fhir/us/davinci-pdex-plan-net/StructureDefinition/";
/// The required binding of `PractitionerRole.specialty`.
pub const SPECIALTY_VALUE_SET: &str =
    "http://hl7.org/fhir/us/davinci-pdex-plan-net/ValueSet/IndividualAndGroupSpecialtiesVS";
/// A NUCC taxonomy NPPES lists that `PractitionerRole.specialty` cannot carry as it is (see
/// [`provider_resources`]); also every taxonomy of an Organization, which Plan-Net gives no
/// specialty element. `valueCoding`, NUCC system.
pub const NPPES_TAXONOMY_EXTENSION: &str = "https://providercard.dev/fhir/StructureDefinition/nppes-taxonomy";
/// Namespace of the NPPES "other provider identifiers": `…/{type code}[/{state}]`.
pub const OTHER_IDENTIFIER_SYSTEM: &str = "https://providercard.dev/fhir/sid/nppes-other-identifier";
/// NPPES endpoint types no endpoint-connection-type code says (CONNECT, SOAP, OTHERS).
pub const NPPES_ENDPOINT_TYPE_SYSTEM: &str = "https://providercard.dev/fhir/CodeSystem/nppes-endpoint-type";
const PRACTITIONER_QUALIFICATION: &str =
    "http://hl7.org/fhir/us/davinci-pdex-plan-net/StructureDefinition/practitioner-qualification";
const ORG_TYPE_SYSTEM: &str = "http://hl7.org/fhir/us/davinci-pdex-plan-net/CodeSystem/OrgTypeCS";
const CONNECTION_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type";
const PLAN_NET_CONNECTION_TYPE_SYSTEM: &str =
    "http://hl7.org/fhir/us/davinci-pdex-plan-net/CodeSystem/EndpointConnectionTypeCS";
const PAYLOAD_TYPE_SYSTEM: &str = "http://hl7.org/fhir/us/davinci-pdex-plan-net/CodeSystem/EndpointPayloadTypeCS";
const USPS_SYSTEM: &str = "https://www.usps.com/";

/// One resource to write, under its deterministic id.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkResource {
    pub resource_type: &'static str,
    pub id: String,
    pub resource: Value,
}

/// What the mapping needs to know of NUCC and of Plan-Net's specialty value set; built once
/// per import and shared.
pub struct MappingContext {
    codes: Arc<NuccCodeSet>,
    plan_net_specialties: Arc<HashSet<String>>,
    /// NUCC (grouping, classification) → the classification's own code (no specialization).
    classifications: HashMap<(String, String), String>,
}

impl MappingContext {
    /// `plan_net_specialties`: the NUCC codes of [`SPECIALTY_VALUE_SET`].
    pub fn new(codes: Arc<NuccCodeSet>, plan_net_specialties: Arc<HashSet<String>>) -> MappingContext {
        let classifications = codes
            .all()
            .iter()
            .filter(|t| t.specialization.is_none())
            .map(|t| ((t.grouping.clone(), t.classification.clone()), t.code.clone()))
            .collect();
        MappingContext {
            codes,
            plan_net_specialties,
            classifications,
        }
    }

    /// The allowed specialties taken from the value set the validator itself checks against.
    pub fn from_terminology(codes: Arc<NuccCodeSet>, terminology: &Terminology) -> MappingContext {
        let allowed = codes
            .codes()
            .filter(|code| terminology.contains(SPECIALTY_VALUE_SET, Some(NUCC_SYSTEM), code) == Membership::Member)
            .map(str::to_string)
            .collect();
        MappingContext::new(codes, Arc::new(allowed))
    }

    fn coding(&self, code: &str) -> Value {
        let mut coding = json!({"system": NUCC_SYSTEM, "code": code});
        if let Some(display) = self.codes.display(code) {
            coding["display"] = json!(display);
        }
        coding
    }

    /// How `PractitionerRole.specialty` can carry a NUCC code.
    fn specialty(&self, code: &str) -> Specialty {
        if self.plan_net_specialties.contains(code) {
            return Specialty::Exact;
        }
        // A specialization the IG's older NUCC release lacks is still an instance of its
        // classification (a Pain Management Pharmacist is a Pharmacist).
        self.codes
            .lookup(code)
            .and_then(|t| {
                self.classifications
                    .get(&(t.grouping.clone(), t.classification.clone()))
            })
            .filter(|class| class.as_str() != code && self.plan_net_specialties.contains(*class))
            .map_or(Specialty::None, |class| Specialty::Classification(class.clone()))
    }
}

enum Specialty {
    Exact,
    Classification(String),
    None,
}

/// The resources of one `npidata_pfile` row.
///
/// Decisions, all for Plan-Net conformance or stable re-imports:
/// - **One PractitionerRole per individual** (`npi-…-role`), holding every specialty, the
///   primary first: NPPES gives one practice location, so one role (practitioner at that
///   location) is what the data says; `PractitionerRole?specialty=` finds it by any of them; and
///   its id does not depend on the taxonomies, so a changed taxonomy updates the role instead of
///   leaving a stale role per dropped code.
/// - **NUCC codes outside IndividualAndGroupSpecialtiesVS** (a required binding: one would make
///   the role invalid): a specialization the IG's older release lacks is carried by its
///   classification's code when that one is in the value set, with the NPPES specialty in the
///   concept's `text` ("Pain Management Pharmacist (NUCC 1835P1400X)"), so specialty search still
///   finds the provider; a code with no such classification (Integrative Medicine, Community
///   Paramedic, a Non-Individual code, a code unknown to NUCC 25.1) is left off `specialty`.
///   Either way the exact NPPES code is kept on the role in the [`NPPES_TAXONOMY_EXTENSION`]
///   extension, and a licensed one also in `Practitioner.qualification` (an extensible binding).
/// - **Role telecom** (US Core pd-1: telecom or endpoint): the practice phone and fax; without a
///   practice phone, the mailing phone and fax; with neither phone, whatever fax there is. An
///   individual with no phone or fax at all gets **no role** (it could not conform); its
///   Practitioner and Location are still produced, and its licensed taxonomies stay in
///   `Practitioner.qualification`.
/// - **Organization type** (required, OrgTypeCS) from the primary taxonomy's NUCC grouping:
///   hospitals, hospital units, ambulatory, nursing, residential and respite facilities and
///   laboratories are `fac`; managed care organizations `payer`; transportation services and
///   the non-individual "other service providers" (lodging, meals) `atyprv`; everything else
///   (groups, agencies, suppliers, an organization listing an individual's taxonomy, no
///   taxonomy at all) `prvgrp`, since NPPES enumerates health care providers.
/// - **Subparts**: the parent is known by legal business name only (its TIN is suppressed, its
///   NPI not given), so `partOf` is a display-only Reference naming it: valid, and resolvable
///   later by whoever can match the name to an Organization.
/// - **Deactivated** (a deactivation date and no reactivation on or after it): every resource
///   the NPI would have (Practitioner or Organization, Location, role) is produced withdrawn, so
///   a re-import withdraws what an earlier import wrote under the same ids; a reactivated NPI
///   is active.
/// - **Gender**: M → male, F → female; any other sex code gives no gender (as the single-record
///   mapping does) rather than asserting `unknown`.
pub fn provider_resources(row: &ProviderRow, ctx: &MappingContext) -> Vec<BulkResource> {
    let deactivated = deactivation(row);
    let withdrawn = deactivated.is_some();
    let mut out = match row.entity_type {
        EntityType::Individual => individual(row, ctx, withdrawn),
        EntityType::Organization => organization(row, ctx, withdrawn),
    };
    if let Some(date) = deactivated {
        let reason = format!("NPPES deactivated NPI {} on {date}", row.npi);
        for r in &mut out {
            if r.resource_type == "Location" {
                // Location has no `active`; Plan-Net fixes its status to active.
                r.resource["status"] = json!("inactive");
            }
            mark_withdrawn(r.resource_type, &mut r.resource, &reason);
        }
    }
    out
}

/// The deactivation date when the NPI is deactivated now.
fn deactivation(row: &ProviderRow) -> Option<NaiveDate> {
    match (row.deactivation_date, row.reactivation_date) {
        (Some(deactivated), Some(reactivated)) if reactivated >= deactivated => None,
        (deactivated, _) => deactivated,
    }
}

/// `npi-{npi}` and its suffixes; only the characters a FHIR id allows are kept.
fn npi_id(npi: &str, suffix: &str) -> String {
    let npi: String = npi.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    format!("npi-{npi}{suffix}")
}

pub fn practitioner_id(npi: &str) -> String {
    npi_id(npi, "")
}

pub fn organization_id(npi: &str) -> String {
    npi_id(npi, "")
}

pub fn practice_location_id(npi: &str) -> String {
    npi_id(npi, "-location")
}

pub fn practitioner_role_id(npi: &str) -> String {
    npi_id(npi, "-role")
}

fn claim(resource: &mut Value, profile: &str) {
    resource["meta"] = json!({"profile": [format!("{PLAN_NET}{profile}")]});
}

fn individual(row: &ProviderRow, ctx: &MappingContext, withdrawn: bool) -> Vec<BulkResource> {
    let id = practitioner_id(&row.npi);
    let name = HumanName {
        first: row.first_name.as_deref(),
        middle: row.middle_name.as_deref(),
        last: row.last_name.as_deref(),
        prefix: row.name_prefix.as_deref(),
        suffixes: [row.name_suffix.as_deref(), row.credential.as_deref()],
    };
    let mut practitioner = json!({
        "resourceType": "Practitioner",
        "id": id,
        "identifier": identifiers(row),
        "active": true,
    });
    let mut names = Vec::new();
    if name.last.is_some() || name.first.is_some() {
        names.push(name.to_fhir());
    }
    if let Some(other_last) = row.other_last_name.as_deref() {
        // The file's other-name type column is not read; the name is kept without a `use`.
        let other = HumanName {
            first: row.other_first_name.as_deref(),
            middle: None,
            last: Some(other_last),
            prefix: None,
            suffixes: [None, None],
        };
        let mut other = other.to_fhir();
        other.as_object_mut().expect("a name").remove("use");
        if !names.contains(&other) {
            names.push(other);
        }
    }
    if !names.is_empty() {
        practitioner["name"] = Value::Array(names);
    }
    match row.sex.as_deref().map(str::trim) {
        Some("M" | "m") => practitioner["gender"] = json!("male"),
        Some("F" | "f") => practitioner["gender"] = json!("female"),
        _ => {}
    }
    set_list(&mut practitioner, "telecom", contact_points(&row.practice));
    set_list(&mut practitioner, "address", addresses(row));
    set_list(&mut practitioner, "qualification", qualifications(row, ctx));
    let conforms = row.last_name.is_some() && Npi::parse(&row.npi).is_ok();
    if conforms {
        claim(&mut practitioner, "plannet-Practitioner");
    }

    let display_name = display_name(row);
    let mut out = vec![BulkResource {
        resource_type: "Practitioner",
        id: id.clone(),
        resource: practitioner,
    }];
    let location = practice_location(row, &display_name, None, withdrawn);
    let location_id = location.as_ref().map(|l| l.id.clone());
    out.extend(location);
    if let Some(role) = practitioner_role(row, ctx, &id, location_id.as_deref(), withdrawn) {
        out.push(role);
    }
    out
}

fn practitioner_role(
    row: &ProviderRow,
    ctx: &MappingContext,
    practitioner_id: &str,
    location_id: Option<&str>,
    withdrawn: bool,
) -> Option<BulkResource> {
    let id = practitioner_role_id(&row.npi);
    let mut role = json!({
        "resourceType": "PractitionerRole",
        "id": id,
        "meta": {"profile": [format!("{PLAN_NET}plannet-PractitionerRole")]},
        "active": true,
        "practitioner": {"reference": format!("Practitioner/{practitioner_id}")},
    });
    if let Some(location_id) = location_id {
        role["location"] = json!([{"reference": format!("Location/{location_id}")}]);
    }
    let telecom = role_telecom(row);
    if telecom.is_empty() && !withdrawn {
        return None;
    }
    let mut specialties: Vec<Value> = Vec::new();
    let mut unlisted = Vec::new();
    let has = |specialties: &[Value], code: &str| specialties.iter().any(|s| s["coding"][0]["code"] == code);
    for code in distinct_codes(&row.taxonomies) {
        match ctx.specialty(code) {
            Specialty::Exact => {
                if !has(&specialties, code) {
                    specialties.push(json!({"coding": [ctx.coding(code)]}));
                }
            }
            Specialty::Classification(class) => {
                if !has(&specialties, &class) {
                    let named = ctx.codes.display(code).unwrap_or_else(|| code.to_string());
                    specialties.push(json!({"coding": [ctx.coding(&class)], "text": format!("{named} (NUCC {code})")}));
                }
                unlisted.push(code);
            }
            Specialty::None => unlisted.push(code),
        }
    }
    set_list(&mut role, "telecom", telecom);
    set_list(&mut role, "specialty", specialties);
    let extensions: Vec<Value> = unlisted.into_iter().map(|code| taxonomy_extension(ctx, code)).collect();
    set_list(&mut role, "extension", extensions);
    Some(BulkResource {
        resource_type: "PractitionerRole",
        id,
        resource: role,
    })
}

fn taxonomy_extension(ctx: &MappingContext, code: &str) -> Value {
    json!({"url": NPPES_TAXONOMY_EXTENSION, "valueCoding": ctx.coding(code)})
}

/// Codes in NPPES order with the primary first, each once.
fn distinct_codes(taxonomies: &[BulkTaxonomy]) -> Vec<&str> {
    let mut codes: Vec<&str> = Vec::new();
    let primary = taxonomies.iter().filter(|t| t.primary);
    for t in primary.chain(taxonomies.iter().filter(|t| !t.primary)) {
        if !codes.contains(&t.code.as_str()) {
            codes.push(&t.code);
        }
    }
    codes
}

fn role_telecom(row: &ProviderRow) -> Vec<Value> {
    if row.practice.phone.is_some() {
        return contact_points(&row.practice);
    }
    if row.mailing.phone.is_some() {
        return contact_points(&row.mailing);
    }
    [&row.practice, &row.mailing]
        .into_iter()
        .find_map(|a| a.fax.as_deref())
        .map(|fax| vec![json!({"system": "fax", "value": format_phone(fax), "use": "work"})])
        .unwrap_or_default()
}

fn organization(row: &ProviderRow, ctx: &MappingContext, withdrawn: bool) -> Vec<BulkResource> {
    let id = organization_id(&row.npi);
    let org_type = organization_type(row, ctx);
    let mut organization = json!({
        "resourceType": "Organization",
        "id": id,
        "identifier": identifiers(row),
        "active": true,
        "type": [{"coding": [{"system": ORG_TYPE_SYSTEM, "code": org_type.0, "display": org_type.1}]}],
    });
    if let Some(name) = row.organization_name.as_deref() {
        organization["name"] = json!(name);
    }
    if let Some(other) = row.other_organization_name.as_deref() {
        if row.organization_name.as_deref() != Some(other) {
            organization["alias"] = json!([other]);
        }
    }
    set_list(&mut organization, "telecom", contact_points(&row.practice));
    set_list(&mut organization, "address", addresses(row));
    if let Some(contact) = row.authorized_official.as_ref().and_then(authorized_official) {
        organization["contact"] = json!([contact]);
    }
    if row.organization_subpart == Some(true) {
        if let Some(parent) = row.parent_organization_lbn.as_deref() {
            organization["partOf"] = json!({"display": parent});
        }
    }
    let taxonomies: Vec<Value> = distinct_codes(&row.taxonomies)
        .into_iter()
        .map(|code| taxonomy_extension(ctx, code))
        .collect();
    set_list(&mut organization, "extension", taxonomies);
    let conforms =
        row.organization_name.is_some() && organization.get("address").is_some() && Npi::parse(&row.npi).is_ok();
    if conforms {
        claim(&mut organization, "plannet-Organization");
    }
    let name = display_name(row);
    let mut out = vec![BulkResource {
        resource_type: "Organization",
        id: id.clone(),
        resource: organization,
    }];
    out.extend(practice_location(row, &name, Some(&id), withdrawn));
    out
}

/// OrgTypeCS (code, display) from the primary taxonomy's NUCC grouping; see [`provider_resources`].
fn organization_type(row: &ProviderRow, ctx: &MappingContext) -> (&'static str, &'static str) {
    const PROVIDER_GROUP: (&str, &str) = ("prvgrp", "Provider Group");
    // An NPPES taxonomy group ("193200000X MULTI-SPECIALTY GROUP") says it outright.
    if row.taxonomies.iter().any(|t| t.group.is_some()) {
        return PROVIDER_GROUP;
    }
    let Some(taxonomy) = distinct_codes(&row.taxonomies)
        .first()
        .and_then(|code| ctx.codes.lookup(code))
    else {
        return PROVIDER_GROUP;
    };
    match (taxonomy.section.as_str(), taxonomy.grouping.as_str()) {
        (
            "Non-Individual",
            "Hospitals"
            | "Hospital Units"
            | "Ambulatory Health Care Facilities"
            | "Nursing & Custodial Care Facilities"
            | "Residential Treatment Facilities"
            | "Respite Care Facility"
            | "Laboratories",
        ) => ("fac", "Facility"),
        ("Non-Individual", "Managed Care Organizations") => ("payer", "Payer"),
        ("Non-Individual", "Transportation Services" | "Other Service Providers") => ("atyprv", "Atypical Provider"),
        _ => PROVIDER_GROUP,
    }
}

fn authorized_official(official: &AuthorizedOfficial) -> Option<Value> {
    official.last_name.as_ref()?;
    let name = HumanName {
        first: official.first_name.as_deref(),
        middle: official.middle_name.as_deref(),
        last: official.last_name.as_deref(),
        prefix: official.prefix.as_deref(),
        suffixes: [official.suffix.as_deref(), official.credential.as_deref()],
    };
    let mut contact = json!({
        "purpose": {
            "coding": [{"system": CONTACT_ENTITY_TYPE, "code": "ADMIN", "display": "Administrative"}],
            "text": match official.title.as_deref() {
                Some(title) => format!("Authorized official: {title}"),
                None => "Authorized official".to_string(),
            },
        },
        "name": name.to_fhir(),
    });
    if let Some(phone) = official.phone.as_deref() {
        contact["telecom"] = json!([{"system": "phone", "value": format_phone(phone), "use": "work"}]);
    }
    Some(contact)
}

/// "JANE Q DOE" or "HARBOR HEALTH", for Location names; the NPI when NPPES gives no name.
fn display_name(row: &ProviderRow) -> String {
    let name = match row.entity_type {
        EntityType::Organization => row.organization_name.clone().unwrap_or_default(),
        EntityType::Individual => [&row.first_name, &row.middle_name, &row.last_name]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" "),
    };
    if name.is_empty() {
        format!("NPI {}", row.npi)
    } else {
        name
    }
}

fn practice_location(
    row: &ProviderRow,
    owner_name: &str,
    managing_organization: Option<&str>,
    withdrawn: bool,
) -> Option<BulkResource> {
    if is_blank(&row.practice) && !withdrawn {
        return None;
    }
    let id = practice_location_id(&row.npi);
    let mut location = location(&id, format!("Practice location of {owner_name}"), &row.practice);
    if let Some(organization) = managing_organization {
        location["managingOrganization"] = json!({"reference": format!("Organization/{organization}")});
    }
    Some(BulkResource {
        resource_type: "Location",
        id,
        resource: location,
    })
}

fn location(id: &str, name: String, address: &BulkAddress) -> Value {
    let mut location = json!({
        "resourceType": "Location",
        "id": id,
        "meta": {"profile": [format!("{PLAN_NET}plannet-Location")]},
        "status": "active",
        "name": name,
    });
    if !is_blank(address) {
        location["address"] = fhir_address(address, "physical");
    }
    set_list(&mut location, "telecom", contact_points(address));
    location
}

fn is_blank(address: &BulkAddress) -> bool {
    address.line1.is_none() && address.line2.is_none() && address.city.is_none() && address.postal_code.is_none()
}

/// The practice address (physical), then the mailing address (postal) when it is another one;
/// both `work`, which Organization allows (org-2 forbids `home`).
fn addresses(row: &ProviderRow) -> Vec<Value> {
    let practice = (!is_blank(&row.practice)).then(|| fhir_address(&row.practice, "physical"));
    let mailing = (!is_blank(&row.mailing)).then(|| fhir_address(&row.mailing, "postal"));
    match (practice, mailing) {
        (Some(mut practice), Some(mailing)) => {
            let same = ["line", "city", "state", "postalCode", "country"]
                .iter()
                .all(|k| practice.get(*k) == mailing.get(*k));
            if same {
                practice["type"] = json!("both");
                vec![practice]
            } else {
                vec![practice, mailing]
            }
        }
        (practice, mailing) => practice.into_iter().chain(mailing).collect(),
    }
}

fn fhir_address(a: &BulkAddress, address_type: &str) -> Value {
    let mut address = Map::new();
    address.insert("use".to_string(), json!("work"));
    address.insert("type".to_string(), json!(address_type));
    let lines: Vec<&str> = [a.line1.as_deref(), a.line2.as_deref()].into_iter().flatten().collect();
    if !lines.is_empty() {
        address.insert("line".to_string(), json!(lines));
    }
    for (key, value) in [
        ("city", a.city.clone()),
        ("state", a.state.clone()),
        ("postalCode", a.postal_code.as_deref().map(format_postal_code)),
        // The file leaves the country empty for U.S. addresses.
        (
            "country",
            Some(a.country_code.clone().unwrap_or_else(|| "US".to_string())),
        ),
    ] {
        if let Some(value) = value {
            address.insert(key.to_string(), json!(value));
        }
    }
    Value::Object(address)
}

fn contact_points(a: &BulkAddress) -> Vec<Value> {
    let mut telecom = Vec::new();
    if let Some(phone) = a.phone.as_deref() {
        let value = match a.phone_extension.as_deref() {
            Some(extension) => format!("{} ext. {extension}", format_phone(phone)),
            None => format_phone(phone),
        };
        telecom.push(json!({"system": "phone", "value": value, "use": "work"}));
    }
    if let Some(fax) = a.fax.as_deref() {
        telecom.push(json!({"system": "fax", "value": format_phone(fax), "use": "work"}));
    }
    telecom
}

/// NPPES masks SSNs, ITINs and EINs typed into identifier and license fields.
fn is_masked(value: &str) -> bool {
    value.chars().all(|c| matches!(c, '$' | '*' | '_'))
}

fn identifiers(row: &ProviderRow) -> Vec<Value> {
    let mut identifiers = vec![json!({
        "use": "official",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NPI",
                             "display": "National provider identifier"}]},
        "system": NPI_SYSTEM,
        "value": row.npi,
    })];
    for other in &row.identifiers {
        if is_masked(&other.identifier) {
            continue;
        }
        let identifier = other_identifier(other);
        if !identifiers.contains(&identifier) {
            identifiers.push(identifier);
        }
    }
    identifiers
}

/// An NPPES "other provider identifier": namespaced by its type and state, since the same
/// number may be a Medicaid id in two states.
fn other_identifier(other: &BulkIdentifier) -> Value {
    let type_code = other.type_code.as_deref().unwrap_or("01");
    let label = match type_code {
        "02" => "Medicare UPIN",
        "04" => "Medicare ID-Type I",
        "05" => "Medicaid",
        "06" => "Medicare OSCAR/Certification",
        "07" => "Medicare NSC",
        "08" => "Medicare PIN",
        _ => "Other",
    };
    let mut system = format!("{OTHER_IDENTIFIER_SYSTEM}/{}", sanitize(type_code));
    let mut text = label.to_string();
    if let Some(state) = other.state.as_deref() {
        system.push('/');
        system.push_str(&sanitize(state));
        text = format!("{label} ({state})");
    }
    let mut identifier = json!({"type": {"text": text}, "system": system, "value": other.identifier});
    if let Some(issuer) = other.issuer.as_deref() {
        identifier["assigner"] = json!({"display": issuer});
    }
    identifier
}

fn sanitize(segment: &str) -> String {
    segment.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

/// One qualification per licensed taxonomy (license, state, code), in the
/// `practitioner-qualification` shape. NPPES does not verify licenses, so the status is
/// `unknown`, not `active`; where the license is valid is its state.
fn qualifications(row: &ProviderRow, ctx: &MappingContext) -> Vec<Value> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let primary = row.taxonomies.iter().filter(|t| t.primary);
    for t in primary.chain(row.taxonomies.iter().filter(|t| !t.primary)) {
        let Some(license) = t.license.as_deref().filter(|l| !is_masked(l)) else {
            continue;
        };
        if !seen.insert((license, t.license_state.as_deref(), t.code.as_str())) {
            continue;
        }
        let mut status = vec![json!({"url": "status", "valueCode": "unknown"})];
        if let Some(state) = t.license_state.as_deref() {
            status.push(json!({"url": "whereValid",
                               "valueCodeableConcept": {"coding": [{"system": USPS_SYSTEM, "code": state}]}}));
        }
        let coding = ctx.coding(&t.code);
        let mut code = json!({"coding": [coding]});
        if let Some(display) = code["coding"][0]["display"].as_str().map(str::to_string) {
            code["text"] = json!(display);
        }
        let mut qualification = json!({
            "extension": [{"url": PRACTITIONER_QUALIFICATION, "extension": status}],
            "identifier": [{"value": license}],
            "code": code,
        });
        if let Some(state) = t.license_state.as_deref() {
            qualification["issuer"] = json!({"display": format!("Licensing board of {state}")});
        }
        out.push(qualification);
    }
    out
}

/// Sets a list element, or leaves it out when empty (FHIR forbids empty arrays).
fn set_list(resource: &mut Value, element: &str, items: Vec<Value>) {
    if !items.is_empty() {
        resource[element] = Value::Array(items);
    }
}

/// A `pl_pfile` row: the owner's `n`th secondary practice location (1-based in the file's
/// order for that NPI), id `npi-…-location-{n+1}` (the primary practice location being the
/// first). Its owner points at it with [`link_location`] (a role) or it names its managing
/// organization with [`set_managing_organization`] (an organization's).
pub fn secondary_location(row: &SecondaryLocationRow, n: usize) -> BulkResource {
    let id = npi_id(&row.npi, &format!("-location-{}", n + 1));
    let a = &row.address;
    let name = match (a.line1.as_deref(), a.city.as_deref()) {
        (Some(line), Some(city)) => format!("{line}, {city}"),
        (Some(line), None) => line.to_string(),
        _ => format!("Practice location {} of NPI {}", n + 1, row.npi),
    };
    BulkResource {
        resource_type: "Location",
        resource: location(&id, name, a),
        id,
    }
}

/// An `endpoint_pfile` row: the owner's `n`th endpoint (1-based), id `npi-…-endpoint-{n}`.
/// DIRECT → `direct-project` (a bare Direct address gets `mailto:`), FHIR → `hl7-fhir-rest`,
/// WEB → Plan-Net's `rest-non-fhir` (web portals); CONNECT, SOAP and OTHERS have no
/// connection-type code that says them and keep NPPES's own (the binding is extensible).
/// NPPES says nothing of payloads: `NA`. An endpoint of an affiliated organization names it in
/// `managingOrganization.display`; an organization's own endpoint gets its reference from
/// [`set_managing_organization`].
pub fn endpoint(row: &EndpointRow, n: usize) -> BulkResource {
    let id = npi_id(&row.npi, &format!("-endpoint-{n}"));
    let endpoint_type = row
        .endpoint_type
        .as_deref()
        .unwrap_or("OTHERS")
        .trim()
        .to_ascii_uppercase();
    let connection_type = match endpoint_type.as_str() {
        "DIRECT" => json!({"system": CONNECTION_TYPE_SYSTEM, "code": "direct-project", "display": "Direct Project"}),
        "FHIR" => json!({"system": CONNECTION_TYPE_SYSTEM, "code": "hl7-fhir-rest", "display": "HL7 FHIR"}),
        "WEB" => json!({"system": PLAN_NET_CONNECTION_TYPE_SYSTEM, "code": "rest-non-fhir",
                        "display": "REST (not FHIR)"}),
        other => {
            let mut coding = json!({"system": NPPES_ENDPOINT_TYPE_SYSTEM, "code": other});
            if let Some(description) = row.endpoint_type_description.as_deref() {
                coding["display"] = json!(description);
            }
            coding
        }
    };
    let address = if endpoint_type == "DIRECT" && !row.endpoint.contains(':') {
        format!("mailto:{}", row.endpoint)
    } else {
        row.endpoint.clone()
    };
    let name = row
        .endpoint_description
        .clone()
        .or_else(|| row.endpoint_type_description.clone())
        .unwrap_or_else(|| format!("{endpoint_type} endpoint"));
    let mut endpoint = json!({
        "resourceType": "Endpoint",
        "id": id,
        "meta": {"profile": [format!("{PLAN_NET}plannet-Endpoint")]},
        "status": "active",
        "connectionType": connection_type,
        "name": name,
        "payloadType": [{"coding": [{"system": PAYLOAD_TYPE_SYSTEM, "code": "NA", "display": "Not Applicable"}]}],
        "address": address,
    });
    if row.affiliation == Some(true) {
        if let Some(affiliate) = row.affiliation_legal_business_name.as_deref() {
            endpoint["managingOrganization"] = json!({"display": affiliate});
        }
    }
    BulkResource {
        resource_type: "Endpoint",
        id,
        resource: endpoint,
    }
}

/// Appends `{"reference": reference}` to `owner[element]` unless there; whether it changed.
fn add_reference(owner: &mut Value, element: &str, reference: String) -> bool {
    let Some(fields) = owner.as_object_mut() else {
        return false;
    };
    let list = fields.entry(element).or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    let list = list.as_array_mut().expect("an array");
    if list.iter().any(|r| r["reference"] == reference.as_str()) {
        return false;
    }
    list.push(json!({"reference": reference}));
    true
}

/// Adds a secondary Location to a PractitionerRole's `location`; idempotent, returns whether it
/// changed. An Organization has no element pointing at its locations (the Location names it
/// in `managingOrganization`, see [`set_managing_organization`]), so it is left as it is.
pub fn link_location(owner_role_or_org: &mut Value, location_id: &str) -> bool {
    match owner_role_or_org["resourceType"].as_str() {
        Some("PractitionerRole") => add_reference(owner_role_or_org, "location", format!("Location/{location_id}")),
        _ => false,
    }
}

/// Adds an Endpoint to a PractitionerRole's, Organization's or Location's `endpoint`;
/// idempotent, returns whether it changed. A Practitioner has no `endpoint` (its role does).
pub fn link_endpoint(owner: &mut Value, endpoint_id: &str) -> bool {
    match owner["resourceType"].as_str() {
        Some("PractitionerRole" | "Organization" | "Location") => {
            add_reference(owner, "endpoint", format!("Endpoint/{endpoint_id}"))
        }
        _ => false,
    }
}

/// Points a Location or Endpoint at the Organization managing it (e.g. an organization's
/// secondary practice location or its own endpoint); idempotent.
pub fn set_managing_organization(resource: &mut Value, organization_id: &str) -> bool {
    let reference = json!({"reference": format!("Organization/{organization_id}")});
    if resource["managingOrganization"] == reference || !resource.is_object() {
        return false;
    }
    resource["managingOrganization"] = reference;
    true
}

/// An `othername_pfile` name as an Organization `alias` (DBA, former legal business name or
/// other name alike: `alias` is "known as, or was known as in the past"); idempotent, and the
/// organization's own name is not repeated.
pub fn add_alias(org: &mut Value, other: &OtherNameRow) -> bool {
    let name = other.name.trim();
    if name.is_empty() || org["name"] == name || !org.is_object() {
        return false;
    }
    if !org["alias"].is_array() {
        org["alias"] = json!([]);
    }
    let aliases = org["alias"].as_array_mut().expect("an array");
    if aliases.iter().any(|a| a == name) {
        return false;
    }
    aliases.push(json!(name));
    true
}

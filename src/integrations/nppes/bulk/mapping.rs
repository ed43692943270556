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
use crate::validation::terminology::Terminology;

const PLAN_NET: &str = "http://hl7.org/fhir/us/davinci-pdex-plan-net/StructureDefinition/";
/// The required binding of `PractitionerRole.specialty`.
pub use crate::integrations::nppes::taxonomy::PLAN_NET_SPECIALTY_VALUE_SET as SPECIALTY_VALUE_SET;
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

/// One resource to write, under its deterministic id (the store's bulk writer takes them).
pub use crate::store::bulk::BulkResource;

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
        let allowed = crate::integrations::nppes::taxonomy::plan_net_specialties(&codes, terminology);
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
        Some(EntityType::Individual) => individual(row, ctx, withdrawn),
        Some(EntityType::Organization) => organization(row, ctx, withdrawn),
        // CMS publishes a deactivated NPI with its NPI and deactivation date only: whether it was
        // a Practitioner or an Organization is not in the row, so nothing is produced here;
        // withdrawing what an earlier import stored under its NPI is the importer's.
        None => Vec::new(),
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
pub fn deactivation(row: &ProviderRow) -> Option<NaiveDate> {
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
        None => String::new(),
        Some(EntityType::Organization) => row.organization_name.clone().unwrap_or_default(),
        Some(EntityType::Individual) => [&row.first_name, &row.middle_name, &row.last_name]
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
    // No `type`: v2-0203 NPI is outside identifier-type's extensible value set, and the
    // system says it already.
    let mut identifiers = vec![json!({"use": "official", "system": NPI_SYSTEM, "value": row.npi})];
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
/// `practitioner-qualification` shape: where it is valid is the license state. Plan-Net fixes
/// that extension's status to `active` (a directory lists current credentials); NPPES lists the
/// licenses a provider must keep current there, without verifying them.
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
        let mut status = vec![json!({"url": "status", "valueCode": "active"})];
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::withdrawal::{is_withdrawn, TAG_CODE, TAG_SYSTEM};
    use crate::validation::{definitions::Definitions, Validator};
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;

    fn profiles() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles")
    }

    fn ctx() -> &'static MappingContext {
        static CTX: OnceLock<MappingContext> = OnceLock::new();
        CTX.get_or_init(|| {
            let codes = NuccCodeSet::load(&profiles().join("nucc/nucc_taxonomy_251.csv")).unwrap();
            MappingContext::from_terminology(Arc::new(codes), &Terminology::load(&profiles()).unwrap())
        })
    }

    fn validator() -> &'static Validator {
        static VALIDATOR: OnceLock<Validator> = OnceLock::new();
        VALIDATOR.get_or_init(|| {
            let definitions = Definitions::load(&profiles()).unwrap();
            let fhirpath = Arc::new(crate::fhirpath::FhirPath::new(&definitions));
            Validator::load(&profiles(), &definitions, fhirpath).unwrap()
        })
    }

    /// Every resource that is not withdrawn conforms to its Plan-Net profile and claims it;
    /// a withdrawn one claims none but is still a valid R4 resource.
    fn assert_valid(resources: &[BulkResource]) {
        for r in resources {
            assert_eq!(r.resource["resourceType"], r.resource_type);
            assert_eq!(r.resource["id"], r.id.as_str());
            let withdrawn = is_withdrawn(&r.resource);
            let report = validator().validate(r.resource_type, &r.resource, !withdrawn, None);
            assert!(
                !report.has_errors(),
                "{} {}: {report:?}\n{:#}",
                r.resource_type,
                r.id,
                r.resource
            );
            // Warnings only where expected: no narrative, or an NPPES code an extensible binding lacks.
            for issue in &report.profile {
                let expected = issue.diagnostics.starts_with("dom-6:")
                    || issue.diagnostics.contains("is not in the extensible value set");
                assert!(expected, "{} {}: {issue:?}", r.resource_type, r.id);
            }
            let claimed = &r.resource["meta"]["profile"];
            if withdrawn {
                assert!(claimed.is_null(), "{}", r.id);
            } else {
                let profile = format!("{PLAN_NET}plannet-{}", r.resource_type);
                assert_eq!(report.conforms_to.as_deref(), Some(profile.as_str()), "{}", r.id);
                assert_eq!(claimed, &json!([profile]), "{}", r.id);
            }
        }
    }

    fn address(line1: &str, city: &str, state: &str, zip: &str, phone: Option<&str>) -> BulkAddress {
        BulkAddress {
            line1: Some(line1.into()),
            city: Some(city.into()),
            state: Some(state.into()),
            postal_code: Some(zip.into()),
            phone: phone.map(Into::into),
            ..BulkAddress::default()
        }
    }

    fn taxonomy(code: &str, primary: bool, license: Option<(&str, &str)>) -> BulkTaxonomy {
        BulkTaxonomy {
            code: code.into(),
            license: license.map(|l| l.0.into()),
            license_state: license.map(|l| l.1.into()),
            primary,
            group: None,
        }
    }

    fn row(npi: &str, entity_type: EntityType) -> ProviderRow {
        ProviderRow {
            line: 2,
            npi: npi.into(),
            entity_type: Some(entity_type),
            replacement_npi: None,
            organization_name: None,
            last_name: None,
            first_name: None,
            middle_name: None,
            name_prefix: None,
            name_suffix: None,
            credential: None,
            other_organization_name: None,
            other_organization_name_type: None,
            other_last_name: None,
            other_first_name: None,
            mailing: BulkAddress::default(),
            practice: BulkAddress::default(),
            enumeration_date: NaiveDate::from_ymd_opt(2006, 5, 23),
            last_update: NaiveDate::from_ymd_opt(2024, 1, 2),
            deactivation_reason: None,
            deactivation_date: None,
            reactivation_date: None,
            sex: None,
            authorized_official: None,
            taxonomies: Vec::new(),
            identifiers: Vec::new(),
            sole_proprietor: None,
            organization_subpart: None,
            parent_organization_lbn: None,
            parent_organization_tin: None,
            certification_date: None,
        }
    }

    fn person(npi: &str, first: &str, last: &str) -> ProviderRow {
        ProviderRow {
            first_name: Some(first.into()),
            last_name: Some(last.into()),
            practice: address("100 MAIN ST", "SPRINGFIELD", "IL", "627010001", Some("2175550101")),
            mailing: address("PO BOX 12", "SPRINGFIELD", "IL", "627010012", Some("2175550199")),
            ..row(npi, EntityType::Individual)
        }
    }

    /// An internist licensed in Illinois and Missouri, with an Illinois Medicaid id.
    fn internist() -> ProviderRow {
        let mut row = person("1234567893", "JANE", "DOE");
        row.middle_name = Some("QUINN".into());
        row.name_prefix = Some("DR.".into());
        row.credential = Some("M.D.".into());
        row.sex = Some("F".into());
        row.practice.line2 = Some("SUITE 2".into());
        row.practice.fax = Some("2175550102".into());
        row.taxonomies = vec![
            taxonomy("207R00000X", true, Some(("036.123456", "IL"))),
            taxonomy("207R00000X", false, Some(("R-98765", "MO"))),
        ];
        row.identifiers = vec![
            BulkIdentifier {
                identifier: "MCD123".into(),
                type_code: Some("05".into()),
                state: Some("IL".into()),
                issuer: None,
            },
            BulkIdentifier {
                identifier: "$$$$$$$$$".into(),
                type_code: Some("01".into()),
                state: None,
                issuer: Some("SSN".into()),
            },
        ];
        row
    }

    fn find<'a>(resources: &'a [BulkResource], resource_type: &str) -> &'a Value {
        &resources
            .iter()
            .find(|r| r.resource_type == resource_type)
            .unwrap_or_else(|| panic!("no {resource_type}"))
            .resource
    }

    fn ids(resources: &[BulkResource]) -> Vec<(&str, &str)> {
        resources.iter().map(|r| (r.resource_type, r.id.as_str())).collect()
    }

    #[test]
    fn an_internist_with_two_licenses_and_a_medicaid_id() {
        let resources = provider_resources(&internist(), ctx());
        assert_eq!(
            ids(&resources),
            [
                ("Practitioner", "npi-1234567893"),
                ("Location", "npi-1234567893-location"),
                ("PractitionerRole", "npi-1234567893-role")
            ]
        );
        let practitioner = find(&resources, "Practitioner");
        assert_eq!(
            practitioner["identifier"],
            json!([
                {"use": "official", "system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"},
                {"type": {"text": "Medicaid (IL)"}, "system": format!("{OTHER_IDENTIFIER_SYSTEM}/05/IL"),
                 "value": "MCD123"}
            ]),
            "the masked identifier is left out"
        );
        assert_eq!(
            practitioner["name"],
            json!([{"use": "official", "family": "DOE", "given": ["JANE", "QUINN"], "prefix": ["DR."],
                    "suffix": ["M.D."]}])
        );
        assert_eq!(practitioner["gender"], "female");
        assert_eq!(practitioner["active"], true);
        assert_eq!(
            practitioner["address"],
            json!([
                {"use": "work", "type": "physical", "line": ["100 MAIN ST", "SUITE 2"], "city": "SPRINGFIELD",
                 "state": "IL", "postalCode": "62701-0001", "country": "US"},
                {"use": "work", "type": "postal", "line": ["PO BOX 12"], "city": "SPRINGFIELD", "state": "IL",
                 "postalCode": "62701-0012", "country": "US"}
            ])
        );
        let qualifications = practitioner["qualification"].as_array().unwrap();
        assert_eq!(qualifications.len(), 2, "one per license");
        assert_eq!(
            qualifications[1],
            json!({
                "extension": [{"url": PRACTITIONER_QUALIFICATION, "extension": [
                    {"url": "status", "valueCode": "active"},
                    {"url": "whereValid", "valueCodeableConcept": {"coding": [{"system": USPS_SYSTEM, "code": "MO"}]}}
                ]}],
                "identifier": [{"value": "R-98765"}],
                "code": {"coding": [{"system": NUCC_SYSTEM, "code": "207R00000X",
                                     "display": "Internal Medicine Physician"}],
                         "text": "Internal Medicine Physician"},
                "issuer": {"display": "Licensing board of MO"}
            })
        );
        assert_eq!(qualifications[0]["identifier"][0]["value"], "036.123456");

        let location = find(&resources, "Location");
        assert_eq!(location["name"], "Practice location of JANE QUINN DOE");
        assert_eq!(location["status"], "active");
        assert_eq!(location["address"]["postalCode"], "62701-0001");
        assert_eq!(
            location["telecom"],
            json!([{"system": "phone", "value": "217-555-0101", "use": "work"},
                   {"system": "fax", "value": "217-555-0102", "use": "work"}])
        );
        assert!(location.get("managingOrganization").is_none());

        let role = find(&resources, "PractitionerRole");
        assert_eq!(
            role["practitioner"],
            json!({"reference": "Practitioner/npi-1234567893"})
        );
        assert_eq!(
            role["location"],
            json!([{"reference": "Location/npi-1234567893-location"}])
        );
        assert_eq!(role["active"], true);
        assert_eq!(
            role["specialty"],
            json!([{"coding": [{"system": NUCC_SYSTEM, "code": "207R00000X",
                                "display": "Internal Medicine Physician"}]}]),
            "one specialty for two licenses of one code"
        );
        assert_eq!(role["telecom"], location["telecom"]);
        assert!(role.get("extension").is_none(), "every code is in the value set");
        assert_valid(&resources);
    }

    #[test]
    fn ids_are_stable_and_valid() {
        let first = provider_resources(&internist(), ctx());
        let mut changed = internist();
        changed.taxonomies.reverse();
        changed.practice.phone = Some("2175550111".into());
        let second = provider_resources(&changed, ctx());
        assert_eq!(ids(&first), ids(&second), "the same NPI gives the same ids");
        assert_eq!(first, provider_resources(&internist(), ctx()), "and the same resources");
        let id = is_fhir_id;
        for r in &first {
            assert!(id(&r.id), "{}", r.id);
        }
        assert!(id(&secondary_location(&pl_row(), 49).id));
        assert_eq!(practitioner_id("1234567893"), "npi-1234567893");
        assert_eq!(practice_location_id("1234567893"), "npi-1234567893-location");
        assert_eq!(practitioner_role_id("1234567893"), "npi-1234567893-role");
        assert_eq!(organization_id("1437410099"), "npi-1437410099");
    }

    fn is_fhir_id(id: &str) -> bool {
        !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    }

    #[test]
    fn the_specialty_value_set_is_an_older_nucc_release() {
        let allowed = &ctx().plan_net_specialties;
        assert_eq!(ctx().codes.len(), 883);
        assert_eq!(allowed.len(), 883 - 212);
        // Every nurse practitioner code is in it; newer pharmacist and physician ones are not.
        assert!(allowed.contains("363LF0000X") && allowed.contains("363LA2100X"));
        for code in ["1835P1400X", "146E00000X", "202D00000X", "207QB0505X"] {
            assert!(!allowed.contains(code), "{code}");
        }
    }

    #[test]
    fn a_specialization_outside_the_value_set_is_carried_by_its_classification() {
        let mut row = person("1987654328", "ANA", "LIMA");
        row.credential = Some("PHARMD".into());
        row.taxonomies = vec![
            taxonomy("1835P1400X", true, Some(("PH-77", "IL"))),
            taxonomy("999ZZ0000X", false, None),
        ];
        let resources = provider_resources(&row, ctx());
        let role = find(&resources, "PractitionerRole");
        assert_eq!(
            role["specialty"],
            json!([{"coding": [{"system": NUCC_SYSTEM, "code": "183500000X", "display": "Pharmacist"}],
                    "text": "Pain Management Pharmacist (NUCC 1835P1400X)"}])
        );
        assert_eq!(
            role["extension"],
            json!([
                {"url": NPPES_TAXONOMY_EXTENSION,
                 "valueCoding": {"system": NUCC_SYSTEM, "code": "1835P1400X", "display": "Pain Management Pharmacist"}},
                {"url": NPPES_TAXONOMY_EXTENSION, "valueCoding": {"system": NUCC_SYSTEM, "code": "999ZZ0000X"}}
            ]),
            "the exact NPPES codes are kept, a code NUCC does not know included"
        );
        let practitioner = find(&resources, "Practitioner");
        assert_eq!(
            practitioner["qualification"][0]["code"]["coding"][0]["code"],
            "1835P1400X"
        );
        assert_valid(&resources);

        // The classification itself listed too: one specialty, not two.
        row.taxonomies.push(taxonomy("183500000X", false, None));
        let role = find(&provider_resources(&row, ctx()), "PractitionerRole").clone();
        assert_eq!(role["specialty"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_code_with_no_classification_in_the_value_set_is_left_off_specialty() {
        let mut row = person("1555555550", "SAM", "REED");
        row.taxonomies = vec![taxonomy("146E00000X", true, None)];
        let resources = provider_resources(&row, ctx());
        let role = find(&resources, "PractitionerRole");
        assert!(role.get("specialty").is_none());
        assert_eq!(role["extension"][0]["valueCoding"]["code"], "146E00000X");
        assert!(
            find(&resources, "Practitioner").get("qualification").is_none(),
            "no license"
        );
        assert_valid(&resources);
        // The check has teeth: the same code as a specialty would not conform.
        let mut invalid = role.clone();
        invalid["specialty"] = json!([{"coding": [{"system": NUCC_SYSTEM, "code": "146E00000X"}]}]);
        assert!(validator()
            .validate("PractitionerRole", &invalid, true, None)
            .has_errors());
    }

    #[test]
    fn without_a_practice_phone_the_role_falls_back_and_without_any_there_is_no_role() {
        let mut row = person("1666666668", "LEE", "PARK");
        row.taxonomies = vec![taxonomy("207Q00000X", true, None)];
        row.practice.phone = None;
        let resources = provider_resources(&row, ctx());
        assert_eq!(
            find(&resources, "PractitionerRole")["telecom"],
            json!([{"system": "phone", "value": "217-555-0199", "use": "work"}]),
            "the mailing phone"
        );
        assert_valid(&resources);

        row.mailing.phone = None;
        row.mailing.fax = Some("2175550198".into());
        let resources = provider_resources(&row, ctx());
        assert_eq!(
            find(&resources, "PractitionerRole")["telecom"],
            json!([{"system": "fax", "value": "217-555-0198", "use": "work"}])
        );
        assert_valid(&resources);

        row.mailing.fax = None;
        let resources = provider_resources(&row, ctx());
        assert_eq!(
            ids(&resources),
            [
                ("Practitioner", "npi-1666666668"),
                ("Location", "npi-1666666668-location")
            ]
        );
        assert!(find(&resources, "Practitioner").get("telecom").is_none());
        assert!(find(&resources, "Location").get("telecom").is_none());
        assert_valid(&resources);
    }

    fn harbor() -> ProviderRow {
        let mut row = row("1437410099", EntityType::Organization);
        row.organization_name = Some("HARBOR FAMILY HEALTH, INC.".into());
        row.other_organization_name = Some("HARBOR HEALTH".into());
        row.other_organization_name_type = Some("3".into());
        row.practice = address("900 CLINIC WAY", "BOSTON", "MA", "02115", Some("6175550140"));
        row.practice.phone_extension = Some("12".into());
        row.mailing = row.practice.clone();
        row.authorized_official = Some(AuthorizedOfficial {
            last_name: Some("SILVA".into()),
            first_name: Some("MARIA".into()),
            middle_name: None,
            title: Some("CEO".into()),
            phone: Some("6175550141".into()),
            prefix: Some("MS.".into()),
            suffix: Some("JR.".into()),
            credential: Some("MBA".into()),
        });
        row.taxonomies = vec![BulkTaxonomy {
            group: Some("193200000X MULTI-SPECIALTY GROUP".into()),
            ..taxonomy("207Q00000X", true, Some(("ORG-1", "MA")))
        }];
        row.sole_proprietor = None;
        row.organization_subpart = Some(false);
        row
    }

    #[test]
    fn an_organization_with_its_authorized_official_dba_and_group() {
        let resources = provider_resources(&harbor(), ctx());
        assert_eq!(
            ids(&resources),
            [
                ("Organization", "npi-1437410099"),
                ("Location", "npi-1437410099-location")
            ]
        );
        let org = find(&resources, "Organization");
        assert_eq!(org["name"], "HARBOR FAMILY HEALTH, INC.");
        assert_eq!(org["alias"], json!(["HARBOR HEALTH"]));
        assert_eq!(org["active"], true);
        assert_eq!(org["identifier"][0]["value"], "1437410099");
        assert_eq!(
            org["type"],
            json!([{"coding": [{"system": ORG_TYPE_SYSTEM, "code": "prvgrp", "display": "Provider Group"}]}])
        );
        assert_eq!(
            org["telecom"],
            json!([{"system": "phone", "value": "617-555-0140 ext. 12", "use": "work"}])
        );
        assert_eq!(
            org["address"],
            json!([{"use": "work", "type": "both", "line": ["900 CLINIC WAY"], "city": "BOSTON", "state": "MA",
                    "postalCode": "02115", "country": "US"}]),
            "one address serving as both"
        );
        assert_eq!(
            org["contact"],
            json!([{
                "purpose": {"coding": [{"system": CONTACT_ENTITY_TYPE, "code": "ADMIN", "display": "Administrative"}],
                            "text": "Authorized official: CEO"},
                "name": {"use": "official", "family": "SILVA", "given": ["MARIA"], "prefix": ["MS."],
                         "suffix": ["JR.", "MBA"]},
                "telecom": [{"system": "phone", "value": "617-555-0141", "use": "work"}]
            }])
        );
        assert_eq!(
            org["extension"],
            json!([{"url": NPPES_TAXONOMY_EXTENSION, "valueCoding": {"system": NUCC_SYSTEM, "code": "207Q00000X",
                                                                    "display": "Family Medicine Physician"}}])
        );
        assert!(org.get("partOf").is_none());
        let location = find(&resources, "Location");
        assert_eq!(location["name"], "Practice location of HARBOR FAMILY HEALTH, INC.");
        assert_eq!(
            location["managingOrganization"],
            json!({"reference": "Organization/npi-1437410099"})
        );
        assert_valid(&resources);
    }

    #[test]
    fn organization_types_follow_the_nucc_grouping() {
        let typed = |codes: &[&str]| {
            let mut row = harbor();
            row.taxonomies = codes
                .iter()
                .enumerate()
                .map(|(i, c)| taxonomy(c, i == 0, None))
                .collect();
            let resources = provider_resources(&row, ctx());
            assert_valid(&resources);
            find(&resources, "Organization")["type"][0]["coding"][0]["code"].clone()
        };
        assert_eq!(typed(&["282N00000X"]), "fac", "general acute care hospital");
        assert_eq!(typed(&["261QP2300X", "207Q00000X"]), "fac", "primary care clinic");
        assert_eq!(typed(&["302R00000X"]), "payer", "HMO");
        assert_eq!(typed(&["343900000X"]), "atyprv", "non-emergency transport");
        assert_eq!(typed(&["333600000X"]), "prvgrp", "pharmacy, as Plan-Net's own example");
        assert_eq!(typed(&["251E00000X"]), "prvgrp", "home health agency");
        assert_eq!(typed(&[]), "prvgrp");
    }

    #[test]
    fn a_subpart_names_its_parent() {
        let mut row = harbor();
        row.npi = "1777777776".into();
        row.organization_name = Some("HARBOR FAMILY HEALTH - DORCHESTER".into());
        row.organization_subpart = Some(true);
        row.parent_organization_lbn = Some("HARBOR FAMILY HEALTH, INC.".into());
        row.parent_organization_tin = Some("<UNAVAIL>".into());
        row.taxonomies = vec![taxonomy("261QF0400X", true, None)];
        let resources = provider_resources(&row, ctx());
        let org = find(&resources, "Organization");
        assert_eq!(org["partOf"], json!({"display": "HARBOR FAMILY HEALTH, INC."}));
        assert_eq!(org["type"][0]["coding"][0]["code"], "fac");
        assert_valid(&resources);
        // Not a subpart: the parent name is not used.
        row.organization_subpart = Some(false);
        assert!(find(&provider_resources(&row, ctx()), "Organization")
            .get("partOf")
            .is_none());
    }

    fn deactivated() -> ProviderRow {
        // Deactivated rows come mostly blank.
        ProviderRow {
            deactivation_date: NaiveDate::from_ymd_opt(2024, 3, 4),
            ..row("1888888884", EntityType::Individual)
        }
    }

    #[test]
    fn a_deactivated_npi_is_withdrawn() {
        let resources = provider_resources(&deactivated(), ctx());
        assert_eq!(
            ids(&resources),
            [
                ("Practitioner", "npi-1888888884"),
                ("Location", "npi-1888888884-location"),
                ("PractitionerRole", "npi-1888888884-role")
            ],
            "every id an earlier import may have written"
        );
        for r in &resources {
            assert!(is_withdrawn(&r.resource), "{}", r.id);
            assert_eq!(
                r.resource["meta"]["tag"],
                json!([{"system": TAG_SYSTEM, "code": TAG_CODE,
                        "display": "withdrawn: NPPES deactivated NPI 1888888884 on 2024-03-04"}])
            );
            assert!(r.resource["meta"].get("profile").is_none());
        }
        assert_eq!(find(&resources, "Practitioner")["active"], false);
        assert_eq!(find(&resources, "PractitionerRole")["active"], false);
        assert_eq!(find(&resources, "Location")["status"], "inactive");
        assert_valid(&resources);

        // A full row deactivated, and an organization.
        let mut full = internist();
        full.deactivation_date = NaiveDate::from_ymd_opt(2024, 3, 4);
        let resources = provider_resources(&full, ctx());
        assert!(resources.iter().all(|r| is_withdrawn(&r.resource)));
        assert_valid(&resources);
        let mut org = harbor();
        org.deactivation_date = NaiveDate::from_ymd_opt(2024, 3, 4);
        org.reactivation_date = NaiveDate::from_ymd_opt(2020, 1, 1);
        let resources = provider_resources(&org, ctx());
        assert_eq!(resources.len(), 2);
        assert!(
            resources.iter().all(|r| is_withdrawn(&r.resource)),
            "reactivated before"
        );
        assert_eq!(find(&resources, "Organization")["active"], false);
        assert_valid(&resources);
    }

    #[test]
    fn a_deactivated_row_without_entity_type_maps_to_nothing() {
        let row = ProviderRow {
            entity_type: None,
            ..deactivated()
        };
        assert!(provider_resources(&row, ctx()).is_empty());
    }

    #[test]
    fn a_reactivated_npi_is_active() {
        let mut row = internist();
        row.deactivation_date = NaiveDate::from_ymd_opt(2019, 6, 1);
        row.reactivation_date = NaiveDate::from_ymd_opt(2020, 2, 1);
        let resources = provider_resources(&row, ctx());
        assert!(resources.iter().all(|r| !is_withdrawn(&r.resource)));
        assert_eq!(find(&resources, "Practitioner")["active"], true);
        assert_valid(&resources);
    }

    #[test]
    fn latin_1_accents_are_kept() {
        let mut row = person("1111111112", "JOSÉ", "NÚÑEZ");
        row.middle_name = Some("MARÍA".into());
        row.other_last_name = Some("MÜLLER".into());
        row.other_first_name = Some("JOSÉ".into());
        row.sex = Some("M".into());
        row.practice.line1 = Some("12 AVENIDA DOÑA ANA".into());
        row.taxonomies = vec![taxonomy("207R00000X", true, None)];
        let resources = provider_resources(&row, ctx());
        let practitioner = find(&resources, "Practitioner");
        assert_eq!(practitioner["name"][0]["family"], "NÚÑEZ");
        assert_eq!(practitioner["name"][0]["given"], json!(["JOSÉ", "MARÍA"]));
        assert_eq!(practitioner["name"][1], json!({"family": "MÜLLER", "given": ["JOSÉ"]}));
        assert_eq!(practitioner["gender"], "male");
        assert_eq!(
            find(&resources, "Location")["name"],
            "Practice location of JOSÉ MARÍA NÚÑEZ"
        );
        assert_eq!(
            find(&resources, "Location")["address"]["line"][0],
            "12 AVENIDA DOÑA ANA"
        );
        assert_valid(&resources);
        // Another sex code says nothing of gender.
        row.sex = Some("X".into());
        assert!(find(&provider_resources(&row, ctx()), "Practitioner")
            .get("gender")
            .is_none());
    }

    fn pl_row() -> SecondaryLocationRow {
        SecondaryLocationRow {
            line: 7,
            npi: "1234567893".into(),
            address: BulkAddress {
                line2: Some("FLOOR 3".into()),
                fax: Some("3095550120".into()),
                country_code: None,
                ..address("55 OAK AVE", "PEORIA", "IL", "616020001", Some("3095550110"))
            },
        }
    }

    fn endpoint_row(endpoint_type: &str, address: &str) -> EndpointRow {
        EndpointRow {
            line: 3,
            npi: "1234567893".into(),
            endpoint_type: Some(endpoint_type.into()),
            endpoint_type_description: Some("Direct Messaging Address".into()),
            endpoint: address.into(),
            affiliation: Some(false),
            endpoint_description: None,
            affiliation_legal_business_name: None,
            use_code: None,
            use_description: None,
            other_use_description: None,
            content_type: None,
            content_description: None,
            other_content_description: None,
            affiliation_address: BulkAddress::default(),
        }
    }

    #[test]
    fn secondary_locations() {
        let location = secondary_location(&pl_row(), 1);
        assert_eq!(location.id, "npi-1234567893-location-2");
        assert_eq!(location.resource_type, "Location");
        assert_eq!(location.resource["name"], "55 OAK AVE, PEORIA");
        assert_eq!(
            location.resource["address"],
            json!({"use": "work", "type": "physical", "line": ["55 OAK AVE", "FLOOR 3"], "city": "PEORIA",
                   "state": "IL", "postalCode": "61602-0001", "country": "US"})
        );
        assert_eq!(location.resource["telecom"][1]["system"], "fax");
        assert_eq!(secondary_location(&pl_row(), 2).id, "npi-1234567893-location-3");
        let mut bare = pl_row();
        bare.address = BulkAddress {
            state: Some("IL".into()),
            ..BulkAddress::default()
        };
        let bare = secondary_location(&bare, 1);
        assert_eq!(bare.resource["name"], "Practice location 2 of NPI 1234567893");
        assert_valid(&[location, bare]);
    }

    #[test]
    fn endpoints() {
        let direct = endpoint(&endpoint_row("DIRECT", "jdoe@direct.example.org"), 1);
        assert_eq!(direct.id, "npi-1234567893-endpoint-1");
        assert_eq!(
            direct.resource,
            json!({
                "resourceType": "Endpoint",
                "id": "npi-1234567893-endpoint-1",
                "meta": {"profile": [format!("{PLAN_NET}plannet-Endpoint")]},
                "status": "active",
                "connectionType": {"system": CONNECTION_TYPE_SYSTEM, "code": "direct-project",
                                   "display": "Direct Project"},
                "name": "Direct Messaging Address",
                "payloadType": [{"coding": [{"system": PAYLOAD_TYPE_SYSTEM, "code": "NA",
                                             "display": "Not Applicable"}]}],
                "address": "mailto:jdoe@direct.example.org"
            })
        );
        let mut fhir = endpoint_row("FHIR", "https://fhir.example.org/r4");
        fhir.endpoint_type_description = Some("FHIR URL".into());
        fhir.endpoint_description = Some("Patient access API".into());
        fhir.affiliation = Some(true);
        fhir.affiliation_legal_business_name = Some("WATSON CLINIC LLP".into());
        let fhir = endpoint(&fhir, 2);
        assert_eq!(fhir.resource["connectionType"]["code"], "hl7-fhir-rest");
        assert_eq!(fhir.resource["address"], "https://fhir.example.org/r4");
        assert_eq!(fhir.resource["name"], "Patient access API");
        assert_eq!(
            fhir.resource["managingOrganization"],
            json!({"display": "WATSON CLINIC LLP"})
        );
        let web = endpoint(&endpoint_row("WEB", "https://portal.example.org"), 3);
        assert_eq!(web.resource["connectionType"]["code"], "rest-non-fhir");
        let mut connect = endpoint_row("CONNECT", "https://gateway.example.org/connect");
        connect.endpoint_type_description = Some("CONNECT URL".into());
        let connect = endpoint(&connect, 4);
        assert_eq!(
            connect.resource["connectionType"],
            json!({"system": NPPES_ENDPOINT_TYPE_SYSTEM, "code": "CONNECT", "display": "CONNECT URL"})
        );
        assert_valid(&[direct, fhir, web, connect]);
    }

    #[test]
    fn merges_are_idempotent() {
        let resources = provider_resources(&internist(), ctx());
        let mut role = find(&resources, "PractitionerRole").clone();
        assert!(link_location(&mut role, "npi-1234567893-location-2"));
        let once = role.clone();
        assert!(!link_location(&mut role, "npi-1234567893-location-2"));
        assert_eq!(role, once);
        assert_eq!(
            role["location"],
            json!([{"reference": "Location/npi-1234567893-location"},
                   {"reference": "Location/npi-1234567893-location-2"}])
        );
        assert!(link_endpoint(&mut role, "npi-1234567893-endpoint-1"));
        assert!(!link_endpoint(&mut role, "npi-1234567893-endpoint-1"));
        assert_eq!(
            role["endpoint"],
            json!([{"reference": "Endpoint/npi-1234567893-endpoint-1"}])
        );
        let mut practitioner = find(&resources, "Practitioner").clone();
        let before = practitioner.clone();
        assert!(!link_endpoint(&mut practitioner, "npi-1234567893-endpoint-1"));
        assert!(!link_location(&mut practitioner, "npi-1234567893-location-2"));
        assert_eq!(practitioner, before, "a Practitioner has neither element");

        let harbor = provider_resources(&harbor(), ctx());
        let mut org = find(&harbor, "Organization").clone();
        let before = org.clone();
        assert!(!link_location(&mut org, "npi-1437410099-location-2"));
        assert_eq!(org, before);
        assert!(link_endpoint(&mut org, "npi-1437410099-endpoint-1"));
        assert!(!link_endpoint(&mut org, "npi-1437410099-endpoint-1"));
        let other = |name: &str, type_code: &str| OtherNameRow {
            line: 2,
            npi: "1437410099".into(),
            name: name.into(),
            type_code: Some(type_code.into()),
        };
        assert!(
            !add_alias(&mut org, &other("HARBOR HEALTH", "3")),
            "already the alias from the main file"
        );
        assert!(
            !add_alias(&mut org, &other("HARBOR FAMILY HEALTH, INC.", "5")),
            "its own name"
        );
        assert!(add_alias(&mut org, &other("HARBOR CLINIC", "4")));
        let once = org.clone();
        assert!(!add_alias(&mut org, &other("HARBOR CLINIC", "4")));
        assert_eq!(org, once);
        assert_eq!(org["alias"], json!(["HARBOR HEALTH", "HARBOR CLINIC"]));

        let mut location = secondary_location(&pl_row(), 1);
        assert!(set_managing_organization(&mut location.resource, "npi-1437410099"));
        assert!(!set_managing_organization(&mut location.resource, "npi-1437410099"));
        let mut endpoint = endpoint(&endpoint_row("DIRECT", "a@direct.example.org"), 1);
        assert!(set_managing_organization(&mut endpoint.resource, "npi-1437410099"));
        assert!(link_location(&mut role, &location.id) | link_endpoint(&mut org, &endpoint.id));

        // What the merges produce still conforms.
        let merged = [
            ("PractitionerRole", role),
            ("Organization", org),
            ("Location", location.resource),
            ("Endpoint", endpoint.resource),
        ];
        assert_valid(
            &merged
                .into_iter()
                .map(|(resource_type, resource)| BulkResource {
                    resource_type,
                    id: resource["id"].as_str().unwrap().to_string(),
                    resource,
                })
                .collect::<Vec<_>>(),
        );
    }
}

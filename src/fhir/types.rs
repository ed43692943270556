//! The resource types this server holds: the eight Plan-Net resource types, and the
//! Provenance the server writes as its audit trail.

pub const SUPPORTED_TYPES: [&str; 9] = [
    "Endpoint",
    "HealthcareService",
    "InsurancePlan",
    "Location",
    "Organization",
    "OrganizationAffiliation",
    "Practitioner",
    "PractitionerRole",
    "Provenance",
];

/// Types clients may read but never write: the server alone writes the audit trail, so that
/// it says what really happened.
pub const READ_ONLY_TYPES: [&str; 1] = ["Provenance"];

pub fn is_read_only(resource_type: &str) -> bool {
    READ_ONLY_TYPES.contains(&resource_type)
}

/// Types whose search parameters are loaded and indexed.
pub const SEARCHABLE_TYPES: [&str; 9] = [
    "Endpoint",
    "HealthcareService",
    "InsurancePlan",
    "Location",
    "Organization",
    "OrganizationAffiliation",
    "Practitioner",
    "PractitionerRole",
    "Provenance",
];

pub fn is_supported(resource_type: &str) -> bool {
    SUPPORTED_TYPES.contains(&resource_type)
}

/// FHIR's `id` datatype: 1 to 64 of `A-Z a-z 0-9 - .`. <https://hl7.org/fhir/R4/datatypes.html#id>
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

//! The resource types this server holds: the eight Plan-Net resource types.

pub const SUPPORTED_TYPES: [&str; 8] = [
    "Endpoint",
    "HealthcareService",
    "InsurancePlan",
    "Location",
    "Organization",
    "OrganizationAffiliation",
    "Practitioner",
    "PractitionerRole",
];

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

//! Validation of resources on write and by `$validate`. Structure first (JSON Schema from the
//! R4 `fhir.schema.json`, with precise element paths, then fhirbolt's strict parse); then the
//! profiles the resource claims in `meta.profile`, and the Plan-Net profile of its type.
//! Structure errors are 400s, profile errors 422s; warnings never block.

pub mod definitions;
pub mod invariants;
pub mod profile;
pub mod structure;
pub mod terminology;

use std::path::Path;

use serde_json::Value;

pub use profile::ProfileValidator;
pub use structure::StructureValidator;

use crate::fhir::outcome::{Issue, Severity};

const PLAN_NET: &str = "http://hl7.org/fhir/us/davinci-pdex-plan-net/StructureDefinition/";

/// The Plan-Net profile a resource of this type conforms to, decided by the resource itself:
/// an Organization typed as a network (`OrgTypeCS|ntwk`) is a Network, any other an Organization.
pub fn plan_net_profile(resource_type: &str, resource: &Value) -> Option<String> {
    let name = match resource_type {
        "Organization" => {
            let is_network = resource["type"].as_array().into_iter().flatten().any(|t| {
                t["coding"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["code"] == "ntwk")
            });
            if is_network {
                "plannet-Network"
            } else {
                "plannet-Organization"
            }
        }
        "Practitioner"
        | "PractitionerRole"
        | "OrganizationAffiliation"
        | "Location"
        | "HealthcareService"
        | "Endpoint"
        | "InsurancePlan" => return Some(format!("{PLAN_NET}plannet-{resource_type}")),
        _ => return None,
    };
    Some(format!("{PLAN_NET}{name}"))
}

pub struct Validator {
    pub structure: StructureValidator,
    pub profiles: ProfileValidator,
}

/// What validation found, split by what it means for a write.
#[derive(Debug, Default)]
pub struct Report {
    /// Structure errors: the body is not the resource it claims to be (400).
    pub structure: Vec<Issue>,
    /// Profile issues (errors: 422) and warnings.
    pub profile: Vec<Issue>,
    /// The Plan-Net profile the resource conforms to, when it does.
    pub conforms_to: Option<String>,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.structure
            .iter()
            .chain(&self.profile)
            .any(|i| matches!(i.severity, Severity::Error | Severity::Fatal))
    }
}

impl Validator {
    pub fn load(
        profiles: &Path,
        definitions: &definitions::Definitions,
        fhirpath: std::sync::Arc<crate::fhirpath::FhirPath>,
    ) -> Result<Validator, String> {
        let structure = StructureValidator::load(&profiles.join("r4/fhir.schema.json")).map_err(|e| e.to_string())?;
        let profiles = ProfileValidator::load(profiles, definitions, Box::new(fhirpath))?;
        Ok(Validator { structure, profiles })
    }

    /// Validates `resource` as a `resource_type`: against the profiles it claims (errors), and
    /// against its type's Plan-Net profile (`require_plan_net`: errors; otherwise it only
    /// decides whether the resource may claim it). `profile` adds one more (`$validate?profile=`).
    pub fn validate(
        &self,
        resource_type: &str,
        resource: &Value,
        require_plan_net: bool,
        profile: Option<&str>,
    ) -> Report {
        let structure = self.structure.validate(resource_type, resource);
        if !structure.is_empty() {
            return Report {
                structure,
                ..Report::default()
            };
        }
        let mut report = Report::default();
        let claimed: Vec<String> = resource["meta"]["profile"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .chain(profile.map(str::to_string))
            .collect();
        for url in &claimed {
            if self.profiles.knows(url) {
                report.profile.extend(self.profiles.validate(resource, url));
            } else if url.starts_with(PLAN_NET) || profile == Some(url.as_str()) {
                report.profile.push(
                    Issue::error("not-supported", format!("profile {url} is not known here"))
                        .at(format!("{resource_type}.meta.profile")),
                );
            } else {
                report.profile.push(
                    Issue::information("informational", format!("profile {url} is not known here; not checked"))
                        .at(format!("{resource_type}.meta.profile")),
                );
            }
        }
        if let Some(plan_net) = plan_net_profile(resource_type, resource) {
            let issues = if claimed.contains(&plan_net) {
                report.profile.clone()
            } else {
                let issues = self.profiles.validate(resource, &plan_net);
                if require_plan_net {
                    report.profile.extend(issues.clone());
                }
                issues
            };
            if !issues
                .iter()
                .any(|i| matches!(i.severity, Severity::Error | Severity::Fatal))
            {
                report.conforms_to = Some(plan_net);
            }
        }
        report.profile.dedup();
        report
    }
}

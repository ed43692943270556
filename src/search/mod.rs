//! Search: which index rows a resource produces on write (`index`, from the SearchParameter
//! expressions in `registry`, evaluated by `fhirpath`), how a query is read (`query`), and
//! the one SQL statement that answers it from the index tables (`sql`).
//! <https://hl7.org/fhir/R4/search.html>

pub mod date;
pub mod index;
pub mod query;
pub mod registry;
pub mod sql;
mod summary;

pub use registry::Registry;
pub use summary::SummaryElements;

use crate::fhir::outcome::Issue;
use crate::fhir::FhirError;
use crate::store::{StoreError, Tx};
use query::{Limits, SearchQuery};

/// The criteria of a conditional create or update. Strict: a parameter the server cannot
/// apply is refused, since ignoring it would match too much.
#[derive(Debug, Clone)]
pub struct Conditions(SearchQuery);

impl Conditions {
    pub fn parse(
        registry: &Registry,
        resource_type: &str,
        query: &[(String, String)],
        source: &str,
    ) -> Result<Conditions, FhirError> {
        // Two matches are enough to know there is more than one.
        let limits = Limits {
            default_count: 2,
            max_count: 2,
        };
        let criteria: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| !k.starts_with('_') || k == "_id")
            .cloned()
            .collect();
        let mut q = query::parse(registry, resource_type, &criteria, &limits, true).map_err(|e| match e {
            FhirError::Invalid(issues) => FhirError::Invalid(
                issues
                    .into_iter()
                    .map(|i| Issue {
                        expression: vec![source.to_string()],
                        ..i
                    })
                    .collect(),
            ),
            other => other,
        })?;
        if q.criteria.is_empty() {
            return Err(FhirError::invalid(
                Issue::error("required", "a conditional request needs at least one search parameter")
                    .at(source.to_string()),
            ));
        }
        q.count = 2;
        q.total = false;
        Ok(Conditions(q))
    }

    /// Ids of live resources matching every criterion (at most two).
    pub fn matching_ids(&self, tx: &mut Tx<'_>) -> Result<Vec<String>, StoreError> {
        let statement = sql::page(&self.0);
        Ok(tx
            .search(&statement.sql, &statement.binds)?
            .into_iter()
            .take(2)
            .map(|r| r.id)
            .collect())
    }
}

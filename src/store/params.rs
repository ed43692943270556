//! Search parameters by number. Index rows name their parameter (a resource type and a code)
//! by a small integer, `search_params.param_id`: the two names were a third of every row and
//! the start of every index key. Before its first use of the index a process registers the
//! parameters its indexer writes (insert if absent, so processes sharing a PostgreSQL agree on
//! the numbers) and keeps the whole table in memory; it is a few hundred rows.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::connection::DbConnection;
use super::schema::search_params;
use super::StoreError;

#[derive(Debug, Default)]
pub struct SearchParamIds {
    /// resource type → code → param_id
    by_type: HashMap<String, HashMap<String, i32>>,
}

impl SearchParamIds {
    /// Adds the `(resource type, code)` pairs the table lacks and reads it whole.
    pub(super) fn register(conn: &mut DbConnection, parameters: &[(String, String)]) -> Result<Self, StoreError> {
        let known = Self::load(conn)?;
        let missing: Vec<_> = parameters
            .iter()
            .filter(|(resource_type, code)| known.id(resource_type, code).is_none())
            .map(|(resource_type, code)| {
                (
                    search_params::resource_type.eq(resource_type),
                    search_params::code.eq(code),
                )
            })
            .collect();
        if missing.is_empty() {
            return Ok(known);
        }
        // Each row in its own statement, outside any transaction: another process may register
        // the same parameter at the same time, and its row is then as good as ours.
        for row in missing {
            match diesel::insert_into(search_params::table).values(row).execute(conn) {
                Ok(_) | Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Self::load(conn)
    }

    fn load(conn: &mut DbConnection) -> Result<Self, StoreError> {
        let rows: Vec<(i32, String, String)> = search_params::table
            .select((
                search_params::param_id,
                search_params::resource_type,
                search_params::code,
            ))
            .load(conn)?;
        let mut ids = SearchParamIds::default();
        for (param_id, resource_type, code) in rows {
            ids.by_type.entry(resource_type).or_default().insert(code, param_id);
        }
        Ok(ids)
    }

    /// The number of a parameter, if it was ever registered.
    pub fn id(&self, resource_type: &str, code: &str) -> Option<i32> {
        self.by_type.get(resource_type)?.get(code).copied()
    }

    /// The numbers of one type's parameters, for writing a resource's index rows: the type is
    /// looked up once per resource, not once per row (the bulk writer's commit thread numbers
    /// tens of millions of rows).
    pub fn written_by<'a>(&'a self, resource_type: &'a str) -> WrittenBy<'a> {
        WrittenBy {
            resource_type,
            codes: self.by_type.get(resource_type),
        }
    }

    /// Every parameter number of a type (the rows a resource of that type may own), sorted.
    pub fn of_type(&self, resource_type: &str) -> Vec<i32> {
        let mut ids: Vec<i32> = self
            .by_type
            .get(resource_type)
            .map(|codes| codes.values().copied().collect())
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    }
}

/// One resource type's parameter numbers ([`SearchParamIds::written_by`]).
pub struct WrittenBy<'a> {
    resource_type: &'a str,
    codes: Option<&'a HashMap<String, i32>>,
}

impl WrittenBy<'_> {
    /// The number of a parameter whose index rows are being written: registered at start-up.
    pub fn id(&self, code: &str) -> Result<i32, StoreError> {
        self.codes.and_then(|codes| codes.get(code)).copied().ok_or_else(|| {
            StoreError::Corrupt(format!(
                "search parameter {}.{code} has index rows but was not registered",
                self.resource_type
            ))
        })
    }
}

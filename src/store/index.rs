//! The search index tables: writing a resource's rows, and running the statements the search
//! planner (`crate::search::sql`) builds. Statements arrive with `?` placeholders; PostgreSQL
//! gets them numbered. Values are always bound, never spliced into SQL.

use diesel::prelude::*;
use diesel::sql_types::{Double, Integer, Nullable, Text};
use serde_json::Value;

use super::connection::{Backend, DbConnection};
use super::params::SearchParamIds;
use super::schema::{search_date, search_number, search_reference, search_string, search_token, search_uri};
use super::StoreError;

/// One search index row of a resource, by search parameter type.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexRow {
    Token {
        param: String,
        system: String,
        code: String,
        text: String,
    },
    String {
        param: String,
        norm: String,
        exact: String,
    },
    Reference {
        param: String,
        target_type: String,
        target_id: String,
        url: String,
    },
    Date {
        param: String,
        low: String,
        high: String,
    },
    Uri {
        param: String,
        uri: String,
    },
    Number {
        param: String,
        value: f64,
        system: String,
        code: String,
    },
}

/// Says which index rows a resource has. The store calls it on every write, so no write path
/// can leave the index stale.
pub trait Indexer: Send + Sync {
    fn index_rows(&self, resource_type: &str, resource: &Value) -> Vec<IndexRow>;

    /// Every `(resource type, code)` its rows may carry: the store numbers them before its
    /// first write ([`SearchParamIds`]).
    fn parameters(&self) -> Vec<(String, String)>;
}

/// For commands that only migrate: indexes nothing.
pub struct NoIndex;

impl Indexer for NoIndex {
    fn index_rows(&self, _: &str, _: &Value) -> Vec<IndexRow> {
        Vec::new()
    }

    fn parameters(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// A bound value of a search statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Double(f64),
    /// A search parameter's number (`search_params.param_id`), looked up when the statement
    /// runs; one never registered matches no row.
    SearchParam {
        resource_type: String,
        code: String,
    },
}

/// What a search statement selects: the id, up to three sort keys and, when the statement also
/// counts, the number of matches.
#[derive(Debug, Clone, QueryableByName)]
pub struct SearchRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub k0: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub k1: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub k2: Option<String>,
    #[diesel(sql_type = Nullable<diesel::sql_types::BigInt>)]
    pub total: Option<i64>,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

pub(super) fn replace_rows(
    conn: &mut DbConnection,
    params: &SearchParamIds,
    resource_type: &str,
    id: &str,
    rows: &[IndexRow],
) -> Result<(), StoreError> {
    let of_type = params.of_type(resource_type);
    let written_by = params.written_by(resource_type);
    macro_rules! clear {
        ($table:ident) => {
            diesel::delete(
                $table::table
                    .filter($table::id.eq(id))
                    .filter($table::param_id.eq_any(&of_type)),
            )
            .execute(conn)?;
        };
    }
    clear!(search_token);
    clear!(search_string);
    clear!(search_reference);
    clear!(search_date);
    clear!(search_uri);
    clear!(search_number);
    let mut seen: Vec<&IndexRow> = Vec::with_capacity(rows.len());
    for row in rows {
        if seen.contains(&row) {
            continue;
        }
        seen.push(row);
        match row {
            IndexRow::Token {
                param,
                system,
                code,
                text,
            } => diesel::insert_into(search_token::table)
                .values((
                    search_token::param_id.eq(written_by.id(param)?),
                    search_token::id.eq(id),
                    search_token::system.eq(system),
                    search_token::code.eq(code),
                    search_token::text.eq(text),
                ))
                .execute(conn)?,
            IndexRow::String { param, norm, exact } => diesel::insert_into(search_string::table)
                .values((
                    search_string::param_id.eq(written_by.id(param)?),
                    search_string::id.eq(id),
                    search_string::norm.eq(norm),
                    search_string::exact.eq(exact),
                ))
                .execute(conn)?,
            IndexRow::Reference {
                param,
                target_type,
                target_id,
                url,
            } => diesel::insert_into(search_reference::table)
                .values((
                    search_reference::param_id.eq(written_by.id(param)?),
                    search_reference::id.eq(id),
                    search_reference::target_type.eq(target_type),
                    search_reference::target_id.eq(target_id),
                    search_reference::url.eq(url),
                ))
                .execute(conn)?,
            IndexRow::Date { param, low, high } => diesel::insert_into(search_date::table)
                .values((
                    search_date::param_id.eq(written_by.id(param)?),
                    search_date::id.eq(id),
                    search_date::low.eq(low),
                    search_date::high.eq(high),
                ))
                .execute(conn)?,
            IndexRow::Uri { param, uri } => diesel::insert_into(search_uri::table)
                .values((
                    search_uri::param_id.eq(written_by.id(param)?),
                    search_uri::id.eq(id),
                    search_uri::uri.eq(uri),
                ))
                .execute(conn)?,
            IndexRow::Number {
                param,
                value,
                system,
                code,
            } => diesel::insert_into(search_number::table)
                .values((
                    search_number::param_id.eq(written_by.id(param)?),
                    search_number::id.eq(id),
                    search_number::value.eq(value),
                    search_number::system.eq(system),
                    search_number::code.eq(code),
                ))
                .execute(conn)?,
        };
    }
    Ok(())
}

/// `?` → `$1, $2, …` for PostgreSQL. The planner never writes `?` inside a literal.
/// Writes `?` placeholders as the backend wants them (`$1`, `$2`, … on PostgreSQL).
pub fn dialect(sql: &str, backend: Backend) -> String {
    match backend {
        Backend::Sqlite => sql.to_string(),
        Backend::Postgres => {
            let mut out = String::with_capacity(sql.len() + 16);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                } else {
                    out.push(c);
                }
            }
            out
        }
    }
}

macro_rules! bound {
    ($sql:expr, $binds:expr, $params:expr) => {{
        let mut query = diesel::sql_query($sql).into_boxed();
        for bind in $binds {
            query = match bind {
                Bind::Text(v) => query.bind::<Text, _>(v.clone()),
                Bind::Double(v) => query.bind::<Double, _>(*v),
                Bind::SearchParam { resource_type, code } => {
                    query.bind::<Integer, _>($params.id(resource_type, code).unwrap_or(NO_PARAM))
                }
            };
        }
        query
    }};
}

/// The number bound for a parameter never registered: no row has it.
const NO_PARAM: i32 = -1;

pub(super) fn search(
    conn: &mut DbConnection,
    backend: Backend,
    params: &SearchParamIds,
    sql: &str,
    binds: &[Bind],
) -> Result<Vec<SearchRow>, StoreError> {
    let sql = dialect(sql, backend);
    Ok(bound!(sql, binds, params).load::<SearchRow>(conn)?)
}

pub(super) fn count(
    conn: &mut DbConnection,
    backend: Backend,
    params: &SearchParamIds,
    sql: &str,
    binds: &[Bind],
) -> Result<i64, StoreError> {
    let sql = dialect(sql, backend);
    Ok(bound!(sql, binds, params).get_result::<CountRow>(conn)?.n)
}

pub(super) fn explain(
    conn: &mut DbConnection,
    backend: Backend,
    params: &SearchParamIds,
    sql: &str,
    binds: &[Bind],
) -> Result<String, StoreError> {
    let sql = dialect(sql, backend);
    let rows: Vec<String> = match backend {
        Backend::Sqlite => {
            #[derive(QueryableByName)]
            struct SqlitePlan {
                #[diesel(sql_type = Text)]
                detail: String,
            }
            bound!(format!("EXPLAIN QUERY PLAN {sql}"), binds, params)
                .load::<SqlitePlan>(conn)?
                .into_iter()
                .map(|r| r.detail)
                .collect()
        }
        Backend::Postgres => {
            // Small test tables would be scanned whatever the indexes; ask what the planner
            // does when scans are expensive, as they are on a real directory.
            diesel::sql_query("SET enable_seqscan = off").execute(conn)?;
            #[derive(QueryableByName)]
            struct PgPlan {
                #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
                plan: String,
            }
            let plan = bound!(format!("EXPLAIN {sql}"), binds, params).load::<PgPlan>(conn);
            diesel::sql_query("SET enable_seqscan = on").execute(conn)?;
            plan?.into_iter().map(|r| r.plan).collect()
        }
    };
    Ok(rows.join("\n"))
}

pub(super) fn references_of(
    conn: &mut DbConnection,
    params: &SearchParamIds,
    resource_type: &str,
    param: &str,
    ids: &[String],
) -> Result<Vec<(String, String)>, StoreError> {
    // `*`: every parameter of the type (only reference parameters have rows here).
    let param_ids = match param {
        "*" => params.of_type(resource_type),
        _ => params.id(resource_type, param).into_iter().collect(),
    };
    Ok(search_reference::table
        .filter(search_reference::id.eq_any(ids))
        .filter(search_reference::param_id.eq_any(param_ids))
        .select((search_reference::target_type, search_reference::target_id))
        .distinct()
        .load::<(String, String)>(conn)?)
}

pub(super) fn referring(
    conn: &mut DbConnection,
    params: &SearchParamIds,
    resource_type: &str,
    param: &str,
    target_type: &str,
    targets: &[String],
) -> Result<Vec<String>, StoreError> {
    let Some(param_id) = params.id(resource_type, param) else {
        return Ok(Vec::new());
    };
    Ok(search_reference::table
        .filter(search_reference::param_id.eq(param_id))
        .filter(search_reference::target_type.eq(target_type))
        .filter(search_reference::target_id.eq_any(targets))
        .select(search_reference::id)
        .distinct()
        .load::<String>(conn)?)
}

//! Turning a parsed search into one SQL statement over the index tables. Every condition is a
//! `r.id IN (SELECT id FROM search_… WHERE param_id = ? AND …)` on an
//! index; chains and `_has` go through `search_reference` in a materialized CTE each, and paging
//! is a keyset on (sort keys, id), so inserts and deletes between pages never shift a page.
//! Every value is a bound parameter.

use super::date;
use super::index::{normalize, split_reference};
use super::query::{split_prefix, Criterion, Modifier, Prefix, SearchQuery};
use super::registry::{ParamType, SearchParam, Stored};
use crate::store::Bind;

/// A statement and its bound values.
#[derive(Debug, Default)]
pub struct Statement {
    pub sql: String,
    pub binds: Vec<Bind>,
}

#[derive(Default)]
struct Builder {
    binds: Vec<Bind>,
    aliases: usize,
    /// `name AS MATERIALIZED (…)` with its own binds, in the order they must be declared.
    ctes: Vec<(String, Vec<Bind>)>,
}

/// Whether `c` can only hold for a resource that is not deleted: it asks for the resource's own
/// index rows (or its live `resources` row), and deleting a resource removes them. (`_id`,
/// `:not`, `:missing=true` and `_has` — whose rows belong to the referring resources — can hold
/// for a deleted one.)
fn holds_only_for_live(c: &Criterion) -> bool {
    match c {
        Criterion::Param { param, modifier, .. } => param.stored != Stored::ResourceId && *modifier != Modifier::Not,
        Criterion::Missing { missing, .. } => !missing,
        Criterion::Chain { .. } => true,
        Criterion::Has { .. } => false,
    }
}

impl Builder {
    fn bind(&mut self, v: impl Into<String>) -> &'static str {
        self.binds.push(Bind::Text(v.into()));
        "?"
    }

    /// A search parameter's number, bound: the store looks it up ([`Bind::SearchParam`]).
    fn bind_param(&mut self, resource_type: &str, code: &str) -> &'static str {
        self.binds.push(Bind::SearchParam {
            resource_type: resource_type.to_string(),
            code: code.to_string(),
        });
        "?"
    }

    /// `{alias}.param_id = ?`, or `IN (?, …)` for several codes (a parameter with [`Part`]s).
    ///
    /// [`Part`]: super::registry::Part
    fn param_condition(&mut self, alias: &str, resource_type: &str, codes: &[&str]) -> String {
        match codes {
            [code] => format!("{alias}.param_id = {}", self.bind_param(resource_type, code)),
            _ => {
                let list: Vec<&str> = codes.iter().map(|c| self.bind_param(resource_type, c)).collect();
                format!("{alias}.param_id IN ({})", list.join(", "))
            }
        }
    }

    fn alias(&mut self, stem: &str) -> String {
        self.aliases += 1;
        format!("{stem}{}", self.aliases)
    }

    /// `{id_expr} IN` the ids `body` selects, computed once as a materialized CTE. Chains and
    /// `_has` do not depend on the outer row; left to the planner, PostgreSQL misjudged how
    /// many candidates the other criteria leave (resource type, parameter and code are
    /// correlated) and probed the referenced resources' index rows once per candidate — over
    /// 30 s at a million providers. Materialized, the linked set is read through its own
    /// indexes once. `body` is built with its own binds: the CTE comes first in the statement.
    fn linked_set(&mut self, id_expr: &str, body: impl FnOnce(&mut Self) -> String) -> String {
        let outer = std::mem::take(&mut self.binds);
        let sql = body(self);
        let binds = std::mem::replace(&mut self.binds, outer);
        let name = self.alias("linked");
        self.ctes.push((format!("{name} AS MATERIALIZED ({sql})"), binds));
        format!("{id_expr} IN (SELECT id FROM {name})")
    }

    /// `FROM … WHERE …` over the index rows of `param` (under its codes) of a `resource_type`
    /// holding any of `values`, with the rows' alias.
    fn matching_rows(
        &mut self,
        resource_type: &str,
        param: &SearchParam,
        modifier: Modifier,
        type_modifier: &Option<String>,
        values: &[String],
    ) -> (String, String) {
        let (table, alias) = (table_of(param.kind), self.alias("i"));
        let code = self.param_condition(&alias, resource_type, &param.row_codes());
        let any = values
            .iter()
            .map(|v| self.value_condition(param.kind, modifier, type_modifier.as_deref(), &alias, v))
            .collect::<Vec<_>>()
            .join(" OR ");
        let rows = format!("FROM {table} {alias} WHERE {code} AND ({any})");
        (alias, rows)
    }

    /// `{id_expr} IN` the live resources of `resource_type` whose row (`x`) meets `condition`.
    fn live_resources(
        &mut self,
        id_expr: &str,
        resource_type: &str,
        condition: impl FnOnce(&mut Self) -> String,
    ) -> String {
        let ty = self.bind(resource_type);
        let condition = condition(self);
        format!(
            "{id_expr} IN (SELECT x.id FROM resources x WHERE x.resource_type = {ty} AND x.deleted = false AND ({condition}))"
        )
    }

    /// The statement: the CTEs, then `sql`, with the binds in the order their `?` appear.
    fn finish(self, sql: String) -> Statement {
        if self.ctes.is_empty() {
            return Statement { sql, binds: self.binds };
        }
        let (definitions, mut binds): (Vec<String>, Vec<Vec<Bind>>) = self.ctes.into_iter().unzip();
        let mut all: Vec<Bind> = binds.iter_mut().flat_map(std::mem::take).collect();
        all.extend(self.binds);
        Statement {
            sql: format!("WITH {} {sql}", definitions.join(", ")),
            binds: all,
        }
    }

    /// A condition on `id_expr`, the id of a resource of `resource_type`.
    fn criterion(&mut self, c: &Criterion, resource_type: &str, id_expr: &str) -> String {
        match c {
            Criterion::Param {
                param,
                modifier,
                type_modifier,
                values,
            } => {
                match &param.stored {
                    Stored::Rows(_) => {}
                    Stored::ResourceId => {
                        let list = values
                            .iter()
                            .map(|v| self.bind(v.clone()))
                            .collect::<Vec<_>>()
                            .join(", ");
                        return match modifier {
                            Modifier::None => format!("{id_expr} IN ({list})"),
                            Modifier::Not => format!("{id_expr} NOT IN ({list})"),
                            _ => "1 = 0".to_string(),
                        };
                    }
                    Stored::LastUpdated => {
                        return self.live_resources(id_expr, resource_type, |b| {
                            values
                                .iter()
                                .map(|v| {
                                    let (prefix, text) = split_prefix(v);
                                    let (low, high) = date::range(text).expect("checked when parsed");
                                    b.date_condition(prefix, "x.last_updated", "x.last_updated", &low, &high)
                                })
                                .collect::<Vec<_>>()
                                .join(" OR ")
                        });
                    }
                }
                let (alias, rows) = self.matching_rows(resource_type, param, *modifier, type_modifier, values);
                if *modifier == Modifier::Not {
                    // The set is computed once: the usual `:not` leaves out a few (the
                    // deactivated); probing per candidate made a family-name search at a million
                    // providers 1.5x slower on SQLite.
                    format!("{id_expr} NOT IN (SELECT {alias}.id {rows})")
                } else {
                    format!("{id_expr} IN (SELECT {alias}.id {rows})")
                }
            }
            Criterion::Missing { param, missing } => {
                if param.rows_code().is_none() {
                    // Every resource has an id and a lastUpdated.
                    return if *missing {
                        "1 = 0".to_string()
                    } else {
                        self.live_resources(id_expr, resource_type, |_| "1 = 1".to_string())
                    };
                };
                let (table, alias) = (table_of(param.kind), self.alias("i"));
                let code = self.param_condition(&alias, resource_type, &param.row_codes());
                // A probe per candidate through the owner index: `NOT IN` over every row of the
                // parameter made PostgreSQL rescan them for each candidate once they outgrew
                // work_mem (name:missing=true ran past the 30 s request timeout at 200k providers).
                let op = if *missing { "NOT EXISTS" } else { "EXISTS" };
                format!("{op} (SELECT 1 FROM {table} {alias} WHERE {alias}.id = {id_expr} AND {code})")
            }
            Criterion::Chain {
                param,
                target_types,
                inner,
            } => {
                let parts: Vec<String> = target_types
                    .iter()
                    .map(|target| {
                        self.linked_set(id_expr, |b| {
                            let (refs, res) = (b.alias("ref"), b.alias("r"));
                            let code = b.bind_param(resource_type, param.rows_code().unwrap_or(&param.code));
                            let tt = b.bind(target.clone());
                            let head = format!(
                                "SELECT {refs}.id AS id FROM search_reference {refs} WHERE {refs}.param_id = {code} \
                                 AND {refs}.target_type = {tt} AND"
                            );
                            if holds_only_for_live(inner) {
                                // The target's index rows answer alone: looking each target up
                                // in `resources` would be a random read per target.
                                let inner_sql = b.criterion(inner, target, &format!("{refs}.target_id"));
                                return format!("{head} {inner_sql}");
                            }
                            let tt2 = b.bind(target.clone());
                            let inner_sql = b.criterion(inner, target, &format!("{res}.id"));
                            format!(
                                "{head} {refs}.target_id IN (SELECT {res}.id FROM resources {res} \
                                 WHERE {res}.resource_type = {tt2} AND {res}.deleted = false AND {inner_sql})"
                            )
                        })
                    })
                    .collect();
                if parts.is_empty() {
                    "1 = 0".to_string()
                } else {
                    format!("({})", parts.join(" OR "))
                }
            }
            Criterion::Has {
                source_type,
                param,
                inner,
            } => self.linked_set(id_expr, |b| {
                let (refs, res) = (b.alias("ref"), b.alias("r"));
                let code = b.bind_param(source_type, param.rows_code().unwrap_or(&param.code));
                let tt = b.bind(resource_type);
                let st2 = b.bind(source_type.clone());
                let inner_sql = b.criterion(inner, source_type, &format!("{res}.id"));
                format!(
                    "SELECT {refs}.target_id AS id FROM search_reference {refs} WHERE {refs}.param_id = {code} \
                     AND {refs}.target_type = {tt} AND {refs}.id IN \
                     (SELECT {res}.id FROM resources {res} WHERE {res}.resource_type = {st2} AND {res}.deleted = false AND {inner_sql})"
                )
            }),
        }
    }

    fn value_condition(
        &mut self,
        kind: ParamType,
        modifier: Modifier,
        type_modifier: Option<&str>,
        a: &str,
        value: &str,
    ) -> String {
        match kind {
            ParamType::Token => {
                if modifier == Modifier::Text {
                    let lo = self.bind(normalize(value));
                    let hi = self.bind(prefix_end(&normalize(value)));
                    // `text <> ''` lets both planners use the index of rows with text.
                    return format!("({a}.text <> '' AND {a}.text >= {lo} AND {a}.text < {hi})");
                }
                match value.split_once('|') {
                    None => format!("{a}.code = {}", self.bind(value)),
                    Some(("", code)) => format!("({a}.code = {} AND {a}.system = '')", self.bind(code)),
                    Some((system, "")) => format!("{a}.system = {}", self.bind(system)),
                    Some((system, code)) => {
                        let c = self.bind(code);
                        format!("({a}.code = {c} AND {a}.system = {})", self.bind(system))
                    }
                }
            }
            ParamType::String => match modifier {
                // An exact match is also a match of the normalized forms: that index finds it
                // (a second index on `exact` cost an import a tenth of its index building).
                Modifier::Exact => {
                    let norm = self.bind(normalize(value));
                    format!("({a}.norm = {norm} AND {a}.exact = {})", self.bind(value))
                }
                Modifier::Contains => {
                    let escaped = normalize(value)
                        .replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_");
                    format!("{a}.norm LIKE {} ESCAPE '\\'", self.bind(format!("%{escaped}%")))
                }
                _ => {
                    let norm = normalize(value);
                    let lo = self.bind(norm.clone());
                    let hi = self.bind(prefix_end(&norm));
                    format!("({a}.norm >= {lo} AND {a}.norm < {hi})")
                }
            },
            ParamType::Reference => {
                let (ty, id) = split_reference(value);
                if !ty.is_empty() {
                    let (t, i) = (self.bind(ty), self.bind(id));
                    let url = self.bind(value);
                    format!("(({a}.target_type = {t} AND {a}.target_id = {i}) OR {a}.url = {url})")
                } else if value.contains(':') {
                    format!("{a}.url = {}", self.bind(value))
                } else {
                    let i = self.bind(value);
                    match type_modifier {
                        Some(t) => format!("({a}.target_id = {i} AND {a}.target_type = {})", self.bind(t)),
                        None => format!("{a}.target_id = {i}"),
                    }
                }
            }
            ParamType::Date => {
                let (prefix, text) = split_prefix(value);
                let (low, high) = date::range(text).expect("checked when parsed");
                self.date_condition(prefix, &format!("{a}.low"), &format!("{a}.high"), &low, &high)
            }
            ParamType::Uri => match modifier {
                Modifier::Below => format!(
                    "({a}.uri >= {} AND {a}.uri < {})",
                    self.bind(value),
                    self.bind(prefix_end(value))
                ),
                _ => format!("{a}.uri = {}", self.bind(value)),
            },
            ParamType::Number => {
                let (prefix, text) = split_prefix(value);
                let n: f64 = text.parse().expect("checked when parsed");
                self.binds.push(Bind::Double(n));
                let op = match prefix {
                    Prefix::Gt | Prefix::Sa => ">",
                    Prefix::Lt | Prefix::Eb => "<",
                    Prefix::Ge => ">=",
                    Prefix::Le => "<=",
                    Prefix::Ne => "<>",
                    Prefix::Eq | Prefix::Ap => "=",
                };
                format!("{a}.value {op} ?")
            }
            _ => "1 = 0".to_string(),
        }
    }

    /// Range semantics of <https://hl7.org/fhir/R4/search.html#prefix>: the target range
    /// [lo_col, hi_col] against the search range [low, high].
    fn date_condition(&mut self, prefix: Prefix, lo_col: &str, hi_col: &str, low: &str, high: &str) -> String {
        match prefix {
            Prefix::Eq => format!("({lo_col} >= {} AND {hi_col} <= {})", self.bind(low), self.bind(high)),
            Prefix::Ne => format!(
                "NOT ({lo_col} >= {} AND {hi_col} <= {})",
                self.bind(low),
                self.bind(high)
            ),
            Prefix::Gt => format!("{hi_col} > {}", self.bind(high)),
            Prefix::Lt => format!("{lo_col} < {}", self.bind(low)),
            Prefix::Ge => format!("{hi_col} >= {}", self.bind(low)),
            Prefix::Le => format!("{lo_col} <= {}", self.bind(high)),
            Prefix::Sa => format!("{lo_col} > {}", self.bind(high)),
            Prefix::Eb => format!("{hi_col} < {}", self.bind(low)),
            Prefix::Ap => {
                // "approximately": the ranges overlap once the search range is widened by a tenth
                // of its distance from now, and by a day at least.
                let (wlow, whigh) = widen(low, high);
                format!("({lo_col} <= {} AND {hi_col} >= {})", self.bind(whigh), self.bind(wlow))
            }
        }
    }
}

fn widen(low: &str, high: &str) -> (String, String) {
    use chrono::{DateTime, Duration, Utc};
    let parse = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).ok();
    let (Some(l), Some(h)) = (parse(low), parse(high)) else {
        return (low.to_string(), high.to_string());
    };
    let now = Utc::now();
    let distance = (now - l).abs().max((now - h).abs());
    let margin = (distance / 10).max(Duration::days(1));
    let f = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    (f(l - margin), f(h + margin))
}

/// The smallest string greater than every string starting with `prefix`.
fn prefix_end(prefix: &str) -> String {
    let mut s = prefix.to_string();
    s.push(char::MAX);
    s
}

fn table_of(kind: ParamType) -> &'static str {
    match kind {
        ParamType::Token => "search_token",
        ParamType::String => "search_string",
        ParamType::Reference => "search_reference",
        ParamType::Date => "search_date",
        ParamType::Uri => "search_uri",
        _ => "search_number",
    }
}

/// The sort key expression for one `_sort` key over resource `r`.
fn sort_expression(b: &mut Builder, resource_type: &str, key: &super::query::SortKey) -> String {
    match (key.param.as_str(), key.kind) {
        ("_id", _) => "r.id".to_string(),
        ("_lastUpdated", _) => "r.last_updated".to_string(),
        (_, Some(kind)) => {
            let (table, column) = match kind {
                ParamType::String => ("search_string", "norm"),
                ParamType::Date => ("search_date", if key.descending { "high" } else { "low" }),
                ParamType::Uri => ("search_uri", "uri"),
                _ => ("search_token", "code"),
            };
            let agg = if key.descending { "MAX" } else { "MIN" };
            let codes: Vec<&str> = key.row_codes.iter().map(String::as_str).collect();
            let c = b.param_condition("s", resource_type, &codes);
            format!("COALESCE((SELECT {agg}(s.{column}) FROM {table} s WHERE s.id = r.id AND {c}), '')")
        }
        _ => "''".to_string(),
    }
}

/// Every criterion, over the `resources` row `r`.
fn conditions(b: &mut Builder, q: &SearchQuery, r: &str) -> String {
    let ty = b.bind(q.resource_type.clone());
    let mut parts = vec![format!("{r}.resource_type = {ty}"), format!("{r}.deleted = false")];
    for c in &q.criteria {
        parts.push(b.criterion(c, &q.resource_type, &format!("{r}.id")));
    }
    parts.join(" AND ")
}

/// `FROM … WHERE …` of an id-ordered search, over `d.id`. When a criterion reads the resource's
/// own index rows, its matching ids are the table searched: index rows exist only for live
/// resources, so no `resources` row is read per candidate (at 1M providers on PostgreSQL that
/// read was most of a family-name search and of its count). Otherwise every live resource of
/// the type is.
fn id_ordered(b: &mut Builder, q: &SearchQuery) -> String {
    let driver = q.criteria.iter().enumerate().find_map(|(i, c)| match c {
        Criterion::Param {
            param,
            modifier,
            type_modifier,
            values,
        } if *modifier != Modifier::Not && param.rows_code().is_some() => {
            Some((i, param, *modifier, type_modifier, values))
        }
        _ => None,
    });
    let Some((driver, param, modifier, type_modifier, values)) = driver else {
        return format!("resources d WHERE {}", conditions(b, q, "d"));
    };
    let (alias, rows) = b.matching_rows(&q.resource_type, param, modifier, type_modifier, values);
    let mut parts = vec!["1 = 1".to_string()];
    for (i, c) in q.criteria.iter().enumerate() {
        if i != driver {
            parts.push(b.criterion(c, &q.resource_type, "d.id"));
        }
    }
    format!(
        "(SELECT DISTINCT {alias}.id AS id {rows}) d WHERE {}",
        parts.join(" AND ")
    )
}

/// The page of ids (with their sort keys) a search selects.
pub fn page(q: &SearchQuery) -> Statement {
    let mut b = Builder::default();
    if q.sort.is_empty() {
        // The common case, id order: the store can walk ids in order and stop at the page's end.
        let mut from = id_ordered(&mut b, q);
        if let Some(cursor) = &q.cursor {
            from.push_str(&format!(" AND d.id > {}", b.bind(cursor[3].clone())));
        }
        return b.finish(id_page(&from, NO_TOTAL, q));
    }
    let mut keys: Vec<String> = q
        .sort
        .iter()
        .map(|k| sort_expression(&mut b, &q.resource_type, k))
        .collect();
    let directions: Vec<bool> = q.sort.iter().map(|k| k.descending).collect();
    while keys.len() < 3 {
        keys.push("''".to_string());
    }
    let where_sql = conditions(&mut b, q, "r");
    let inner = format!(
        "SELECT r.id AS id, {} AS k0, {} AS k1, {} AS k2 FROM resources r WHERE {where_sql}",
        keys[0], keys[1], keys[2]
    );
    let mut outer = format!("SELECT id, k0, k1, k2, {NO_TOTAL} FROM ({inner}) t");
    if let Some(cursor) = &q.cursor {
        // Lexicographic "after the cursor" over (k0, k1, k2, id), honouring each direction.
        let columns = ["k0", "k1", "k2", "id"];
        let mut alternatives = Vec::new();
        for i in 0..4 {
            let mut terms = Vec::new();
            for (j, column) in columns.iter().enumerate().take(i) {
                terms.push(format!("t.{column} = {}", b.bind(cursor[j].clone())));
            }
            let descending = directions.get(i).copied().unwrap_or(false);
            let op = if descending { "<" } else { ">" };
            terms.push(format!("t.{} {op} {}", columns[i], b.bind(cursor[i].clone())));
            alternatives.push(format!("({})", terms.join(" AND ")));
        }
        outer.push_str(&format!(" WHERE {}", alternatives.join(" OR ")));
    }
    let order: Vec<String> = (0..3)
        .map(|i| {
            format!(
                "k{i} {}",
                if directions.get(i).copied().unwrap_or(false) {
                    "DESC"
                } else {
                    "ASC"
                }
            )
        })
        .chain(std::iter::once("id ASC".to_string()))
        .collect();
    // One more than a page, to know whether a next page exists.
    outer.push_str(&format!(" ORDER BY {} LIMIT {}", order.join(", "), q.count + 1));
    b.finish(outer)
}

/// The `total` column of a page that does not count.
const NO_TOTAL: &str = "CAST(NULL AS BIGINT) AS total";

/// The first page of an id-ordered search that reads a linked set (a chain or `_has`), each row
/// with the number of matches (`COUNT(*) OVER ()`, taken before `LIMIT`): the linked set is
/// computed once instead of once for the page and again for [`total`] (at 200k providers on
/// PostgreSQL, `specialty` + `location.address-state` spent 20 ms in each). `None` otherwise:
/// a plain search's page stops at its end, and counting beside it costs less than a window over
/// every match; a sorted page or a later one counts apart.
pub fn counted_page(q: &SearchQuery) -> Option<Statement> {
    if !q.sort.is_empty() || q.cursor.is_some() {
        return None;
    }
    let mut b = Builder::default();
    let from = id_ordered(&mut b, q);
    if b.ctes.is_empty() {
        return None;
    }
    Some(b.finish(id_page(&from, "COUNT(*) OVER () AS total", q)))
}

/// The page of an id-ordered search over `from` (one more row than the page, to know whether a
/// next page exists), with `total` as its count column.
fn id_page(from: &str, total: &str, q: &SearchQuery) -> String {
    format!(
        "SELECT d.id AS id, '' AS k0, '' AS k1, '' AS k2, {total} FROM {from} ORDER BY d.id LIMIT {}",
        q.count + 1
    )
}

/// How many resources the search matches.
pub fn total(q: &SearchQuery) -> Statement {
    let mut b = Builder::default();
    let from = id_ordered(&mut b, q);
    b.finish(format!("SELECT COUNT(*) AS n FROM {from}"))
}

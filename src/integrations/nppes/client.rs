//! HTTP client of the CMS NPI Registry API v2.1 (`GET https://npiregistry.cms.hhs.gov/api/?version=2.1&…`,
//! no authentication). The registry refuses bad queries with HTTP 200 and an `Errors` array,
//! says "deactivated" as error 15, and answers an unknown NPI (or one with a bad check digit)
//! with `result_count: 0`; searches page with `limit` ≤ 200 and `skip` ≤ 1000 and give no total.

use std::time::Duration;

use super::model::{ApiError, NppesRecord, RegistryAnswer};
use super::npi::Npi;

pub const DEFAULT_BASE_URL: &str = "https://npiregistry.cms.hhs.gov/api/";
pub const API_VERSION: &str = "2.1";
/// The largest page the registry serves.
pub const PAGE_LIMIT: usize = 200;
/// The largest `skip` the registry accepts: a search reaches at most 1,200 records.
pub const MAX_SKIP: usize = 1000;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegistryError {
    #[error("the NPI Registry is rate limiting requests{}", after(retry_after))]
    RateLimited { retry_after: Option<Duration> },
    #[error("the NPI Registry is unavailable (HTTP {status})")]
    Unavailable { status: u16 },
    #[error("the NPI Registry did not answer in time")]
    Timeout,
    #[error("cannot reach the NPI Registry: {0}")]
    Connection(String),
    #[error("the NPI Registry's answer is not one it documents: {0}")]
    Malformed(String),
    #[error("the NPI Registry refused the query: {}", describe_api_errors(.0))]
    Refused(Vec<ApiError>),
    #[error("the NPI Registry client cannot be set up: {0}")]
    Setup(String),
}

fn after(retry_after: &Option<Duration>) -> String {
    retry_after.map_or_else(String::new, |d| format!(" (retry after {} s)", d.as_secs()))
}

fn describe_api_errors(errors: &[ApiError]) -> String {
    if errors.is_empty() {
        return "no reason given".to_string();
    }
    errors.iter().map(ApiError::to_string).collect::<Vec<_>>().join("; ")
}

impl RegistryError {
    /// Whether the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::RateLimited { .. } | RegistryError::Timeout | RegistryError::Connection(_) => true,
            RegistryError::Unavailable { status } => (500..600).contains(status),
            // A body that is not the registry's JSON (a maintenance page served with 200, an
            // answer cut short) comes from an outage at CMS's edge: worth asking again later.
            RegistryError::Malformed(_) => true,
            RegistryError::Refused(_) | RegistryError::Setup(_) => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RegistryError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// What the registry says about one NPI.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Found(Box<NppesRecord>),
    /// Never issued (or the check digit is wrong: the registry does not say which).
    NotFound,
    /// CMS deactivated it; the registry shows nothing else about it.
    Deactivated {
        message: String,
    },
}

/// NPI Registry search parameters; every one optional, `*` allowed at the end of the names,
/// the taxonomy description, the city and the postal code after at least two characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchCriteria {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub organization_name: Option<String>,
    pub taxonomy_description: Option<String>,
    pub city: Option<String>,
    /// Two-letter state code.
    pub state: Option<String>,
    pub postal_code: Option<String>,
    /// "NPI-1" (individuals) or "NPI-2" (organizations).
    pub enumeration_type: Option<String>,
    pub country_code: Option<String>,
    /// "LOCATION", "MAILING", "PRIMARY" or "SECONDARY".
    pub address_purpose: Option<String>,
}

impl SearchCriteria {
    /// (query parameter, value) of every criterion given.
    fn parameters(&self) -> Vec<(&'static str, &str)> {
        [
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
            ("organization_name", &self.organization_name),
            ("taxonomy_description", &self.taxonomy_description),
            ("city", &self.city),
            ("state", &self.state),
            ("postal_code", &self.postal_code),
            ("enumeration_type", &self.enumeration_type),
            ("country_code", &self.country_code),
            ("address_purpose", &self.address_purpose),
        ]
        .into_iter()
        .filter_map(|(name, value)| {
            let value = value.as_deref()?.trim();
            (!value.is_empty()).then_some((name, value))
        })
        .collect()
    }

    /// What the registry would refuse, found without asking it.
    fn check(&self) -> Result<(), Vec<ApiError>> {
        // These narrow a search but the registry will not search by them alone.
        const QUALIFIERS: [&str; 4] = ["state", "enumeration_type", "country_code", "address_purpose"];
        const WILDCARDS: [&str; 6] = [
            "first_name",
            "last_name",
            "organization_name",
            "taxonomy_description",
            "city",
            "postal_code",
        ];
        let parameters = self.parameters();
        let refusal = |field: &str, description: String| ApiError {
            description: Some(description),
            field: Some(field.to_string()),
            number: None,
        };
        let mut errors = Vec::new();
        if parameters.is_empty() {
            errors.push(refusal("generic", "no search criteria".to_string()));
        } else if parameters.iter().all(|(name, _)| QUALIFIERS.contains(name)) {
            let names: Vec<&str> = parameters.iter().map(|(name, _)| *name).collect();
            errors.push(refusal(
                names[0],
                format!(
                    "{} needs another criterion (a name, taxonomy, city or postal code)",
                    names.join(" and ")
                ),
            ));
        }
        for (name, value) in &parameters {
            let stars = value.matches('*').count();
            if stars == 0 {
                continue;
            }
            if !WILDCARDS.contains(name) {
                errors.push(refusal(name, format!("{name} does not take a wildcard")));
            } else if stars > 1 || !value.ends_with('*') {
                errors.push(refusal(name, format!("{name}: a wildcard may only end the value")));
            } else if value.trim_end_matches('*').chars().count() < 2 {
                errors.push(refusal(
                    name,
                    format!("{name}: a wildcard needs at least two characters before it"),
                ));
            }
        }
        if let Some(kind) = self.enumeration_type.as_deref().map(str::trim) {
            if !kind.is_empty() && kind != "NPI-1" && kind != "NPI-2" {
                errors.push(refusal(
                    "enumeration_type",
                    format!("{kind:?} is neither NPI-1 nor NPI-2"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    base_url: reqwest::Url,
}

impl RegistryClient {
    pub fn new(base_url: &str, timeout: Duration) -> Result<RegistryClient, RegistryError> {
        let base_url = reqwest::Url::parse(base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| RegistryError::Setup("the NPI Registry base URL is not an http(s) URL".to_string()))?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!(
                "providercard/",
                env!("CARGO_PKG_VERSION"),
                " (NPPES NPI Registry client)"
            ))
            .build()
            .map_err(|e| RegistryError::Setup(e.without_url().to_string()))?;
        Ok(RegistryClient { http, base_url })
    }

    pub fn with_default_base_url(timeout: Duration) -> Result<RegistryClient, RegistryError> {
        RegistryClient::new(DEFAULT_BASE_URL, timeout)
    }

    pub fn host(&self) -> &str {
        self.base_url.host_str().unwrap_or_default()
    }

    pub async fn lookup(&self, npi: &Npi) -> Result<Lookup, RegistryError> {
        match self.get(&[("number", npi.as_str())]).await? {
            RegistryAnswer::Results(records) if records.is_empty() => Ok(Lookup::NotFound),
            RegistryAnswer::Results(records) => match records.into_iter().find(|r| r.number == npi.as_str()) {
                Some(record) => Ok(Lookup::Found(Box::new(record))),
                None => Err(RegistryError::Malformed(format!(
                    "the answer for NPI {npi} holds other NPIs only"
                ))),
            },
            RegistryAnswer::Errors(errors) => match errors.iter().find(|e| e.is_deactivated()) {
                Some(deactivated) => Ok(Lookup::Deactivated {
                    message: deactivated
                        .description
                        .clone()
                        .unwrap_or_else(|| format!("CMS deactivated NPI {npi}")),
                }),
                None => Err(RegistryError::Refused(errors)),
            },
        }
    }

    /// Up to `max_records` (and at most 1,200, the registry's reach) records matching the
    /// criteria, in the registry's order. Pages of 200 until a short page: there is no total.
    pub async fn search(
        &self,
        criteria: &SearchCriteria,
        max_records: usize,
    ) -> Result<Vec<NppesRecord>, RegistryError> {
        criteria.check().map_err(RegistryError::Refused)?;
        let parameters = criteria.parameters();
        let mut out = Vec::new();
        let mut skip = 0;
        while out.len() < max_records && skip <= MAX_SKIP {
            let limit = PAGE_LIMIT.min(max_records - out.len());
            let (limit_text, skip_text) = (limit.to_string(), skip.to_string());
            let mut query = parameters.clone();
            query.push(("limit", &limit_text));
            query.push(("skip", &skip_text));
            let page = match self.get(&query).await? {
                RegistryAnswer::Results(page) => page,
                RegistryAnswer::Errors(errors) => return Err(RegistryError::Refused(errors)),
            };
            let short = page.len() < limit;
            out.extend(page.into_iter().take(limit));
            if short {
                break;
            }
            skip += limit;
        }
        Ok(out)
    }

    async fn get(&self, query: &[(&str, &str)]) -> Result<RegistryAnswer, RegistryError> {
        let response = self
            .http
            .get(self.base_url.clone())
            .query(&[("version", API_VERSION)])
            .query(query)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
            return Err(RegistryError::RateLimited { retry_after });
        }
        if !status.is_success() {
            return Err(RegistryError::Unavailable {
                status: status.as_u16(),
            });
        }
        let body = response.bytes().await.map_err(|e| self.transport_error(e))?;
        RegistryAnswer::parse(&body).map_err(|e| RegistryError::Malformed(e.to_string()))
    }

    /// The error without its URL (which holds the query): the host and the innermost causes.
    fn transport_error(&self, error: reqwest::Error) -> RegistryError {
        if error.is_timeout() {
            return RegistryError::Timeout;
        }
        let error = error.without_url();
        let mut causes = Vec::new();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&error);
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        let detail = causes.last().cloned().unwrap_or_else(|| error.to_string());
        RegistryError::Connection(format!("{}: {detail}", self.host()))
    }
}

/// `Retry-After` as delay-seconds or as an HTTP-date (a date in the past means now).
fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    /// What the loopback registry does with one request.
    enum Reply {
        Http {
            status: &'static str,
            headers: Vec<String>,
            body: String,
        },
        After(Duration, Box<Reply>),
        Hangup,
    }

    fn ok(body: impl Into<String>) -> Reply {
        Reply::Http {
            status: "200 OK",
            headers: vec!["Content-Type: application/json".to_string()],
            body: body.into(),
        }
    }

    /// A loopback HTTP/1.1 server answering each request (its path and query) with `reply`,
    /// one thread per connection; it records the query strings it was sent.
    struct Registry {
        base_url: String,
        queries: Arc<Mutex<Vec<String>>>,
    }

    impl Registry {
        fn start(reply: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Registry {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let base_url = format!("http://{}/api/", listener.local_addr().unwrap());
            let queries = Arc::new(Mutex::new(Vec::new()));
            let (reply, seen) = (Arc::new(reply), queries.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { return };
                    let (reply, seen) = (reply.clone(), seen.clone());
                    std::thread::spawn(move || serve(stream, &*reply, &seen));
                }
            });
            Registry { base_url, queries }
        }

        fn client(&self) -> RegistryClient {
            RegistryClient::new(&self.base_url, Duration::from_millis(500)).unwrap()
        }

        fn queries(&self) -> Vec<String> {
            self.queries.lock().unwrap().clone()
        }
    }

    fn serve(mut stream: TcpStream, reply: &(dyn Fn(&str) -> Reply + Send + Sync), seen: &Mutex<Vec<String>>) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let head = String::from_utf8_lossy(&head).to_string();
        let target = head.split(' ').nth(1).unwrap_or_default().to_string();
        assert!(
            head.to_ascii_lowercase().contains("user-agent: providercard/"),
            "no providercard User-Agent in {head}"
        );
        seen.lock()
            .unwrap()
            .push(target.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default());
        let mut reply = reply(&target);
        loop {
            match reply {
                Reply::After(delay, then) => {
                    std::thread::sleep(delay);
                    reply = *then;
                }
                Reply::Hangup => return,
                Reply::Http { status, headers, body } => {
                    let mut out = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
                        body.len()
                    );
                    for h in headers {
                        out.push_str(&h);
                        out.push_str("\r\n");
                    }
                    out.push_str("\r\n");
                    out.push_str(&body);
                    let _ = stream.write_all(out.as_bytes());
                    return;
                }
            }
        }
    }

    fn npi(value: &str) -> Npi {
        Npi::parse(value).unwrap()
    }

    fn record(number: &str) -> String {
        format!(
            r#"{{"number":"{number}","enumeration_type":"NPI-1","basic":{{"first_name":"JO","last_name":"LEE","sex":"F"}},
               "addresses":[],"taxonomies":[{{"code":"207R00000X","desc":"Internal Medicine","primary":true}}]}}"#
        )
    }

    #[tokio::test]
    async fn found() {
        let registry = Registry::start(|_| ok(format!(r#"{{"result_count":1,"results":[{}]}}"#, record("1234567893"))));
        let Lookup::Found(found) = registry.client().lookup(&npi("1234567893")).await.unwrap() else {
            panic!("not found")
        };
        assert_eq!(found.number, "1234567893");
        assert_eq!(found.primary_taxonomy().unwrap().code.as_deref(), Some("207R00000X"));
        assert_eq!(registry.queries(), vec!["version=2.1&number=1234567893"]);
    }

    #[tokio::test]
    async fn not_found() {
        let registry = Registry::start(|_| ok(r#"{"result_count":0,"results":[]}"#));
        assert_eq!(registry.client().lookup(&npi("1720377294")).await, Ok(Lookup::NotFound));
    }

    #[tokio::test]
    async fn deactivated_is_an_answer_not_an_error() {
        let registry = Registry::start(|_| {
            ok(
                r#"{"Errors":[{"description":"CMS deactivated NPI 1669463816. The provider can no longer use this NPI. Our public registry does not display provider information about NPIs that are not in service.","field":"number","number":"15"}]}"#,
            )
        });
        let Lookup::Deactivated { message } = registry.client().lookup(&npi("1669463816")).await.unwrap() else {
            panic!("not deactivated")
        };
        assert!(message.starts_with("CMS deactivated NPI 1669463816."), "{message}");
    }

    #[tokio::test]
    async fn other_errors_are_refusals() {
        let registry = Registry::start(|_| {
            ok(
                r#"{"Errors":[{"description":"Field number requires additional search criteria","field":"number","number":"07"}]}"#,
            )
        });
        let err = registry.client().lookup(&npi("1234567893")).await.unwrap_err();
        let RegistryError::Refused(errors) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(errors[0].number.as_deref(), Some("07"));
        assert!(!err.is_transient());
        assert!(err.to_string().contains("error 07 on number"), "{err}");
    }

    #[tokio::test]
    async fn rate_limited_with_retry_after() {
        let registry = Registry::start(|_| Reply::Http {
            status: "429 Too Many Requests",
            headers: vec!["Retry-After: 7".to_string()],
            body: String::new(),
        });
        let err = registry.client().lookup(&npi("1234567893")).await.unwrap_err();
        assert_eq!(
            err,
            RegistryError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(err.is_transient());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:30Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[tokio::test]
    async fn unavailable() {
        let registry = Registry::start(|target| Reply::Http {
            status: if target.contains("1234567893") {
                "503 Service Unavailable"
            } else {
                "403 Forbidden"
            },
            headers: vec![],
            body: "<html>no</html>".to_string(),
        });
        let err = registry.client().lookup(&npi("1234567893")).await.unwrap_err();
        assert_eq!(err, RegistryError::Unavailable { status: 503 });
        assert!(err.is_transient());
        assert_eq!(err.retry_after(), None);
        let err = registry.client().lookup(&npi("1720377294")).await.unwrap_err();
        assert_eq!(err, RegistryError::Unavailable { status: 403 });
        assert!(!err.is_transient(), "a 403 does not go away by retrying");
    }

    #[tokio::test]
    async fn malformed() {
        let registry = Registry::start(|target| {
            if target.contains("1234567893") {
                ok(r#"{"result_count":1,"results":[{"number":"#)
            } else {
                ok(format!(r#"{{"result_count":1,"results":[{}]}}"#, record("1568946812")))
            }
        });
        let err = registry.client().lookup(&npi("1234567893")).await.unwrap_err();
        assert!(matches!(err, RegistryError::Malformed(_)), "{err:?}");
        assert!(err.is_transient(), "a cut-short answer is an outage, worth retrying");
        let err = registry.client().lookup(&npi("1720377294")).await.unwrap_err();
        assert!(
            matches!(err, RegistryError::Malformed(_)),
            "another NPI's record: {err:?}"
        );
    }

    #[tokio::test]
    async fn slow_answers_time_out() {
        let registry = Registry::start(|_| {
            Reply::After(
                Duration::from_millis(1500),
                Box::new(ok(r#"{"result_count":0,"results":[]}"#)),
            )
        });
        let err = registry.client().lookup(&npi("1234567893")).await.unwrap_err();
        assert_eq!(err, RegistryError::Timeout);
        assert!(err.is_transient());
    }

    #[tokio::test]
    async fn a_closed_connection_is_a_connection_error_without_the_query() {
        let registry = Registry::start(|_| Reply::Hangup);
        let err = registry.client().lookup(&npi("1234567893")).await.unwrap_err();
        let RegistryError::Connection(detail) = &err else {
            panic!("{err:?}")
        };
        assert!(detail.starts_with("127.0.0.1: "), "{detail}");
        assert!(!err.to_string().contains("1234567893"), "{err}");
        assert!(!err.to_string().contains("/api/"), "{err}");
        assert!(err.is_transient());
    }

    #[tokio::test]
    async fn refused_connections_are_connection_errors() {
        // Bind and drop to get a loopback port nobody listens on.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = RegistryClient::new(&format!("http://127.0.0.1:{port}/api/"), Duration::from_secs(2)).unwrap();
        let err = client.lookup(&npi("1234567893")).await.unwrap_err();
        assert!(matches!(err, RegistryError::Connection(_)), "{err:?}");
    }

    #[tokio::test]
    async fn search_pages_until_a_short_page() {
        let registry = Registry::start(|target| {
            let skip: usize = target
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix("skip="))
                .and_then(|s| s.parse().ok())
                .expect("every page request has a skip");
            let count = match skip {
                0 | 200 => 200,
                400 => 17,
                other => panic!("unexpected skip {other}"),
            };
            let records: Vec<String> = (0..count)
                .map(|i| record(&format!("{}", 1_000_000_000 + skip + i)))
                .collect();
            ok(format!(
                r#"{{"result_count":{count},"results":[{}]}}"#,
                records.join(",")
            ))
        });
        let criteria = SearchCriteria {
            last_name: Some("lee".to_string()),
            state: Some("TX".to_string()),
            ..SearchCriteria::default()
        };
        let records = registry.client().search(&criteria, 5000).await.unwrap();
        assert_eq!(records.len(), 417);
        assert_eq!(records[416].number, "1000000416");
        assert_eq!(
            registry.queries(),
            vec![
                "version=2.1&last_name=lee&state=TX&limit=200&skip=0",
                "version=2.1&last_name=lee&state=TX&limit=200&skip=200",
                "version=2.1&last_name=lee&state=TX&limit=200&skip=400",
            ]
        );
    }

    #[tokio::test]
    async fn search_stops_at_the_registry_reach_and_at_max_records() {
        let registry = Registry::start(|target| {
            let limit: usize = target
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix("limit="))
                .and_then(|s| s.parse().ok())
                .unwrap();
            let records: Vec<String> = (0..limit).map(|i| record(&format!("{}", 1_000_000_000 + i))).collect();
            ok(format!(r#"{{"results":[{}]}}"#, records.join(",")))
        });
        let criteria = SearchCriteria {
            city: Some("austin".to_string()),
            ..SearchCriteria::default()
        };
        let all = registry.client().search(&criteria, usize::MAX).await.unwrap();
        assert_eq!(all.len(), 1200);
        let skips: Vec<String> = registry
            .queries()
            .iter()
            .map(|q| q.rsplit('&').next().unwrap().to_string())
            .collect();
        assert_eq!(
            skips,
            ["skip=0", "skip=200", "skip=400", "skip=600", "skip=800", "skip=1000"]
        );

        let registry_queries_before = registry.queries().len();
        let some = registry.client().search(&criteria, 250).await.unwrap();
        assert_eq!(some.len(), 250);
        assert_eq!(
            registry.queries()[registry_queries_before..],
            [
                "version=2.1&city=austin&limit=200&skip=0",
                "version=2.1&city=austin&limit=50&skip=200"
            ]
        );
    }

    #[tokio::test]
    async fn searches_the_registry_would_refuse_are_refused_here() {
        let registry = Registry::start(|_| ok(r#"{"result_count":0,"results":[]}"#));
        let client = registry.client();
        let refused = |criteria: SearchCriteria| {
            let client = client.clone();
            async move {
                match client.search(&criteria, 10).await {
                    Err(RegistryError::Refused(errors)) => errors,
                    other => panic!("{criteria:?} gave {other:?}"),
                }
            }
        };
        let s = |v: &str| Some(v.to_string());
        let none = refused(SearchCriteria::default()).await;
        assert_eq!(none[0].field.as_deref(), Some("generic"));
        refused(SearchCriteria {
            last_name: s("  "),
            ..SearchCriteria::default()
        })
        .await;
        let state_only = refused(SearchCriteria {
            state: s("TX"),
            ..SearchCriteria::default()
        })
        .await;
        assert_eq!(state_only[0].field.as_deref(), Some("state"));
        refused(SearchCriteria {
            enumeration_type: s("NPI-2"),
            state: s("TX"),
            ..SearchCriteria::default()
        })
        .await;
        let wildcard = refused(SearchCriteria {
            last_name: s("j*"),
            ..SearchCriteria::default()
        })
        .await;
        assert!(wildcard[0].description.as_deref().unwrap().contains("two characters"));
        refused(SearchCriteria {
            last_name: s("*son"),
            ..SearchCriteria::default()
        })
        .await;
        refused(SearchCriteria {
            last_name: s("smith"),
            state: s("T*"),
            ..SearchCriteria::default()
        })
        .await;
        refused(SearchCriteria {
            last_name: s("smith"),
            enumeration_type: s("NPI-3"),
            ..SearchCriteria::default()
        })
        .await;
        assert!(registry.queries().is_empty(), "refused without asking the registry");

        // What the registry takes goes through.
        let ok = client
            .search(
                &SearchCriteria {
                    last_name: s("jo*"),
                    enumeration_type: s("NPI-1"),
                    state: s("TX"),
                    ..SearchCriteria::default()
                },
                10,
            )
            .await
            .unwrap();
        assert!(ok.is_empty());
        assert_eq!(
            registry.queries(),
            ["version=2.1&last_name=jo*&state=TX&enumeration_type=NPI-1&limit=10&skip=0"]
        );
    }

    #[test]
    fn setup_needs_an_http_base_url() {
        assert!(matches!(
            RegistryClient::new("ftp://example.org/", Duration::from_secs(1)),
            Err(RegistryError::Setup(_))
        ));
        assert!(matches!(
            RegistryClient::new("not a url", Duration::from_secs(1)),
            Err(RegistryError::Setup(_))
        ));
        assert_eq!(
            RegistryClient::with_default_base_url(Duration::from_secs(1))
                .unwrap()
                .host(),
            "npiregistry.cms.hhs.gov"
        );
    }
}

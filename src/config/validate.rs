//! Checks on values that parsed: URLs, ranges, what an enabled section requires. A disabled
//! section is only checked for its keys and types, since nothing reads it.

use reqwest::Url;

use super::{AuthType, CircuitBreaker, Config, Problem, RateLimit, Retry, Secret};

impl Config {
    /// Every problem at once, so a deploy is not fixed one error per try. Normalises each
    /// enabled `base_url` to end with `/`.
    pub(super) fn validate(&mut self) -> Result<(), Vec<Problem>> {
        let mut problems = Problems(Vec::new());
        let check = &mut problems;

        let nppes = &mut self.integrations.nppes;
        if nppes.enabled {
            check.base_url("integrations.nppes.base_url", &mut nppes.base_url);
            check.positive("integrations.nppes.timeout", nppes.timeout_ms);
            check.positive("integrations.nppes.cache_ttl", nppes.cache_ttl_secs);
            check.resilience(
                "integrations.nppes",
                &nppes.rate_limit,
                &nppes.retry,
                &nppes.circuit_breaker,
            );
        }

        let caqh = &mut self.integrations.caqh;
        if caqh.enabled {
            check.base_url("integrations.caqh.base_url", &mut caqh.base_url);
            check.required("integrations.caqh.username", caqh.username.as_deref());
            check.required_secret("integrations.caqh.password", caqh.password.as_ref());
            check.required("integrations.caqh.organization_id", caqh.organization_id.as_deref());
            check.positive("integrations.caqh.timeout", caqh.timeout_ms);
            check.resilience(
                "integrations.caqh",
                &caqh.rate_limit,
                &caqh.retry,
                &caqh.circuit_breaker,
            );
        }

        for (name, payer) in self.integrations.payers.iter_mut().filter(|(_, payer)| payer.enabled) {
            let at = format!("integrations.payers.{name}");
            check.base_url(&format!("{at}.base_url"), &mut payer.base_url);
            check.positive(&format!("{at}.timeout"), payer.timeout_ms);
            check.resilience(&at, &payer.rate_limit, &payer.retry, &payer.circuit_breaker);
            let auth = &payer.auth;
            let at = format!("{at}.auth");
            match auth.kind {
                AuthType::SmartBackend => {
                    check.token_url(&format!("{at}.token_url"), auth.token_url.as_deref());
                    check.required(&format!("{at}.client_id"), auth.client_id.as_deref());
                    let key = auth.private_key_path.as_ref().and_then(|path| path.to_str());
                    check.required(&format!("{at}.private_key_path"), key);
                }
                AuthType::ClientCredentials => {
                    check.token_url(&format!("{at}.token_url"), auth.token_url.as_deref());
                    check.required(&format!("{at}.client_id"), auth.client_id.as_deref());
                    check.required_secret(&format!("{at}.client_secret"), auth.client_secret.as_ref());
                }
                AuthType::None => {}
            }
        }

        let jobs = &self.jobs;
        check.positive("jobs.workers", jobs.workers.into());
        check.positive("jobs.poll_interval", jobs.poll_interval_ms);
        check.positive("jobs.lease", jobs.lease_secs);
        check.positive(
            "jobs.nppes_revalidation.batch_size",
            jobs.nppes_revalidation.batch_size.into(),
        );

        let alerts = &self.alerts;
        check.positive("alerts.evaluation_interval", alerts.evaluation_interval_secs);
        if let Some(webhook) = alerts.sinks.webhook.as_ref().filter(|webhook| webhook.enabled) {
            check.url("alerts.sinks.webhook.url", &webhook.url);
            check.required_secret("alerts.sinks.webhook.secret", Some(&webhook.secret));
        }
        check.positive("alerts.rules.down_for", alerts.rules.down_for_secs);
        check.fraction("alerts.rules.error_rate", alerts.rules.error_rate);
        check.positive("alerts.rules.p95_latency", alerts.rules.p95_latency_ms);
        check.fraction("alerts.rules.sync_success_rate", alerts.rules.sync_success_rate);

        for (name, secret) in &self.webhooks.secrets {
            check.required_secret(&format!("webhooks.secrets.{name}"), Some(secret));
        }

        match problems.0.is_empty() {
            true => Ok(()),
            false => Err(problems.0),
        }
    }
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn positive(&mut self, key: &str, value: u64) {
        if value == 0 {
            self.add(key, "must be greater than 0");
        }
    }

    fn fraction(&mut self, key: &str, value: f64) {
        if !(0.0..=1.0).contains(&value) {
            self.add(key, "must be between 0 and 1");
        }
    }

    fn required(&mut self, key: &str, value: Option<&str>) {
        if value.is_none_or(str::is_empty) {
            self.add(key, "is required when its section is enabled");
        }
    }

    fn required_secret(&mut self, key: &str, value: Option<&Secret>) {
        if value.is_none_or(Secret::is_empty) {
            self.add(key, "is required when its section is enabled (and may not be empty)");
        }
    }

    /// An absolute http(s) URL. The URL itself is not quoted: a webhook URL can hold a token.
    fn url(&mut self, key: &str, value: &str) -> Option<Url> {
        match Url::parse(value) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
            Ok(_) => {
                self.add(key, "must be an http or https URL");
                None
            }
            Err(error) => {
                self.add(key, format!("is not a URL ({error})"));
                None
            }
        }
    }

    fn token_url(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(value) if !value.is_empty() => {
                self.url(key, value);
            }
            _ => self.required(key, None),
        }
    }

    /// Adds the trailing `/` a base URL needs so that joining `npi` keeps its last segment.
    fn base_url(&mut self, key: &str, value: &mut String) {
        if value.is_empty() {
            return self.required(key, None);
        }
        let Some(mut url) = self.url(key, value) else { return };
        if url.query().is_some() || url.fragment().is_some() {
            return self.add(key, "must not have a query or a fragment");
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        *value = url.to_string();
    }

    fn resilience(&mut self, at: &str, rate_limit: &RateLimit, retry: &Retry, breaker: &CircuitBreaker) {
        self.positive(&format!("{at}.rate_limit.requests"), rate_limit.requests.into());
        self.positive(&format!("{at}.rate_limit.window"), rate_limit.window_secs);
        self.positive(&format!("{at}.retry.max_attempts"), retry.max_attempts.into());
        if retry.initial_delay_ms > retry.max_delay_ms {
            self.add(&format!("{at}.retry.max_delay"), "must not be less than initial_delay");
        }
        self.positive(
            &format!("{at}.circuit_breaker.failure_threshold"),
            breaker.failure_threshold.into(),
        );
        self.positive(&format!("{at}.circuit_breaker.open_for"), breaker.open_for_secs);
    }
}

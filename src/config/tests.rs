use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::*;

/// Loads YAML texts (named base.yaml, overlay.yaml, ...) against a made-up environment.
fn load(files: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let names = ["base.yaml", "overlay.yaml", "third.yaml"];
    let sources: Vec<(&Path, &str)> = files
        .iter()
        .enumerate()
        .map(|(i, text)| (Path::new(names[i]), *text))
        .collect();
    let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_sources(&sources, &|name| env.get(name).cloned())
}

fn error(files: &[&str], env: &[(&str, &str)]) -> String {
    load(files, env).expect_err("the configuration is refused").to_string()
}

#[test]
fn no_file_gives_the_defaults() {
    let config = Config::load(&[]).unwrap();
    let nppes = &config.integrations.nppes;
    assert!(nppes.enabled);
    assert_eq!(nppes.base_url, "https://npiregistry.cms.hhs.gov/api/");
    assert_eq!(nppes.timeout(), Duration::from_millis(5000));
    assert_eq!(nppes.cache_ttl(), Duration::from_secs(7 * 24 * 3600));
    assert_eq!(nppes.rate_limit.requests, 200);
    assert_eq!(nppes.rate_limit.window(), Duration::from_secs(300));
    assert_eq!(nppes.retry.max_attempts, 3);
    assert_eq!(nppes.retry.initial_delay(), Duration::from_millis(500));
    assert_eq!(nppes.retry.max_delay(), Duration::from_secs(10));
    assert_eq!(nppes.circuit_breaker.failure_threshold, 5);
    assert_eq!(nppes.circuit_breaker.open_for(), Duration::from_secs(60));

    assert!(!config.integrations.caqh.enabled);
    assert!(config.integrations.payers.is_empty());
    assert_eq!(config.jobs.workers, 2);
    assert_eq!(config.jobs.poll_interval(), Duration::from_secs(1));
    assert_eq!(config.jobs.lease(), Duration::from_secs(300));
    assert_eq!(config.jobs.nppes_revalidation.schedule, Schedule::Weekly);
    assert_eq!(config.jobs.nppes_revalidation.batch_size, 200);
    assert_eq!(config.alerts.evaluation_interval(), Duration::from_secs(30));
    assert!(config.alerts.sinks.log.enabled);
    assert!(config.alerts.sinks.webhook.is_none());
    assert_eq!(config.alerts.rules.down_for(), Duration::from_secs(300));
    assert_eq!(config.alerts.rules.error_rate, 0.10);
    assert_eq!(config.alerts.rules.p95_latency(), Duration::from_secs(5));
    assert_eq!(config.alerts.rules.sync_success_rate, 0.90);
    assert!(config.webhooks.secrets.is_empty());
}

#[test]
fn an_empty_file_or_an_empty_section_gives_the_defaults() {
    let config = load(&["# nothing yet\n", "integrations:\n  nppes:\n"], &[]).unwrap();
    assert!(config.integrations.nppes.enabled);
    assert_eq!(config.integrations.nppes.timeout_ms, 5000);
}

#[test]
fn environment_variables_are_substituted_in_strings() {
    let yaml = r#"
integrations:
  caqh:
    enabled: true
    username: ${CAQH_USERNAME}
    password: "${CAQH_PASSWORD}"
    organization_id: ${CAQH_ORG:-4242}
webhooks:
  secrets:
    caqh: "prefix-${HOOK}-${UNSET_WITH_EMPTY_DEFAULT:-}$${LITERAL}"
"#;
    let env = [
        ("CAQH_USERNAME", "roster-bot"),
        // Characters that would break naive text substitution before parsing.
        ("CAQH_PASSWORD", "p#ss: word\n- x"),
        ("HOOK", "h"),
    ];
    let config = load(&[yaml], &env).unwrap();
    let caqh = &config.integrations.caqh;
    assert_eq!(caqh.username.as_deref(), Some("roster-bot"));
    assert_eq!(caqh.password.as_ref().unwrap().expose(), "p#ss: word\n- x");
    assert_eq!(caqh.organization_id.as_deref(), Some("4242"), "the default applies");
    assert_eq!(config.webhooks.secrets["caqh"].expose(), "prefix-h-${LITERAL}");
}

#[test]
fn a_default_applies_to_a_set_but_empty_variable_as_in_the_shell() {
    let yaml = "integrations:\n  nppes:\n    base_url: ${NPPES_URL:-https://nppes.example/api}\n";
    let config = load(&[yaml], &[("NPPES_URL", "")]).unwrap();
    assert_eq!(config.integrations.nppes.base_url, "https://nppes.example/api/");
    let config = load(&[yaml], &[("NPPES_URL", "https://other.example/v2/")]).unwrap();
    assert_eq!(config.integrations.nppes.base_url, "https://other.example/v2/");
}

const CAQH: &str = "
integrations:
  caqh:
    enabled: ENABLED
    username: bot
    password: ${CAQH_PASSWORD}
    organization_id: \"17\"
";

#[test]
fn a_missing_variable_in_an_enabled_section_is_an_error_naming_it_and_its_key() {
    let message = error(&[&CAQH.replace("ENABLED", "true")], &[]);
    assert_eq!(
        message,
        "integrations.caqh.password needs environment variable CAQH_PASSWORD, which is not set"
    );
}

#[test]
fn a_missing_variable_in_a_disabled_section_is_left_empty() {
    let config = load(&[&CAQH.replace("ENABLED", "false")], &[]).unwrap();
    assert_eq!(config.integrations.caqh.password.unwrap().expose(), "");
}

#[test]
fn an_overlay_can_enable_a_section_and_then_its_variables_are_required() {
    let message = error(
        &[
            &CAQH.replace("ENABLED", "false"),
            "integrations: { caqh: { enabled: true } }",
        ],
        &[],
    );
    assert!(message.contains("CAQH_PASSWORD"), "{message}");
}

#[test]
fn a_variable_replaced_by_an_overlay_is_not_needed() {
    let overlay = "integrations:\n  caqh:\n    password: ${OTHER_PASSWORD}\n";
    let config = load(
        &[&CAQH.replace("ENABLED", "true"), overlay],
        &[("OTHER_PASSWORD", "s3cret")],
    )
    .unwrap();
    assert_eq!(config.integrations.caqh.password.unwrap().expose(), "s3cret");
}

#[test]
fn missing_variables_are_checked_per_payer_and_for_the_webhook_sink() {
    let yaml = r#"
integrations:
  payers:
    on:
      enabled: true
      base_url: https://on.example/fhir
      auth: { type: client-credentials, token_url: https://on.example/token, client_id: pc, client_secret: "${ON_SECRET}" }
    off:
      base_url: https://off.example/fhir
      auth: { type: client-credentials, client_secret: "${OFF_SECRET}" }
alerts:
  sinks:
    webhook: { url: https://hooks.example/a, secret: "${ALERT_SECRET}" }
"#;
    let message = error(&[yaml], &[]);
    assert_eq!(
        message,
        "integrations.payers.on.auth.client_secret needs environment variable ON_SECRET, which is not set; \
         alerts.sinks.webhook.secret needs environment variable ALERT_SECRET, which is not set"
    );
}

#[test]
fn a_malformed_reference_is_an_error_with_the_file_and_key() {
    let message = error(&["webhooks:\n  secrets:\n    caqh: ${CAQH"], &[]);
    assert!(message.starts_with("base.yaml: webhooks.secrets.caqh: "), "{message}");
    let message = error(&["webhooks:\n  secrets:\n    caqh: ${NOT A NAME}"], &[]);
    assert!(message.starts_with("base.yaml: webhooks.secrets.caqh: "), "{message}");
}

#[test]
fn overlays_merge_mappings_key_by_key_and_replace_the_rest() {
    let base = "
integrations:
  nppes:
    timeout: 3000
    rate_limit: { requests: 100, window: 60 }
  payers:
    uhc: { base_url: https://uhc.example/ }
    aetna: { base_url: https://aetna.example/ }
webhooks:
  secrets: { caqh: a, other: b }
";
    let overlay = "
integrations:
  nppes:
    rate_limit: { requests: 50 }
  payers:
    uhc: { enabled: true }
webhooks:
  secrets: { caqh: c }
";
    let config = load(&[base, overlay], &[]).unwrap();
    let nppes = &config.integrations.nppes;
    assert_eq!(nppes.timeout_ms, 3000, "kept from the base");
    assert_eq!(nppes.rate_limit.requests, 50, "overlaid");
    assert_eq!(nppes.rate_limit.window_secs, 60, "a sibling kept from the base");
    assert_eq!(nppes.retry.max_attempts, 3, "a default where no file says");
    let uhc = &config.integrations.payers["uhc"];
    assert!(uhc.enabled);
    assert_eq!(uhc.base_url, "https://uhc.example/");
    assert!(config.integrations.payers.contains_key("aetna"));
    assert_eq!(config.webhooks.secrets["caqh"].expose(), "c");
    assert_eq!(config.webhooks.secrets["other"].expose(), "b");
}

#[test]
fn yaml_merge_keys_are_applied() {
    let yaml = "
shared: &shared
  retry: { max_attempts: 7 }
";
    // `shared` itself is not a key of the schema; the anchor has to live inside it.
    assert!(error(&[yaml], &[]).contains("unknown field `shared`"));
    let yaml = "
integrations:
  payers:
    a: &payer { base_url: https://a.example/, retry: { max_attempts: 7 } }
    b: { <<: *payer, base_url: https://b.example/ }
";
    let config = load(&[yaml], &[]).unwrap();
    assert_eq!(config.integrations.payers["b"].retry.max_attempts, 7);
    assert_eq!(config.integrations.payers["b"].base_url, "https://b.example/");
}

#[test]
fn an_unknown_key_is_reported_with_its_path_its_file_and_the_expected_keys() {
    let message = error(
        &[
            "integrations: { nppes: { timeout: 1000 } }",
            "integrations:\n  nppes:\n    base_ulr: https://x.example/\n",
        ],
        &[],
    );
    assert!(
        message.starts_with("overlay.yaml: integrations.nppes.base_ulr: unknown field `base_ulr`, expected one of "),
        "{message}"
    );
    assert!(
        message.contains("`base_url`") && message.contains("`circuit_breaker`"),
        "{message}"
    );

    let message = error(
        &["integrations:\n  payers:\n    uhc:\n      auth: { typ: none }\n"],
        &[],
    );
    assert!(
        message.starts_with("base.yaml: integrations.payers.uhc.auth.typ: unknown field"),
        "{message}"
    );
    let message = error(&["jobz: {}"], &[]);
    assert!(message.starts_with("base.yaml: jobz: unknown field"), "{message}");
}

#[test]
fn a_wrong_type_is_reported_with_its_path() {
    let message = error(&["jobs:\n  workers: lots\n"], &[]);
    assert!(
        message.starts_with("base.yaml: jobs.workers: invalid type"),
        "{message}"
    );
    let message = error(&["jobs: { nppes_revalidation: { schedule: fortnightly } }"], &[]);
    assert!(
        message.starts_with("base.yaml: jobs.nppes_revalidation.schedule: unknown variant `fortnightly`"),
        "{message}"
    );
    let message = error(&["- a list"], &[]);
    assert!(message.starts_with("base.yaml: (top level): invalid type"), "{message}");
}

#[test]
fn a_secret_of_the_wrong_type_is_not_quoted_in_the_error() {
    let message = error(&["webhooks: { secrets: { caqh: 987654321 } }"], &[]);
    assert!(message.starts_with("base.yaml: webhooks.secrets.caqh: "), "{message}");
    assert!(!message.contains("987654321"), "{message}");
}

#[test]
fn a_yaml_syntax_error_names_the_file() {
    let message = error(&["integrations: [unclosed"], &[]);
    assert!(message.starts_with("base.yaml: "), "{message}");
}

#[test]
fn secrets_never_show_in_debug_or_serialized_output() {
    let yaml = "
integrations:
  caqh: { password: hunter2-caqh }
  payers:
    uhc: { auth: { type: client-credentials, client_secret: hunter2-uhc } }
alerts:
  sinks:
    webhook: { enabled: false, url: https://hooks.example/, secret: hunter2-alert }
webhooks:
  secrets: { caqh: hunter2-inbound }
";
    let config = load(&[yaml], &[]).unwrap();
    let debug = format!("{config:?} {:#?}", config);
    let yaml = config.to_yaml();
    let json = serde_json::to_string(&config).unwrap();
    for output in [&debug, &yaml, &json] {
        assert!(!output.contains("hunter2"), "{output}");
        assert!(output.contains("***"), "{output}");
    }
    assert_eq!(format!("{:?}", Secret::new("x")), "***");
    // The printed YAML reads back, secrets as the placeholder.
    let back = load(&[&yaml], &[]).unwrap();
    assert_eq!(back.webhooks.secrets["caqh"].expose(), REDACTED);
    assert_eq!(back.integrations.nppes.base_url, config.integrations.nppes.base_url);
}

#[test]
fn base_urls_must_be_http_urls_and_gain_a_trailing_slash() {
    let config = load(
        &["integrations: { nppes: { base_url: 'https://npi.example/api' } }"],
        &[],
    )
    .unwrap();
    assert_eq!(config.integrations.nppes.base_url, "https://npi.example/api/");

    let message = error(&["integrations: { nppes: { base_url: 'not a url' } }"], &[]);
    assert!(
        message.starts_with("integrations.nppes.base_url: is not a URL"),
        "{message}"
    );
    let message = error(&["integrations: { nppes: { base_url: 'ftp://npi.example/' } }"], &[]);
    assert_eq!(message, "integrations.nppes.base_url: must be an http or https URL");
    let message = error(
        &["integrations: { nppes: { base_url: 'https://npi.example/?v=2' } }"],
        &[],
    );
    assert_eq!(
        message,
        "integrations.nppes.base_url: must not have a query or a fragment"
    );
    // A disabled section is not validated.
    load(
        &["integrations: { nppes: { enabled: false, base_url: 'not a url' } }"],
        &[],
    )
    .unwrap();
}

#[test]
fn values_out_of_range_are_all_reported_with_their_paths() {
    let yaml = "
integrations:
  nppes:
    timeout: 0
    rate_limit: { requests: 0 }
    retry: { initial_delay: 20000 }
jobs: { workers: 0 }
alerts: { rules: { error_rate: 1.5 } }
";
    let message = error(&[yaml], &[]);
    assert_eq!(
        message,
        "integrations.nppes.timeout: must be greater than 0; \
         integrations.nppes.rate_limit.requests: must be greater than 0; \
         integrations.nppes.retry.max_delay: must not be less than initial_delay; \
         jobs.workers: must be greater than 0; \
         alerts.rules.error_rate: must be between 0 and 1"
    );
}

#[test]
fn an_enabled_section_needs_its_credentials() {
    let message = error(&["integrations: { caqh: { enabled: true } }"], &[]);
    assert_eq!(
        message,
        "integrations.caqh.username: is required when its section is enabled; \
         integrations.caqh.password: is required when its section is enabled (and may not be empty); \
         integrations.caqh.organization_id: is required when its section is enabled"
    );
    let yaml = "
integrations:
  payers:
    uhc:
      enabled: true
      base_url: https://uhc.example/fhir
      auth: { type: smart-backend, token_url: https://uhc.example/token, client_id: pc }
";
    let message = error(&[yaml], &[]);
    assert_eq!(
        message,
        "integrations.payers.uhc.auth.private_key_path: is required when its section is enabled"
    );
    let config = load(
        &[&yaml.replace("client_id: pc", "client_id: pc, private_key_path: keys/uhc.pem")],
        &[],
    )
    .unwrap();
    assert_eq!(config.integrations.payers["uhc"].base_url, "https://uhc.example/fhir/");
    assert_eq!(config.integrations.payers["uhc"].auth.kind, AuthType::SmartBackend);
}

#[test]
fn load_reads_the_files_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.yaml");
    let overlay = dir.path().join("overlay.yaml");
    std::fs::write(&base, "jobs: { workers: 4, lease: 60 }\n").unwrap();
    std::fs::write(&overlay, "jobs: { workers: 8 }\n").unwrap();
    let config = Config::load(&[base.clone(), overlay]).unwrap();
    assert_eq!(config.jobs.workers, 8);
    assert_eq!(config.jobs.lease(), Duration::from_secs(60));

    let missing = dir.path().join("absent.yaml");
    let message = Config::load(&[base, missing.clone()]).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("cannot read {}", missing.display())),
        "{message}"
    );
}

#[test]
fn the_example_files_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let base = std::fs::read_to_string(dir.join("base.yaml")).unwrap();
    let production = std::fs::read_to_string(dir.join("production.yaml")).unwrap();
    let config = load(&[&base], &[]).unwrap();
    assert!(!config.integrations.caqh.enabled, "base alone needs no secret");

    let env = [
        ("CAQH_USERNAME", "bot"),
        ("CAQH_PASSWORD", "p"),
        ("CAQH_ORGANIZATION_ID", "1"),
        ("UHC_BASE_URL", "https://uhc.example/fhir"),
        ("UHC_TOKEN_URL", "https://uhc.example/token"),
        ("UHC_CLIENT_ID", "providercard"),
        ("ALERT_WEBHOOK_URL", "https://hooks.example/alerts"),
        ("ALERT_WEBHOOK_SECRET", "a"),
        ("CAQH_WEBHOOK_SECRET", "w"),
    ];
    let config = load(&[&base, &production], &env).unwrap();
    assert!(config.integrations.caqh.enabled);
    assert_eq!(config.integrations.payers["uhc"].rate_limit.requests, 60);
    assert_eq!(config.jobs.workers, 4);
    let message = error(&[&base, &production], &env[1..]);
    assert_eq!(
        message,
        "integrations.caqh.username needs environment variable CAQH_USERNAME, which is not set"
    );
}

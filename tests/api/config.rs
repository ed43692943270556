//! Configuration: `--config` files overlay one another, take secrets from the environment,
//! and `providercard config check` prints the result with every secret as `***`; a bad file
//! stops any subcommand with exit code 2 and the key's path.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::binary;

const SECRET: &str = "Caqh-Password-Marker-8d41";
const WEBHOOK_SECRET: &str = "Webhook-Secret-Marker-27fa";

const BASE: &str = r#"
integrations:
  nppes:
    timeout: 3000
    rate_limit: { requests: 100, window: 60 }
  caqh:
    enabled: true
    username: ${CAQH_USERNAME}
    password: ${CAQH_PASSWORD}
    organization_id: "1234"
webhooks:
  secrets:
    caqh: ${CAQH_WEBHOOK_SECRET}
"#;

const OVERLAY: &str = r#"
integrations:
  nppes:
    timeout: 2500
jobs:
  workers: 6
"#;

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(files: &[(&str, &str)]) -> Files {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write a config file");
        }
        Files { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// `providercard ARGS`, with the configuration's variables set and none inherited.
fn providercard(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary());
    command
        .args(args)
        .current_dir(dir)
        .env_remove("PROVIDERCARD_CONFIG")
        .env_remove("CAQH_USERNAME")
        .env_remove("CAQH_PASSWORD")
        .env_remove("CAQH_WEBHOOK_SECRET")
        .env("PROVIDERCARD_LOG", "warn");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run providercard")
}

fn all_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("CAQH_USERNAME", "roster-bot"),
        ("CAQH_PASSWORD", SECRET),
        ("CAQH_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ]
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_no_secret(output: &Output) {
    for secret in [SECRET, WEBHOOK_SECRET] {
        assert!(!text(&output.stdout).contains(secret), "{secret} on stdout");
        assert!(!text(&output.stderr).contains(secret), "{secret} on stderr");
    }
}

#[test]
fn config_check_prints_the_overlaid_configuration_with_secrets_hidden() {
    let files = Files::new(&[("base.yaml", BASE), ("overlay.yaml", OVERLAY)]);
    let (base, overlay) = (files.path("base.yaml"), files.path("overlay.yaml"));
    let output = providercard(
        files.dir.path(),
        &[
            "config",
            "check",
            "--config",
            base.to_str().unwrap(),
            "--config",
            overlay.to_str().unwrap(),
        ],
        &all_env(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_no_secret(&output);
    let printed: serde_norway::Value = serde_norway::from_str(&text(&output.stdout)).expect("YAML on stdout");
    let nppes = &printed["integrations"]["nppes"];
    assert_eq!(nppes["timeout"].as_u64(), Some(2500), "the overlay wins");
    assert_eq!(nppes["rate_limit"]["requests"].as_u64(), Some(100), "the base is kept");
    assert_eq!(nppes["cache_ttl"].as_u64(), Some(604800), "the default fills in");
    assert_eq!(printed["jobs"]["workers"].as_u64(), Some(6));
    let caqh = &printed["integrations"]["caqh"];
    assert_eq!(caqh["username"].as_str(), Some("roster-bot"), "a variable substituted");
    assert_eq!(caqh["password"].as_str(), Some("***"));
    assert_eq!(printed["webhooks"]["secrets"]["caqh"].as_str(), Some("***"));
}

#[test]
fn the_files_can_come_from_the_environment() {
    let files = Files::new(&[("base.yaml", BASE), ("overlay.yaml", OVERLAY)]);
    let list = format!(
        "{},{}",
        files.path("base.yaml").display(),
        files.path("overlay.yaml").display()
    );
    let mut env = all_env();
    env.push(("PROVIDERCARD_CONFIG", &list));
    let output = providercard(files.dir.path(), &["config", "check"], &env);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("workers: 6"), "{}", text(&output.stdout));
}

#[test]
fn an_unknown_key_fails_with_its_path_and_file() {
    let files = Files::new(&[
        ("base.yaml", BASE),
        (
            "overlay.yaml",
            "integrations:\n  nppes:\n    base_ulr: https://npi.example/\n",
        ),
    ]);
    let (base, overlay) = (files.path("base.yaml"), files.path("overlay.yaml"));
    let output = providercard(
        files.dir.path(),
        &[
            "config",
            "check",
            "--config",
            base.to_str().unwrap(),
            "--config",
            overlay.to_str().unwrap(),
        ],
        &all_env(),
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: integrations.nppes.base_ulr: unknown field `base_ulr`",
            overlay.display()
        )),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
    assert_no_secret(&output);
}

#[test]
fn a_missing_secret_fails_with_the_variable_name() {
    let files = Files::new(&[("base.yaml", BASE)]);
    let base = files.path("base.yaml");
    let output = providercard(
        files.dir.path(),
        &["config", "check", "--config", base.to_str().unwrap()],
        &[("CAQH_USERNAME", "roster-bot"), ("CAQH_WEBHOOK_SECRET", WEBHOOK_SECRET)],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("integrations.caqh.password needs environment variable CAQH_PASSWORD, which is not set"),
        "{stderr}"
    );
    assert_no_secret(&output);
}

#[test]
fn every_subcommand_refuses_a_bad_configuration_before_doing_anything() {
    let files = Files::new(&[("bad.yaml", "jobz: {}\n")]);
    let database = files.path("providercard.db");
    let output = providercard(
        files.dir.path(),
        &[
            "migrate",
            "--database-url",
            &format!("sqlite://{}", database.display()),
            "--config",
            files.path("bad.yaml").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("jobz: unknown field"),
        "{}",
        text(&output.stderr)
    );
    assert!(!database.exists(), "nothing was migrated");
}

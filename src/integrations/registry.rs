//! The adapters this process runs, by name; and syncing one provider over several of them.

use std::sync::Arc;

use super::adapter::{IntegrationAdapter, IntegrationError, IntegrationKind, ProviderRef, SyncReport};

#[derive(Default, Clone)]
pub struct IntegrationRegistry {
    adapters: Vec<Arc<dyn IntegrationAdapter>>,
}

/// One adapter's part in a sync.
pub struct SyncResult {
    pub integration: String,
    pub result: Result<SyncReport, IntegrationError>,
}

impl IntegrationRegistry {
    /// Adds an adapter; a second one with the same name replaces the first.
    pub fn register(&mut self, adapter: Arc<dyn IntegrationAdapter>) {
        self.adapters.retain(|a| a.name() != adapter.name());
        self.adapters.push(adapter);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn IntegrationAdapter>> {
        self.adapters.iter().find(|a| a.name() == name).cloned()
    }

    pub fn by_kind(&self, kind: IntegrationKind) -> Vec<Arc<dyn IntegrationAdapter>> {
        self.adapters.iter().filter(|a| a.kind() == kind).cloned().collect()
    }

    pub fn all(&self) -> &[Arc<dyn IntegrationAdapter>] {
        &self.adapters
    }

    /// Syncs `provider` with each named adapter (all when `names` is empty), concurrently;
    /// one adapter failing does not stop the others. Results come back in the order asked.
    pub async fn sync_provider(&self, provider: &ProviderRef, names: &[String]) -> Vec<SyncResult> {
        let chosen: Vec<(String, Option<Arc<dyn IntegrationAdapter>>)> = if names.is_empty() {
            self.adapters
                .iter()
                .map(|a| (a.name().to_string(), Some(a.clone())))
                .collect()
        } else {
            names.iter().map(|n| (n.clone(), self.get(n))).collect()
        };
        let runs = chosen.into_iter().map(|(name, adapter)| async move {
            let result = match adapter {
                Some(adapter) => adapter.sync_provider(provider).await,
                None => Err(IntegrationError::Refused {
                    integration: name.clone(),
                    reason: "no integration of that name is configured".into(),
                }),
            };
            SyncResult {
                integration: name,
                result,
            }
        });
        futures_util::future::join_all(runs).await
    }

    pub async fn shutdown(&self) {
        for adapter in &self.adapters {
            adapter.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::adapter::{AuthType, Capabilities, HealthCheck};
    use super::*;
    use std::time::Duration;

    struct Fixed {
        name: &'static str,
        kind: IntegrationKind,
        fails: bool,
    }

    #[async_trait::async_trait]
    impl IntegrationAdapter for Fixed {
        fn name(&self) -> &str {
            self.name
        }
        fn version(&self) -> &str {
            "1"
        }
        fn kind(&self) -> IntegrationKind {
            self.kind
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                read: true,
                write: false,
                bidirectional: false,
                webhooks: false,
                batch: false,
                auth: AuthType::None,
            }
        }
        async fn health_check(&self) -> HealthCheck {
            HealthCheck {
                ok: true,
                response_time: Duration::ZERO,
                message: None,
            }
        }
        async fn sync_provider(&self, provider: &ProviderRef) -> Result<SyncReport, IntegrationError> {
            if self.fails {
                return Err(IntegrationError::Unavailable {
                    integration: self.name.into(),
                    reason: "503".into(),
                    retry_in: None,
                });
            }
            Ok(SyncReport {
                outcome: "unchanged".into(),
                changed: vec![],
                message: Some(provider.reference()),
            })
        }
    }

    fn registry() -> IntegrationRegistry {
        let mut r = IntegrationRegistry::default();
        for (name, kind, fails) in [
            ("nppes", IntegrationKind::Registry, false),
            ("uhc", IntegrationKind::Payer, true),
            ("aetna", IntegrationKind::Payer, false),
        ] {
            r.register(Arc::new(Fixed { name, kind, fails }));
        }
        r
    }

    #[test]
    fn adapters_are_found_by_name_and_listed_by_kind() {
        let r = registry();
        assert_eq!(r.get("uhc").unwrap().kind(), IntegrationKind::Payer);
        assert!(r.get("caqh").is_none());
        let payers: Vec<_> = r
            .by_kind(IntegrationKind::Payer)
            .iter()
            .map(|a| a.name().to_string())
            .collect();
        assert_eq!(payers, ["uhc", "aetna"]);
    }

    #[tokio::test]
    async fn a_sync_collects_every_adapters_result_and_one_failure_does_not_stop_the_rest() {
        let provider = ProviderRef {
            resource_type: "Practitioner".into(),
            id: "p1".into(),
            npi: Some("1234567893".into()),
        };
        let names = ["nppes", "uhc", "nowhere"].map(String::from);
        let results = registry().sync_provider(&provider, &names).await;
        let summary: Vec<(String, bool)> = results
            .iter()
            .map(|r| (r.integration.clone(), r.result.is_ok()))
            .collect();
        assert_eq!(
            summary,
            [("nppes".into(), true), ("uhc".into(), false), ("nowhere".into(), false)]
        );
        assert_eq!(
            results[0].result.as_ref().unwrap().message.as_deref(),
            Some("Practitioner/p1")
        );
    }
}

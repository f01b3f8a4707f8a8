//! Requests by operation: an interceptor that counts every HTTP request a
//! DynamoDB client sends, for a whole client rather than per call (the
//! benchmark's requests per payment, the tests' request counts).

/// Counts the HTTP requests a DynamoDB client sends (every attempt,
/// retries included), by operation name.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>,
}

impl RequestCounter {
    /// Requests sent so far, per operation.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Requests sent so far, all operations.
    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }
}

impl aws_sdk_dynamodb::config::Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let operation = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map_or("unknown", |m| m.name())
            .to_owned();
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(operation).or_default() += 1;
        }
        Ok(())
    }
}

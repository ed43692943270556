//! One log line per request: request id, method, path, status, latency. Never the query string,
//! headers or bodies, which may carry tokens or personal data beyond the directory's.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::HttpMessage;
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

pub struct RequestLog;

#[derive(Clone, Copy)]
struct Started(Instant);

impl RootSpanBuilder for RequestLog {
    fn on_request_start(request: &ServiceRequest) -> Span {
        request.extensions_mut().insert(Started(Instant::now()));
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        tracing::info_span!("request", request_id = %request_id, method = %request.method(), path = %request.path())
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, actix_web::Error>) {
        let _entered = span.enter();
        match outcome {
            Ok(response) => {
                let latency_ms = response
                    .request()
                    .extensions()
                    .get::<Started>()
                    .map(|s| (s.0.elapsed().as_secs_f64() * 10_000.0).round() / 10.0)
                    .unwrap_or_default();
                tracing::info!(status = response.status().as_u16(), latency_ms, "handled");
            }
            Err(error) => {
                let status = error.as_response_error().status_code().as_u16();
                tracing::info!(status, "failed");
            }
        }
    }
}

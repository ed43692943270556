//! Content negotiation: which format a client sends (Content-Type, 415 when unknown) and
//! which it wants back (`_format` over `Accept`, 406 when nothing fits).
//! <https://hl7.org/fhir/R4/http.html#mime-type>

use actix_web::http::header;
use actix_web::HttpRequest;

use crate::fhir::format::Format;
use crate::fhir::FhirError;

pub fn response_format(req: &HttpRequest, query: &[(String, String)]) -> Result<Format, FhirError> {
    if let Some((_, value)) = query.iter().find(|(k, _)| k == "_format") {
        return Format::from_mime(value).ok_or_else(|| FhirError::NotAcceptable(format!("_format={value}")));
    }
    let Some(accept) = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Format::Json);
    };
    if accept.trim().is_empty() {
        return Ok(Format::Json);
    }
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            matches!(
                p.trim().replace(' ', "").as_str(),
                "q=0" | "q=0.0" | "q=0.00" | "q=0.000"
            )
        });
        if refused {
            continue;
        }
        if let Some(format) = Format::from_mime(&media) {
            return Ok(format);
        }
        if media == "*/*" || media == "application/*" {
            return Ok(Format::Json);
        }
    }
    Err(FhirError::NotAcceptable(accept.to_string()))
}

/// The format of a request body; a missing Content-Type is read from the first byte.
pub fn request_format(req: &HttpRequest, body: &[u8]) -> Result<Format, FhirError> {
    match req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        Some(content_type) => {
            Format::from_mime(content_type).ok_or_else(|| FhirError::UnsupportedMediaType(content_type.to_string()))
        }
        None => match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'<') => Ok(Format::Xml),
            _ => Ok(Format::Json),
        },
    }
}

/// `Prefer: return=…` for writes. <https://hl7.org/fhir/R4/http.html#ops>
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    Minimal,
    Representation,
    OperationOutcome,
}

pub fn prefer_return(req: &HttpRequest) -> Return {
    let prefer = req
        .headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    for token in prefer.split([',', ';']) {
        match token.trim().replace(' ', "").as_str() {
            "return=minimal" => return Return::Minimal,
            "return=OperationOutcome" => return Return::OperationOutcome,
            "return=representation" => return Return::Representation,
            _ => {}
        }
    }
    Return::Representation
}

/// `Prefer: handling=strict`: unknown search parameters are errors, not warnings.
/// <https://hl7.org/fhir/R4/search.html#errors>
pub fn prefer_strict(req: &HttpRequest) -> bool {
    req.headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|token| token.trim().replace(' ', "") == "handling=strict")
}

/// Whether the body is an HTML form (`POST /Type/_search`).
pub fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

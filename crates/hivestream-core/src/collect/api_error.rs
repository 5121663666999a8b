//! The JSON error envelope every error response uses (contract §2):
//! `{"request_id", "error": {"status", "code", "message", "docs", "cause"}}`.
//!
//! | code | status | meaning |
//! |---|---|---|
//! | 1000 | 400 BadRequest | a field failed validation |
//! | 1001 | 400 BadRequest | the body is not valid JSON / NDJSON |
//! | 1002 | 400 BadRequest | a batch is empty or has too many items |
//! | 1003 | 408 RequestTimeout | the body did not arrive within `body_timeout` |
//! | 1100 | 401 Unauthorized | missing or wrong API key |
//! | 1200 | 404 NotFound | no such route or resource |
//! | 1201 | 405 MethodNotAllowed | the route exists, not with this method |
//! | 1202 | 409 Conflict | a cohort with that name exists |
//! | 1300 | 413 PayloadTooLarge | body (or decompressed body) over the limit |
//! | 1400 | 415 UnsupportedMediaType | content type or encoding not accepted |
//! | 1500 | 503 ServiceUnavailable | backlog full or disk write failed; retry |
//! | 1600 | 500 InternalServerError | a bug; the request may be retried |

use serde::Serialize;

/// Where the codes are documented for users.
pub const DOCS_URL: &str = "https://github.com/hivestream/hivestream#errors";

/// The kinds of API error, each with its HTTP status and stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Validation,
    InvalidJson,
    BadBatch,
    RequestTimeout,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    TooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    Unavailable,
    Internal,
}

impl ErrorKind {
    /// HTTP status code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::Validation | ErrorKind::InvalidJson | ErrorKind::BadBatch => 400,
            ErrorKind::RequestTimeout => 408,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Conflict => 409,
            ErrorKind::TooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::TooManyRequests => 429,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }

    /// The `status` string of the envelope.
    pub fn status_name(self) -> &'static str {
        match self {
            ErrorKind::Validation | ErrorKind::InvalidJson | ErrorKind::BadBatch => "BadRequest",
            ErrorKind::RequestTimeout => "RequestTimeout",
            ErrorKind::Unauthorized => "Unauthorized",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::MethodNotAllowed => "MethodNotAllowed",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::TooLarge => "PayloadTooLarge",
            ErrorKind::UnsupportedMediaType => "UnsupportedMediaType",
            ErrorKind::TooManyRequests => "TooManyRequests",
            ErrorKind::Unavailable => "ServiceUnavailable",
            ErrorKind::Internal => "InternalServerError",
        }
    }

    /// The stable numeric code.
    pub fn code(self) -> u16 {
        match self {
            ErrorKind::Validation => 1000,
            ErrorKind::InvalidJson => 1001,
            ErrorKind::BadBatch => 1002,
            ErrorKind::RequestTimeout => 1003,
            ErrorKind::Unauthorized => 1100,
            ErrorKind::Forbidden => 1101,
            ErrorKind::NotFound => 1200,
            ErrorKind::MethodNotAllowed => 1201,
            ErrorKind::Conflict => 1202,
            ErrorKind::TooLarge => 1300,
            ErrorKind::UnsupportedMediaType => 1400,
            ErrorKind::Unavailable => 1500,
            ErrorKind::TooManyRequests => 1501,
            ErrorKind::Internal => 1600,
        }
    }
}

/// An API error: a kind, a human message and the cause (which field, why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    pub cause: String,
    /// Seconds for `Retry-After` (503 only).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            cause: cause.into(),
            retry_after: None,
        }
    }

    /// A field failed validation.
    pub fn field(field: &str, why: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorKind::Validation,
            "the request failed validation",
            format!("{field}: {why}"),
        )
    }

    /// A 503 telling the client when to retry.
    pub fn unavailable(
        message: impl Into<String>,
        cause: impl Into<String>,
        retry_after: u32,
    ) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(ErrorKind::Unavailable, message, cause)
        }
    }

    /// The `error` object of the envelope.
    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            status: self.kind.status_name(),
            code: self.kind.code(),
            message: &self.message,
            docs: DOCS_URL,
            cause: &self.cause,
        }
    }

    /// The whole envelope as JSON bytes.
    pub fn envelope_json(&self, request_id: &str) -> Vec<u8> {
        #[derive(Serialize)]
        struct Envelope<'a> {
            request_id: &'a str,
            error: ErrorBody<'a>,
        }
        let env = Envelope {
            request_id,
            error: self.body(),
        };
        serde_json::to_vec(&env).expect("envelope serialises")
    }
}

/// The `error` object, also used per item in batch results.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub status: &'static str,
    pub code: u16,
    pub message: &'a str,
    pub docs: &'static str,
    pub cause: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_shape() {
        let e = ApiError::field("name", "must match [a-zA-Z0-9_]{1,128}");
        let v: serde_json::Value = serde_json::from_slice(&e.envelope_json("rid")).unwrap();
        assert_eq!(v["request_id"], "rid");
        assert_eq!(v["error"]["status"], "BadRequest");
        assert_eq!(v["error"]["code"], 1000);
        assert_eq!(v["error"]["cause"], "name: must match [a-zA-Z0-9_]{1,128}");
        assert!(v["error"]["docs"].as_str().unwrap().starts_with("https://"));
    }
}

//! What svcd's HTTP API and the collector's share beyond their trees: the error answer,
//! `{"error": "..."}` (docs/http-api.md, docs/collector.md).

use serde::{Deserialize, Serialize};

/// The body of an error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong, for a person.
    pub error: String,
}

/// `{"error": msg}` as bytes, the body of an error answer.
pub fn error_body(msg: &str) -> Vec<u8> {
    let body = ApiError {
        error: msg.to_string(),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_body_is_one_field() {
        let body = error_body("no service \"x\"");
        assert_eq!(body, br#"{"error":"no service \"x\""}"#);
        let back: ApiError = serde_json::from_slice(&body).unwrap();
        assert_eq!(back.error, "no service \"x\"");
    }
}

//! The one error type of the crate, with a retry hint.

use crate::StateVersion;

/// Why a live-state operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Redis cannot be reached, or did not answer in time. Retryable.
    #[error("redis is unavailable: {0}")]
    Unavailable(String),
    /// Redis answered with an error.
    #[error("redis refused the operation: {detail}")]
    Server { detail: String, retryable: bool },
    /// Redis answered something this crate does not understand.
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
    /// The configuration cannot work (bad URL, bad prefix, zero limits).
    #[error("invalid live-state configuration: {0}")]
    Config(String),
    /// An update this crate refuses (a reserved part name).
    #[error("invalid snapshot update: {0}")]
    InvalidUpdate(String),
    /// `apply` was called with a version older than one it already accepted: the caller's versions must never go
    /// backwards within one process.
    #[error("version {given} is older than the last applied {last}")]
    VersionRegression { given: StateVersion, last: StateVersion },
    /// The writer task has stopped (shutdown); nothing more is accepted.
    #[error("the live-state writer has stopped")]
    Closed,
}

impl StateError {
    /// Whether the same operation may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            StateError::Unavailable(_) => true,
            StateError::Server { retryable, .. } => *retryable,
            StateError::Protocol(_)
            | StateError::Config(_)
            | StateError::InvalidUpdate(_)
            | StateError::VersionRegression { .. }
            | StateError::Closed => false,
        }
    }
}

/// Server error codes after which the same write can never succeed: a key of another type under our prefix
/// (`WRONGTYPE`), or the write script refusing an operation it does not know (`unknown`, its own error). Every
/// other server error is retried: most pass (`OOM`, `READONLY`, `LOADING`, `BUSY`, `MISCONF` once the disk has
/// room, `NOREPLICAS` once a replica is back, `ERR max number of clients reached`, ...), and one that does not
/// keeps readiness false and the checkpoints waiting, which is better than a write dropped without end.
const PERMANENT_CODES: &[&str] = &["WRONGTYPE", "unknown"];

impl From<redis::RedisError> for StateError {
    fn from(error: redis::RedisError) -> Self {
        if social_delivery::redis::connection::is_unavailable(&error) {
            return StateError::Unavailable(error.to_string());
        }
        match error.kind() {
            redis::ErrorKind::UnexpectedReturnType | redis::ErrorKind::Parse => {
                StateError::Protocol(error.to_string())
            }
            redis::ErrorKind::InvalidClientConfig => StateError::Config(error.to_string()),
            _ => StateError::Server {
                retryable: !error.code().is_some_and(|code| PERMANENT_CODES.contains(&code)),
                detail: error.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retryable() {
        assert!(StateError::Unavailable("down".into()).is_retryable());
        assert!(
            StateError::Server {
                detail: "OOM".into(),
                retryable: true
            }
            .is_retryable()
        );
        assert!(!StateError::Closed.is_retryable());
        assert!(!StateError::InvalidUpdate("_v".into()).is_retryable());
    }
}

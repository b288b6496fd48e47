//! Where a delivery or a job is in its queue.
//!
//! These live in the store rather than in relay-core: the planner never reads them (it sees
//! events and environments, not queue progress), only the queries here and the operators'
//! views of their results do. They are spelled, parsed and mapped through sqlx like the
//! core enums ([`relay_core::text_enum!`], [`crate::Text`]).

use serde::{Deserialize, Serialize};

/// `deliveries.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting to be planned (possibly after a backoff).
    Pending,
    Processed,
    /// Nothing to plan (a ping, an event the relay does not act on).
    Ignored,
    /// Parked: a permanent failure, or the last attempt failed.
    Failed,
}

relay_core::text_enum!(DeliveryStatus, "delivery status", {
    Pending => "pending",
    Processed => "processed",
    Ignored => "ignored",
    Failed => "failed",
});

/// `jobs.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its turn, including a failed job waiting to be retried.
    Pending,
    /// Claimed, under a lease.
    Running,
    Succeeded,
    /// Failed for good (dead-lettered): kept, visible and retryable by hand.
    Dead,
}

relay_core::text_enum!(JobState, "job state", {
    Pending => "pending",
    Running => "running",
    Succeeded => "succeeded",
    Dead => "dead",
});

/// `circuits.state`: a circuit breaker around a deploy hook or the Bitbucket API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls wait; one probe is allowed at `next_probe_at`.
    Open,
    /// A probe is out.
    HalfOpen,
}

relay_core::text_enum!(CircuitState, "circuit state", {
    Closed => "closed",
    Open => "open",
    HalfOpen => "half_open",
});

#[cfg(test)]
mod tests {
    use relay_core::TextEnum;

    use super::*;

    fn check<T>()
    where
        T: TextEnum + std::str::FromStr + Serialize + PartialEq + std::fmt::Debug,
    {
        for value in T::ALL {
            assert_eq!(T::parse_text(value.as_str()), Some(*value));
            assert!(value.as_str().parse::<T>().ok() == Some(*value));
            let json = serde_json::to_string(value).unwrap();
            assert_eq!(
                json,
                format!("\"{}\"", value.as_str()),
                "serde text is DB text"
            );
        }
        assert_eq!(T::parse_text("PENDING"), None, "spellings are exact");
    }

    #[test]
    fn text_round_trips_and_matches_serde() {
        check::<DeliveryStatus>();
        check::<JobState>();
        check::<CircuitState>();
        check::<relay_core::EnvironmentKind>();
        check::<relay_core::EnvironmentStatus>();
        check::<relay_core::IntegrationType>();
        check::<relay_core::JobKind>();
    }
}

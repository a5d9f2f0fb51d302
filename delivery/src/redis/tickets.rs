//! [`RedisTickets`]: single-use tickets shared by every node. A ticket is 24 random bytes (base64url); its claims
//! are stored under `P` `ticket:<ticket>` with `SET ... EX <ttl> NX` and consumed with `GETDEL`, so a ticket issued
//! on one node works exactly once on any node, until it expires.

use std::sync::Arc;
use std::time::Duration;

use super::connection::RedisConnection;
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use social_auth::Claims;

use super::keys::Keys;
use super::{RedisBackendError, backend_error};
use crate::DeliveryError;
use crate::auth::TicketStore;

/// Characters of a ticket: 24 bytes in base64url without padding.
const TICKET_CHARS: usize = 32;

/// Single-use tickets in Redis.
pub struct RedisTickets {
    conn: RedisConnection,
    keys: Arc<Keys>,
}

impl RedisTickets {
    pub(crate) fn new(conn: RedisConnection, keys: Arc<Keys>) -> RedisTickets {
        RedisTickets { conn, keys }
    }
}

fn well_formed(ticket: &str) -> bool {
    ticket.len() == TICKET_CHARS
        && ticket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[async_trait]
impl TicketStore for RedisTickets {
    async fn issue(&self, claims: Claims, ttl: Duration) -> Result<String, DeliveryError> {
        let bytes: [u8; 24] = rand::random();
        let ticket = URL_SAFE_NO_PAD.encode(bytes);
        let value = serde_json::to_vec(&claims)
            .map_err(|error| DeliveryError::Backend(format!("serializing ticket claims: {error}")))?;
        let mut conn = self.conn.clone();
        let stored: Option<String> = redis::cmd("SET")
            .arg(self.keys.ticket(&ticket))
            .arg(value)
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .arg("NX")
            .query_async(&mut conn)
            .await
            .map_err(backend_error)?;
        if stored.is_none() {
            return Err(RedisBackendError::Protocol("a fresh ticket already existed".into()).into());
        }
        Ok(ticket)
    }

    async fn redeem(&self, ticket: &str) -> Result<Claims, DeliveryError> {
        if !well_formed(ticket) {
            return Err(DeliveryError::InvalidTicket);
        }
        let mut conn = self.conn.clone();
        let value: Option<Vec<u8>> = redis::cmd("GETDEL")
            .arg(self.keys.ticket(ticket))
            .query_async(&mut conn)
            .await
            .map_err(backend_error)?;
        let value = value.ok_or(DeliveryError::InvalidTicket)?;
        serde_json::from_slice(&value)
            .map_err(|error| RedisBackendError::Protocol(format!("ticket claims: {error}")).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_tickets_reach_redis() {
        assert!(well_formed(&URL_SAFE_NO_PAD.encode([7u8; 24])));
        assert!(!well_formed("short"));
        assert!(!well_formed(&"*".repeat(TICKET_CHARS)));
    }
}

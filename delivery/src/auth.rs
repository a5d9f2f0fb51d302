//! Who is asking: a JWT from the `Authorization: Bearer` header, a single-use ticket (`?ticket=`, for EventSource,
//! which cannot send headers) or an HttpOnly cookie, in that order of precedence. A credential that is presented
//! and invalid is rejected (`401`) even for public topics; no credential at all is an anonymous caller.
//!
//! Tickets live in a [`TicketStore`]: [`MemoryTickets`] (this process) by default, or a store shared by every node
//! (`redis::RedisTickets`), so that a ticket issued by one node is accepted, once, by any node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use social_auth::{AuthError, Claims, Verifier, bearer_token};
use tokio::time::Instant;

use crate::{DeliveryError, metrics};

/// Verifies credentials and issues tickets.
pub(crate) struct Authenticator {
    verifier: Arc<Verifier>,
    cookie_name: String,
    ticket_ttl: Duration,
    tickets: Arc<dyn TicketStore>,
}

/// Where single-use tickets live.
#[async_trait]
pub trait TicketStore: Send + Sync + 'static {
    /// Stores `claims` under a new random ticket that lives `ttl`; returns the ticket.
    async fn issue(&self, claims: Claims, ttl: Duration) -> Result<String, DeliveryError>;
    /// Consumes `ticket`: its claims the first time within its lifetime, [`DeliveryError::InvalidTicket`] otherwise.
    async fn redeem(&self, ticket: &str) -> Result<Claims, DeliveryError>;
}

/// Seconds since the Unix epoch, by the wall clock.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Authenticator {
    pub(crate) fn new(
        verifier: Arc<Verifier>,
        cookie_name: String,
        ticket_ttl: Duration,
        tickets: Arc<dyn TicketStore>,
    ) -> Self {
        Authenticator {
            verifier,
            cookie_name,
            ticket_ttl,
            tickets,
        }
    }

    /// The caller's claims: `Ok(None)` for an anonymous caller, an error for an invalid credential. With
    /// `public_only` (every topic asked for is public), an invalid cookie counts as no credential: an HttpOnly
    /// cookie cannot be cleared by the page, and a stale one must not lock a browser out of what anyone may read.
    /// A header or ticket the client chose to send is still checked.
    /// `ticket`: what redeeming the request's `?ticket=` gave ([`Auth::redeem_ticket`]); an `Authorization`
    /// header takes precedence over it (the ticket is spent all the same).
    pub(crate) async fn authenticate(
        &self,
        headers: &HeaderMap,
        ticket: Option<Result<Claims, DeliveryError>>,
        public_only: bool,
    ) -> Result<Option<Claims>, DeliveryError> {
        let result = self.authenticate_inner(headers, ticket, public_only).await;
        if let Err(error) = &result {
            metrics::auth_rejected(error.code());
        }
        result
    }

    async fn authenticate_inner(
        &self,
        headers: &HeaderMap,
        ticket: Option<Result<Claims, DeliveryError>>,
        public_only: bool,
    ) -> Result<Option<Claims>, DeliveryError> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(bearer_token)
                .ok_or(DeliveryError::Auth(AuthError::Malformed))?;
            return self.verifier.verify(token).map(Some).map_err(DeliveryError::Auth);
        }
        if let Some(redeemed) = ticket {
            let claims = redeemed?;
            if claims.exp <= now_unix() {
                return Err(DeliveryError::Auth(AuthError::Expired));
            }
            return Ok(Some(claims));
        }
        if let Some(token) = cookie_value(headers, &self.cookie_name) {
            return match self.verifier.verify(&token) {
                // Past its `exp` but within the verifier's leeway: on public topics it counts as no credential
                // too, or the stream would end at once (it ends when its token expires) and the page reconnect in
                // a loop until the leeway ran out.
                Ok(claims) if public_only && claims.exp <= now_unix() => Ok(None),
                Ok(claims) => Ok(Some(claims)),
                Err(_) if public_only => Ok(None),
                Err(error) => Err(DeliveryError::Auth(error)),
            };
        }
        Ok(None)
    }

    /// Spends a single-use ticket: its claims, or `invalid_ticket` when it is unknown, used or expired.
    pub(crate) async fn redeem_ticket(&self, ticket: &str) -> Result<Claims, DeliveryError> {
        self.tickets.redeem(ticket).await
    }

    /// Issues a single-use ticket standing for `claims`; returns it and its lifetime in seconds.
    pub(crate) async fn issue_ticket(&self, claims: Claims) -> Result<(String, u64), DeliveryError> {
        let ticket = self.tickets.issue(claims, self.ticket_ttl).await?;
        Ok((ticket, self.ticket_ttl.as_secs()))
    }
}

/// The value of cookie `name` in the `Cookie` headers, if present.
pub(crate) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
}

/// Outstanding single-use tickets of this process, bounded in number and lifetime.
pub struct MemoryTickets {
    max: usize,
    tickets: Mutex<HashMap<String, (Claims, Instant)>>,
}

impl MemoryTickets {
    /// A store holding at most `max` outstanding tickets.
    pub fn new(max: usize) -> MemoryTickets {
        MemoryTickets {
            max: max.max(1),
            tickets: Mutex::new(HashMap::new()),
        }
    }

    fn issue_now(&self, claims: Claims, ttl: Duration) -> Result<String, DeliveryError> {
        let bytes: [u8; 24] = rand::random();
        let ticket = URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        let mut tickets = self
            .tickets
            .lock()
            .map_err(|_| DeliveryError::Backend("ticket lock".into()))?;
        if tickets.len() >= self.max {
            tickets.retain(|_, (_, expires)| *expires > now);
        }
        if tickets.len() >= self.max {
            metrics::limit_rejected("capacity");
            return Err(DeliveryError::AtCapacity {
                retry_after_secs: ttl.as_secs(),
            });
        }
        tickets.insert(ticket.clone(), (claims, now + ttl));
        Ok(ticket)
    }

    fn redeem_now(&self, ticket: &str) -> Result<Claims, DeliveryError> {
        let mut tickets = self
            .tickets
            .lock()
            .map_err(|_| DeliveryError::Backend("ticket lock".into()))?;
        match tickets.remove(ticket) {
            Some((claims, expires)) if expires > Instant::now() => Ok(claims),
            _ => Err(DeliveryError::InvalidTicket),
        }
    }
}

#[async_trait]
impl TicketStore for MemoryTickets {
    async fn issue(&self, claims: Claims, ttl: Duration) -> Result<String, DeliveryError> {
        self.issue_now(claims, ttl)
    }

    async fn redeem(&self, ticket: &str) -> Result<Claims, DeliveryError> {
        self.redeem_now(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn claims() -> Claims {
        Claims {
            sub: "u1".into(),
            exp: u64::MAX,
            nbf: None,
            iat: None,
            iss: None,
            aud: None,
            programs: vec![],
            roles: vec![],
        }
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; social_token=abc.def; b=2"),
        );
        assert_eq!(cookie_value(&headers, "social_token").as_deref(), Some("abc.def"));
        assert_eq!(cookie_value(&headers, "missing"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn tickets_are_single_use_and_expire() {
        let ttl = Duration::from_secs(60);
        let store = MemoryTickets::new(2);
        let ticket = store.issue(claims(), ttl).await.unwrap();
        assert_eq!(store.redeem(&ticket).await.unwrap().sub, "u1");
        assert_eq!(store.redeem(&ticket).await, Err(DeliveryError::InvalidTicket));
        let late = store.issue(claims(), ttl).await.unwrap();
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(store.redeem(&late).await, Err(DeliveryError::InvalidTicket));
        store.issue(claims(), ttl).await.unwrap();
        store.issue(claims(), ttl).await.unwrap();
        assert!(matches!(
            store.issue(claims(), ttl).await,
            Err(DeliveryError::AtCapacity { .. })
        ));
    }
}

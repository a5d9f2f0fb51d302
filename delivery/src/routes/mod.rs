//! HTTP routes of CONTRACT section 4: one file per route, common request parsing here.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Uri};
use axum::routing::{get, post};
use social_auth::Claims;

use crate::address::client_address;
use crate::delivery::Shared;
use crate::limits::{Caller, Permit, count_refusal};
use crate::resume_token::ResumeToken;
use crate::session::OpenOptions;
use crate::topics::{MAX_TOPICS, Topic, parse_topic_set};
use crate::{DeliveryError, metrics};

/// `topic` parameters read from one request: any more could only make it refused.
const MAX_TOPIC_PARAMS: usize = MAX_TOPICS * 4;

mod poll;
mod snapshot;
mod stream;
mod tickets;

pub(crate) use stream::open_stream;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/stream", get(stream::stream))
        .route("/v1/poll", get(poll::poll))
        .route("/v1/tickets", post(tickets::create))
        .route("/v1/topics/{topic}/snapshot", get(snapshot::snapshot))
        .with_state(shared)
}

/// The query parameters of `/v1/stream` and `/v1/poll`.
#[derive(Debug, Default)]
struct SubscribeQuery {
    topics: Vec<String>,
    last_event_id: Option<String>,
    snapshot: bool,
    history: usize,
    wait_secs: Option<u64>,
}

fn parse_bool(value: &str) -> Result<bool, DeliveryError> {
    match value {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(DeliveryError::InvalidParameter("snapshot")),
    }
}

impl SubscribeQuery {
    fn parse(uri: &Uri, max_history: usize) -> Result<SubscribeQuery, DeliveryError> {
        let mut query = SubscribeQuery::default();
        let raw = uri.query().unwrap_or("");
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            match &*key {
                // One past the most a stream may name is kept, so that `parse_topic_set` refuses the request.
                "topic" if query.topics.len() <= MAX_TOPIC_PARAMS => query.topics.push(value.into_owned()),
                "topic" => {}
                "lastEventId" => query.last_event_id = Some(value.into_owned()),
                "snapshot" => query.snapshot = parse_bool(&value)?,
                "history" => {
                    let n: usize = value
                        .parse()
                        .map_err(|_| DeliveryError::InvalidParameter("history"))?;
                    query.history = n.min(max_history);
                }
                "wait" => {
                    let secs: u64 = value
                        .parse()
                        .map_err(|_| DeliveryError::InvalidParameter("wait"))?;
                    query.wait_secs = Some(secs);
                }
                _ => {}
            }
        }
        Ok(query)
    }
}

/// The last `ticket` parameter of the query, read apart from the rest so that a request refused for any other
/// parameter still spends it.
fn ticket_param(uri: &Uri) -> Option<String> {
    let raw = uri.query()?;
    form_urlencoded::parse(raw.as_bytes())
        .filter(|(key, _)| key == "ticket")
        .last()
        .map(|(_, value)| value.into_owned())
}

/// A subscription request that passed parsing, authentication, access control and the connection limits.
struct Admitted {
    topics: Vec<Topic>,
    claims: Option<Claims>,
    options: OpenOptions,
    query: SubscribeQuery,
    /// Its connection slot: the user's when it has a token, else its client address's.
    permit: Permit,
}

/// The TCP peer of a request the router serves (`None` when the router is served without connection info).
fn peer_of<B>(request: &axum::http::Request<B>) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

/// Parses and checks a subscription request: `400` for bad topics, parameters or last event id, `401` for a
/// bad credential or a private topic without one, `403` for a topic the caller may not read, `429` for too many
/// topics or streams (`peer`, the TCP peer, for the per-address limit of anonymous streams).
async fn admit(
    shared: &Shared,
    uri: &Uri,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Result<Admitted, DeliveryError> {
    // Spent before anything can refuse the request: a ticket sits in the URL (access logs, browser history), so
    // one whose first use failed early must not stay valid for its remaining lifetime.
    let ticket = match ticket_param(uri) {
        Some(ticket) => Some(shared.auth.redeem_ticket(&ticket).await),
        None => None,
    };
    if shared.shutdown.is_cancelled() {
        return Err(DeliveryError::ShuttingDown);
    }
    let mut query = SubscribeQuery::parse(uri, shared.config.max_history_per_topic)?;
    let topics = match parse_topic_set(
        query.topics.iter().map(String::as_str),
        shared.config.max_topics_per_stream,
    ) {
        Ok(topics) => topics,
        Err(error) => {
            if matches!(error, DeliveryError::TooManyTopics { .. }) {
                metrics::limit_rejected("topics");
            }
            return Err(error);
        }
    };
    for topic in &topics {
        shared.config.check_known(topic)?;
    }
    let public_only = topics.iter().all(|topic| topic.kind().is_public());
    let claims = shared.auth.authenticate(headers, ticket, public_only).await?;
    for topic in &topics {
        if let Err(error) = topic.check_access(claims.as_ref()) {
            metrics::auth_rejected(error.code());
            return Err(error);
        }
    }
    let header_id = headers
        .get("last-event-id")
        .map(|v| v.to_str().map(str::to_owned));
    let last_event_id = match header_id {
        Some(Ok(value)) => Some(value),
        Some(Err(_)) => return Err(DeliveryError::InvalidLastEventId),
        None => query.last_event_id.take(),
    };
    let resume = match last_event_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(token) => Some(ResumeToken::decode(token)?),
    };
    let options = OpenOptions {
        resume,
        history: query.history,
        snapshot: query.snapshot,
    };
    let caller = match &claims {
        Some(claims) => Caller::User(&claims.sub),
        None => Caller::Anonymous(client_address(
            peer,
            headers,
            &shared.config.trusted_proxies,
            shared.config.forwarded_header,
        )),
    };
    let mut permit = shared.limiter.admit(caller)?;
    if let Some(store) = &shared.stream_limits
        && let Some((key, bounds)) = shared.limiter.counted(caller)
    {
        match store.acquire(&key.store_name(), bounds).await {
            Ok(lease) => permit.hold(lease),
            Err(error) => {
                if matches!(
                    error,
                    DeliveryError::TooManyStreams { .. } | DeliveryError::RateLimited { .. }
                ) {
                    count_refusal(&error);
                }
                return Err(error);
            }
        }
    }
    Ok(Admitted {
        topics,
        claims,
        options,
        query,
        permit,
    })
}

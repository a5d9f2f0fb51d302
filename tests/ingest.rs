//! `POST /v1/events` over real TCP: every fixture accepted, every kind of bad input refused with its documented
//! status and code, rejected input readable from the dead-letter topic, no input able to crash the server.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use social_auth::{AuthConfig, Minter};
use social_pipeline::bus::{DEAD_LETTER_TOPIC, INPUT_TOPIC};

const JSON: &str = "application/cloudevents+json";

async fn server() -> TestServer {
    TestServer::start(server_args(&["--max-body-bytes", "1048576"])).await
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

async fn input_total(server: &TestServer) -> u64 {
    server.system.input_offsets().await.iter().sum()
}

#[tokio::test]
async fn every_fixture_is_accepted() {
    let server = server().await;
    let mut count = 0;
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let body = std::fs::read(&path).unwrap();
        let (status, reply) = post(&server.url("/v1/events"), Some(&service_token()), JSON, body).await;
        assert_eq!(status, 202, "{}: {reply}", path.display());
        assert_eq!(reply["accepted"], 1);
        count += 1;
    }
    assert_eq!(count, 16, "one fixture per event type");
    assert_eq!(input_total(&server).await, 16);
}

#[tokio::test]
async fn bad_content_is_refused_with_stable_codes() {
    let server = server().await;
    let url = server.url("/v1/events");
    let token = service_token();
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut event = click_event("e1");
        edit(&mut event);
        event.to_string()
    };
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "malformed json",
            JSON,
            "{\"specversion\": ".into(),
            400,
            "malformed_json",
        ),
        (
            "wrong content type",
            "text/plain",
            click_event("e1").to_string(),
            415,
            "unsupported_media_type",
        ),
        (
            "unknown type",
            JSON,
            with(&|e| e["type"] = json!("referral.link.teleported")),
            400,
            "unknown_event_type",
        ),
        (
            "missing field",
            JSON,
            with(&|e| {
                e["data"].as_object_mut().unwrap().remove("referralId");
            }),
            400,
            "missing_field",
        ),
        (
            "wrong field type",
            JSON,
            with(&|e| e["data"]["referralId"] = json!(42)),
            400,
            "invalid_field_type",
        ),
        (
            "bad timestamp",
            JSON,
            with(&|e| e["time"] = json!("yesterday at noon")),
            400,
            "invalid_timestamp",
        ),
        (
            "time far ahead of its arrival (past --max-future-ms)",
            JSON,
            with(&|e| e["time"] = json!("2999-01-01T00:00:00Z")),
            400,
            "timestamp_in_future",
        ),
        (
            "oversized event",
            JSON,
            with(&|e| e["data"]["userAgent"] = json!("x".repeat(70_000))),
            400,
            "event_too_large",
        ),
        ("empty body", JSON, "   ".into(), 400, "empty_body"),
    ];
    for (name, content_type, body, want_status, want_code) in cases {
        let (status, reply) = post(&url, Some(&token), content_type, body).await;
        assert_eq!(status, want_status, "{name}: {reply}");
        assert_eq!(reply["error"]["code"], want_code, "{name}: {reply}");
    }
    assert_eq!(
        input_total(&server).await,
        0,
        "nothing invalid reached the input topic"
    );
}

#[tokio::test]
async fn oversized_body_is_413() {
    let server = server().await;
    let line = click_event("e").to_string();
    let body: String = std::iter::repeat_n(format!("{line}\n"), 1_048_576 / line.len() + 10).collect();
    let (status, reply) = post(
        &server.url("/v1/events"),
        Some(&service_token()),
        "application/x-ndjson",
        body.clone(),
    )
    .await;
    assert_error(status, &reply, 413, "body_too_large");

    // Without a Content-Length the limit stops the reading: the dead letter keeps the first bytes read.
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        service_token()
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(head.as_bytes()).await.unwrap();
    for piece in body.as_bytes().chunks(64 * 1024) {
        let chunk = [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat();
        if stream.write_all(&chunk).await.is_err() {
            break; // answered and closed before the end
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");

    let (status, letters) = get_json(&server.url("/v1/dead-letters?from=0"), Some(&admin_token())).await;
    assert_eq!(status, 200, "{letters}");
    let records = letters["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{letters}");
    let declared = &records[0]["record"];
    assert_eq!(declared["reason"]["code"], "body_too_large");
    assert_eq!(declared["bytes"], body.len(), "its Content-Length");
    assert_eq!(declared["truncated"], true);
    assert_eq!(declared["payload"], "", "not read");
    let streamed = &records[1]["record"];
    assert_eq!(streamed["reason"]["code"], "body_too_large");
    assert_eq!(streamed["truncated"], true);
    let kept = streamed["payload"].as_str().unwrap();
    assert!(
        !kept.is_empty() && body.starts_with(kept),
        "the first bytes read: {}",
        kept.len()
    );
    assert!(
        streamed["bytes"].as_u64().unwrap() >= kept.len() as u64,
        "{streamed}"
    );
}

/// A compressed body is refused whole, with the coding the ingest accepts; `identity` is no coding.
#[tokio::test]
async fn a_compressed_body_is_415() {
    let server = server().await;
    let url = server.url("/v1/events");
    let event = click_event("coded").to_string();
    for coding in ["gzip", "br", "identity, gzip"] {
        let response = reqwest::Client::new()
            .post(&url)
            .header("authorization", format!("Bearer {}", service_token()))
            .header("content-type", JSON)
            .header("content-encoding", coding)
            .body(event.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["accept-encoding"], "identity", "{coding}");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_error(status, &body, 415, "unsupported_encoding");
    }
    assert_eq!(input_total(&server).await, 0);
    let response = reqwest::Client::new()
        .post(&url)
        .header("authorization", format!("Bearer {}", service_token()))
        .header("content-type", JSON)
        .header("content-encoding", "identity")
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
}

/// More events in one request than `--max-events-per-request`: refused whole, before any per-event work, and
/// the body is dead-lettered.
#[tokio::test]
async fn too_many_events_in_one_request_is_413() {
    let server = TestServer::start(server_args(&["--max-events-per-request", "100"])).await;
    let line = click_event("e").to_string();
    let body: String = std::iter::repeat_n(format!("{line}\n"), 101).collect();
    let url = server.url("/v1/events");
    let (status, reply) = post(&url, Some(&service_token()), "application/x-ndjson", body).await;
    assert_error(status, &reply, 413, "too_many_events");
    assert_eq!(input_total(&server).await, 0, "nothing of it accepted");
    let (status, letters) = get_json(&server.url("/v1/dead-letters?from=0"), Some(&admin_token())).await;
    assert_eq!(status, 200, "{letters}");
    let records = letters["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "one dead letter for the body: {letters}");
    assert_eq!(
        records[0]["record"]["reason"]["code"], "too_many_events",
        "{letters}"
    );
    // Tiny items are counted too: a body of 101 lines of `x` is refused the same way.
    let body: String = std::iter::repeat_n("x\n", 101).collect();
    let (status, reply) = post(&url, Some(&service_token()), "application/x-ndjson", body).await;
    assert_error(status, &reply, 413, "too_many_events");
    // At the limit, accepted.
    let body: String = (0..100)
        .map(|i| format!("{}\n", click_event(&format!("e{i}"))))
        .collect();
    let (status, reply) = post(&url, Some(&service_token()), "application/x-ndjson", body).await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["accepted"], 100);
}

/// A body trickled in so slowly that it would hold the connection for ever is cut off: `408 body_timeout`, the
/// connection closed, nothing accepted.
#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_408_and_the_connection_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = TestServer::start(server_args(&["--body-timeout-ms", "400"])).await;
    let event = click_event("slow").to_string();
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\nContent-Type: {JSON}\r\n\
         Content-Length: {}\r\n\r\n",
        service_token(),
        event.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    // One byte every 100 ms: the connection is never idle, but the body takes far longer than 400 ms.
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    for byte in event.as_bytes() {
        if stream.write_all(std::slice::from_ref(byte)).await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => reply.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still reading the body after 10 s"
        );
    }
    // Whatever of the answer has not come yet, then the close.
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(rest.is_ok(), "the connection was not closed");
    let elapsed = started.elapsed();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("\"body_timeout\""), "{reply}");
    assert!(
        elapsed >= Duration::from_millis(350) && elapsed < Duration::from_secs(5),
        "answered after {elapsed:?}"
    );
    assert_eq!(
        input_total(&server).await,
        0,
        "nothing of the request was accepted"
    );

    // A body that arrives in time is unaffected.
    let (status, body) = post(&server.url("/v1/events"), Some(&service_token()), JSON, event).await;
    assert_eq!(status, 202, "{body}");
}

/// The ingest holds at most `--max-inflight-body-bytes` of request bodies at once, counting the bytes each has
/// received: a request whose next chunk finds no room within a second is answered `503 ingest_busy` (with
/// `Retry-After`), and gets in once the room is given back. A request that declares a large body and sends
/// nothing holds no room.
#[tokio::test]
async fn requests_beyond_the_inflight_body_budget_are_503_until_room_is_back() {
    use tokio::io::AsyncWriteExt;

    let server = TestServer::start(server_args(&[
        "--max-body-bytes",
        "100000",
        "--max-inflight-body-bytes",
        "150000",
    ]))
    .await;
    let head = |length: usize| {
        format!(
            "POST /v1/events HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\nContent-Type: {JSON}\r\n\
             Content-Length: {length}\r\n\r\n",
            service_token(),
        )
    };
    // Declared but not sent: holds nothing.
    let mut idle = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(head(100_000).as_bytes()).await.unwrap();
    let event = click_event("within-budget").to_string();
    let big = format!("[{}]", vec![event.clone(); 60_000 / event.len() + 1].join(","));
    assert!(big.len() > 60_000 && big.len() < 100_000);
    let (status, body) = post(
        &server.url("/v1/events"),
        Some(&service_token()),
        JSON,
        big.clone(),
    )
    .await;
    assert_eq!(status, 202, "an idle request holds no room: {body}");

    // 95,000 bytes received of a body still arriving: they hold their room.
    let mut holder = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    holder.write_all(head(100_000).as_bytes()).await.unwrap();
    holder.write_all(&vec![b' '; 95_000]).await.unwrap();
    let (status, body) = post(&server.url("/v1/events"), Some(&service_token()), JSON, event).await;
    assert_eq!(status, 202, "a small request fits beside it: {body}");
    // Once the server has read the held bytes (retried until then), the larger one does not fit.
    let mut refused = None;
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let (status, body) = post(
            &server.url("/v1/events"),
            Some(&service_token()),
            JSON,
            big.clone(),
        )
        .await;
        if status == 503 {
            refused = Some((body, started.elapsed()));
            break;
        }
        assert_eq!(status, 202, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (body, waited) = refused.expect("refused while the room is held");
    assert_error(503, &body, 503, "ingest_busy");
    assert!(waited >= Duration::from_millis(900), "{waited:?}");

    drop(holder);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = post(
            &server.url("/v1/events"),
            Some(&service_token()),
            JSON,
            big.clone(),
        )
        .await;
        if status == 202 {
            break;
        }
        assert_error(status, &body, 503, "ingest_busy");
        assert!(std::time::Instant::now() < deadline, "the room never came back");
    }
    drop(idle);
}

/// Two bodies without a declared length, each of which fits the budget alone, arriving side by side: room is
/// taken once, whole, so one waits for the other and both get in (growing their room chunk by chunk, each would
/// hold half and wait for the other's until both were refused).
#[tokio::test]
async fn chunked_bodies_arriving_side_by_side_both_get_in() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = TestServer::start(server_args(&[
        "--max-body-bytes",
        "100000",
        "--max-inflight-body-bytes",
        "100000",
    ]))
    .await;
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\nContent-Type: {JSON}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        service_token(),
    );
    let chunk = |data: &str| format!("{:x}\r\n{data}\r\n", data.len());
    let half = format!("[{}", " ".repeat(44_999));
    let more = " ".repeat(45_000);
    let pause = || tokio::time::sleep(Duration::from_millis(100));

    let mut first = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut second = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    first
        .write_all(format!("{head}{}", chunk(&half)).as_bytes())
        .await
        .unwrap();
    second
        .write_all(format!("{head}{}", chunk(&half)).as_bytes())
        .await
        .unwrap();
    pause().await;
    first.write_all(chunk(&more).as_bytes()).await.unwrap();
    pause().await;
    second.write_all(chunk(&more).as_bytes()).await.unwrap();
    pause().await;
    for stream in [&mut first, &mut second] {
        stream
            .write_all(format!("{}0\r\n\r\n", chunk("]")).as_bytes())
            .await
            .unwrap();
    }
    for (name, stream) in [("first", &mut first), ("second", &mut second)] {
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
            .await
            .expect("answered")
            .unwrap();
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 202"), "{name}: {reply}");
    }
}

#[tokio::test]
async fn bad_tokens_are_refused() {
    let server = server().await;
    let url = server.url("/v1/events");
    let body = click_event("e1").to_string();
    let expired = Minter::new(&auth_config())
        .unwrap()
        .mint(
            "p",
            &["service".into()],
            &[],
            Duration::from_secs(60),
            now_unix() - 3600,
        )
        .unwrap();
    let other_key = Minter::new(&AuthConfig::hs256("another-secret-that-is-at-least-32-bytes!"))
        .unwrap()
        .mint(
            "p",
            &["service".into()],
            &[],
            Duration::from_secs(600),
            now_unix(),
        )
        .unwrap();
    let b64 = |value: Value| base64url(value.to_string().as_bytes());
    let alg_none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(json!({"sub": "p", "exp": now_unix() + 600, "roles": ["service"]}))
    );
    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("no token", None, 401, "missing_token"),
        ("expired", Some(expired), 401, "token_expired"),
        ("other key", Some(other_key), 401, "invalid_signature"),
        ("alg none", Some(alg_none), 401, "algorithm_not_allowed"),
        (
            "no service role",
            Some(token("user-1", &["admin"])),
            403,
            "missing_role",
        ),
        ("garbage", Some("not.a.jwt".into()), 401, "malformed_token"),
    ];
    for (name, token, want_status, want_code) in cases {
        let (status, reply) = post(&url, token.as_deref(), JSON, body.clone()).await;
        assert_eq!(status, want_status, "{name}: {reply}");
        assert_eq!(reply["error"]["code"], want_code, "{name}: {reply}");
    }
    // An Authorization header that is not `Bearer <token>`: malformed, not missing (as on delivery).
    for value in ["Basic dXNlcjpwYXNz", "Bearer a b", "Bearer"] {
        let response = reqwest::Client::new()
            .post(&url)
            .header("content-type", JSON)
            .header("authorization", value)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{value}");
        let reply: Value = response.json().await.unwrap();
        assert_eq!(reply["error"]["code"], "malformed_token", "{value}: {reply}");
    }
    assert_eq!(input_total(&server).await, 0);
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn batches_report_each_rejection_and_keep_the_rest() {
    let server = server().await;
    let url = server.url("/v1/events");
    let mut bad = click_event("b2");
    bad["data"]["sourceIp"] = json!("not-an-ip");
    let array = json!([click_event("b1"), bad, click_event("b3")]).to_string();
    let (status, reply) = post(&url, Some(&service_token()), JSON, array).await;
    assert_error(status, &reply, 400, "invalid_events");
    assert_eq!(reply["accepted"], 2);
    assert_eq!(reply["errors"][0]["index"], 1);
    assert_eq!(reply["errors"][0]["code"], "invalid_field_value");

    let ndjson = format!("{}\n{{oops\n{}\n", click_event("n1"), click_event("n2"));
    let (status, reply) = post(&url, Some(&service_token()), "application/x-ndjson", ndjson).await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["accepted"], 2);
    assert_eq!(reply["errors"][0]["index"], 1);
    assert_eq!(reply["errors"][0]["code"], "malformed_json");
    assert_eq!(input_total(&server).await, 4);
}

#[tokio::test]
async fn duplicates_have_one_effect() {
    let server = server().await;
    let url = server.url("/v1/events");
    let body = json!([click_event("d1"), click_event("d2"), click_event("d1")]).to_string();
    let (status, reply) = post(&url, Some(&service_token()), JSON, body.clone()).await;
    assert_eq!((status, reply["duplicates"].clone()), (202, json!(1)), "{reply}");
    let (status, reply) = post(&url, Some(&service_token()), JSON, body).await;
    assert_eq!(
        (status, reply["accepted"].clone(), reply["duplicates"].clone()),
        (202, json!(3), json!(3))
    );
    assert_eq!(input_total(&server).await, 2);
}

#[tokio::test]
async fn rejected_events_are_readable_from_the_dead_letter_topic() {
    let server = server().await;
    let mut bad = click_event("x1");
    bad["type"] = json!("nope.nope");
    let (status, _) = post(
        &server.url("/v1/events"),
        Some(&service_token()),
        JSON,
        bad.to_string(),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = post(
        &server.url("/v1/events"),
        Some(&service_token()),
        JSON,
        "[1,".to_string(),
    )
    .await;
    assert_eq!(status, 400);

    let (status, reply) = get_json(&server.url("/v1/dead-letters?from=0"), Some(&admin_token())).await;
    assert_eq!(status, 200, "{reply}");
    let records = reply["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{reply}");
    assert_eq!(records[0]["record"]["reason"]["code"], "unknown_event_type");
    assert!(
        records[0]["record"]["payload"]
            .as_str()
            .unwrap()
            .contains("nope.nope")
    );
    assert_eq!(records[1]["record"]["reason"]["code"], "malformed_json");
    assert_eq!(
        server.system.bus.end_offset(DEAD_LETTER_TOPIC, 0).await.unwrap(),
        2
    );

    let (status, reply) = get_json(&server.url("/v1/dead-letters"), Some(&service_token())).await;
    assert_error(status, &reply, 403, "missing_role");
}

#[tokio::test]
async fn operations_routes_answer() {
    let server = server().await;
    let (status, _) = get_json(&server.url("/healthz"), None).await;
    assert_eq!(status, 200);
    let (status, _) = get_json(&server.url("/readyz"), None).await;
    assert_eq!(status, 200);
    let (status, reply) = get_json(&server.url("/v1/status"), None).await;
    assert_eq!(status, 200);
    assert_eq!(reply["inputTopic"]["partitions"], 4);
    assert!(server.system.bus.partitions(INPUT_TOPIC).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Whatever the body and content type, the server answers with a documented status and a JSON error body,
    /// and keeps serving.
    #[test]
    fn arbitrary_bodies_never_break_the_server(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..2048),
            "[\\[\\]{}\":,0-9a-z \n]{0,300}".prop_map(String::into_bytes),
            Just(click_event("p").to_string().into_bytes()),
        ],
        content_type in prop_oneof![Just(JSON), Just("application/x-ndjson"), Just("application/json"), Just("text/csv")],
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let server = SHARED.get_or_init(|| std::sync::Mutex::new(None));
            let addr = {
                let mut guard = server.lock().unwrap();
                if guard.is_none() {
                    *guard = Some(start_background_server());
                }
                guard.as_ref().copied().unwrap()
            };
            let url = format!("http://{addr}/v1/events");
            let (status, reply) = post(&url, Some(&service_token()), content_type, body).await;
            prop_assert!([202, 400, 413, 415].contains(&status), "status {status}: {reply}");
            if status != 202 {
                prop_assert!(reply["error"]["code"].is_string(), "{reply}");
            }
            let (health, _) = get_json(&format!("http://{addr}/healthz"), None).await;
            prop_assert_eq!(health, 200);
            Ok(())
        })?;
    }
}

static SHARED: std::sync::OnceLock<std::sync::Mutex<Option<std::net::SocketAddr>>> =
    std::sync::OnceLock::new();

/// One server on its own runtime thread for all proptest cases.
fn start_background_server() -> std::net::SocketAddr {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let server = TestServer::start(server_args(&[])).await;
            sender.send(server.addr).unwrap();
            std::future::pending::<()>().await;
        });
    });
    receiver.recv().unwrap()
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_errors() {
    let server = server().await;
    let client = reqwest::Client::new();
    for path in ["/nope", "/v1/nope", "/v1/topics/trending.1h"] {
        let response = client.get(server.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_error(status, &body, 404, "not_found");
    }
    let response = client.delete(server.url("/v1/events")).send().await.unwrap();
    let status = response.status().as_u16();
    let allow = response
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap();
    assert_error(status, &body, 405, "method_not_allowed");
    assert_eq!(allow.as_deref(), Some("POST"));
    // A topic name that does not decode is an invalid topic, in JSON.
    let response = client
        .get(server.url("/v1/topics/trending.%FF/snapshot"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_error(status, &body, 400, "invalid_topic");
}

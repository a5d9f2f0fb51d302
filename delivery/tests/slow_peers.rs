//! Peers that hold a connection without doing their part: a request head that never completes, a stream whose
//! first chunk (a large replay) is never taken. Real TCP, server on port 0.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use social_delivery::DeliveryConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection; `None` when it is still open after `within`.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut received)).await;
    match read {
        Ok(Ok(_)) => Some(received),
        Ok(Err(_)) => Some(received), // reset by the server: closed too
        Err(_) => None,
    }
}

#[tokio::test]
async fn a_request_head_that_never_completes_is_closed_after_the_head_timeout() {
    let config = DeliveryConfig {
        request_head_timeout_ms: 500,
        ..DeliveryConfig::default()
    };
    let server = TestServer::start(config).await;

    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut partial = TcpStream::connect(server.addr).await.unwrap();
    partial
        .write_all(b"GET /v1/stream?topic=leaderboard.daily HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(
        read_to_close(&mut silent, Duration::from_secs(5)).await.is_some(),
        "a silent peer is closed"
    );
    assert!(
        read_to_close(&mut partial, Duration::from_secs(5))
            .await
            .is_some(),
        "a partial head is closed"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "not before the timeout"
    );

    // A head that arrives in pieces within the timeout is served, on the lean path and through hyper.
    for (path, status) in [
        ("/v1/stream?topic=leaderboard.daily", "200"),
        ("/v1/no-such-route", "404"),
    ] {
        let mut pieces = TcpStream::connect(server.addr).await.unwrap();
        pieces
            .write_all(format!("GET {path} HTTP/1.1\r\n").as_bytes())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        pieces
            .write_all(b"Host: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(5), pieces.read_exact(&mut head))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(head, format!("HTTP/1.1 {status}").as_bytes(), "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_take_its_first_chunk_is_dropped() {
    const TOPICS: usize = 8;
    const PER_TOPIC: usize = 1_000;
    let config = DeliveryConfig {
        first_chunk_timeout_ms: 1_000,
        max_history_per_topic: PER_TOPIC,
        ..DeliveryConfig::default()
    };
    let server = TestServer::start(config).await;
    // About 8 MB of history to replay: more than the two sockets' buffers hold.
    let filler = "x".repeat(1_000);
    for topic in 0..TOPICS {
        for n in 0..PER_TOPIC {
            server
                .publish_data(
                    &format!("leaderboard.b{topic}"),
                    &format!("m{n}"),
                    json!({ "filler": filler }),
                )
                .await;
        }
    }
    let query: Vec<String> = (0..TOPICS).map(|t| format!("topic=leaderboard.b{t}")).collect();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(server.addr).await.unwrap();
    let request = format!(
        "GET /v1/stream?{}&history={PER_TOPIC} HTTP/1.1\r\nHost: x\r\n\r\n",
        query.join("&")
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // Not reading: the server's first write cannot finish.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let received = read_to_close(&mut stream, Duration::from_secs(20))
        .await
        .expect("the server dropped the stream");
    assert!(
        received.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        &received[..received.len().min(40)]
    );
    assert!(
        received.len() < TOPICS * PER_TOPIC * filler.len(),
        "the replay was cut short"
    );
    // Its connection slot is free again: a stream opens and gets its start position.
    let mut next = Sse::connect(&server.url("/v1/stream?topic=leaderboard.b0"), &[]).await;
    assert_eq!(next.status, 200);
    assert!(next.next_frame().await.is_some());
    server.stop().await;
}

#[tokio::test]
async fn a_router_served_stream_whose_client_reads_nothing_is_closed_after_the_write_stall_timeout() {
    let config = DeliveryConfig {
        write_stall_timeout_ms: 500,
        // Room for every message: the connection is not cut off as too slow, its write stalls.
        connection_queue: 4_096,
        ..DeliveryConfig::default()
    };
    let server = TestServer::start(config).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(server.addr).await.unwrap();
    // A stream that is not the connection's first request is served by the router (hyper), not the lean path.
    stream
        .write_all(
            b"GET /v1/no-such-route HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /v1/stream?topic=leaderboard.daily HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await
        .unwrap();
    while server.delivery.hub().subscriber_count("leaderboard.daily") < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // About 8 MB of messages: far more than the two sockets' buffers hold. The client reads nothing.
    let filler = "x".repeat(16 * 1024);
    for n in 0..500 {
        server
            .publish_data("leaderboard.daily", &format!("m{n}"), json!({ "filler": filler }))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let received = read_to_close(&mut stream, Duration::from_secs(20))
        .await
        .expect("the server closed the stalled connection");
    assert!(
        received.starts_with(b"HTTP/1.1 404"),
        "{:?}",
        &received[..received.len().min(40)]
    );
    assert!(received.len() < 500 * filler.len(), "the stream was cut short");
    // Its slot is free again.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.delivery.active_connections() > 0 {
        assert!(Instant::now() < deadline, "the slot is released");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_kept_alive_connection_left_idle_is_closed_after_the_idle_timeout() {
    let config = DeliveryConfig {
        idle_connection_timeout_ms: 300,
        // The floor of the idle timeout is twice the longer of these: 2 s.
        heartbeat_secs: 1,
        max_poll_wait_secs: 1,
        ..DeliveryConfig::default()
    };
    let server = TestServer::start(config).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    // A long poll of 1 s on a kept-alive connection: answered, not cut as idle.
    stream
        .write_all(b"GET /v1/poll?topic=leaderboard.daily&wait=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // Then nothing: the server closes the connection after the idle timeout (2 s here), not before.
    let idle_from = Instant::now();
    read_to_close(&mut stream, Duration::from_secs(10))
        .await
        .expect("the idle connection was closed");
    let idle = idle_from.elapsed();
    assert!(idle >= Duration::from_millis(1_500), "closed after {idle:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_later_request_head_trickled_line_by_line_is_closed_after_the_head_timeout() {
    let config = DeliveryConfig {
        request_head_timeout_ms: 500,
        ..DeliveryConfig::default()
    };
    let server = TestServer::start(config).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /v1/no-such-route HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let read = stream.read(&mut answer).await.unwrap();
    assert!(answer[..read].starts_with(b"HTTP/1.1 404"));
    // The next head never ends: a header line every 100 ms keeps bytes moving, but not the head's clock.
    stream
        .write_all(b"GET /v1/no-such-route HTTP/1.1\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    for n in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let line = format!("x-{n}: y\r\n");
        let read = tokio::time::timeout(Duration::from_millis(1), stream.read(&mut answer)).await;
        if stream.write_all(line.as_bytes()).await.is_err() || matches!(read, Ok(Ok(0)) | Ok(Err(_))) {
            closed = true;
            break;
        }
    }
    let elapsed = started.elapsed();
    assert!(closed, "the trickled head was still open after {elapsed:?}");
    assert!(elapsed >= Duration::from_millis(400), "closed after {elapsed:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_connection_that_sent_nothing_does_not_hold_up_shutdown() {
    let server = TestServer::start(DeliveryConfig::default()).await;
    let _silent = TcpStream::connect(server.addr).await.unwrap();
    let mut partial = TcpStream::connect(server.addr).await.unwrap();
    partial
        .write_all(b"GET /v1/stream?topic=leaderboard.daily HTTP/1.1\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.shutdown.cancel();
    // The request head timeout is 30 s; the serving ends well before it.
    tokio::time::timeout(Duration::from_secs(5), server.served)
        .await
        .expect("serving ended")
        .unwrap();
}

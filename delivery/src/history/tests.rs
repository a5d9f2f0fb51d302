//! Tests of the in-process history.

use super::*;

fn history(max_messages: usize) -> MemoryHistory {
    let retention = Retention {
        max_age: Duration::from_secs(3600),
        max_messages,
        max_bytes: usize::MAX,
        max_total_bytes: usize::MAX,
    };
    MemoryHistory::with_epoch(retention, 7)
}

fn offsets(replay: Replay) -> Vec<u64> {
    match replay {
        Replay::Messages(entries) => entries.iter().map(|e| e.position.offset).collect(),
        Replay::Gap(reason) => panic!("gap: {reason:?}"),
    }
}

#[tokio::test]
async fn restored_messages_keep_their_positions_sequences_and_age() {
    let h = history(100);
    let at = |offset| Position { epoch: 7, offset };
    let put = |topic: &str, offset, sequence, age| {
        h.put(topic, offset, sequence, Bytes::from_static(b"x"), age)
            .unwrap()
    };
    // The log lost the topic's first messages: it starts at 3.
    for (offset, sequence) in [(3, 30), (4, 40), (5, 41)] {
        assert!(put("t", offset, Some(sequence), Duration::ZERO).is_some());
    }
    // An offset already held is ignored; one older than the retention only moves the topic on.
    assert!(put("t", 4, Some(40), Duration::ZERO).is_none());
    assert!(put("old", 1, None, Duration::from_secs(7200)).is_none());
    assert_eq!(h.head("t").await.unwrap(), at(5));
    assert_eq!(offsets(h.read_after("t", at(3), 10).await.unwrap()), [4, 5]);
    assert!(matches!(
        h.read_after("t", at(1), 10).await.unwrap(),
        Replay::Gap(GapReason::Expired)
    ));
    assert!(h.last("old", 10).await.unwrap().is_empty());
    assert_eq!(h.head("old").await.unwrap(), at(1));
    // A gap (a record lost from the log) expires what came before it.
    assert!(put("t", 7, Some(43), Duration::ZERO).is_some());
    assert!(matches!(
        h.read_after("t", at(5), 10).await.unwrap(),
        Replay::Gap(GapReason::Expired)
    ));
    assert_eq!(offsets(h.read_after("t", at(6), 10).await.unwrap()), [7]);
    // A producer replaying after the restart appends only what is new: planned, then put.
    assert_eq!(
        h.plan(&[("t", Some(43)), ("t", Some(44)), ("t", Some(45)), ("u", None)])
            .unwrap(),
        [None, Some(8), Some(9), Some(1)]
    );
    assert!(
        h.append_sequenced("t", Bytes::from_static(b"x"), 43)
            .await
            .unwrap()
            .is_none()
    );
    let next = h
        .append_sequenced("t", Bytes::from_static(b"z"), 44)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.position, at(8));
}

#[tokio::test]
async fn topics_not_held_start_at_the_offset_floor() {
    let h = history(100);
    let at = |offset| Position { epoch: 7, offset };
    h.set_offset_floor(50);
    // A client that saw offsets of the topic before its records were lost gets a gap, never new messages at
    // the offsets it saw.
    assert_eq!(h.head("quiet").await.unwrap(), at(50));
    assert!(matches!(
        h.read_after("quiet", at(3), 10).await.unwrap(),
        Replay::Gap(GapReason::Expired)
    ));
    assert!(matches!(h.read_after("quiet", at(50), 10).await.unwrap(), Replay::Messages(m) if m.is_empty()));
    let first = h.append("quiet", Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(first.position, at(51));
    assert_eq!(offsets(h.read_after("quiet", at(50), 10).await.unwrap()), [51]);
    assert!(matches!(
        h.read_after("quiet", at(3), 10).await.unwrap(),
        Replay::Gap(GapReason::Expired)
    ));
}

#[tokio::test]
async fn appends_in_order_and_reads_after_a_position() {
    let history = history(10);
    for i in 1..=5u64 {
        let entry = history
            .append("trending.1h", Bytes::from(format!("{i}")))
            .await
            .unwrap();
        assert_eq!(entry.position, Position { epoch: 7, offset: i });
    }
    let head = history.head("trending.1h").await.unwrap();
    assert_eq!(head, Position { epoch: 7, offset: 5 });
    let replay = history
        .read_after("trending.1h", Position { epoch: 7, offset: 2 }, 100)
        .await
        .unwrap();
    assert_eq!(offsets(replay), [3, 4, 5]);
    let none = history.read_after("trending.1h", head, 100).await.unwrap();
    assert!(offsets(none).is_empty());
    let last = history.last("trending.1h", 2).await.unwrap();
    assert_eq!(last.iter().map(|e| e.position.offset).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(
        history.head("trending.24h").await.unwrap(),
        Position { epoch: 7, offset: 0 }
    );
}

#[tokio::test]
async fn gaps_are_reported_never_skipped() {
    let history = history(3);
    for i in 0..6 {
        history.append("t", Bytes::from(format!("{i}"))).await.unwrap();
    }
    // Retained: 4, 5, 6. After 3 is still covered; after 2 is not.
    let covered = history
        .read_after("t", Position { epoch: 7, offset: 3 }, 100)
        .await
        .unwrap();
    assert_eq!(offsets(covered), [4, 5, 6]);
    let expired = history
        .read_after("t", Position { epoch: 7, offset: 2 }, 100)
        .await
        .unwrap();
    assert!(matches!(expired, Replay::Gap(GapReason::Expired)));
    let other_epoch = history
        .read_after("t", Position { epoch: 8, offset: 6 }, 100)
        .await
        .unwrap();
    assert!(matches!(other_epoch, Replay::Gap(GapReason::EpochChanged)));
    let beyond = history
        .read_after("t", Position { epoch: 7, offset: 9 }, 100)
        .await
        .unwrap();
    assert!(matches!(beyond, Replay::Gap(GapReason::EpochChanged)));
    let too_many = history
        .read_after("t", Position { epoch: 7, offset: 3 }, 2)
        .await
        .unwrap();
    assert!(matches!(too_many, Replay::Gap(GapReason::Expired)));
}

#[tokio::test(start_paused = true)]
async fn age_retention_expires_messages() {
    let retention = Retention {
        max_age: Duration::from_millis(30),
        max_messages: 100,
        max_bytes: usize::MAX,
        max_total_bytes: usize::MAX,
    };
    let history = MemoryHistory::with_epoch(retention, 1);
    history.append("t", Bytes::from_static(b"a")).await.unwrap();
    tokio::time::advance(Duration::from_millis(50)).await;
    history.expire().await.unwrap();
    assert!(history.last("t", 10).await.unwrap().is_empty());
    let replay = history
        .read_after("t", Position { epoch: 1, offset: 0 }, 10)
        .await
        .unwrap();
    assert!(matches!(replay, Replay::Gap(GapReason::Expired)));
    assert_eq!(history.head("t").await.unwrap().offset, 1);
}

#[tokio::test]
async fn byte_cap_keeps_at_least_the_newest() {
    let retention = Retention {
        max_age: Duration::from_secs(60),
        max_messages: 100,
        max_bytes: 4,
        max_total_bytes: usize::MAX,
    };
    let history = MemoryHistory::with_epoch(retention, 1);
    history.append("t", Bytes::from_static(b"abc")).await.unwrap();
    history.append("t", Bytes::from_static(b"defgh")).await.unwrap();
    let last = history.last("t", 10).await.unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].position.offset, 2);
}

#[tokio::test(start_paused = true)]
async fn total_cap_drops_the_oldest_messages_of_every_topic_first() {
    // Every message below takes the same memory: 10 bytes of JSON on a one-letter topic; so does every
    // topic's record.
    let unit = 10 + 1 + ENTRY_OVERHEAD;
    let record = record_footprint("a");
    let retention = Retention {
        max_age: Duration::from_secs(3600),
        max_messages: 100,
        max_bytes: usize::MAX,
        max_total_bytes: 10 * unit + 3 * record,
    };
    let history = MemoryHistory::with_epoch(retention, 1);
    let message = || Bytes::from(vec![b'x'; 10]);
    // Ten messages a second apart, alternating between two topics: exactly at the cap.
    for n in 0..10 {
        let topic = if n % 2 == 0 { "a" } else { "b" };
        history.append(topic, message()).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let held = |history: &MemoryHistory| history.total_bytes.load(Ordering::Relaxed);
    assert_eq!(held(&history), 10 * unit + 2 * record);
    // One more, on a third topic: down to at most nine tenths: the three oldest (a1 at 0 s, b1 at 1 s, a2 at
    // 2 s, in the same age bucket of 3.5 s) go, whatever their topic; the topics, which have messages left, stay.
    history.append("c", message()).await.unwrap();
    assert_eq!(held(&history), 8 * unit + 3 * record);
    let first = |entries: Vec<Arc<Entry>>| entries.first().map(|e| e.position.offset);
    assert_eq!(first(history.last("a", 10).await.unwrap()), Some(3));
    assert_eq!(first(history.last("b", 10).await.unwrap()), Some(2));
    assert_eq!(first(history.last("c", 10).await.unwrap()), Some(1));
    let behind = history
        .read_after("a", Position { epoch: 1, offset: 1 }, 10)
        .await
        .unwrap();
    assert!(matches!(behind, Replay::Gap(GapReason::Expired)));
    let after_the_gap = history
        .read_after("a", Position { epoch: 1, offset: 2 }, 10)
        .await
        .unwrap();
    assert_eq!(offsets(after_the_gap), vec![3, 4, 5]);
}

#[tokio::test(start_paused = true)]
async fn total_cap_forgets_topics_without_messages_and_never_reuses_their_offsets() {
    let unit = 10 + 4 + ENTRY_OVERHEAD;
    let record = record_footprint("t000");
    let retention = Retention {
        max_age: Duration::from_secs(3600),
        max_messages: 1,
        max_bytes: usize::MAX,
        max_total_bytes: 20 * (unit + record),
    };
    let history = MemoryHistory::with_epoch(retention, 1);
    let message = || Bytes::from(vec![b'x'; 10]);
    // t000 gets three messages (it keeps one), then 19 more topics one message each, a second apart.
    for _ in 0..3 {
        history.append("t000", message()).await.unwrap();
    }
    for n in 1..20 {
        tokio::time::advance(Duration::from_secs(1)).await;
        history.append(&format!("t{n:03}"), message()).await.unwrap();
    }
    let held = |history: &MemoryHistory| history.total_bytes.load(Ordering::Relaxed);
    assert_eq!(held(&history), 20 * (unit + record));
    // A flood of new topics: the oldest topics go, messages and records, so memory stays under the cap.
    for n in 20..60 {
        tokio::time::advance(Duration::from_secs(1)).await;
        history.append(&format!("t{n:03}"), message()).await.unwrap();
        assert!(held(&history) <= 20 * (unit + record), "{} held", held(&history));
    }
    let topics: usize = history.shards.iter().map(|s| s.lock().unwrap().len()).sum();
    assert!(topics < 20, "{topics} topics held");
    assert!(history.last("t000", 1).await.unwrap().is_empty());
    // Its last offset was 3: a client there gets RESET, never a message of another incarnation.
    let behind = history
        .read_after("t000", Position { epoch: 1, offset: 3 }, 10)
        .await
        .unwrap();
    assert!(matches!(behind, Replay::Gap(GapReason::Expired)));
    // Created again, it continues past every offset it gave.
    let again = history.append("t000", message()).await.unwrap();
    assert!(again.position.offset > 3);
    // The newest topics are still there, with their message.
    assert_eq!(history.last("t059", 1).await.unwrap().len(), 1);
    // Planned messages are stored as planned: puts never shrink (which could forget a topic the batch planned
    // for); the batch's writer applies the cap after them.
    let items: Vec<String> = (100..140).map(|n| format!("t{n:03}")).collect();
    let plan: Vec<(&str, Option<u64>)> = items.iter().map(|t| (t.as_str(), None)).collect();
    let planned = history.plan(&plan).unwrap();
    for ((topic, _), offset) in plan.iter().zip(&planned) {
        let offset = offset.expect("planned");
        let stored = history
            .put(topic, offset, None, message(), Duration::ZERO)
            .unwrap()
            .expect("stored");
        assert_eq!(stored.position.offset, offset);
    }
    assert!(
        held(&history) > 20 * (unit + record),
        "nothing shrank during the puts"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    history.enforce_total_cap().unwrap();
    assert!(held(&history) <= 20 * (unit + record));
}

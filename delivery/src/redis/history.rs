//! [`RedisHistory`]: each topic's history in a Redis Stream, positions `{epoch, offset}` kept beside it.
//!
//! Every operation is one Lua script, so it is atomic with respect to the other nodes; a topic's two keys share a
//! hash slot:
//! - append: creates the epoch when the meta hash is missing (and drops any stream left from a lost epoch), assigns
//!   `last + 1`, `XADD`s it as id `<offset>-0` with the Redis time (never behind the previous message's), trims by
//!   count (`MAXLEN ~`) and age (`MINID`) and renews the TTLs. One call appends a whole chunk of messages, of any
//!   topics, in order (one round trip and one script call per chunk), and `PUBLISH`es every entry it appended as
//!   one message on the fan-out channel (see [`decode_batch`](super::fanout::decode_batch)); on Redis Cluster a
//!   chunk takes one call per topic (a script may not cross slots);
//! - read after a position: the same gap rules as [`MemoryHistory`](crate::MemoryHistory) (another epoch or a
//!   position past the head is `EpochChanged`; a trimmed part or more than `max` messages is `Expired`), then
//!   `XRANGE` from `<offset + 1>-0`;
//! - last `n`, head (which creates the epoch of a topic nobody has published to yet, so that a subscriber's start
//!   position stays valid for the messages that follow).
//!
//! Offsets are Lua numbers (exact up to 2^53); epochs stay strings inside Lua.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use super::connection::{RedisConnection, run_script};
use async_trait::async_trait;
use bytes::Bytes;
use redis::{Script, Value};
use tokio::time::Instant;

use super::keys::Keys;
use super::{RedisBackendError, RedisConfig, backend_error};
use crate::DeliveryError;
use crate::history::{Entry, GapReason, History, Position, Replay, SequencedAppend, new_epoch};

/// Shared Lua: the Redis time in ms, and age trimming (amortized: at most 64 entries per call, exact `MINID`).
/// `trim_expired` returns a lower bound of the time of the oldest entry left (entry times never decrease along a
/// stream), or nil when the stream is empty.
const PRELUDE: &str = r#"
local function now_ms()
  local clock = redis.call('TIME')
  return tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
end
local function trim_expired(stream, cutoff)
  local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  if #oldest == 0 then return nil end
  local oldest_time = tonumber(oldest[1][2][2])
  if oldest_time >= cutoff then return oldest_time end
  local batch = redis.call('XRANGE', stream, '-', '+', 'COUNT', 64)
  for _, entry in ipairs(batch) do
    local time = tonumber(entry[2][2])
    if time >= cutoff then
      redis.call('XTRIM', stream, 'MINID', entry[1])
      return time
    end
  end
  local newest = tonumber(string.match(batch[#batch][1], '^(%d+)'))
  redis.call('XTRIM', stream, 'MINID', string.format('%d-0', newest + 1))
  return tonumber(batch[#batch][2][2])
end
"#;

/// Appends many messages, in order, each to its own topic's keys.
/// KEYS: meta and stream of each message. ARGV: max messages, retention ms, meta ttl ms, candidate epoch, renewal
/// interval ms, fan-out channel (or ''), then for each message: json, topic, producer sequence (or '').
/// Returns one string, a line per message: `<epoch> <offset>`, or `-` when the topic holds the producer's
/// sequence already (one bulk string rather than a nested array: building and parsing 256 small arrays cost more
/// than the appends' own replies are worth).
///
/// Most of the cost of a script is the Lua side of each `redis.call`, so the per-message work is one `XADD`; the
/// rest happens once per topic of the chunk (`HMGET` of its state on first sight, one `HSET` and, once per renewal
/// interval, the `PEXPIRE`s at the end) or once per chunk (`TIME`, one `PUBLISH` of every appended entry). The meta
/// hash also keeps `oldest` (a lower bound of the oldest entry's time, so age trimming runs only when something may
/// have expired) and `renewed` (when the TTLs were last set: they are set one renewal interval longer than needed,
/// and renewed once per interval rather than on every append).
const APPEND: &str = r#"
local max_messages, retention, meta_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local candidate, renew_every, channel = ARGV[4], tonumber(ARGV[5]), ARGV[6]
local clock = now_ms()
local replies, published, topics, order = {}, {}, {}, {}
local function xadd(stream, existing_only, offset, time, json)
  if existing_only then
    return redis.call('XADD', stream, 'NOMKSTREAM', 'MAXLEN', '~', max_messages, offset .. '-0', 't', time, 'd', json)
  end
  return redis.call('XADD', stream, 'MAXLEN', '~', max_messages, offset .. '-0', 't', time, 'd', json)
end
for i = 1, #KEYS / 2 do
  local meta, stream = KEYS[2 * i - 1], KEYS[2 * i]
  local base = 6 + 3 * (i - 1)
  local json, topic, seq = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local t = topics[meta]
  if not t then
    local state = redis.call('HMGET', meta, 'epoch', 'last', 'time', 'seq', 'oldest', 'renewed')
    t = {stream = stream, epoch = state[1], last = tonumber(state[2]), time = tonumber(state[3]), seq = state[4],
         oldest = tonumber(state[5]), renewed = tonumber(state[6])}
    if not t.epoch or not t.last then
      -- A new epoch: its first XADD replaces any stream left from a lost one.
      t.epoch, t.last, t.time, t.oldest, t.renewed, t.fresh = candidate, 0, 0, nil, nil, true
    end
    topics[meta] = t
    order[#order + 1] = meta
  end
  if seq ~= '' and t.seq and tonumber(seq) <= tonumber(t.seq) then
    replies[i] = '-'
  else
    local now = clock
    if t.time and t.time > now then now = t.time end
    t.last, t.time, t.changed = t.last + 1, now, true
    local offset = string.format('%d', t.last)
    local time = string.format('%d', now)
    if t.fresh then
      redis.call('DEL', stream)
      xadd(stream, false, offset, time, json)
      t.fresh, t.oldest, t.oldest_changed = false, now, true
    -- NOMKSTREAM tells a stream lost while its meta hash was kept: it is created again and gets its TTL now.
    elseif not xadd(stream, true, offset, time, json) then
      xadd(stream, false, offset, time, json)
      t.renewed = nil
    end
    if seq ~= '' then t.seq, t.seq_changed = seq, true end
    local cutoff = now - retention
    if not t.oldest or t.oldest < cutoff then
      t.oldest, t.oldest_changed = trim_expired(stream, cutoff) or now, true
    end
    if not t.renewed or now - t.renewed >= renew_every then
      t.renewed, t.renew = now, true
    end
    if channel ~= '' then
      published[#published + 1] = t.epoch .. ' ' .. offset .. ' ' .. time .. ' ' .. #json .. ' ' .. topic .. '\n'
      published[#published + 1] = json
    end
    replies[i] = t.epoch .. ' ' .. offset
  end
end
for _, meta in ipairs(order) do
  local t = topics[meta]
  if t.changed then
    local fields = {'epoch', t.epoch, 'last', string.format('%d', t.last), 'time', string.format('%d', t.time)}
    if t.seq_changed then
      fields[#fields + 1] = 'seq'
      fields[#fields + 1] = t.seq
    end
    if t.oldest_changed then
      fields[#fields + 1] = 'oldest'
      fields[#fields + 1] = string.format('%d', t.oldest)
    end
    if t.renew then
      fields[#fields + 1] = 'renewed'
      fields[#fields + 1] = string.format('%d', t.renewed)
    end
    redis.call('HSET', meta, unpack(fields))
    if t.renew then
      redis.call('PEXPIRE', t.stream, retention + renew_every)
      redis.call('PEXPIRE', meta, meta_ttl + renew_every)
    end
  end
end
if #published > 0 then
  redis.call('PUBLISH', channel, table.concat(published))
end
return table.concat(replies, '\n')
"#;

/// KEYS: meta, stream. ARGV: epoch, after offset, max, retention ms.
/// Returns `{'epoch_changed'}`, `{'expired'}` or `{'ok', epoch, time, entries}`.
const READ_AFTER: &str = r#"
local meta, stream = KEYS[1], KEYS[2]
local state = redis.call('HMGET', meta, 'epoch', 'last')
if not state[1] or not state[2] or state[1] ~= ARGV[1] then return {'epoch_changed'} end
local last, after = tonumber(state[2]), tonumber(ARGV[2])
if after > last then return {'epoch_changed'} end
local now = now_ms()
local cutoff = now - tonumber(ARGV[4])
trim_expired(stream, cutoff)
local first = last + 1
local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
if #oldest > 0 then first = tonumber(string.match(oldest[1][1], '^(%d+)')) end
if after + 1 < first or last - after > tonumber(ARGV[3]) then return {'expired'} end
if after == last then return {'ok', state[1], now, {}} end
local entries = redis.call('XRANGE', stream, string.format('%d-0', after + 1), '+')
-- Trimming is amortized: the next entry may be past the retention though still there (and then so is every
-- entry before it, which the client also missed).
if #entries > 0 and tonumber(entries[1][2][2]) < cutoff then return {'expired'} end
return {'ok', state[1], now, entries}
"#;

/// KEYS: meta, stream. ARGV: n, retention ms. Returns `{epoch or '', time, entries newest first}`.
const LAST: &str = r#"
local meta, stream = KEYS[1], KEYS[2]
local now = now_ms()
local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then return {'', now, {}} end
local cutoff = now - tonumber(ARGV[2])
trim_expired(stream, cutoff)
-- Trimming is amortized: only the entries still within the retention (newest first, so up to the first older).
local kept = {}
for _, entry in ipairs(redis.call('XREVRANGE', stream, '+', '-', 'COUNT', ARGV[1])) do
  if tonumber(entry[2][2]) < cutoff then break end
  kept[#kept + 1] = entry
end
return {epoch, now, kept}
"#;

/// KEYS: meta, stream. ARGV: candidate epoch, meta ttl ms. Returns `{epoch, last}`.
const HEAD: &str = r#"
local meta, stream = KEYS[1], KEYS[2]
local state = redis.call('HMGET', meta, 'epoch', 'last')
if state[1] and state[2] then return {state[1], tonumber(state[2])} end
redis.call('DEL', stream)
redis.call('HSET', meta, 'epoch', ARGV[1], 'last', '0', 'time', '0')
redis.call('PEXPIRE', meta, ARGV[2])
return {ARGV[1], 0}
"#;

static APPEND_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&format!("{PRELUDE}{APPEND}")));
static READ_AFTER_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&format!("{PRELUDE}{READ_AFTER}")));
static LAST_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&format!("{PRELUDE}{LAST}")));
static HEAD_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(HEAD));

/// The longest interval between two renewals of a topic's TTLs (a quarter of the retention when that is shorter).
const RENEW_MAX_MS: u64 = 60_000;

/// Retention and lifetimes, in the units the scripts take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    max_messages: usize,
    retention_ms: u64,
    meta_ttl_ms: u64,
    /// TTLs are set this much longer than needed and renewed at most once per this interval.
    renew_ms: u64,
}

impl Settings {
    pub(crate) fn from_config(config: &RedisConfig) -> Settings {
        let retention_ms = config.history_retention_secs.saturating_mul(1000).max(1);
        Settings {
            max_messages: config.history_max_messages_per_topic.max(1),
            retention_ms,
            meta_ttl_ms: config.meta_ttl_secs.saturating_mul(1000).max(retention_ms),
            renew_ms: (retention_ms / 4).clamp(1, RENEW_MAX_MS),
        }
    }
}

/// Per-topic history in Redis, shared by every delivery node. Appends also publish the entry to the other nodes'
/// listeners (see [`RedisFanOut`](super::RedisFanOut)).
pub struct RedisHistory {
    conn: RedisConnection,
    keys: Arc<Keys>,
    settings: Settings,
}

impl RedisHistory {
    pub(crate) fn new(conn: RedisConnection, keys: Arc<Keys>, settings: Settings) -> RedisHistory {
        RedisHistory { conn, keys, settings }
    }
}

fn protocol(what: &str) -> DeliveryError {
    RedisBackendError::Protocol(what.to_owned()).into()
}

fn as_bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.as_bytes()),
        _ => None,
    }
}

fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => std::str::from_utf8(as_bytes(other)?).ok()?.parse().ok(),
    }
}

fn as_array(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) => Some(items),
        _ => None,
    }
}

fn parse_epoch(value: &Value) -> Result<u64, DeliveryError> {
    as_u64(value).ok_or_else(|| protocol("epoch"))
}

/// The local instant of a message stamped `time_ms` by a clock that reads `now_ms` at `base`.
pub(crate) fn instant_of(base: Instant, now_ms: u64, time_ms: u64) -> Instant {
    base.checked_sub(Duration::from_millis(now_ms.saturating_sub(time_ms)))
        .unwrap_or(base)
}

/// Parses stream entries (`[id, [t, time, d, json]]`, oldest first) of `topic` in `epoch`.
fn parse_entries(
    topic: &str,
    epoch: u64,
    now_ms: u64,
    entries: &[Value],
) -> Result<Vec<Arc<Entry>>, DeliveryError> {
    let topic: Arc<str> = Arc::from(topic);
    let base = Instant::now();
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let [id, fields] = as_array(entry).ok_or_else(|| protocol("stream entry"))? else {
            return Err(protocol("stream entry"));
        };
        let offset = as_bytes(id)
            .and_then(|id| std::str::from_utf8(id).ok())
            .and_then(|id| id.split_once('-'))
            .and_then(|(offset, _)| offset.parse::<u64>().ok())
            .ok_or_else(|| protocol("stream id"))?;
        let mut time_ms = None;
        let mut json = None;
        for pair in as_array(fields)
            .ok_or_else(|| protocol("stream fields"))?
            .chunks_exact(2)
        {
            match as_bytes(&pair[0]) {
                Some(b"t") => time_ms = as_u64(&pair[1]),
                Some(b"d") => json = as_bytes(&pair[1]).map(Bytes::copy_from_slice),
                _ => {}
            }
        }
        let (Some(time_ms), Some(json)) = (time_ms, json) else {
            return Err(protocol("stream entry fields"));
        };
        out.push(Arc::new(Entry {
            topic: topic.clone(),
            position: Position { epoch, offset },
            json,
            published_at: instant_of(base, now_ms, time_ms),
        }));
    }
    Ok(out)
}

/// One message of an append call; `sequence` is the producer's number of it, when it has one.
#[derive(Clone, Copy)]
struct AppendItem<'a> {
    topic: &'a str,
    json: &'a [u8],
    sequence: Option<u64>,
}

impl RedisHistory {
    /// One script call (one round trip) appending `items` in order: one result per item, `None` for a duplicate.
    async fn append_chunk(&self, items: &[AppendItem<'_>]) -> Result<Vec<Option<Position>>, DeliveryError> {
        if items.iter().any(|item| item.topic.contains('\n')) {
            return Err(DeliveryError::InvalidTopic);
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = APPEND_SCRIPT.prepare_invoke();
        invocation
            .arg(self.settings.max_messages)
            .arg(self.settings.retention_ms)
            .arg(self.settings.meta_ttl_ms)
            .arg(new_epoch())
            .arg(self.settings.renew_ms)
            .arg(self.keys.channel());
        for item in items {
            invocation
                .key(self.keys.meta(item.topic))
                .key(self.keys.history(item.topic))
                .arg(item.json)
                .arg(item.topic)
                .arg(item.sequence.map(|s| s.to_string()).unwrap_or_default());
        }
        let mut conn = self.conn.clone();
        let reply: Value = run_script(&mut conn, &APPEND_SCRIPT, &invocation)
            .await
            .map_err(backend_error)?;
        let replies = as_bytes(&reply).ok_or_else(|| protocol("append reply"))?;
        let positions = replies
            .split(|&byte| byte == b'\n')
            .map(position_of)
            .collect::<Result<Vec<_>, _>>()?;
        if positions.len() != items.len() {
            return Err(protocol("append reply count"));
        }
        Ok(positions)
    }

    /// [`RedisHistory::append_chunk`] for messages of any topics: one call on a single server; on a cluster, where
    /// a script may not cross slots, one call per topic, all at once. Each topic's messages keep their order. When
    /// one of those calls fails the others may have appended: the caller's retry (sequenced appends only) skips
    /// what Redis already holds.
    async fn append_grouped(&self, items: &[AppendItem<'_>]) -> Result<Vec<Option<Position>>, DeliveryError> {
        if !self.conn.is_cluster() {
            return self.append_chunk(items).await;
        }
        let groups = self.conn.groups(items, |item| item.topic);
        let calls = groups.iter().map(|group| {
            let group_items: Vec<AppendItem<'_>> = group
                .iter()
                .filter_map(|&index| items.get(index).copied())
                .collect();
            async move { self.append_chunk(&group_items).await }
        });
        let results = futures::future::join_all(calls).await;
        let mut positions = vec![None; items.len()];
        for (group, result) in groups.iter().zip(results) {
            for (&index, position) in group.iter().zip(result?) {
                if let Some(slot) = positions.get_mut(index) {
                    *slot = position;
                }
            }
        }
        Ok(positions)
    }

    /// [`RedisHistory::append_chunk`] of one message, as an entry.
    async fn append_one(
        &self,
        topic: &str,
        json: Bytes,
        sequence: Option<u64>,
    ) -> Result<Option<Arc<Entry>>, DeliveryError> {
        let published_at = Instant::now();
        let item = AppendItem {
            topic,
            json: &json,
            sequence,
        };
        let position = self.append_chunk(std::slice::from_ref(&item)).await?;
        Ok(position
            .into_iter()
            .next()
            .flatten()
            .map(|position| entry(topic, position, json, published_at)))
    }
}

/// The position an append script gave one message (`<epoch> <offset>`), or `None` for a duplicate (`-`).
fn position_of(line: &[u8]) -> Result<Option<Position>, DeliveryError> {
    if line == b"-" {
        return Ok(None);
    }
    let number = |text: Option<&[u8]>| -> Option<u64> { std::str::from_utf8(text?).ok()?.parse().ok() };
    let mut parts = line.splitn(2, |&byte| byte == b' ');
    match (number(parts.next()), number(parts.next())) {
        (Some(epoch), Some(offset)) => Ok(Some(Position { epoch, offset })),
        _ => Err(protocol("append reply")),
    }
}

fn entry(topic: &str, position: Position, json: Bytes, published_at: Instant) -> Arc<Entry> {
    Arc::new(Entry {
        topic: Arc::from(topic),
        position,
        json,
        published_at,
    })
}

/// Appends per script call: large enough to amortize the round trip and the call, small enough to keep Redis
/// responsive (a call of 256 runs for about 3 ms).
const APPEND_CHUNK: usize = 256;

#[async_trait]
impl History for RedisHistory {
    async fn append(&self, topic: &str, json: Bytes) -> Result<Arc<Entry>, DeliveryError> {
        self.append_one(topic, json, None)
            .await?
            .ok_or_else(|| protocol("unsequenced append reported a duplicate"))
    }

    async fn append_sequenced(
        &self,
        topic: &str,
        json: Bytes,
        sequence: u64,
    ) -> Result<Option<Arc<Entry>>, DeliveryError> {
        self.append_one(topic, json, Some(sequence)).await
    }

    async fn append_batch_sequenced(
        &self,
        batch: Vec<SequencedAppend>,
    ) -> Result<Vec<Option<Arc<Entry>>>, DeliveryError> {
        let mut out = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(APPEND_CHUNK) {
            let items: Vec<AppendItem<'_>> = chunk
                .iter()
                .map(|item| AppendItem {
                    topic: &item.topic,
                    json: &item.json,
                    sequence: Some(item.sequence),
                })
                .collect();
            let published_at = Instant::now();
            let positions = self.append_grouped(&items).await?;
            out.extend(chunk.iter().zip(positions).map(|(item, position)| {
                position.map(|position| entry(&item.topic, position, item.json.clone(), published_at))
            }));
        }
        Ok(out)
    }

    async fn read_after(&self, topic: &str, after: Position, max: usize) -> Result<Replay, DeliveryError> {
        let mut conn = self.conn.clone();
        let reply: Value = run_script(
            &mut conn,
            &READ_AFTER_SCRIPT,
            READ_AFTER_SCRIPT
                .key(self.keys.meta(topic))
                .key(self.keys.history(topic))
                .arg(after.epoch)
                .arg(after.offset)
                .arg(max)
                .arg(self.settings.retention_ms),
        )
        .await
        .map_err(backend_error)?;
        let items = as_array(&reply).ok_or_else(|| protocol("read reply"))?;
        match items {
            [status] if as_bytes(status) == Some(b"epoch_changed") => {
                Ok(Replay::Gap(GapReason::EpochChanged))
            }
            [status] if as_bytes(status) == Some(b"expired") => Ok(Replay::Gap(GapReason::Expired)),
            [status, epoch, now, entries] if as_bytes(status) == Some(b"ok") => {
                let now_ms = as_u64(now).ok_or_else(|| protocol("time"))?;
                let entries = as_array(entries).ok_or_else(|| protocol("entries"))?;
                let entries = parse_entries(topic, parse_epoch(epoch)?, now_ms, entries)?;
                debug_assert!(
                    entries
                        .iter()
                        .zip(after.offset + 1..)
                        .all(|(entry, offset)| entry.position.offset == offset),
                    "offsets after a position are dense"
                );
                Ok(Replay::Messages(entries))
            }
            _ => Err(protocol("read reply")),
        }
    }

    async fn last(&self, topic: &str, n: usize) -> Result<Vec<Arc<Entry>>, DeliveryError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let reply: Value = run_script(
            &mut conn,
            &LAST_SCRIPT,
            LAST_SCRIPT
                .key(self.keys.meta(topic))
                .key(self.keys.history(topic))
                .arg(n)
                .arg(self.settings.retention_ms),
        )
        .await
        .map_err(backend_error)?;
        let Some([epoch, now, entries]) = as_array(&reply) else {
            return Err(protocol("last reply"));
        };
        if as_bytes(epoch).is_some_and(<[u8]>::is_empty) {
            return Ok(Vec::new());
        }
        let now_ms = as_u64(now).ok_or_else(|| protocol("time"))?;
        let mut entries: Vec<Value> = as_array(entries).ok_or_else(|| protocol("entries"))?.to_vec();
        entries.reverse();
        parse_entries(topic, parse_epoch(epoch)?, now_ms, &entries)
    }

    async fn head(&self, topic: &str) -> Result<Position, DeliveryError> {
        let mut conn = self.conn.clone();
        let reply: Value = run_script(
            &mut conn,
            &HEAD_SCRIPT,
            HEAD_SCRIPT
                .key(self.keys.meta(topic))
                .key(self.keys.history(topic))
                .arg(new_epoch())
                .arg(self.settings.meta_ttl_ms),
        )
        .await
        .map_err(backend_error)?;
        let Some([epoch, offset]) = as_array(&reply) else {
            return Err(protocol("head reply"));
        };
        Ok(Position {
            epoch: parse_epoch(epoch)?,
            offset: as_u64(offset).ok_or_else(|| protocol("head offset"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_with_instants_in_publish_order() {
        let entry = |offset: u64, time: u64| {
            Value::Array(vec![
                Value::BulkString(format!("{offset}-0").into_bytes()),
                Value::Array(vec![
                    Value::BulkString(b"t".to_vec()),
                    Value::BulkString(time.to_string().into_bytes()),
                    Value::BulkString(b"d".to_vec()),
                    Value::BulkString(b"{}".to_vec()),
                ]),
            ])
        };
        let parsed = parse_entries("t", 9, 10_000, &[entry(4, 9_000), entry(5, 9_500)])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed[0].position, Position { epoch: 9, offset: 4 });
        assert_eq!(parsed[1].position.offset, 5);
        assert!(parsed[0].published_at <= parsed[1].published_at);
        assert_eq!(&parsed[1].json[..], b"{}");
        assert!(parse_entries("t", 9, 0, &[Value::Int(1)]).is_err());
    }
}

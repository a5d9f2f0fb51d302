//! The fenced write of one topic: a Lua script, so that the version check and every write of the topic happen in
//! one atomic step. All keys of a call share the topic's hash tag (one slot, Redis Cluster safe).
//!
//! `KEYS[1]` is the topic's state hash; `KEYS[2..]` the derived structures the call rebuilds. `ARGV[1]` is the
//! encoded [`StateVersion`](crate::StateVersion); then calls of the form `name key-index n operand…`
//! (`hset`, `hdel`, `zadd` with their usual operands, `del` with none). The state hash's `hset` always includes
//! `_v` with the new version.
//!
//! The script returns 1 when it wrote, 0 when the stored version is newer (the write is stale and dropped). An
//! equal version writes again: the same batch replayed gives the same values.

use std::sync::LazyLock;

use redis::Script;

const FENCED_WRITE: &str = r"
local version = ARGV[1]
local stored = redis.call('HGET', KEYS[1], '_v')
if stored and stored > version then
  return 0
end
local i = 2
while i <= #ARGV do
  local op = ARGV[i]
  local key = KEYS[tonumber(ARGV[i + 1])]
  local first = i + 3
  local last = i + 2 + tonumber(ARGV[i + 2])
  if op == 'hset' then
    redis.call('HSET', key, unpack(ARGV, first, last))
  elseif op == 'hdel' then
    redis.call('HDEL', key, unpack(ARGV, first, last))
  elseif op == 'zadd' then
    redis.call('ZADD', key, unpack(ARGV, first, last))
  elseif op == 'del' then
    redis.call('DEL', key)
  else
    return redis.error_reply('unknown live-state operation ' .. tostring(op))
  end
  i = last + 1
end
return 1
";

pub(crate) static FENCED_WRITE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(FENCED_WRITE));

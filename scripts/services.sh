#!/usr/bin/env bash
# Installs (when missing) and starts what the test suite talks to:
#   - Debian's Chromium (headless browser test);
#   - Redis on 127.0.0.1:6379 (tests isolate their data under a unique key prefix);
#   - Debian's ClickHouse server on 127.0.0.1 (HTTP 8123, native 9000), with its data under $CLICKHOUSE_DIR.
# Safe to run repeatedly: running services are left alone.
set -euo pipefail

CLICKHOUSE_DIR="${CLICKHOUSE_DIR:-/var/tmp/social-realtime-clickhouse}"
apt_updated=0

apt_install() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() {
  local what="$1" tries=0
  shift
  until "$@" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -gt 100 ]; then
      echo "services: $what did not come up" >&2
      return 1
    fi
    sleep 0.2
  done
}

# Chromium, for the browser test of the live page (driven by playwright-core, installed by that test with npm).
if ! command -v chromium >/dev/null; then
  apt_install chromium
fi

# Redis
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  apt_install redis-server
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/social-realtime-redis.log
  wait_for redis redis-cli -h 127.0.0.1 -p 6379 ping
fi
echo "services: redis ready on 127.0.0.1:6379"

# ClickHouse (Debian's 18.16 server): a private configuration on loopback.
if ! command -v clickhouse-server >/dev/null; then
  apt_install clickhouse-server clickhouse-client
fi
if ! curl -fsS http://127.0.0.1:8123/ping >/dev/null 2>&1; then
  mkdir -p "$CLICKHOUSE_DIR"/{data,tmp,user_files,format_schemas,logs}
  config="$CLICKHOUSE_DIR/config.xml"
  sed -e "s#<path>.*</path>#<path>$CLICKHOUSE_DIR/data/</path>#" \
      -e "s#<tmp_path>.*</tmp_path>#<tmp_path>$CLICKHOUSE_DIR/tmp/</tmp_path>#" \
      -e "s#<user_files_path>.*</user_files_path>#<user_files_path>$CLICKHOUSE_DIR/user_files/</user_files_path>#" \
      -e "s#<format_schema_path>.*</format_schema_path>#<format_schema_path>$CLICKHOUSE_DIR/format_schemas/</format_schema_path>#" \
      -e "s#<log>.*</log>#<log>$CLICKHOUSE_DIR/logs/server.log</log>#" \
      -e "s#<errorlog>.*</errorlog>#<errorlog>$CLICKHOUSE_DIR/logs/error.log</errorlog>#" \
      -e "s#<listen_host>.*</listen_host>##" \
      /etc/clickhouse-server/config.xml > "$config"
  # Listen on IPv4 loopback only.
  sed -i "s#</yandex>#<listen_host>127.0.0.1</listen_host></yandex>#" "$config"
  cp /etc/clickhouse-server/users.xml "$CLICKHOUSE_DIR/users.xml"
  sed -i "s#<users_config>.*</users_config>#<users_config>$CLICKHOUSE_DIR/users.xml</users_config>#" "$config"
  (cd "$CLICKHOUSE_DIR" && nohup clickhouse-server --config-file="$config" >"$CLICKHOUSE_DIR/logs/stdout.log" 2>&1 &)
  wait_for clickhouse curl -fsS http://127.0.0.1:8123/ping
fi
echo "services: clickhouse ready on 127.0.0.1:8123 ($(curl -fsS 'http://127.0.0.1:8123/?query=SELECT%20version()'))"

#!/usr/bin/env python3
"""Many SSE connections over several delivery nodes sharing history and fan-out through Redis.

Starts `--servers` bench nodes (`sse-load serve --redis-url ... --redis-prefix P`, one port each, one fresh key
prefix per run), then one or more listening client processes per node (`sse-load clients --listen true`, each bound
to its own loopback source addresses so that ephemeral ports do not run out; every process stays under the
20,000 open files a process may have here). Once every client process reports its connections open, it reads each
node's VmRSS (`/proc/PID/status`), publishes `--broadcasts` messages on the FIRST node only (`POST /bench/publish`),
`--interval` seconds apart, so every other node gets them through Redis pub/sub, then collects from every client
process the latency of every delivery (receive time minus the message's `sentAtMicros`, same machine and clock).

Reported: connections held; memory per connection = sum over nodes of (VmRSS with the connections - VmRSS idle
before them) / connections; per broadcast, the time until the last client received it (max over all processes)
and the p99 of per-client latency, with their median and p99 over the broadcasts; CPU time of the nodes, the
client processes and redis-server during the broadcasts; the load average. Everything also goes to `--out` (JSON).

    cargo build --release -p social-delivery --bin sse-load
    python3 scripts/bench/sse_multinode.py --servers 6 --connections 100000 --broadcasts 20 --interval 2

Only the Python standard library. Every process it starts is stopped at the end, and the run's Redis keys deleted.
"""

import argparse
import http.client
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_secs(pid):
    """User + system CPU seconds of a process (0 when it cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def find_process(name):
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == name:
                        return int(entry)
            except OSError:
                pass
    return None


def percentile(sorted_values, p):
    """Nearest rank on sorted values, as in sse-load."""
    if not sorted_values:
        return float("nan")
    return sorted_values[round((len(sorted_values) - 1) * p)]


def raise_nofile():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Redis:
    """Just enough RESP to delete the run's keys."""

    def __init__(self, url):
        rest = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
        host, _, port = rest.partition(":")
        self.sock = socket.create_connection((host or "127.0.0.1", int(port or 6379)), timeout=10)
        self.file = self.sock.makefile("rb")

    def command(self, *args):
        out = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = str(arg).encode()
            out.append(f"${len(data)}\r\n".encode() + data + b"\r\n")
        self.sock.sendall(b"".join(out))
        return self.read()

    def read(self):
        line = self.file.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-"):
            return rest.decode()
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self.file.read(size + 2)[:-2]
            return data.decode()
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        raise RuntimeError(f"unexpected redis reply {line!r}")

    def delete_prefix(self, prefix):
        # Only ever this run's own keys: never an empty or foreign pattern.
        if not prefix.startswith("bench:") or len(prefix) < 16 or any(c in prefix for c in "*?[]\\"):
            raise ValueError(f"refusing to delete keys under {prefix!r}")
        cursor, deleted = "0", 0
        while True:
            cursor, keys = self.command("SCAN", cursor, "MATCH", prefix + "*", "COUNT", 1000)
            if keys:
                deleted += self.command("DEL", *keys)
            if cursor == "0":
                return deleted


def publish(port, topic):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", f"/bench/publish?topic={topic}&count=1", headers={"content-length": "0"})
    body = connection.getresponse().read().decode().strip()
    connection.close()
    return body


def wait_for_line(path, prefix, process, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{path}: process exited with {process.returncode}")
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.strip()
        time.sleep(0.1)
    raise RuntimeError(f"{path}: no '{prefix}' line within {timeout}s")


def read_json_line(process, event, timeout_note):
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"client {process.pid} ended without its '{event}' line ({timeout_note})")
    value = json.loads(line)
    if value.get("event") != event:
        raise RuntimeError(f"client {process.pid}: expected '{event}', got {line[:200]!r}")
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default="target/release/sse-load")
    parser.add_argument("--servers", type=int, default=6)
    parser.add_argument("--base-port", type=int, default=9101)
    parser.add_argument("--connections", type=int, default=100_000)
    parser.add_argument("--clients-per-server", type=int, default=1)
    parser.add_argument("--sources-per-client", type=int, default=2)
    parser.add_argument("--first-source", type=int, default=2, help="last octet of the first 127.0.0.x source")
    parser.add_argument("--topic", default="leaderboard.daily")
    parser.add_argument("--broadcasts", type=int, default=20)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between broadcasts")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds after connecting before reading VmRSS")
    parser.add_argument("--parallel", action="store_true", help="start all client processes at once")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--queue", type=int, default=256, help="per-connection queue of each node")
    parser.add_argument("--out", default=None, help="JSON results (default: a file under /tmp)")
    args = parser.parse_args()

    prefix = f"bench:{os.getpid()}{time.time_ns()}:"
    run_dir = tempfile.mkdtemp(prefix="sse-multinode-")
    out_path = args.out or os.path.join(run_dir, "results.json")
    raise_nofile()
    clients_total = args.servers * args.clients_per_server
    if args.first_source + clients_total * args.sources_per_client > 255:
        sys.exit("not enough 127.0.0.x source addresses for that many client processes")
    servers, clients = [], []
    result = {
        "servers": args.servers,
        "clientProcesses": clients_total,
        "connectionsRequested": args.connections,
        "broadcastsRequested": args.broadcasts,
        "intervalSecs": args.interval,
        "redisPrefix": prefix,
        "cores": os.cpu_count(),
        "loadavg": {"start": loadavg()},
        "logs": run_dir,
    }
    log(f"run {prefix} logs in {run_dir}, load {loadavg()}")
    try:
        for i in range(args.servers):
            port = args.base_port + i
            log_path = os.path.join(run_dir, f"server-{port}.log")
            with open(log_path, "w") as log_file:
                process = subprocess.Popen(
                    [args.binary, "serve", "--listen", f"127.0.0.1:{port}", "--redis-url", args.redis_url,
                     "--redis-prefix", prefix, "--queue", str(args.queue)],
                    stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=raise_nofile)
            servers.append((port, process, log_path))
        for port, process, log_path in servers:
            wait_for_line(log_path, "listening", process, 30)
        time.sleep(1.0)
        idle = {port: rss_kib(process.pid) for port, process, _ in servers}
        log(f"{args.servers} nodes up, idle VmRSS KiB {idle}")

        index = 0
        for i in range(args.servers):
            port = args.base_port + i
            for _ in range(args.clients_per_server):
                count = args.connections // clients_total + (1 if index < args.connections % clients_total else 0)
                first = args.first_source + index * args.sources_per_client
                sources = ",".join(f"127.0.0.{first + k}" for k in range(args.sources_per_client))
                process = subprocess.Popen(
                    [args.binary, "clients", "--server", f"127.0.0.1:{port}", "--connections", str(count),
                     "--sources", sources, "--topic", args.topic, "--listen", "true"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=open(os.path.join(run_dir, f"clients-{index}.log"), "w"),
                    text=True, preexec_fn=raise_nofile)
                clients.append({"process": process, "port": port, "sources": sources, "requested": count})
                if not args.parallel:
                    clients[-1]["connected"] = read_json_line(process, "connected", "connecting")
                    log(f"client {index} -> :{port} from {sources}: {clients[-1]['connected']}")
                index += 1
        if args.parallel:
            for index, client in enumerate(clients):
                client["connected"] = read_json_line(client["process"], "connected", "connecting")
                log(f"client {index} -> :{client['port']}: {client['connected']}")
        connected = sum(c["connected"]["connected"] for c in clients)
        failed = sum(c["connected"]["failed"] for c in clients)
        result["connected"] = connected
        result["failed"] = failed
        result["connectSecs"] = [round(c["connected"]["connectSecs"], 1) for c in clients]
        log(f"connected {connected} (failed {failed}); holding {args.hold}s")
        time.sleep(args.hold)
        held = {port: rss_kib(process.pid) for port, process, _ in servers}
        growth_kib = sum(held[port] - idle[port] for port in held)
        result["serverRssKiB"] = {"idle": idle, "held": held}
        result["clientRssKiB"] = [rss_kib(c["process"].pid) for c in clients]
        result["memoryPerConnection"] = {
            "KiB": round(growth_kib / max(connected, 1), 2),
            "KB": round(growth_kib * 1024 / 1000 / max(connected, 1), 2),
        }
        result["loadavg"]["held"] = loadavg()
        log(f"server VmRSS held {held}: {result['memoryPerConnection']} per connection, load {loadavg()}")

        redis_pid = find_process("redis-server")
        pids = {
            "servers": [p.pid for _, p, _ in servers],
            "clients": [c["process"].pid for c in clients],
            "redis": [redis_pid] if redis_pid else [],
        }
        cpu_before = {role: sum(cpu_secs(pid) for pid in group) for role, group in pids.items()}
        wall_before = time.time()
        answers = []
        first_port = servers[0][0]
        for n in range(args.broadcasts):
            answers.append(publish(first_port, args.topic))
            if n + 1 < args.broadcasts:
                time.sleep(args.interval)
        time.sleep(max(args.interval, 5.0))
        cpu_after = {role: sum(cpu_secs(pid) for pid in group) for role, group in pids.items()}
        result["serverRssKiB"]["afterBroadcasts"] = {port: rss_kib(process.pid) for port, process, _ in servers}
        result["loadavg"]["end"] = loadavg()
        result["broadcastPhase"] = {
            "wallSecs": round(time.time() - wall_before, 1),
            "cpuSecs": {role: round(cpu_after[role] - cpu_before[role], 2) for role in pids},
            "cpuMsPerBroadcast": {
                role: round((cpu_after[role] - cpu_before[role]) * 1000 / max(args.broadcasts, 1))
                for role in pids
            },
        }
        publish_ms = sorted(int(a.split()[1]) / 1000 for a in answers if len(a.split()) == 2)
        result["publishMs"] = {"median": statistics.median(publish_ms) if publish_ms else None,
                               "max": publish_ms[-1] if publish_ms else None}

        by_message = {}
        closed = 0
        for client in clients:
            client["process"].stdin.write("report\n")
            client["process"].stdin.flush()
        per_process = []
        for client in clients:
            report = read_json_line(client["process"], "report", "reporting")
            closed += report["closed"]
            maxima = sorted(m["latenciesMicros"][-1] / 1000 for m in report["messages"] if m["latenciesMicros"])
            per_process.append({"port": client["port"], "messages": len(report["messages"]),
                                "allReachedMsMedian": round(percentile(maxima, 0.5), 1)})
            for message in report["messages"]:
                by_message.setdefault(message["sentAtMicros"], []).append(message["latenciesMicros"])
        result["closedDuringRun"] = closed
        result["perClientProcess"] = per_process
        per_broadcast = []
        for sent in sorted(by_message):
            parts = by_message[sent]
            merged = sorted(v for part in parts for v in part)
            per_broadcast.append({
                "sentAtMicros": sent,
                "delivered": len(merged),
                "allReachedMs": round(merged[-1] / 1000, 1),
                "p99Ms": round(percentile(merged, 0.99) / 1000, 1),
                "p50Ms": round(percentile(merged, 0.5) / 1000, 1),
            })
        result["perBroadcast"] = per_broadcast
        complete = [b for b in per_broadcast if b["delivered"] >= connected]
        result["broadcastsSeen"] = len(per_broadcast)
        result["broadcastsReachingAll"] = len(complete)
        for key in ("allReachedMs", "p99Ms", "p50Ms"):
            values = sorted(b[key] for b in per_broadcast)
            if values:
                result[key] = {"median": percentile(values, 0.5), "p99": percentile(values, 0.99),
                               "min": values[0], "max": values[-1]}
        log(f"load {result['loadavg']}")
        summary = {k: result.get(k) for k in ("connected", "failed", "closedDuringRun", "memoryPerConnection",
                                              "broadcastsSeen", "broadcastsReachingAll", "allReachedMs", "p99Ms",
                                              "p50Ms", "publishMs", "broadcastPhase", "perClientProcess",
                                              "loadavg")}
        print(json.dumps(summary, indent=1))
    finally:
        for client in clients:
            process = client["process"]
            if process.poll() is None:
                try:
                    process.stdin.close()
                except OSError:
                    pass
        for process in [c["process"] for c in clients] + [p for _, p, _ in servers]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [c["process"] for c in clients] + [p for _, p, _ in servers]:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        try:
            deleted = Redis(args.redis_url).delete_prefix(prefix)
            log(f"deleted {deleted} redis keys under {prefix}")
        except (OSError, ValueError) as error:
            log(f"could not delete the redis keys under {prefix}: {error}")
        with open(out_path, "w") as f:
            json.dump(result, f, indent=1)
        log(f"results in {out_path}")


if __name__ == "__main__":
    main()

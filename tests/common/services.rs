//! Private, real backend servers owned by one test: a `redis-server` and a `clickhouse-server` on free loopback
//! ports, with their data in a temporary directory. A test stops and restarts them to simulate an outage: a stop is
//! graceful and keeps the data (Redis appends every write to its AOF with an fsync; ClickHouse writes its parts to
//! disk), and a restart comes back on the same port with the same data.
//!
//! Every server is killed when its handle is dropped, and also by a small shell watchdog if the test process itself
//! dies without unwinding (SIGKILL by a CI timeout), so no server outlives the test.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Set (to anything but `0` or empty) when a missing server binary must fail the test instead of skipping it.
pub const REQUIRE_SERVICES: &str = "REQUIRE_SERVICES";

/// Where Debian's ClickHouse keeps the configuration a private server is derived from.
pub const CLICKHOUSE_CONFIG: &str = "/etc/clickhouse-server/config.xml";
pub const CLICKHOUSE_USERS: &str = "/etc/clickhouse-server/users.xml";

const POLL: Duration = Duration::from_millis(50);
const REDIS_READY_TIMEOUT: Duration = Duration::from_secs(30);
const CLICKHOUSE_READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a restart keeps trying when its port is briefly held by someone else.
const RESTART_BIND_TIMEOUT: Duration = Duration::from_secs(10);
const START_ATTEMPTS: usize = 5;

fn require_services() -> bool {
    std::env::var(REQUIRE_SERVICES).is_ok_and(|value| !value.is_empty() && value != "0")
}

/// The path of `binary`, looked up on `PATH` and then in the usual system directories (`/usr/sbin` is not on
/// every user's `PATH`, and Debian installs `clickhouse-server` there).
pub fn find_binary(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
}

/// Whether a test can run `binary`. When it is missing, prints `SKIPPED: <test> ...` and returns false, unless
/// `REQUIRE_SERVICES` is set: then it panics (CI must not skip silently).
pub fn available(binary: &str, test: &str) -> bool {
    if find_binary(binary).is_some() {
        return true;
    }
    if require_services() {
        panic!("{test}: `{binary}` is not installed and {REQUIRE_SERVICES} is set (run scripts/services.sh)");
    }
    println!(
        "SKIPPED: {test}: `{binary}` is not installed (run scripts/services.sh; set {REQUIRE_SERVICES}=1 to fail)"
    );
    false
}

/// A free loopback port, never the same twice in this process (two servers of parallel tests cannot be handed the
/// same port between the probe and their bind).
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if HANDED_OUT.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_is_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// The last `lines` lines of a log file, for failure messages.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn log_file(path: &Path) -> File {
    OpenOptions::new().create(true).append(true).open(path).unwrap()
}

/// A running server process and the watchdog that kills it if this test process dies.
struct Running {
    child: Child,
    watchdog: Option<Child>,
}

impl Running {
    /// Spawns `command`, and a watchdog that SIGKILLs it and removes `dir` if the test process dies first.
    fn spawn(command: &mut Command, dir: &Path) -> Self {
        let child = command.stdin(Stdio::null()).spawn().unwrap();
        // Polls the test process: once it is gone, kills the server and removes its directory; exits by itself
        // once the server is gone (and is killed by a stop or a drop anyway).
        let watchdog = Command::new("sh")
            .args([
                "-c",
                r#"while kill -0 "$1" 2>/dev/null; do kill -0 "$2" 2>/dev/null || exit 0; sleep 0.5; done
                   kill -KILL "$2" 2>/dev/null; sleep 0.5; rm -rf -- "$3""#,
                "private-service-watchdog",
                &std::process::id().to_string(),
                &child.id().to_string(),
                dir.to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        Self { child, watchdog }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then waits up to `timeout` for the exit, then SIGKILL. Returns whether the exit was graceful.
    fn terminate(mut self, timeout: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.has_exited() {
                return true;
            }
            sleep(POLL);
        }
        false // Drop kills it.
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// Waits until `port` refuses connections (a stopped server's port is released).
fn wait_port_closed(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while port_is_open(port) {
        assert!(
            Instant::now() < deadline,
            "{what}: port {port} still accepts connections after the stop"
        );
        sleep(POLL);
    }
}

// ------------------------------------------------------------------------------------------------------------------
// Redis

/// A private `redis-server` on 127.0.0.1, with an fsynced append-only file in its own directory.
pub struct PrivateRedis {
    port: u16,
    process: Option<Running>,
    /// Passed to `redis-server` after the defaults (cluster mode, for one).
    extra_args: Vec<String>,
    /// In cluster mode, the cluster bus port (picked again with the port at each start attempt, kept by restarts:
    /// the other nodes know it).
    bus_port: Option<u16>,
    /// Last field: removed after the process is killed.
    dir: TempDir,
}

impl PrivateRedis {
    /// Starts a server on a free port and waits until it answers PING.
    pub fn start() -> Self {
        Self::start_with(Vec::new())
    }

    /// [`PrivateRedis::start`] with more `redis-server` arguments.
    pub fn start_with(extra_args: Vec<String>) -> Self {
        Self::start_inner(extra_args, false)
    }

    /// A node of a Redis Cluster: cluster mode with its own bus port.
    pub fn start_cluster_node() -> Self {
        let args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"];
        let args = args.iter().chain(&["--cluster-node-timeout", "5000"]);
        Self::start_inner(args.map(|arg| (*arg).to_owned()).collect(), true)
    }

    fn start_inner(extra_args: Vec<String>, cluster: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("private-redis-")
            .tempdir()
            .unwrap();
        let mut redis = Self {
            port: 0,
            process: None,
            extra_args,
            bus_port: None,
            dir,
        };
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            redis.port = free_port();
            redis.bus_port = cluster.then(free_port);
            match redis.launch() {
                Ok(()) => return redis,
                Err(error) => last_error = error,
            }
        }
        panic!("private redis did not start after {START_ATTEMPTS} attempts: {last_error}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Graceful stop (SIGTERM: Redis fsyncs its AOF and exits); returns once the process exited and the port
    /// refuses connections. SIGKILL after 30 s.
    pub fn stop(&mut self) {
        let process = self.process.take().expect("private redis is not running");
        let graceful = process.terminate(STOP_TIMEOUT);
        assert!(
            graceful,
            "private redis did not exit within {STOP_TIMEOUT:?} of SIGTERM (killed)"
        );
        wait_port_closed(self.port, "private redis");
    }

    /// Starts the stopped server again on the same port and directory (same data); waits until it answers PING.
    pub fn restart(&mut self) {
        assert!(self.process.is_none(), "private redis is still running");
        let deadline = Instant::now() + RESTART_BIND_TIMEOUT;
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(error) if Instant::now() >= deadline => {
                    panic!("private redis did not restart on port {}: {error}", self.port)
                }
                Err(_) => sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Runs `redis-cli` against the server (for tests that want a quick command without a client).
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new(find_binary("redis-cli").expect("redis-cli is not installed"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim_end().to_string()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn launch(&mut self) -> Result<(), String> {
        let binary = find_binary("redis-server").expect("redis-server is not installed");
        let dir = self.dir.path();
        let output = dir.join("stdout.log");
        let mut command = Command::new(binary);
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", dir.to_str().unwrap()])
            // Every write reaches the disk before it is acknowledged: a stop (or SIGKILL) loses nothing. No RDB
            // snapshots: the AOF is the data.
            .args(["--appendonly", "yes", "--appendfsync", "always", "--save", ""])
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .args(["--logfile", self.log_path().to_str().unwrap()])
            .args(&self.extra_args)
            .args(
                self.bus_port
                    .iter()
                    .flat_map(|port| ["--cluster-port".to_owned(), port.to_string()]),
            )
            .current_dir(dir)
            .stdout(log_file(&output))
            .stderr(log_file(&output));
        let mut process = Running::spawn(&mut command, dir);
        let deadline = Instant::now() + REDIS_READY_TIMEOUT;
        loop {
            // Ready when it answers, and it is this process that answers (not another server that took the port
            // between the probe and the bind).
            if redis_pid(self.port) == Some(process.pid()) {
                self.process = Some(process);
                return Ok(());
            }
            if process.has_exited() {
                return Err(format!(
                    "redis-server exited on port {}:\n{}\n{}",
                    self.port,
                    log_tail(&output, 10),
                    log_tail(&self.log_path(), 10)
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server did not answer PING within {REDIS_READY_TIMEOUT:?} on port {}:\n{}",
                    self.port,
                    log_tail(&self.log_path(), 20)
                ));
            }
            sleep(POLL);
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        drop(self.process.take()); // SIGKILL, before the directory goes.
    }
}

/// A private Redis Cluster of masters without replicas on 127.0.0.1: each node a [`PrivateRedis`] in cluster
/// mode with its own bus port, every slot assigned, `cluster_state:ok` on every node once `start` returns.
pub struct PrivateRedisCluster {
    nodes: Vec<PrivateRedis>,
}

impl PrivateRedisCluster {
    pub fn start(masters: usize) -> Self {
        let nodes: Vec<PrivateRedis> = (0..masters).map(|_| PrivateRedis::start_cluster_node()).collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let output = Command::new(find_binary("redis-cli").expect("redis-cli is not installed"))
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_ok(REDIS_READY_TIMEOUT);
        cluster
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Each node's own `redis://` URL (to inspect what a node holds).
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes.iter().map(PrivateRedis::url).collect()
    }

    pub fn nodes(&self) -> &[PrivateRedis] {
        &self.nodes
    }

    pub fn nodes_mut(&mut self) -> &mut [PrivateRedis] {
        &mut self.nodes
    }

    /// Waits until every node reports `cluster_state:ok` (after a node came back).
    pub fn wait_ok(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self
            .nodes
            .iter()
            .all(|node| node.cli(&["cluster", "info"]).contains("cluster_state:ok"))
        {
            assert!(
                Instant::now() < deadline,
                "the private redis cluster did not become ok"
            );
            sleep(POLL);
        }
    }
}

/// The process id of the Redis server on 127.0.0.1:`port` once it answers PING with PONG (not `-LOADING`, while
/// it replays its AOF).
fn redis_pid(port: u16) -> Option<u32> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    stream.write_all(b"PING\r\nINFO server\r\n").ok()?;
    let mut reply = Vec::new();
    let mut buffer = [0u8; 4096];
    // +PONG, then one bulk string ($length, text) that ends with the blank line of the last section.
    while !reply.ends_with(b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return None,
            Ok(n) => reply.extend_from_slice(&buffer[..n]),
        }
        if !reply.starts_with(&b"+PONG\r\n"[..reply.len().min(7)]) {
            return None;
        }
    }
    let text = String::from_utf8_lossy(&reply);
    text.lines()
        .find_map(|line| line.strip_prefix("process_id:")?.trim().parse().ok())
}

// ------------------------------------------------------------------------------------------------------------------
// ClickHouse

/// A private `clickhouse-server` (Debian's 18.16) on 127.0.0.1, with a configuration derived from the system one
/// and its data in its own directory.
pub struct PrivateClickHouse {
    http_port: u16,
    tcp_port: u16,
    process: Option<Running>,
    /// Last field: removed after the process is killed.
    dir: TempDir,
}

impl PrivateClickHouse {
    /// Starts a server on free ports and waits (up to 60 s) until `GET /ping` answers `Ok.`.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("private-clickhouse-")
            .tempdir()
            .unwrap();
        for sub in ["data", "tmp", "user_files", "format_schemas", "logs"] {
            fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let users = fs::read_to_string(CLICKHOUSE_USERS)
            .unwrap_or_else(|error| panic!("cannot read {CLICKHOUSE_USERS}: {error}"));
        fs::write(dir.path().join("users.xml"), users).unwrap();
        let mut clickhouse = Self {
            http_port: 0,
            tcp_port: 0,
            process: None,
            dir,
        };
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            clickhouse.http_port = free_port();
            clickhouse.tcp_port = free_port();
            clickhouse.write_config();
            match clickhouse.launch() {
                Ok(()) => return clickhouse,
                Err(error) => last_error = error,
            }
        }
        panic!("private clickhouse did not start after {START_ATTEMPTS} attempts: {last_error}");
    }

    /// `http://127.0.0.1:HTTP_PORT`, for the HTTP interface (and the `clickhouse` crate).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The native protocol port (`clickhouse-client --port`).
    pub fn tcp_port(&self) -> u16 {
        self.tcp_port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Graceful stop (SIGTERM); returns once the process exited and both ports refuse connections. SIGKILL after
    /// 30 s.
    pub fn stop(&mut self) {
        let process = self.process.take().expect("private clickhouse is not running");
        let graceful = process.terminate(STOP_TIMEOUT);
        assert!(
            graceful,
            "private clickhouse did not exit within {STOP_TIMEOUT:?} of SIGTERM (killed)"
        );
        wait_port_closed(self.http_port, "private clickhouse (http)");
        wait_port_closed(self.tcp_port, "private clickhouse (tcp)");
    }

    /// Starts the stopped server again on the same ports and data; waits until `/ping` answers.
    pub fn restart(&mut self) {
        assert!(self.process.is_none(), "private clickhouse is still running");
        let deadline = Instant::now() + RESTART_BIND_TIMEOUT;
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(error) if Instant::now() >= deadline => {
                    panic!(
                        "private clickhouse did not restart on port {}: {error}",
                        self.http_port
                    )
                }
                Err(_) => sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Runs one statement over HTTP (`POST /` with the SQL as the body): the response body, or the status and
    /// body of an error, or the I/O error of a server that is down.
    pub fn query(&self, sql: &str) -> Result<String, String> {
        match http_request(
            self.http_port,
            "POST",
            "/",
            sql.as_bytes(),
            Duration::from_secs(60),
        ) {
            Ok((200, body)) => Ok(body),
            Ok((status, body)) => Err(format!("HTTP {status}: {}", body.trim_end())),
            Err(error) => Err(error.to_string()),
        }
    }

    fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// The system configuration with this server's paths, ports and loopback-only listening. Top-level elements
    /// that listen or point at system paths are removed and written again; everything else is kept.
    fn write_config(&self) {
        let system = fs::read_to_string(CLICKHOUSE_CONFIG)
            .unwrap_or_else(|error| panic!("cannot read {CLICKHOUSE_CONFIG}: {error}"));
        let dir = self.dir.path().to_str().unwrap();
        let logs = self.log_dir();
        let logs = logs.to_str().unwrap();
        let config = derive_clickhouse_config(
            &system,
            &format!(
                "    <logger>\n        <level>warning</level>\n        <log>{logs}/server.log</log>\n        \
                 <errorlog>{logs}/error.log</errorlog>\n        <size>100M</size>\n        <count>2</count>\n    \
                 </logger>\n    <http_port>{http}</http_port>\n    <tcp_port>{tcp}</tcp_port>\n    \
                 <listen_host>127.0.0.1</listen_host>\n    <path>{dir}/data/</path>\n    \
                 <tmp_path>{dir}/tmp/</tmp_path>\n    <user_files_path>{dir}/user_files/</user_files_path>\n    \
                 <format_schema_path>{dir}/format_schemas/</format_schema_path>\n    \
                 <users_config>{dir}/users.xml</users_config>\n",
                http = self.http_port,
                tcp = self.tcp_port,
            ),
        );
        fs::write(self.dir.path().join("config.xml"), config).unwrap();
    }

    fn launch(&mut self) -> Result<(), String> {
        let binary = find_binary("clickhouse-server").expect("clickhouse-server is not installed");
        let output = self.log_dir().join("stdout.log");
        let mut command = Command::new(binary);
        command
            .arg(format!(
                "--config-file={}",
                self.dir.path().join("config.xml").display()
            ))
            .current_dir(self.dir.path())
            .stdout(log_file(&output))
            .stderr(log_file(&output));
        let mut process = Running::spawn(&mut command, self.dir.path());
        let deadline = Instant::now() + CLICKHOUSE_READY_TIMEOUT;
        loop {
            if clickhouse_ping(self.http_port) {
                // It is this server that answers (its data under this directory), not another one that took
                // the port between the probe and the bind.
                let data_path = self.query("SELECT data_path FROM system.databases WHERE name = 'system'");
                let ours = self.dir.path().join("data").display().to_string();
                if data_path.as_ref().is_ok_and(|path| path.starts_with(&ours)) {
                    self.process = Some(process);
                    return Ok(());
                }
                if !process.has_exited() && data_path.is_ok() {
                    return Err(format!(
                        "another server answers on port {}: {data_path:?}",
                        self.http_port
                    ));
                }
            }
            if process.has_exited() {
                return Err(format!(
                    "clickhouse-server exited (http {}, tcp {}):\n{}\n{}",
                    self.http_port,
                    self.tcp_port,
                    log_tail(&output, 10),
                    log_tail(&self.log_dir().join("error.log"), 10)
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "clickhouse-server did not answer /ping within {CLICKHOUSE_READY_TIMEOUT:?}:\n{}",
                    log_tail(&self.log_dir().join("error.log"), 20)
                ));
            }
            sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PrivateClickHouse {
    fn drop(&mut self) {
        drop(self.process.take()); // SIGKILL, before the directory goes.
    }
}

fn clickhouse_ping(port: u16) -> bool {
    matches!(
        http_request(port, "GET", "/ping", b"", Duration::from_secs(2)),
        Ok((200, body)) if body.trim_end() == "Ok."
    )
}

/// Top-level elements of the system configuration that a private server replaces: every listening port and host,
/// every path, the logger.
const CLICKHOUSE_REPLACED: &[&str] = &[
    "logger",
    "http_port",
    "tcp_port",
    "https_port",
    "tcp_port_secure",
    "interserver_http_port",
    "interserver_https_port",
    "interserver_http_host",
    "mysql_port",
    "postgresql_port",
    "grpc_port",
    "listen_host",
    "path",
    "tmp_path",
    "user_files_path",
    "format_schema_path",
    "users_config",
];

/// `system` (a ClickHouse `config.xml`) without comments and without the top-level [`CLICKHOUSE_REPLACED`]
/// elements, with `replacement` inserted before the root's end tag.
pub fn derive_clickhouse_config(system: &str, replacement: &str) -> String {
    let mut xml = strip_xml_comments(system);
    for tag in CLICKHOUSE_REPLACED {
        xml = remove_top_level(&xml, tag);
    }
    let end = ["</yandex>", "</clickhouse>"]
        .iter()
        .filter_map(|root| xml.rfind(root))
        .max()
        .expect("config.xml has no </yandex> or </clickhouse> root end tag");
    xml.insert_str(end, replacement);
    xml
}

fn strip_xml_comments(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        rest = match rest[start..].find("-->") {
            Some(end) => &rest[start + end + 3..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// Removes every element `<tag ...>...</tag>` (or `<tag .../>`) that is a direct child of the root element, with
/// the rest of its line when that is blank. Nested elements of the same name (`<distributed_ddl><path>`) stay.
/// Expects no comments.
fn remove_top_level(xml: &str, tag: &str) -> String {
    let bytes = xml.as_bytes();
    let mut out = String::with_capacity(xml.len());
    let mut depth = 0usize;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &xml[i..];
        if rest.starts_with("<?") {
            i += rest.find("?>").map_or(rest.len(), |end| end + 2);
            continue;
        }
        if rest.starts_with("<![CDATA[") {
            i += rest.find("]]>").map_or(rest.len(), |end| end + 3);
            continue;
        }
        let close = rest.find('>').map_or(rest.len(), |end| end + 1);
        if rest.starts_with("<!") {
            i += close;
            continue;
        }
        if rest.starts_with("</") {
            depth = depth.saturating_sub(1);
            i += close;
            continue;
        }
        let name_end = rest[1..]
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .map_or(rest.len(), |end| end + 1);
        let name = &rest[1..name_end];
        let self_closing = rest[..close].ends_with("/>");
        if depth == 1 && name == tag {
            let end = if self_closing {
                i + close
            } else {
                let end_tag = format!("</{tag}>");
                i + rest.find(&end_tag).expect("unclosed element in config.xml") + end_tag.len()
            };
            // Drop the element's indentation and line end too when it stands on its own line.
            let line_start = xml[..i].rfind('\n').map_or(0, |n| n + 1);
            let start = if xml[line_start..i].trim().is_empty() && line_start >= copied {
                line_start
            } else {
                i
            };
            let after = &xml[end..];
            let end = match after.find('\n') {
                Some(n) if after[..n].trim().is_empty() => end + n + 1,
                _ => end,
            };
            out.push_str(&xml[copied..start]);
            copied = end;
            i = end;
            continue;
        }
        if !self_closing {
            depth += 1;
        }
        i += close;
    }
    out.push_str(&xml[copied..]);
    out
}

/// A minimal HTTP/1.1 request to 127.0.0.1:`port` (`Connection: close`): the status and the body (chunked transfer
/// decoded).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> io::Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let _ = stream.shutdown(Shutdown::Write);
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of HTTP headers"))?;
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let mut payload = response[split + 4..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("no HTTP status"))?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    if chunked {
        payload = decode_chunked(&payload).ok_or_else(|| invalid("bad chunked body"))?;
    }
    Ok((status, String::from_utf8_lossy(&payload).to_string()))
}

fn decode_chunked(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|window| window == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

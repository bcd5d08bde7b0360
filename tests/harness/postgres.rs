//! A throwaway PostgreSQL cluster for tests: `initdb` in a temporary directory and a
//! `postgres` child listening on 127.0.0.1, trusted logins for the user `gridx`,
//! removed with the value. As root (CI), both run as `nobody`, since PostgreSQL
//! refuses to run as root.

use std::os::unix::fs::{MetadataExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The directory of PostgreSQL's server programs: `pg_config --bindir`, else the
/// newest `/usr/lib/postgresql/N/bin` (Debian puts them there, off PATH).
pub fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() && dir.join("postgres").exists() {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "no PostgreSQL server (.ci/install-deps installs postgresql)".to_owned())?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").exists() && bin.join("postgres").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "no initdb under /usr/lib/postgresql (.ci/install-deps installs postgresql)".into()
    })
}

pub struct Cluster {
    _dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
}

/// `nobody`, for PostgreSQL when the tests run as root.
const NOBODY: u32 = 65534;

fn as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `program` run as `nobody` when this process is root, else as itself.
fn command(program: &Path) -> Command {
    if as_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Cluster {
    /// Makes and starts a cluster; `Err` says why it could not.
    pub fn start() -> Result<Cluster, String> {
        let bin = bin_dir()?;
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let data = dir.path().join("data");
        let socket = dir.path().join("socket");
        for d in [dir.path(), socket.as_path()] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
            if as_root() {
                chown(d, Some(NOBODY), Some(NOBODY))
                    .map_err(|e| format!("chown {}: {e}", d.display()))?;
            }
        }
        let out = command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "gridx",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("initdb did not start: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("postgres.log"))
            .map_err(|e| format!("postgres.log: {e}"))?;
        let child = command(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-k")
            .arg(&socket)
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("postgres did not start: {e}"))?;
        let cluster = Cluster {
            _dir: dir,
            child,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "postgres did not listen within 30 s: {}",
                    cluster.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(cluster)
    }

    /// A connection string for the user `gridx` to database `postgres`.
    pub fn url(&self) -> String {
        format!("postgres://gridx@127.0.0.1:{}/postgres", self.port)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGKILL is enough for a throwaway cluster: its directory goes next.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One cluster for the whole test process, started by the first test that asks and
/// never dropped: a watchdog process kills it and removes its directory when this
/// process ends (a static's value is never dropped, and PostgreSQL outliving the
/// tests would keep CI waiting).
pub fn shared() -> Result<&'static Cluster, String> {
    static SHARED: std::sync::OnceLock<Result<Cluster, String>> = std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| {
            let cluster = Cluster::start()?;
            let watchdog = format!(
                "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; kill -9 {pg} 2>/dev/null; rm -rf '{dir}'",
                me = std::process::id(),
                pg = cluster.child.id(),
                dir = cluster._dir.path().display(),
            );
            Command::new("sh")
                .args(["-c", &watchdog])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("the cluster's watchdog did not start: {e}"))?;
            Ok(cluster)
        })
        .as_ref()
        .map_err(Clone::clone)
}

impl Cluster {
    /// A new, empty database on this cluster; returns its URL. Runs on a thread of
    /// its own: the synchronous client must not run inside an async runtime.
    pub fn create_database(&self) -> Result<String, String> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let name = format!(
            "gridx_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let admin = self.url();
        let sql = format!("CREATE DATABASE {name}");
        std::thread::spawn(move || -> Result<(), String> {
            // Listening is not accepting: the server may still be starting up.
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut client = loop {
                match postgres::Client::connect(&admin, postgres::NoTls) {
                    Ok(client) => break client,
                    Err(e) if Instant::now() > deadline => {
                        return Err(format!(
                            "connecting to the test cluster: {e}: {}",
                            e.as_db_error().map(|d| d.message()).unwrap_or_default()
                        ));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            };
            client
                .batch_execute(&sql)
                .map_err(|e| format!("{sql}: {e}"))
        })
        .join()
        .map_err(|_| "creating a database panicked".to_owned())??;
        Ok(format!("postgres://gridx@127.0.0.1:{}/{name}", self.port))
    }
}

/// A port nobody listens on now (bound and released: another process could take it
/// in between, which fails the start rather than the test).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

//! Runs a job as a child process in its own process group, with rlimits, capped
//! output, a wall-clock timeout and cancellation that kill the whole group. Shared by
//! the bubblewrap sandbox and the explicitly unsandboxed mode.
//!
//! For bubblewrap it also reads bwrap's `--json-status-fd` report, bwrap's own word on
//! whether the job's program was started, so that a sandbox which could not be set up
//! is reported as `sandbox_error` and not as the job's own failure.

use super::cgroup::JobCgroup;
use super::output::{CappedBuffer, Tap};
use super::{StopReason, StopToken};
use gridx_proto::job::{RunEnd, RunOutcome};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// Resource limits applied with setrlimit in the child before it execs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimits {
    /// RLIMIT_DATA: private writable memory. (Not RLIMIT_AS: V8 reserves gigabytes of
    /// address space it never touches, which RLIMIT_AS would refuse.)
    pub data_bytes: u64,
    /// RLIMIT_CPU, a backstop behind the wall-clock timeout.
    pub cpu_seconds: u64,
    pub file_bytes: u64,
    pub open_files: u64,
    /// RLIMIT_NPROC; only meaningful for an unprivileged uid (see `drop_to_nobody`).
    pub processes: u64,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcessPlan {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub rlimits: Rlimits,
    /// When the worker runs as root, switch the child to an unprivileged uid of its
    /// own before exec (see [`job_uid`]), so RLIMIT_NPROC applies to this job alone and
    /// nothing runs as root.
    pub drop_privileges: bool,
    pub stdin: String,
    /// Bytes the child can read on file descriptor 3 (bubblewrap's `--file 3 PATH`
    /// copies the job's source into the sandbox from there).
    pub fd3: Option<Vec<u8>>,
    /// The program is bubblewrap, told `--json-status-fd` [`STATUS_FD`]: the child gets
    /// a pipe there, and a run whose bwrap ends without reporting an `exit-code` (its
    /// setup failed before the job's program was started) is a `SandboxError`.
    pub bwrap_status: bool,
    /// A compiled seccomp filter the child can read on [`SECCOMP_FD`] (bubblewrap's
    /// `--seccomp 5`).
    pub seccomp: Option<Vec<u8>>,
    /// The job's control group: the child joins it before it execs, the whole group is
    /// killed when the job ends, and OOM is the kernel's word from it.
    pub cgroup: Option<std::sync::Arc<JobCgroup>>,
    pub timeout: Duration,
    pub max_output_bytes: usize,
    /// Bytes of stderr kept: `max_output_bytes`, or more for a compiled language,
    /// whose stderr also carries the compiler's messages until they are split off
    /// (`toolchain::stderr_capacity`).
    pub max_stderr_bytes: usize,
}

/// The child's file descriptor bwrap writes its JSON status to, when
/// [`ProcessPlan::bwrap_status`] asks for it (`--json-status-fd 4`).
pub const STATUS_FD: i32 = 4;

/// The child's file descriptor the seccomp filter is read from
/// ([`ProcessPlan::seccomp`], `--seccomp 5`).
pub const SECCOMP_FD: i32 = 5;

/// At most this much of bwrap's status report is kept (it writes two short lines).
const STATUS_CAP: usize = 16 * 1024;

/// First host uid handed to process jobs, and how many there are. Each job gets a uid
/// that no process on the host runs as when the job starts, so one job's processes
/// never count against another's RLIMIT_NPROC (a fork bomb exhausts only its own uid).
/// That holds across worker processes too (two workers on one host, or a worker beside
/// the demo): each process starts at a random point of the range and skips uids in use,
/// where a fixed start gave every process's first job the same uid.
const UID_BASE: u32 = 200_000;
const UID_RANGE: u32 = 10_000;

static NEXT_UID: std::sync::OnceLock<std::sync::atomic::AtomicU32> = std::sync::OnceLock::new();

/// The next uid of this process's turn through the range, whether in use or not.
fn next_candidate() -> u32 {
    let next = NEXT_UID.get_or_init(|| {
        let mut bytes = [0u8; 4];
        let start = match getrandom::fill(&mut bytes) {
            Ok(()) => u32::from_le_bytes(bytes),
            Err(_) => std::process::id().wrapping_mul(7919),
        };
        std::sync::atomic::AtomicU32::new(start % UID_RANGE)
    });
    UID_BASE + next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % UID_RANGE
}

/// The uid the next process job runs as on the host: the next one in turn that no
/// process on the host runs as.
pub fn job_uid() -> u32 {
    pick_free_uid(&uids_in_use(), next_candidate)
}

/// The first candidate not in `busy`, trying at most the whole range; the first
/// candidate when every uid is busy.
fn pick_free_uid(busy: &std::collections::HashSet<u32>, mut next: impl FnMut() -> u32) -> u32 {
    let first = next();
    if !busy.contains(&first) {
        return first;
    }
    for _ in 1..UID_RANGE {
        let uid = next();
        if !busy.contains(&uid) {
            return uid;
        }
    }
    first
}

/// Real uids within the job range of every process on this host (RLIMIT_NPROC counts
/// by real uid), from /proc/<pid>/status.
fn uids_in_use() -> std::collections::HashSet<u32> {
    let mut busy = std::collections::HashSet::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return busy;
    };
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .as_encoded_bytes()
            .iter()
            .all(u8::is_ascii_digit)
        {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let real = status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|uids| uids.split_whitespace().next())
            .and_then(|uid| uid.parse::<u32>().ok());
        if let Some(uid) = real.filter(|uid| (UID_BASE..UID_BASE + UID_RANGE).contains(uid)) {
            busy.insert(uid);
        }
    }
    busy
}

/// Runs the plan to its end and reports how it ended.
pub async fn run(plan: ProcessPlan, stop: StopToken) -> RunOutcome {
    run_tapped(plan, stop, (None, None)).await
}

/// [`run`], passing stdout and stderr to the job's live taps as they are read.
pub async fn run_tapped(
    plan: ProcessPlan,
    stop: StopToken,
    taps: (Option<Tap>, Option<Tap>),
) -> RunOutcome {
    let (stdout_tap, stderr_tap) = taps;
    let started = Instant::now();
    let mut command = Command::new(&plan.program);
    command
        .args(&plan.args)
        .env_clear()
        .envs(plan.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&plan.cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // A new process group: the timeout kills the job and everything it forked.
        .process_group(0);
    let limits = plan.rlimits;
    // SAFETY: geteuid cannot fail.
    let drop_privileges = plan.drop_privileges && unsafe { libc::geteuid() } == 0;
    // Only a root worker switches uids, and only then is the choice worth a look at
    // /proc.
    let uid = if drop_privileges { job_uid() } else { 0 };
    // A pipe for fd 3, made close-on-exec so only the dup2 below reaches the child.
    let mut fds = [-1i32; 2];
    // SAFETY: pipe2 writes two descriptors into a valid two-element array.
    let fd3 =
        if plan.fd3.is_some() && unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0 {
            Some((fds[0], fds[1]))
        } else {
            None
        };
    let fd3_read = fd3.map(|(r, _)| r);
    // A pipe for bwrap's status report on STATUS_FD, close-on-exec the same way.
    let mut fds = [-1i32; 2];
    // SAFETY: pipe2 writes two descriptors into a valid two-element array.
    let status_pipe =
        if plan.bwrap_status && unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0 {
            Some((fds[0], fds[1]))
        } else {
            None
        };
    if plan.bwrap_status && status_pipe.is_none() {
        let error = std::io::Error::last_os_error();
        close_pipes(fd3, None);
        return super::sandbox_error(
            format!("could not make a pipe for bwrap's status: {error}"),
            elapsed_ms(started),
        );
    }
    let status_write = status_pipe.map(|(_, w)| w);
    // The filter goes into a pipe whole before the child starts (a few kilobytes, far
    // below a pipe's buffer), and our write end is closed at once, so the child reads
    // the filter and then end-of-file.
    let seccomp_read = match &plan.seccomp {
        Some(filter) => match filled_pipe(filter) {
            Ok(read) => Some(read),
            Err(error) => {
                close_pipes(fd3, status_pipe);
                return super::sandbox_error(
                    format!("could not hand the seccomp filter over: {error}"),
                    elapsed_ms(started),
                );
            }
        },
        None => None,
    };
    // The cgroup.procs files to join, as C strings made before the fork.
    let procs_files: Vec<std::ffi::CString> = plan
        .cgroup
        .as_ref()
        .map(|group| group.procs_files())
        .unwrap_or_default();
    // SAFETY: between fork and exec only async-signal-safe calls are made
    // (fcntl, dup2, open, write, close, setrlimit, setgroups, setgid, setuid), with no
    // allocation.
    unsafe {
        command.pre_exec(move || {
            // First, while still the worker's uid: into the job's group, so that
            // everything the job will run is counted and killed with it.
            for file in &procs_files {
                join_cgroup(file)?;
            }
            // SAFETY: the sources are pipe ends made above for this child.
            install_fds([
                (fd3_read, 3),
                (status_write, STATUS_FD),
                (seccomp_read, SECCOMP_FD),
            ])?;
            set_limit(libc::RLIMIT_DATA, limits.data_bytes)?;
            set_limit(libc::RLIMIT_CPU, limits.cpu_seconds)?;
            set_limit(libc::RLIMIT_FSIZE, limits.file_bytes)?;
            set_limit(libc::RLIMIT_NOFILE, limits.open_files)?;
            set_limit(libc::RLIMIT_CORE, 0)?;
            if drop_privileges {
                set_limit(libc::RLIMIT_NPROC, limits.processes)?;
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(uid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let spawned = command.spawn();
    if let Some(read) = seccomp_read {
        // SAFETY: closing our copy of the filter pipe; the child has its own.
        unsafe {
            libc::close(read);
        }
    }
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            close_pipes(fd3, status_pipe);
            return super::sandbox_error(
                format!("could not start {}: {e}", plan.program.display()),
                elapsed_ms(started),
            );
        }
    };
    if let Some((read, write)) = fd3 {
        // SAFETY: closing our copy of the read end; the child has its own.
        unsafe {
            libc::close(read);
        }
        let bytes = plan.fd3.clone().unwrap_or_default();
        // A blocking write on its own thread: the pipe buffer is smaller than a 256 KiB
        // source, and the child reads it while we wait on other things.
        std::thread::spawn(move || {
            use std::io::Write;
            use std::os::fd::FromRawFd;
            // SAFETY: `write` is a pipe end we own and hand over to this File.
            let mut file = unsafe { std::fs::File::from_raw_fd(write) };
            let _ = file.write_all(&bytes);
        });
    }
    // Our copy of the status pipe's write end goes at once: the report ends (EOF) when
    // bwrap, its only other holder, exits. (The sandboxed child closes its copy first
    // thing, so the job never holds it.)
    let bwrap_report = status_pipe.map(|(read, write)| {
        use std::os::fd::{FromRawFd, OwnedFd};
        // SAFETY: closing our copy of the write end; the child has its own.
        unsafe {
            libc::close(write);
        }
        // SAFETY: `read` is a pipe end we own and hand over to this OwnedFd.
        let read = unsafe { OwnedFd::from_raw_fd(read) };
        tokio::spawn(async move {
            match tokio::net::unix::pipe::Receiver::from_owned_fd(read) {
                Ok(pipe) => read_status(pipe).await,
                Err(_) => BwrapStatus::default(),
            }
        })
    });
    let pgid = child.id().map(|id| id as i32);
    if let Some(mut stdin) = child.stdin.take() {
        let input = plan.stdin.into_bytes();
        // A job that never reads its stdin must not block us: write in the background.
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        });
    }
    let stdout = child
        .stdout
        .take()
        .map(|s| tokio::spawn(drain(s, plan.max_output_bytes, stdout_tap)));
    let stderr = child
        .stderr
        .take()
        .map(|s| tokio::spawn(drain(s, plan.max_stderr_bytes, stderr_tap)));

    let mut killed_for: Option<RunEnd> = None;
    let status = tokio::select! {
        status = child.wait() => status,
        _ = tokio::time::sleep(plan.timeout) => {
            killed_for = Some(RunEnd::TimedOut);
            kill_group(pgid);
            kill_cgroup(&plan.cgroup).await;
            child.wait().await
        }
        _ = stop.stopped() => {
            killed_for = Some(match stop.reason() {
                Some(StopReason::Shutdown) => RunEnd::WorkerShutdown,
                _ => RunEnd::Cancelled,
            });
            kill_group(pgid);
            kill_cgroup(&plan.cgroup).await;
            child.wait().await
        }
    };
    // The leader is gone; make sure nothing it forked outlives it, even what left the
    // process group (setsid): the cgroup holds every process the job made.
    kill_group(pgid);
    kill_cgroup(&plan.cgroup).await;
    let (stdout, stdout_truncated) = collect(stdout).await;
    let (stderr, stderr_truncated) = collect(stderr).await;
    let duration_ms = elapsed_ms(started);
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            return super::sandbox_error(format!("waiting for the job failed: {e}"), duration_ms);
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let mut exit_code = status.code().or_else(|| status.signal().map(|s| 128 + s));
    // With a memory cgroup the kernel decides: it OOM-kills, and says so in the
    // group's counter, whatever the job printed. The victim may be bwrap itself (tmpfs
    // pages belong to no process, so the largest process is chosen), which then never
    // reports the job's end: the counter is read first, and is the answer.
    let oom_killed = plan.cgroup.as_ref().is_some_and(|group| group.oom_killed());
    if let Some(report) = bwrap_report {
        // bwrap is gone, so the report has ended; a bound all the same, so that a
        // stray holder of the pipe cannot hang the worker.
        let report = tokio::time::timeout(Duration::from_secs(5), report)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        match report.exit_code {
            // The job's program ran: bwrap's word on how it ended.
            Some(code) => exit_code = Some(code),
            // bwrap ended on its own without saying that the program ran: its setup
            // (namespaces, mounts, the exec itself) failed, and the job's code never
            // ran, so all of stderr is bwrap's. A job cannot fake this: the status
            // pipe never reaches the sandbox, and no output of the job counts.
            None if killed_for.is_none() && !oom_killed => {
                return super::sandbox_error(setup_failure(&stderr, status), duration_ms);
            }
            None => {}
        }
    }
    // A runtime's own heap limit (Node's --max-old-space-size, RLIMIT_DATA's failed
    // allocations) the runtime reports itself.
    let end = match killed_for {
        Some(end) => end,
        // A job that handled a helper's OOM kill and exited 0 succeeded.
        None if oom_killed && exit_code != Some(0) => RunEnd::Oom,
        None if exit_code != Some(0) && looks_out_of_memory(&stderr) => RunEnd::Oom,
        None if status.signal() == Some(libc::SIGXCPU) => RunEnd::TimedOut,
        None => RunEnd::Exited,
    };
    RunOutcome {
        end,
        exit_code,
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
        duration_ms,
        message: None,
        compile_output: None,
    }
}

/// What bwrap said on its `--json-status-fd`: `{ "child-pid": N, ... }` once it has
/// cloned the sandbox's first process (before the mounts), and `{ "exit-code": N }` when
/// the job's program, started by a successful exec, ended. No `exit-code` means the
/// setup failed (bwrap reports none when its child dies before the exec or the exec
/// fails), or bwrap was killed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct BwrapStatus {
    child_pid: Option<i64>,
    exit_code: Option<i32>,
}

impl BwrapStatus {
    /// One JSON object a line; anything else is ignored.
    fn parse(text: &str) -> Self {
        let mut status = Self::default();
        for line in text.lines() {
            let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(line) else {
                continue;
            };
            if let Some(pid) = fields.get("child-pid").and_then(serde_json::Value::as_i64) {
                status.child_pid = Some(pid);
            }
            if let Some(code) = fields
                .get("exit-code")
                .and_then(serde_json::Value::as_i64)
                .and_then(|code| i32::try_from(code).ok())
            {
                status.exit_code = Some(code);
            }
        }
        status
    }
}

/// Reads bwrap's status report to its end (bwrap's exit), keeping at most
/// [`STATUS_CAP`] bytes.
async fn read_status(mut pipe: impl AsyncRead + Unpin) -> BwrapStatus {
    let mut text = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = STATUS_CAP.saturating_sub(text.len());
                text.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
    BwrapStatus::parse(&String::from_utf8_lossy(&text))
}

/// The message of a sandbox that could not be set up: bwrap's own first words on
/// stderr (the job's code never ran, so nothing there is the job's).
fn setup_failure(stderr: &str, status: std::process::ExitStatus) -> String {
    match stderr.lines().map(str::trim).find(|line| !line.is_empty()) {
        Some(line) => format!(
            "the sandbox could not start: {}",
            line.chars().take(500).collect::<String>()
        ),
        None => format!("the sandbox could not start: bwrap ended ({status}) before the job ran"),
    }
}

/// Makes each present `(source, target)` pair the child's descriptor `target`,
/// inherited across exec. Every source is first copied above the targets, so one
/// target never overwrites another pair's source. Only fcntl and dup2, no allocation.
///
/// # Safety
///
/// Only between fork and exec: it replaces whatever the targets were.
unsafe fn install_fds<const N: usize>(pairs: [(Option<i32>, i32); N]) -> std::io::Result<()> {
    let mut high = [-1i32; N];
    for (slot, (source, _)) in high.iter_mut().zip(pairs) {
        if let Some(source) = source {
            // SAFETY: duplicating a descriptor we own; the copy is close-on-exec.
            let copy = unsafe { libc::fcntl(source, libc::F_DUPFD_CLOEXEC, 10) };
            if copy < 0 {
                return Err(std::io::Error::last_os_error());
            }
            *slot = copy;
        }
    }
    for (copy, (_, target)) in high.into_iter().zip(pairs) {
        // SAFETY: dup2 onto a fixed number clears close-on-exec on the target.
        if copy >= 0 && unsafe { libc::dup2(copy, target) } != target {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Closes the ends of pipes that were made for a child that never started.
fn close_pipes(fd3: Option<(i32, i32)>, status: Option<(i32, i32)>) {
    for (read, write) in fd3.into_iter().chain(status) {
        // SAFETY: closing pipe ends we own and nobody else uses.
        unsafe {
            libc::close(read);
            libc::close(write);
        }
    }
}

/// Without a memory cgroup the kernel does not kill an over-limit process: its
/// allocations fail and the runtime reports it. These are the runtimes' own words.
fn looks_out_of_memory(stderr: &str) -> bool {
    let tail = &stderr[stderr.len().saturating_sub(4096)..];
    [
        "MemoryError",
        "JavaScript heap out of memory",
        "Cannot allocate memory",
        "out of memory",
    ]
    .iter()
    .any(|needle| tail.contains(needle))
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads a valid, initialised struct.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Kills every process of the job's control group, on a blocking thread: it may wait
/// a few milliseconds for forks in flight (bounded, see [`JobCgroup::kill_all`]).
async fn kill_cgroup(group: &Option<std::sync::Arc<JobCgroup>>) {
    if let Some(group) = group.clone() {
        let _ = tokio::task::spawn_blocking(move || group.kill_all()).await;
    }
}

/// Moves the calling process into a control group: "0" written to its `cgroup.procs`
/// means "me" in both hierarchies. Only open, write and close: safe after fork.
fn join_cgroup(procs: &std::ffi::CStr) -> std::io::Result<()> {
    // SAFETY: a valid NUL-terminated path; the descriptor is ours and closed below.
    let fd = unsafe { libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: writing one byte from a static buffer to the descriptor opened above.
    let written = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
    let error = std::io::Error::last_os_error();
    // SAFETY: closing the descriptor opened above.
    unsafe {
        libc::close(fd);
    }
    if written != 1 {
        return Err(error);
    }
    Ok(())
}

/// A pipe holding all of `bytes`, its write end already closed: returns the read end
/// (close-on-exec, like the other pipes, until `install_fds` places it).
fn filled_pipe(bytes: &[u8]) -> std::io::Result<i32> {
    // Linux's smallest pipe buffer is 4 KiB for an unprivileged user past its quota;
    // a filter that large would need a writer thread, and ours is far smaller.
    if bytes.len() > 4096 {
        return Err(std::io::Error::other(format!(
            "the filter is {} bytes, more than a pipe surely holds",
            bytes.len()
        )));
    }
    let mut fds = [-1i32; 2];
    // SAFETY: pipe2 writes two descriptors into a valid two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let [read, write] = fds;
    let mut rest = bytes;
    let mut result = Ok(read);
    while !rest.is_empty() {
        // SAFETY: writing from a valid slice to the pipe made above. The pipe's buffer
        // (64 KiB) holds the whole filter, so this never blocks.
        let n = unsafe { libc::write(write, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            result = Err(std::io::Error::last_os_error());
            break;
        }
        rest = &rest[usize::try_from(n).unwrap_or(rest.len()).min(rest.len())..];
    }
    // SAFETY: closing the write end made above (and the read end on failure).
    unsafe {
        libc::close(write);
        if result.is_err() {
            libc::close(read);
        }
    }
    result
}

fn kill_group(pgid: Option<i32>) {
    if let Some(pgid) = pgid.filter(|p| *p > 0) {
        // SAFETY: signalling a process group we created; failure (already gone) is fine.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

async fn drain(mut pipe: impl AsyncRead + Unpin, cap: usize, mut tap: Option<Tap>) -> CappedBuffer {
    let mut buffer = CappedBuffer::new(cap);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                buffer.push(&chunk[..n]);
                if let Some(tap) = &mut tap {
                    tap.push(&chunk[..n]);
                }
            }
        }
    }
    buffer
}

async fn collect(task: Option<tokio::task::JoinHandle<CappedBuffer>>) -> (String, bool) {
    match task {
        Some(task) => match task.await {
            Ok(buffer) => buffer.into_text(),
            Err(_) => (String::new(), false),
        },
        None => (String::new(), false),
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn bwrap_status_reports_are_read() {
        let started = "{ \"child-pid\": 16354, \"cgroup-namespace\": 4026532183, \"pid-namespace\": 4026532182 }\n";
        assert_eq!(
            BwrapStatus::parse(started),
            BwrapStatus {
                child_pid: Some(16354),
                exit_code: None
            }
        );
        let ended = format!("{started}{{ \"exit-code\": 3 }}\n");
        assert_eq!(
            BwrapStatus::parse(&ended),
            BwrapStatus {
                child_pid: Some(16354),
                exit_code: Some(3)
            }
        );
        assert_eq!(BwrapStatus::parse(""), BwrapStatus::default());
        assert_eq!(
            BwrapStatus::parse("{ \"exit-code\": \nnot json\n[1]\n{ \"exit-code\": \"0\" }\n"),
            BwrapStatus::default()
        );
    }

    #[test]
    fn a_setup_failure_quotes_bwraps_first_line() {
        use std::os::unix::process::ExitStatusExt;
        let status = std::process::ExitStatus::from_raw(1 << 8);
        assert_eq!(
            setup_failure(
                "\nbwrap: Creating new namespace failed: Resource temporarily unavailable\nmore\n",
                status
            ),
            "the sandbox could not start: bwrap: Creating new namespace failed: Resource temporarily unavailable"
        );
        let quiet = setup_failure("", status);
        assert!(
            quiet.starts_with("the sandbox could not start: bwrap ended ("),
            "{quiet}"
        );
        assert_eq!(setup_failure(&"x".repeat(2000), status).len(), 29 + 500);
    }

    #[test]
    fn a_busy_uid_is_skipped() {
        let busy: HashSet<u32> = [UID_BASE + 5, UID_BASE + 6].into();
        let mut turn = UID_BASE + 5;
        let uid = pick_free_uid(&busy, || {
            turn += 1;
            turn - 1
        });
        assert_eq!(uid, UID_BASE + 7);
    }

    #[test]
    fn when_every_uid_is_busy_the_first_candidate_is_used() {
        let busy: HashSet<u32> = (UID_BASE..UID_BASE + UID_RANGE).collect();
        let mut turn = UID_BASE;
        let uid = pick_free_uid(&busy, || {
            turn += 1;
            turn - 1
        });
        assert_eq!(uid, UID_BASE);
    }

    #[test]
    fn job_uids_stay_in_the_range_and_differ_in_turn() {
        let a = job_uid();
        let b = job_uid();
        assert!((UID_BASE..UID_BASE + UID_RANGE).contains(&a));
        assert!((UID_BASE..UID_BASE + UID_RANGE).contains(&b));
        assert_ne!(a, b);
    }

    /// A process of another worker running as a job uid makes that uid busy.
    #[test]
    fn a_uid_with_a_process_on_the_host_is_in_use() {
        // Only root can start a process as another uid.
        if !gridx_e2e::skip::require(gridx_e2e::skip::Tool::Root) {
            return;
        }
        use std::os::unix::process::CommandExt;
        let uid = UID_BASE + UID_RANGE - 1;
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .uid(uid)
            .gid(uid)
            .spawn()
            .expect("spawn sleep");
        let seen = uids_in_use().contains(&uid);
        let _ = child.kill();
        let _ = child.wait();
        assert!(seen, "uid {uid} of a running process was not seen");
    }
}

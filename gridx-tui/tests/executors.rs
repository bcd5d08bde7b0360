//! The sandboxes, against hostile and ordinary jobs, with the real Docker engine and
//! the real bubblewrap. Each scenario runs once per executor as its own test. When an
//! executor cannot run here the test skips through the harness's one rule
//! (`gridx_e2e::skip`): reported outside CI, a failure with `CI=true`.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use gridx_e2e::skip::{self, Tool};
use gridx_proto::job::{RunEnd, RunOutcome};
use gridx_proto::{JobId, JobSpec, Language};
use gridx_tui::worker::exec::bubblewrap::BubblewrapExecutor;
use gridx_tui::worker::exec::docker::{self, DockerExecutor};
use gridx_tui::worker::exec::{Executor, JobRun, SandboxLimits, StopReason, StopToken};
use gridx_tui::worker::images;
use gridx_tui::worker::workspace::Workspace;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

const TEST_WORKER: &str = "gridx-executor-tests";

static IMAGES: OnceCell<Result<(), String>> = OnceCell::const_new();

/// The local engine with the runtime images built, or `None` after a skip.
async fn docker_engine() -> Option<bollard::Docker> {
    let engine = match docker::connect(Duration::from_secs(2)).await {
        Ok(engine) => engine,
        Err(why) => {
            skip::skip(Tool::Docker, why);
            return None;
        }
    };
    let images = gridx_proto::config::RuntimeImages::default();
    let built = IMAGES
        .get_or_init(|| async {
            images::build_all(&engine, &images, false, |line| eprintln!("{line}"))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await;
    if let Err(e) = built {
        panic!("the Docker engine is here but the runtime images could not be built: {e}");
    }
    Some(engine)
}

async fn docker_executor() -> Option<Arc<dyn Executor>> {
    let engine = docker_engine().await?;
    let images = gridx_proto::config::RuntimeImages::default();
    Some(Arc::new(
        DockerExecutor::new(engine, images, SandboxLimits::default(), TEST_WORKER.into()).await,
    ))
}

async fn bwrap_executor() -> Option<Arc<dyn Executor>> {
    if !skip::require(Tool::Bubblewrap) {
        return None;
    }
    match BubblewrapExecutor::detect(SandboxLimits::default()).await {
        Ok(executor) => Some(Arc::new(executor)),
        Err(why) => {
            skip::skip(Tool::Bubblewrap, why);
            None
        }
    }
}

fn spec(language: Language, code: &str) -> JobSpec {
    JobSpec {
        gpu_memory_mb: None,
        gpus: 0,
        language,
        code: code.into(),
        stdin: String::new(),
        timeout_s: 20,
        memory_mb: 256,
        priority: 0,
        max_output_bytes: 1024 * 1024,
    }
}

/// Runs a job in a fresh workspace and checks that nothing is left behind.
async fn run(executor: &Arc<dyn Executor>, spec: JobSpec) -> RunOutcome {
    run_with(executor, spec, StopToken::new()).await
}

async fn run_with(executor: &Arc<dyn Executor>, spec: JobSpec, stop: StopToken) -> RunOutcome {
    run_live(executor, spec, stop, None).await
}

async fn run_live(
    executor: &Arc<dyn Executor>,
    spec: JobSpec,
    stop: StopToken,
    live: Option<gridx_tui::worker::exec::output::LiveSink>,
) -> RunOutcome {
    let base = tempfile::tempdir().unwrap();
    let id = {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).unwrap();
        u64::from(u32::from_le_bytes(b))
    };
    let workspace = Workspace::create(base.path(), id, 1).unwrap();
    let job = JobRun {
        gpus: Default::default(),
        job_id: JobId(id),
        attempt: 1,
        spec,
        workspace: workspace.path().to_owned(),
        live,
    };
    let outcome = executor.run(job, stop).await;
    drop(workspace);
    assert_eq!(
        std::fs::read_dir(base.path()).unwrap().count(),
        0,
        "a workspace was left behind"
    );
    assert_no_leftover_container(id).await;
    outcome
}

/// No container of this job may exist once `run` returned (the executor removes it
/// on every path). Checked by the job's own label, so parallel tests do not interfere.
async fn assert_no_leftover_container(job: u64) {
    let out = tokio::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=io.gridx.job={job}.1"),
        ])
        .output()
        .await;
    if let Ok(out) = out
        && out.status.success()
    {
        let left = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            left.is_empty(),
            "job {job} left container(s) behind: {left}"
        );
    }
}

async fn hello_world_in_every_language(executor: Arc<dyn Executor>) {
    for (language, code) in [
        (
            Language::Python,
            "import sys\nprint('hello ' + sys.stdin.read().strip())",
        ),
        (
            Language::Node,
            "let d='';process.stdin.on('data',c=>d+=c).on('end',()=>console.log('hello '+d.trim()))",
        ),
        (
            Language::Bash,
            "read name; echo \"hello $name\"; echo oops >&2",
        ),
    ] {
        assert!(
            executor.languages().contains(&language),
            "{language} not offered"
        );
        let mut s = spec(language, code);
        s.stdin = "grid\n".into();
        let outcome = run(&executor, s).await;
        assert_eq!(outcome.end, RunEnd::Exited, "{language}: {outcome:?}");
        assert_eq!(outcome.exit_code, Some(0), "{language}: {outcome:?}");
        assert_eq!(outcome.stdout, "hello grid\n", "{language}: {outcome:?}");
        if language == Language::Bash {
            assert_eq!(outcome.stderr, "oops\n");
        }
    }
}

/// Each compiled language (and Ruby): hello world with stdin, a compile error that is
/// its own outcome with the compiler's words apart from stderr, and a program whose
/// own stderr and exit code come back as they are after a clean compile. The
/// languages run side by side.
async fn compiled_languages_compile_run_and_fail_to_compile(executor: Arc<dyn Executor>) {
    let cases = [
        (
            Language::C,
            "#include <stdio.h>\nint main(void){char n[64];if(scanf(\"%63s\",n)!=1)return 9;printf(\"hello %s\\n\",n);fprintf(stderr,\"oops\\n\");return 3;}",
            "int main(void){ return x; }",
        ),
        (
            Language::Cpp,
            "#include <iostream>\n#include <string>\nint main(){std::string n;std::cin>>n;std::cout<<\"hello \"<<n<<std::endl;std::cerr<<\"oops\"<<std::endl;return 3;}",
            "int main(){ undefined_thing(); }",
        ),
        (
            Language::Java,
            "import java.util.Scanner;\npublic class Main { public static void main(String[] a) { String n = new Scanner(System.in).next(); System.out.println(\"hello \" + n); System.err.println(\"oops\"); System.exit(3); } }",
            "public class Main { public static void main(String[] a) { int x = \"no\"; } }",
        ),
        (
            Language::Go,
            "package main\nimport (\"fmt\"; \"os\")\nfunc main() { var n string; fmt.Scan(&n); fmt.Println(\"hello \" + n); fmt.Fprintln(os.Stderr, \"oops\"); os.Exit(3) }",
            "package main\nfunc main() { x := 1 }",
        ),
        (
            Language::Rust,
            "use std::io::Read;\nfn main() { let mut n = String::new(); std::io::stdin().read_to_string(&mut n).unwrap(); println!(\"hello {}\", n.trim()); eprintln!(\"oops\"); std::process::exit(3); }",
            "fn main() { let x: u32 = \"no\"; }",
        ),
        (
            Language::Ruby,
            "n = STDIN.read.strip\nputs \"hello #{n}\"\nSTDERR.puts \"oops\"\nexit 3",
            "",
        ),
    ];
    let offered = executor.languages();
    let runs = cases.iter().map(|(language, good, bad)| {
        let executor = executor.clone();
        let offered = offered.clone();
        async move {
            assert!(
                offered.contains(language),
                "{language} not offered: {offered:?}"
            );
            let mut s = spec(*language, good);
            s.stdin = "grid\n".into();
            let outcome = run(&executor, s).await;
            assert_eq!(
                (outcome.end, outcome.exit_code),
                (RunEnd::Exited, Some(3)),
                "{language}: {outcome:?}"
            );
            assert_eq!(outcome.stdout, "hello grid\n", "{language}: {outcome:?}");
            assert_eq!(outcome.stderr, "oops\n", "{language}: {outcome:?}");
            if !language.is_compiled() {
                assert_eq!(outcome.compile_output, None, "{language}");
                return;
            }
            assert!(outcome.compile_output.is_some(), "{language}: {outcome:?}");
            let outcome = run(&executor, spec(*language, bad)).await;
            assert_eq!(outcome.end, RunEnd::CompileError, "{language}: {outcome:?}");
            assert_eq!(outcome.exit_code, None, "{language}");
            assert_eq!(outcome.stdout, "", "{language}");
            assert_eq!(outcome.stderr, "", "{language}: the program never ran");
            let words = outcome.compile_output.unwrap_or_default();
            assert!(
                words.to_lowercase().contains("main."),
                "{language}: {words}"
            );
        }
    });
    futures_util::future::join_all(runs).await;
}

/// What an executor hands the live sink while a job runs, put together, is the
/// job's final stdout and stderr, bytes turned into text as the worker host turns them
/// (`worker::live`): also for a compiled language, whose stderr goes live only after
/// the compiler's part, and for output past the job's cap.
async fn live_output_is_the_final_output(executor: Arc<dyn Executor>) {
    use gridx_tui::worker::exec::output::LiveSink;
    use gridx_tui::worker::live::LiveOutput;
    use std::sync::Mutex;
    let cases = [
        (
            Language::Bash,
            "for i in 1 2 3; do echo out $i; echo err $i >&2; sleep 0.2; done; printf '\\xff\\xfeend'",
            1024 * 1024,
        ),
        (
            Language::C,
            "#include <stdio.h>\n#include <unistd.h>\nint main(void){ int unused; for(int i=0;i<3;i++){printf(\"out %d\\n\",i);fflush(stdout);fprintf(stderr,\"err %d\\n\",i);usleep(200000);} return 0; }",
            1024 * 1024,
        ),
        (
            Language::Bash,
            "yes 0123456789 | head -c 100000; yes e | head -c 5000 >&2",
            4000,
        ),
    ];
    for (language, code, cap) in cases {
        let live = Arc::new(Mutex::new(LiveOutput::default()));
        let sink = {
            let live = live.clone();
            LiveSink(Arc::new(move |stream, bytes: &[u8]| {
                live.lock().unwrap().push(stream, bytes)
            }))
        };
        let mut s = spec(language, code);
        s.max_output_bytes = cap;
        let outcome = run_live(&executor, s, StopToken::new(), Some(sink)).await;
        assert_eq!(outcome.end, RunEnd::Exited, "{language}: {outcome:?}");
        let mut sent = [String::new(), String::new()];
        for piece in live.lock().unwrap().unsent(usize::MAX) {
            let at = piece.stream.index();
            assert_eq!(piece.offset as usize, sent[at].len());
            sent[at].push_str(&piece.text);
        }
        for (what, live, end) in [
            ("stdout", &sent[0], &outcome.stdout),
            ("stderr", &sent[1], &outcome.stderr),
        ] {
            assert!(
                end.starts_with(live.as_str()),
                "{language} {what}: {live:?} vs {end:?}"
            );
            // At most an incomplete character at the very end is held back.
            assert!(
                end.len() - live.len() <= 3,
                "{language} {what}: {live:?} vs {end:?}"
            );
        }
        if language == Language::C {
            assert_eq!(sent[1], "err 0\nerr 1\nerr 2\n", "no compiler words live");
            assert!(outcome.compile_output.is_some());
        }
    }
}

async fn exit_codes_are_reported(executor: Arc<dyn Executor>) {
    let outcome = run(&executor, spec(Language::Bash, "exit 3")).await;
    assert_eq!((outcome.end, outcome.exit_code), (RunEnd::Exited, Some(3)));
    let outcome = run(&executor, spec(Language::Python, "raise SystemExit(7)")).await;
    assert_eq!(outcome.exit_code, Some(7));
}

async fn the_network_is_unreachable(executor: Arc<dyn Executor>) {
    // A listener on the host's loopback: a sandbox sharing the host's network would
    // reach it. Only loopback is ever targeted.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let code = format!(
        "import socket\nprint(sorted(n for _, n in socket.if_nameindex()))\n\
         try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('REACHED HOST')\n\
         except OSError as e:\n    print('unreachable')\n"
    );
    let outcome = run(&executor, spec(Language::Python, &code)).await;
    assert_eq!(outcome.stdout, "['lo']\nunreachable\n", "{outcome:?}");
}

async fn a_fork_bomb_is_contained(executor: Arc<dyn Executor>) {
    let mut s = spec(
        Language::Bash,
        "bomb() { bomb | bomb & }; bomb; sleep 2; echo survived",
    );
    s.timeout_s = 5;
    let started = Instant::now();
    let outcome = run(&executor, s).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(outcome.end, RunEnd::Exited | RunEnd::TimedOut),
        "{outcome:?}"
    );
    // The host is fine: another job runs normally right after.
    let outcome = run(&executor, spec(Language::Bash, "echo fine")).await;
    assert_eq!(outcome.stdout, "fine\n");
}

async fn a_memory_bomb_ends_as_oom(executor: Arc<dyn Executor>) {
    let mut s = spec(
        Language::Python,
        "a = []\nwhile True:\n    a.append(bytearray(8 * 1024 * 1024))\n",
    );
    s.memory_mb = 64;
    let outcome = run(&executor, s).await;
    assert_eq!(outcome.end, RunEnd::Oom, "{outcome:?}");
}

async fn an_infinite_loop_times_out(executor: Arc<dyn Executor>) {
    let mut s = spec(Language::Python, "while True:\n    pass\n");
    s.timeout_s = 2;
    let started = Instant::now();
    let outcome = run(&executor, s).await;
    assert_eq!(outcome.end, RunEnd::TimedOut, "{outcome:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "timed out after {:?}",
        started.elapsed()
    );
}

async fn an_output_flood_is_cut(executor: Arc<dyn Executor>) {
    let code = "import sys\nchunk = 'x' * (1024 * 1024)\nfor _ in range(100):\n    sys.stdout.write(chunk)\nsys.stdout.flush()\nprint('done', file=sys.stderr)\n";
    let outcome = run(&executor, spec(Language::Python, code)).await;
    assert_eq!(outcome.end, RunEnd::Exited, "{:?}", outcome.message);
    assert!(outcome.stdout_truncated);
    assert_eq!(outcome.stdout.len(), 1024 * 1024);
    assert_eq!(outcome.stderr, "done\n");
    let outcome = run(&executor, spec(Language::Bash, "echo still-healthy")).await;
    assert_eq!(outcome.stdout, "still-healthy\n");
}

async fn writes_outside_the_workspace_fail(executor: Arc<dyn Executor>) {
    let code = "for path in ['/etc/gridx-escape', '/usr/gridx-escape', '/gridx-escape']:\n\
        \x20   try:\n        open(path, 'w').write('x')\n        print('WROTE', path)\n\
        \x20   except OSError:\n        print('denied')\n\
        open('/workspace/ok', 'w').write('x')\nopen('/tmp/ok', 'w').write('x')\nprint('workspace ok')\n";
    let outcome = run(&executor, spec(Language::Python, code)).await;
    assert_eq!(
        outcome.stdout, "denied\ndenied\ndenied\nworkspace ok\n",
        "{outcome:?}"
    );
    assert!(!std::path::Path::new("/etc/gridx-escape").exists());
}

async fn the_job_runs_unprivileged(executor: Arc<dyn Executor>) {
    let outcome = run(
        &executor,
        spec(
            Language::Bash,
            "id -u; cat /proc/self/status | grep ^CapEff",
        ),
    )
    .await;
    assert_eq!(
        outcome.stdout, "65534\nCapEff:\t0000000000000000\n",
        "{outcome:?}"
    );
}

async fn cancel_stops_the_job_quickly(executor: Arc<dyn Executor>) {
    let stop = StopToken::new();
    let trigger = stop.clone();
    let stopped_at = Arc::new(std::sync::Mutex::new(None));
    let mark = stopped_at.clone();
    tokio::spawn(async move {
        // A cancel that comes while the job runs; the job never ends by itself.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        *mark.lock().unwrap() = Some(Instant::now());
        trigger.stop(StopReason::Cancelled);
    });
    let outcome = run_with(
        &executor,
        spec(Language::Bash, "while true; do :; done"),
        stop,
    )
    .await;
    assert_eq!(outcome.end, RunEnd::Cancelled, "{outcome:?}");
    let at = stopped_at.lock().unwrap().expect("stop was sent");
    assert!(
        at.elapsed() < Duration::from_secs(4),
        "cleanup took {:?} after cancel",
        at.elapsed()
    );
}

/// A job that writes what bwrap writes when its sandbox setup fails, and exits 1 as
/// bwrap then does, is still a job that failed on its own: no `sandbox_error`, no
/// refund. (bubblewrap's real setup failures are tested in exec/bubblewrap.rs.)
async fn a_job_cannot_claim_a_sandbox_failure(executor: Arc<dyn Executor>) {
    let code = "echo 'bwrap: Creating new namespace failed: Resource temporarily unavailable' >&2\n\
                echo \"bwrap: Can't find source path /usr: No such file or directory\" >&2\n\
                exit 1\n";
    let outcome = run(&executor, spec(Language::Bash, code)).await;
    assert_eq!(
        (outcome.end, outcome.exit_code, outcome.message.as_deref()),
        (RunEnd::Exited, Some(1), None),
        "{outcome:?}"
    );
    assert_eq!(
        outcome.final_status(),
        (
            gridx_proto::JobStatus::Failed,
            Some(gridx_proto::FailureReason::NonZeroExit)
        )
    );
    assert!(
        outcome
            .stderr
            .starts_with("bwrap: Creating new namespace failed"),
        "{outcome:?}"
    );
}

/// A root-run worker's default work dir is under /root (mode 0700): the job's
/// unprivileged uid must not need to reach it.
async fn works_from_a_private_work_dir(executor: Arc<dyn Executor>) {
    use std::os::unix::fs::PermissionsExt;
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let workspace = Workspace::create(&private.path().join("workspaces"), 7, 1).unwrap();
    let job = JobRun {
        gpus: Default::default(),
        job_id: JobId(7),
        attempt: 1,
        spec: spec(Language::Python, "print('private ok')"),
        workspace: workspace.path().to_owned(),
        live: None,
    };
    let outcome = executor.run(job, StopToken::new()).await;
    assert_eq!(outcome.stdout, "private ok\n", "{outcome:?}");
}

macro_rules! for_each_executor {
    ($($scenario:ident),* $(,)?) => {
        mod on_docker {
            $(
                #[tokio::test]
                async fn $scenario() {
                    if let Some(executor) = super::docker_executor().await {
                        super::$scenario(executor).await;
                    }
                }
            )*
        }
        mod on_bubblewrap {
            $(
                #[tokio::test]
                async fn $scenario() {
                    if let Some(executor) = super::bwrap_executor().await {
                        super::$scenario(executor).await;
                    }
                }
            )*
        }
    };
}

for_each_executor!(
    hello_world_in_every_language,
    live_output_is_the_final_output,
    compiled_languages_compile_run_and_fail_to_compile,
    exit_codes_are_reported,
    the_network_is_unreachable,
    a_fork_bomb_is_contained,
    a_memory_bomb_ends_as_oom,
    an_infinite_loop_times_out,
    an_output_flood_is_cut,
    writes_outside_the_workspace_fail,
    the_job_runs_unprivileged,
    cancel_stops_the_job_quickly,
    works_from_a_private_work_dir,
    a_job_cannot_claim_a_sandbox_failure,
);

// Docker only: what the other sandboxes do not have (a container outliving its
// worker, the engine's memory limit, the engine's runtimes).

/// `docker ARGS`, stdout trimmed; panics with stderr on failure.
fn docker_cli(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Removes a test worker's containers when the test ends, passed or failed (the test
/// itself checks that `remove_orphans` already did).
struct RemoveOnDrop(String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let filter = format!("label=io.gridx.worker={}", self.0);
        if let Ok(out) = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = std::process::Command::new("docker")
                    .args(["rm", "-f", id])
                    .output();
            }
        }
    }
}

fn rfc3339(text: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// A worker that dies (here: its `run` future aborted, so none of its cleanup runs,
/// as after SIGKILL) cannot kill its job. The container must still end by itself at
/// the job's timeout plus the grace, stay stopped, and be removed by the next start's
/// `remove_orphans`.
async fn a_dead_workers_container_ends_at_its_deadline(pooled: bool, code: &str) {
    let Some(engine) = docker_engine().await else {
        return;
    };
    // A worker name of its own: `remove_orphans` below must not touch the containers
    // of the tests running beside this one.
    let worker = format!(
        "gridx-deadline-{}-{}",
        if pooled { "pool" } else { "fresh" },
        std::process::id()
    );
    let _cleanup = RemoveOnDrop(worker.clone());
    let mut executor = DockerExecutor::new(
        engine,
        gridx_proto::config::RuntimeImages::default(),
        SandboxLimits::default(),
        worker.clone(),
    )
    .await;
    if pooled {
        // Pooled containers are created before any job's timeout is known.
        executor = executor.with_pool(1).await;
    }
    let executor = Arc::new(executor);
    let timeout_s = 3;
    let mut s = spec(Language::Bash, code);
    s.timeout_s = timeout_s;
    let base = tempfile::tempdir().unwrap();
    let workspace = Workspace::create(base.path(), 1, 1).unwrap();
    let job = JobRun {
        gpus: Default::default(),
        job_id: JobId(1),
        attempt: 1,
        spec: s,
        workspace: workspace.path().to_owned(),
        live: None,
    };
    let running = || {
        docker_cli(&[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=io.gridx.worker={worker}"),
            "--filter",
            "status=running",
        ])
    };
    let worker_task = {
        let executor = executor.clone();
        tokio::spawn(async move { executor.run(job, StopToken::new()).await })
    };
    let polling = Instant::now();
    let id = loop {
        let ids = running();
        if !ids.is_empty() {
            break ids;
        }
        assert!(
            polling.elapsed() < Duration::from_secs(30),
            "the job's container never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Let the stdin handoff finish (the job starts its sleep), then the worker dies.
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker_task.abort();
    match worker_task.await {
        Ok(outcome) => panic!("the job ended before its worker died: {outcome:?}"),
        Err(e) => assert!(e.is_cancelled(), "{e}"),
    }
    let bound = Duration::from_secs(u64::from(timeout_s + docker::DEADLINE_GRACE_S + 5));
    while docker_cli(&["inspect", "--format", "{{.State.Running}}", &id]) == "true" {
        assert!(
            polling.elapsed() < bound,
            "the container of a dead worker still runs {:?} after it was created",
            polling.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let state = docker_cli(&[
        "inspect",
        "--format",
        "{{.State.StartedAt}} {{.State.FinishedAt}} {{.State.ExitCode}}",
        &id,
    ]);
    let parts: Vec<&str> = state.split(' ').collect();
    let lived = rfc3339(parts[1]) - rfc3339(parts[0]);
    eprintln!(
        "the orphaned container ({}) lived {lived} and exited {}",
        if pooled { "pooled" } else { "fresh" },
        parts[2]
    );
    // It ran the whole timeout (the deadline is not early), and ended within the grace.
    assert!(
        lived >= time::Duration::seconds(i64::from(timeout_s)),
        "lived only {lived}"
    );
    assert!(
        lived <= time::Duration::seconds(i64::from(timeout_s + docker::DEADLINE_GRACE_S + 1)),
        "lived {lived}"
    );
    // Killed by `timeout --signal=KILL`, not ended by its own sleep.
    assert_eq!(parts[2], "137", "{state}");
    // Nothing cleaned up after the dead worker: the stopped container is still there
    // until the next start removes it.
    let removed = executor.remove_orphans().await;
    assert!(removed >= 1, "remove_orphans removed {removed}");
    let left = docker_cli(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=io.gridx.worker={worker}"),
    ]);
    assert!(left.is_empty(), "left behind: {left}");
}

const SLEEPER: &str = "echo started; sleep 60; echo NOT KILLED";

#[tokio::test]
async fn docker_a_dead_workers_container_ends_at_its_deadline() {
    a_dead_workers_container_ends_at_its_deadline(false, SLEEPER).await;
}

#[tokio::test]
async fn docker_a_dead_workers_pooled_container_ends_at_its_deadline() {
    a_dead_workers_container_ends_at_its_deadline(true, SLEEPER).await;
}

/// The deadline's holder is the container's PID 1: a job can neither stop it (which
/// would freeze its timer) nor kill it, by itself or with everything it may signal.
#[tokio::test]
async fn docker_a_job_cannot_stop_or_kill_its_deadline() {
    let code = "kill -STOP $PPID 1; kill -9 $PPID 1; kill -STOP -1; kill -9 -1; \
                echo started; sleep 60; echo NOT KILLED";
    a_dead_workers_container_ends_at_its_deadline(false, code).await;
}

/// Docker reads a memory limit of 0 as "unlimited": a spec's 0 gets the floor.
#[tokio::test]
async fn docker_memory_zero_is_not_unlimited() {
    let Some(executor) = docker_executor().await else {
        return;
    };
    // The job reads its own cgroup's limit (v2, else v1).
    let mut s = spec(
        Language::Bash,
        "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
    );
    s.memory_mb = 0;
    let outcome = run(&executor, s).await;
    assert_eq!(outcome.end, RunEnd::Exited, "{outcome:?}");
    assert_eq!(
        outcome.stdout.trim(),
        (u64::from(docker::MIN_MEMORY_MB) * 1024 * 1024).to_string(),
        "{outcome:?}"
    );
}

/// `docker_runtime = "runsc"`: where the engine has gVisor, jobs run in it; where it
/// does not, the worker refuses to start the Docker executor, naming the runtime and
/// the ones the engine has, in auto mode too (never a silent fallback).
#[tokio::test]
async fn docker_runsc_runs_jobs_under_gvisor_or_is_refused() {
    use gridx_proto::config::{ExecutorChoice, WorkerConfig};
    use gridx_tui::worker::exec::{SelectError, select_executor};
    let Some(engine) = docker_engine().await else {
        return;
    };
    let mut have: Vec<String> = engine
        .info()
        .await
        .unwrap()
        .runtimes
        .unwrap_or_default()
        .into_keys()
        .collect();
    have.sort();
    let config = |executor, runtime: &str| WorkerConfig {
        executor,
        docker_runtime: Some(runtime.into()),
        ..WorkerConfig::default()
    };
    let refusal = |selected: Result<Arc<dyn Executor>, SelectError>| match selected {
        Ok(_) => panic!("started with a runtime the engine does not have"),
        Err(e) => e.to_string(),
    };
    // A runtime no engine has: refused on every machine, in both modes.
    for mode in [ExecutorChoice::Docker, ExecutorChoice::Auto] {
        let message =
            refusal(select_executor(&config(mode, "gridx-no-such-runtime"), TEST_WORKER).await);
        assert!(message.contains("\"gridx-no-such-runtime\""), "{message}");
        for name in &have {
            assert!(
                message.contains(name.as_str()),
                "{name} not listed: {message}"
            );
        }
    }
    let selected = select_executor(&config(ExecutorChoice::Docker, "runsc"), TEST_WORKER).await;
    if !have.iter().any(|r| r == "runsc") {
        let message = refusal(selected);
        assert!(
            message.contains("no runtime \"runsc\"") && message.contains("runc"),
            "{message}"
        );
        let message =
            refusal(select_executor(&config(ExecutorChoice::Auto, "runsc"), TEST_WORKER).await);
        assert!(message.contains("no runtime \"runsc\""), "{message}");
        return;
    }
    let Ok(gvisor) = selected else {
        panic!("the engine has runsc but the executor refused it");
    };
    let code = "cat /proc/version; dmesg 2>&1 | head -n 3";
    let under_gvisor = run(&gvisor, spec(Language::Bash, code)).await;
    let under_runc = run(
        &docker_executor().await.unwrap(),
        spec(Language::Bash, code),
    )
    .await;
    assert_eq!(under_gvisor.end, RunEnd::Exited, "{under_gvisor:?}");
    assert!(
        under_gvisor.stdout.contains("gVisor")
            && !under_runc.stdout.contains("gVisor")
            && under_gvisor.stdout.lines().next() != under_runc.stdout.lines().next(),
        "not gVisor's kernel: {under_gvisor:?} (runc: {under_runc:?})"
    );
}

// GPUs (docs/worker.md, "GPUs"). No GPU here: the lent GPUs' device nodes are stand-in
// files under a temporary /dev, which is all the sandbox's plumbing sees of them. A
// real GPU is the device check's (`.ci/gpu-check`).

/// A loan of two fake GPUs whose device nodes are files in `dev`.
fn fake_loan(dev: &std::path::Path) -> gridx_tui::worker::gpus::Loan {
    use gridx_tui::worker::gpus::{GpuInfo, Loan};
    for node in ["nvidia0", "nvidia3", "nvidiactl", "nvidia-uvm"] {
        std::fs::write(dev.join(node), format!("the host's {node}\n")).unwrap();
    }
    let info = |index: u32, minor: u32| GpuInfo {
        index,
        name: format!("Fake {index}"),
        memory_mb: 16_000,
        minor,
        uuid: Some(format!("GPU-fake-{index}")),
    };
    Loan::choose(
        &gridx_proto::gpu::GpuLending::All,
        Ok(vec![info(0, 0), info(1, 3)]),
    )
    .unwrap()
    .with_dev_dir(dev)
}

#[tokio::test]
async fn bubblewrap_a_job_sees_only_the_gpus_it_was_given() {
    let Some(executor) = bwrap_executor().await else {
        return;
    };
    let dev = tempfile::tempdir().unwrap();
    let loan = fake_loan(dev.path());
    executor.gpu_support(&loan).expect("the nodes exist");
    let probe = "ls /dev | grep nvidia | sort | tr '\\n' ' '; echo; \
                 echo \"cuda=${CUDA_VISIBLE_DEVICES-unset}\"; cat /dev/nvidia3 2>&1";
    let mut with = spec(Language::Bash, probe);
    with.gpus = 1;
    let grant = loan
        .grant(with.gpu_request(), &[1], &[])
        .expect("a valid pick");
    let base = tempfile::tempdir().unwrap();
    let workspace = Workspace::create(base.path(), 7, 1).unwrap();
    let job = JobRun {
        gpus: grant,
        job_id: JobId(7),
        attempt: 1,
        spec: with,
        workspace: workspace.path().to_owned(),
        live: None,
    };
    let outcome = executor.run(job, StopToken::new()).await;
    assert_eq!(outcome.exit_code, Some(0), "{outcome:?}");
    assert_eq!(
        outcome.stdout, "nvidia-uvm nvidia3 nvidiactl \ncuda=GPU-fake-1\nthe host's nvidia3\n",
        "GPU 1's node (minor 3) and the shared ones, not GPU 0's: {outcome:?}"
    );
    // A job that asked for none sees no GPU node at all.
    let outcome = run(&executor, spec(Language::Bash, probe)).await;
    assert_eq!(
        outcome.stdout, "\ncuda=unset\ncat: /dev/nvidia3: No such file or directory\n",
        "{outcome:?}"
    );
    // A loan whose nodes are missing is refused at start, naming them.
    std::fs::remove_file(dev.path().join("nvidia3")).unwrap();
    let why = executor.gpu_support(&loan).unwrap_err();
    assert!(why.contains("nvidia3"), "{why}");
}

#[tokio::test]
async fn docker_without_the_nvidia_runtime_refuses_to_lend_gpus_and_hides_them() {
    let Some(executor) = docker_executor().await else {
        return;
    };
    let dev = tempfile::tempdir().unwrap();
    let loan = fake_loan(dev.path());
    let runtimes = docker_cli(&["info", "--format", "{{json .Runtimes}}"]);
    if runtimes.contains("\"nvidia\"") {
        executor
            .gpu_support(&loan)
            .expect("the NVIDIA runtime is here");
    } else {
        let why = executor.gpu_support(&loan).unwrap_err();
        assert!(why.contains("NVIDIA Container Toolkit"), "{why}");
    }
    // A job without GPUs is told to see none, should the NVIDIA runtime be the
    // engine's default.
    let outcome = run(
        &executor,
        spec(
            Language::Bash,
            "echo \"$NVIDIA_VISIBLE_DEVICES\"; ls /dev | grep -c nvidia",
        ),
    )
    .await;
    assert_eq!(outcome.stdout, "void\n0\n", "{outcome:?}");
}

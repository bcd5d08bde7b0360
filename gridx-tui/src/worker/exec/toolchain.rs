//! How a job's source becomes a running program inside a sandbox: an interpreter's
//! command line, or, for a compiled language, a small bash wrapper that compiles into
//! the sandbox's `/tmp` and then `exec`s the program. Every executor (Docker,
//! bubblewrap, unsandboxed) takes its command from here, so the languages behave the
//! same on all of them.
//!
//! The compile runs in the job's own sandbox, under the job's limits (memory, pids,
//! CPU, `/tmp`'s size, the seccomp filter) and inside its `timeout_s`, which covers
//! compile and run together (docs/jobs.md, "Compiled languages").
//!
//! The compiler's output must reach the worker apart from the program's. The wrapper
//! writes it to a file, then to stderr, followed by a line `MARKER STATUS BYTES`: the
//! marker is a random value the executor makes for this attempt and hands to the
//! wrapper as an argument, so no ordinary compiler message can pose as that line. The
//! program itself runs only after it, so everything after the marker line is the
//! program's stderr. [`split_compile_output`] takes the outcome apart again.
//!
//! The marker is not a secret from the job: it is in the wrapper's command line, which
//! a source can read while it compiles (`#include "/proc/1/cmdline"`). A source that
//! does so can only misclassify its own job (a compile error shown as output, or the
//! reverse), and its output then differs from run to run, so result checks find no
//! quorum and refund it: it harms nobody else.

use gridx_proto::Language;
use gridx_proto::job::{RunEnd, RunOutcome};
use gridx_proto::protocol::MAX_COMPILE_OUTPUT_BYTES;
use std::path::Path;

/// Where the wrapper builds inside a sandbox: its private tmpfs.
pub const SANDBOX_BUILD_DIR: &str = "/tmp/gridx-build";

/// The program each language needs on the host (bubblewrap) for a worker to offer it.
/// All are looked for under /usr, which is what the sandbox mounts.
pub fn required_programs(language: Language) -> &'static [&'static str] {
    match language {
        Language::Python => &["/usr/bin/python3"],
        Language::Node => &["/usr/bin/node"],
        Language::Bash => &["/usr/bin/bash"],
        Language::C => &["/usr/bin/gcc"],
        Language::Cpp => &["/usr/bin/g++"],
        Language::Java => &["/usr/bin/javac", "/usr/bin/java"],
        Language::Go => &["/usr/bin/go"],
        Language::Rust => &["/usr/bin/rustc"],
        Language::Ruby => &["/usr/bin/ruby"],
    }
}

/// Whether every program `language` needs is on this host.
pub fn available_on_host(language: Language) -> bool {
    required_programs(language)
        .iter()
        .all(|p| Path::new(p).exists())
}

/// Host configuration a toolchain reads from /etc, which the sandbox otherwise does
/// not mount: Debian's OpenJDK keeps its `conf` (java.security and the rest) in
/// `/etc/java-N-openjdk`, and the JVM will not start without it. Mounted read-only.
pub fn host_config_dirs() -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir("/etc") else {
        return Vec::new();
    };
    let mut dirs: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("java-") && n.ends_with("-openjdk"))
        })
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// What the sandbox needs to know to run one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    pub language: Language,
    /// The source's path inside the sandbox.
    pub source: &'a str,
    /// An empty or missing directory the compiler may write to, private to this
    /// attempt: [`SANDBOX_BUILD_DIR`] in a sandbox.
    pub build_dir: &'a str,
    /// The job's memory limit: the JVM sizes its heap from it.
    pub memory_mb: u32,
    /// CPUs the job may use (from `cpu_millicores`, rounded up): bounds the threads
    /// of the JVM and the Go compiler, whatever the host's core count.
    pub cpus: u32,
}

/// The command line that runs the job. For a compiled language `marker` is the
/// attempt's marker (see the module's doc), passed to the wrapper as its first
/// argument; interpreted languages ignore it.
pub fn command(target: &Target<'_>, marker: &str) -> Vec<String> {
    let source = target.source;
    match target.language {
        Language::Python => vec!["python3".into(), "-u".into(), source.into()],
        Language::Node => vec!["node".into(), source.into()],
        Language::Bash => vec!["bash".into(), source.into()],
        Language::Ruby => vec!["ruby".into(), source.into()],
        compiled => vec![
            "bash".into(),
            "-c".into(),
            wrapper(compiled, target),
            "gridx-compile".into(),
            marker.into(),
            source.into(),
        ],
    }
}

/// The compile command and the run command of a compiled language, as bash text;
/// `$2` is the source's path.
fn steps(language: Language, target: &Target<'_>) -> (String, String) {
    let mem = target.memory_mb.max(16);
    let cpus = target.cpus.max(1);
    let dir = shell_quote(target.build_dir);
    let out = format!("{dir}/main");
    match language {
        Language::C => (
            format!("gcc -O2 -o {out} \"$2\" -lm"),
            format!("exec {out}"),
        ),
        Language::Cpp => (format!("g++ -O2 -o {out} \"$2\""), format!("exec {out}")),
        // The JVM reads neither the job's cgroup (bubblewrap mounts no /sys) nor its
        // RLIMIT_DATA: it is told the memory and CPUs it has, or it reserves a heap
        // of a quarter of the host's memory and starts a thread per host core.
        Language::Java => {
            let jvm = format!(
                "-XX:+UseSerialGC -XX:MaxRAM={mem}m -XX:ActiveProcessorCount={cpus} -Xss8m"
            );
            let javac_jvm: Vec<String> = jvm.split(' ').map(|o| format!("-J{o}")).collect();
            (
                format!(
                    "javac {} -J-XX:TieredStopAtLevel=1 -encoding UTF-8 -d {dir} \"$2\"",
                    javac_jvm.join(" ")
                ),
                format!("exec java {jvm} -cp {dir} Main"),
            )
        }
        // Go builds in its own cache under /tmp, without cgo (no C toolchain needed),
        // with as many threads as the job has CPUs.
        Language::Go => (
            format!(
                "GOCACHE={dir}/cache GOPATH={dir}/go GOMAXPROCS={cpus} \
                 CGO_ENABLED=0 GO111MODULE=off go build -o {out} \"$2\""
            ),
            format!("exec {out}"),
        ),
        Language::Rust => (
            format!("rustc --edition 2021 -O -C codegen-units={cpus} -o {out} \"$2\""),
            format!("exec {out}"),
        ),
        // Interpreted: never wrapped (see `command`).
        Language::Python | Language::Node | Language::Bash | Language::Ruby => {
            (String::from("true"), String::new())
        }
    }
}

/// The wrapper script of a compiled language: `$1` the marker, `$2` the source.
fn wrapper(language: Language, target: &Target<'_>) -> String {
    let (compile, run) = steps(language, target);
    let dir = shell_quote(target.build_dir);
    let log = format!("{dir}/compile.txt");
    format!(
        "mkdir -p {dir} || exit 125\n\
         ( {compile} ) > {log} 2>&1 < /dev/null\n\
         s=$?\n\
         n=$(wc -c < {log})\n\
         head -c {MAX_COMPILE_OUTPUT_BYTES} {log} >&2\n\
         printf '\\n%s %d %d\\n' \"$1\" \"$s\" \"$n\" >&2\n\
         rm -f {log}\n\
         [ \"$s\" -eq 0 ] || exit 1\n\
         {run}\n"
    )
}

/// A fresh marker for one attempt: 128 random bits in hex. Without a random source
/// a fixed text is used; only the job's own classification could then be fooled, by
/// a compiler message that prints it.
pub fn new_marker() -> String {
    let mut bytes = [0u8; 16];
    match getrandom::fill(&mut bytes) {
        Ok(()) => format!("gridx-compiled-{}", hex::encode(bytes)),
        Err(_) => "gridx-compiled-0000".into(),
    }
}

/// Quotes one word for a POSIX shell.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:+,@%".contains(&b))
    {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// For a compiled language, moves the compiler's messages from the outcome's stderr
/// to `compile_output`, and makes a failed compile `compile_error`. An outcome whose
/// marker line is missing ended during the compile (time limit, memory, cancel): what
/// the compiler had printed is not recoverable then, and the end stays as it was with
/// a message saying the program never ran.
///
/// `max_stderr` is the job's own cap on stderr, which applies to the program's part
/// alone: the executor captured [`stderr_capacity`] bytes to make room for the
/// compiler's.
pub fn split_compile_output(
    language: Language,
    marker: &str,
    max_stderr: usize,
    outcome: &mut RunOutcome,
) {
    if !language.is_compiled() {
        return;
    }
    let needle = format!("\n{marker} ");
    let Some(at) = outcome.stderr.find(&needle) else {
        if matches!(outcome.end, RunEnd::TimedOut | RunEnd::Oom) && outcome.stdout.is_empty() {
            outcome.compile_output = Some(String::new());
            outcome.message.get_or_insert_with(|| {
                "it ended while compiling: the program never ran (the time limit covers the compile)"
                    .into()
            });
        }
        return;
    };
    let rest = &outcome.stderr[at + needle.len()..];
    let (line, program_stderr) = rest.split_once('\n').unwrap_or((rest, ""));
    let mut fields = line.split(' ');
    let status: Option<i32> = fields.next().and_then(|s| s.parse().ok());
    let total: Option<usize> = fields.next().and_then(|s| s.parse().ok());
    let mut compile = outcome.stderr[..at].to_owned();
    if let Some(total) = total
        && total > compile.len()
    {
        let note = format!("\n[compile output cut: {total} bytes in all]");
        cut_at_char(&mut compile, MAX_COMPILE_OUTPUT_BYTES - note.len());
        compile.push_str(&note);
    }
    cut_at_char(&mut compile, MAX_COMPILE_OUTPUT_BYTES);
    let mut program_stderr = program_stderr.to_owned();
    if program_stderr.len() > max_stderr {
        cut_at_char(&mut program_stderr, max_stderr);
        outcome.stderr_truncated = true;
    }
    outcome.stderr = program_stderr;
    outcome.compile_output = Some(compile);
    if status != Some(0) && outcome.end == RunEnd::Exited {
        outcome.end = RunEnd::CompileError;
        outcome.exit_code = None;
    }
}

/// How many bytes of stderr an executor captures for a job whose own cap is `cap`:
/// for a compiled language, room for the compiler's messages and the marker line too.
pub fn stderr_capacity(language: Language, cap: usize) -> usize {
    if language.is_compiled() {
        cap.saturating_add(MAX_COMPILE_OUTPUT_BYTES + 256)
    } else {
        cap
    }
}

/// Cuts `text` to at most `max` bytes, at a character boundary.
fn cut_at_char(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(stderr: &str, end: RunEnd, exit: Option<i32>) -> RunOutcome {
        RunOutcome {
            end,
            exit_code: exit,
            stdout: String::new(),
            stderr: stderr.into(),
            stdout_truncated: false,
            stderr_truncated: false,
            duration_ms: 5,
            message: None,
            compile_output: None,
        }
    }

    fn target(language: Language) -> Target<'static> {
        Target {
            language,
            source: "/workspace/x",
            build_dir: SANDBOX_BUILD_DIR,
            memory_mb: 256,
            cpus: 1,
        }
    }

    #[test]
    fn interpreted_languages_run_their_interpreter_and_compiled_ones_a_wrapper() {
        assert_eq!(
            command(&target(Language::Python), "m"),
            ["python3", "-u", "/workspace/x"]
        );
        assert_eq!(
            command(&target(Language::Ruby), "m"),
            ["ruby", "/workspace/x"]
        );
        for l in Language::ALL.into_iter().filter(|l| l.is_compiled()) {
            let c = command(&target(l), "MARK");
            assert_eq!(c[0], "bash");
            assert_eq!(&c[3..], ["gridx-compile", "MARK", "/workspace/x"], "{l}");
            assert!(
                c[2].contains("exec "),
                "{l}: the program replaces the wrapper"
            );
        }
    }

    #[test]
    fn a_failed_compile_is_a_compile_error_with_the_compilers_words() {
        let mut o = outcome(
            "main.c:1: error: expected ';'\nMARK 1 29\n",
            RunEnd::Exited,
            Some(1),
        );
        split_compile_output(Language::C, "MARK", 1000, &mut o);
        assert_eq!(o.end, RunEnd::CompileError);
        assert_eq!(o.exit_code, None);
        assert_eq!(
            o.compile_output.as_deref(),
            Some("main.c:1: error: expected ';'")
        );
        assert_eq!(o.stderr, "");
    }

    #[test]
    fn after_a_good_compile_the_programs_stderr_is_its_own() {
        let mut o = outcome(
            "warning: unused\nMARK 0 15\nprogram says\nMARK 1 2\n",
            RunEnd::Exited,
            Some(3),
        );
        split_compile_output(Language::Rust, "MARK", 1000, &mut o);
        assert_eq!(o.end, RunEnd::Exited);
        assert_eq!(o.exit_code, Some(3));
        assert_eq!(o.compile_output.as_deref(), Some("warning: unused"));
        assert_eq!(
            o.stderr, "program says\nMARK 1 2\n",
            "the program's text is untouched"
        );
    }

    #[test]
    fn a_compile_cut_short_says_the_program_never_ran() {
        let mut o = outcome("", RunEnd::TimedOut, None);
        split_compile_output(Language::Java, "MARK", 1000, &mut o);
        assert_eq!(o.end, RunEnd::TimedOut);
        assert_eq!(o.compile_output.as_deref(), Some(""));
        assert!(o.message.as_deref().unwrap_or("").contains("never ran"));
        let mut python = outcome("x\nMARK 1 1\n", RunEnd::Exited, Some(1));
        split_compile_output(Language::Python, "MARK", 1000, &mut python);
        assert_eq!(python.compile_output, None, "interpreted: untouched");
        assert_eq!(python.end, RunEnd::Exited);
    }

    #[test]
    fn long_compile_output_is_cut_with_a_note_and_within_the_bound() {
        let long = "é".repeat(MAX_COMPILE_OUTPUT_BYTES / 2);
        let mut o = outcome(&format!("{long}\nMARK 1 999999\n"), RunEnd::Exited, Some(1));
        split_compile_output(Language::Cpp, "MARK", 1000, &mut o);
        let text = o.compile_output.unwrap_or_default();
        assert!(text.len() <= MAX_COMPILE_OUTPUT_BYTES);
        assert!(text.ends_with("[compile output cut: 999999 bytes in all]"));
    }

    #[test]
    fn the_programs_own_cap_applies_to_its_part_alone() {
        let mut o = outcome(
            &format!("{}\nMARK 0 5000\n{}", "w".repeat(5000), "e".repeat(20)),
            RunEnd::Exited,
            Some(0),
        );
        split_compile_output(Language::Go, "MARK", 10, &mut o);
        assert_eq!(o.stderr, "e".repeat(10));
        assert!(o.stderr_truncated);
        assert_eq!(o.compile_output.map(|c| c.len()), Some(5000));
        assert_eq!(stderr_capacity(Language::Python, 10), 10);
        assert!(stderr_capacity(Language::Go, 10) > MAX_COMPILE_OUTPUT_BYTES);
    }

    #[test]
    fn shell_quoting_is_inert() {
        assert_eq!(shell_quote("/workspace/main.c"), "/workspace/main.c");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's $HOME"), r"'it'\''s $HOME'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn markers_differ() {
        assert_ne!(new_marker(), new_marker());
    }
}

//! Checks of a binary's `completions SHELL` and `man [--out DIR]`, shared by the
//! completion tests of `gridx-server` and `gridx-tui`: every shell's script offers
//! every subcommand, bash accepts its script and completes with it, and the man pages
//! are roff naming every command.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A binary under test and its subcommand paths (`["user", "add"]`).
pub struct Completions {
    pub bin: &'static str,
    pub name: &'static str,
    pub paths: Vec<Vec<String>>,
}

/// Whether `word` appears as a whole word (not inside `commands` for `man`).
fn mentions(text: &str, word: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .any(|token| token == word)
}

/// The escaped form roff uses for a page name in text: `gridx\-server\-user`.
fn roff(name: &str) -> String {
    name.replace('-', "\\-")
}

impl Completions {
    /// Runs the binary with a config file that does not exist: an explicit `--config`
    /// must exist, so this fails if the command reads the config (these must not).
    pub fn stdout_of(&self, args: &[&str]) -> String {
        let out = Command::new(self.bin)
            .args(["--config", "/nonexistent/gridx.toml"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.name));
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    pub fn assert_every_shell_offers_every_subcommand(&self) {
        for shell in ["bash", "zsh", "fish"] {
            let script = self.stdout_of(&["completions", shell]);
            assert!(!script.trim().is_empty(), "{shell}: empty script");
            for path in &self.paths {
                let last = path.last().map(String::as_str).unwrap_or_default();
                assert!(mentions(&script, last), "{shell}: {path:?} missing");
            }
        }
    }

    /// Writes the bash script into `dir` after `bash -n` accepted it.
    pub fn checked_bash_script(&self, dir: &Path) -> PathBuf {
        let file = dir.join(format!("{}.bash", self.name));
        std::fs::write(&file, self.stdout_of(&["completions", "bash"])).expect("write script");
        let check = Command::new("bash")
            .arg("-n")
            .arg(&file)
            .output()
            .expect("run bash -n");
        assert!(
            check.status.success(),
            "bash -n: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        file
    }

    /// What bash offers for `words` after the binary's name (the last one being
    /// completed), by sourcing the script and calling the function it registered with
    /// `complete -F`.
    pub fn bash_completes(&self, script: &Path, words: &[&str]) -> Vec<String> {
        let name = self.name;
        let line = std::iter::once(name)
            .chain(words.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        let program = format!(
            r#"source "$1" || exit 1
spec=$(complete -p {name}) || exit 1
fn=${{spec#*-F }}; fn=${{fn%% *}}
COMP_WORDS=({line}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}
"$fn" {name} "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#
        );
        let out = Command::new("bash")
            .args(["-c", &program, "bash"])
            .arg(script)
            .output()
            .expect("run bash (needed to test bash completion)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub fn assert_man_page_names_the_subcommands(&self) {
        let name = self.name;
        let page = self.stdout_of(&["man"]);
        assert!(
            page.starts_with('.'),
            "not roff: {:?}",
            &page[..page.len().min(80)]
        );
        assert!(page.contains(&format!(".TH {name} 1")), "no .TH header");
        for path in self.paths.iter().filter(|p| p.len() == 1) {
            let reference = roff(&format!("{name}-{}(1)", path[0]));
            assert!(page.contains(&reference), "{reference} missing");
        }
    }

    pub fn assert_man_out_writes_one_page_per_command(&self) {
        let name = self.name;
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("man1");
        self.stdout_of(&["man", "--out", out.to_str().expect("UTF-8 temp path")]);
        let pages = std::iter::once(name.to_owned())
            .chain(self.paths.iter().map(|p| format!("{name}-{}", p.join("-"))));
        for page in pages {
            let path = out.join(format!("{page}.1"));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                text.contains(&format!(".TH {page} 1")),
                "{page}: no .TH header"
            );
        }
    }
}

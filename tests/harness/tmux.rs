//! A tmux pane for tests that look at a terminal as a person does.
//!
//! Each pane gets its own tmux server (`-L`, a private socket) and no user config
//! (`-f /dev/null`). Sharing the default server raced: killing one test's last
//! session makes the server exit, and a `new-session` arriving while it exits fails
//! ("tmux new-session failed" on a clean CI machine).

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub struct Tmux {
    socket: String,
    session: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Tmux {
    /// Starts `command` (run by the shell) in a detached `width`×`height` pane;
    /// `env` pairs are set in the pane's environment.
    pub fn start(name: &str, width: u16, height: u16, env: &[(&str, &str)], command: &str) -> Tmux {
        let socket = format!(
            "gridx-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let tmux = Tmux {
            socket,
            session: name.to_owned(),
        };
        let mut args: Vec<String> = ["new-session", "-d", "-s", name, "-x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend([width.to_string(), "-y".into(), height.to_string()]);
        for (key, value) in env {
            args.extend(["-e".into(), format!("{key}={value}")]);
        }
        args.push(command.to_owned());
        let out = tmux.command(&args).output().expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut command = Command::new("tmux");
        command
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args);
        command
    }

    fn stdout(&self, args: &[&str]) -> String {
        self.command(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// `send-keys`: key names such as `Enter` or `C-z`.
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend_from_slice(keys);
        let _ = self.command(&args).status();
    }

    /// Types `text` literally.
    pub fn literal(&self, text: &str) {
        let _ = self
            .command(&["send-keys", "-t", &self.session, "-l", text])
            .status();
    }

    /// A tmux format about the pane (`#{alternate_on}`, `#{pane_title}`, …).
    pub fn display(&self, format: &str) -> String {
        self.stdout(&["display-message", "-p", "-t", &self.session, format])
    }

    /// What the pane shows now.
    pub fn screen(&self) -> String {
        self.stdout(&["capture-pane", "-p", "-t", &self.session])
    }

    /// Waits up to `secs` for the screen to pass `check`; panics with the last
    /// screen, naming `what` was expected, if it never does.
    pub async fn wait_for(&self, what: &str, secs: u64, check: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let screen = self.screen();
            if check(&screen) {
                return screen;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("the terminal never showed {what}; last screen:\n{screen}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // The server goes with its only session.
        let _ = self.command(&["kill-server"]).status();
    }
}

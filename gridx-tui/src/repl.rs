//! `gridx-tui repl`: the console as a reedline line editor, with a history file in
//! the platform's data directory, completion, hints and highlighting of the command
//! grammar, and job completions printed while you type (reedline's external printer).

use crate::client::ApiClient;
use crate::client::live::{self, LiveEvent};
use crate::commands::completion::complete;
use crate::commands::{self, ConsoleCommand, Outcome, run::StdinSource};
use crate::inert::inert;
use gridx_proto::events::ServerEvent;
use reedline::{
    ColumnarMenu, Completer, CompletionResult, DefaultHinter, DefaultPrompt, DefaultPromptSegment,
    Emacs, ExternalPrinter, FileBackedHistory, Highlighter, KeyCode, KeyModifiers, MenuBuilder,
    Reedline, ReedlineEvent, ReedlineMenu, Signal, Span, StyledText, Suggestion,
    default_emacs_keybindings,
};
use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};

struct GrammarCompleter;

impl Completer for GrammarCompleter {
    fn complete(&mut self, line: &str, pos: usize) -> CompletionResult {
        let line = &line[..pos.min(line.len())];
        let start = line.rfind(' ').map_or(0, |i| i + 1);
        let suggestions: Vec<Suggestion> = complete(line)
            .into_iter()
            .map(|full| Suggestion {
                value: full[start.min(full.len())..].to_owned(),
                span: Span { start, end: pos },
                append_whitespace: true,
                ..Suggestion::default()
            })
            .collect();
        CompletionResult::fresh(suggestions)
    }
}

/// Known command words green, unknown red, flags cyan.
struct GrammarHighlighter {
    commands: Vec<String>,
}

impl Highlighter for GrammarHighlighter {
    fn highlight(&self, line: &str, _cursor: usize) -> StyledText {
        let mut styled = StyledText::new();
        let mut first = true;
        for (i, part) in line.split(' ').enumerate() {
            if i > 0 {
                styled.push((nu_ansi_term::Style::new(), " ".into()));
            }
            let style = if first && !part.is_empty() {
                first = false;
                if self.commands.iter().any(|c| c == part) {
                    nu_ansi_term::Style::new()
                        .fg(nu_ansi_term::Color::Green)
                        .bold()
                } else {
                    nu_ansi_term::Style::new().fg(nu_ansi_term::Color::Red)
                }
            } else if part.starts_with("--") {
                nu_ansi_term::Style::new().fg(nu_ansi_term::Color::Cyan)
            } else {
                nu_ansi_term::Style::new()
            };
            styled.push((style, part.to_owned()));
        }
        styled
    }
}

fn history_path() -> Option<std::path::PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "gridx")?;
    std::fs::create_dir_all(dirs.data_dir()).ok()?;
    Some(dirs.data_dir().join("repl_history"))
}

/// Runs the REPL on the current thread until `quit` or Ctrl-D. Must be called from a
/// blocking context inside a tokio runtime (commands run on that runtime).
pub fn run_blocking(
    client: ApiClient,
    read_only: bool,
    from_dashboard: bool,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Handle::current();
    let printer = ExternalPrinter::<String>::new(64);
    let sender = printer.sender();
    let mut keybindings = default_emacs_keybindings();
    keybindings.add_binding(
        KeyModifiers::NONE,
        KeyCode::Tab,
        ReedlineEvent::UntilFound(vec![
            ReedlineEvent::Menu("completion".into()),
            ReedlineEvent::MenuNext,
        ]),
    );
    let mut editor = Reedline::create()
        .with_completer(Box::new(GrammarCompleter))
        .with_menu(ReedlineMenu::EngineCompleter(Box::new(
            ColumnarMenu::default().with_name("completion"),
        )))
        .with_edit_mode(Box::new(Emacs::new(keybindings)))
        .with_highlighter(Box::new(GrammarHighlighter {
            commands: commands::grammar::command_names(),
        }))
        .with_hinter(Box::new(
            DefaultHinter::default().with_style(
                nu_ansi_term::Style::new()
                    .italic()
                    .fg(nu_ansi_term::Color::DarkGray),
            ),
        ))
        .with_external_printer(printer);
    if let Some(path) = history_path()
        && let Ok(history) = FileBackedHistory::with_file(1000, path)
    {
        editor = editor.with_history(Box::new(history));
    }
    let prompt = DefaultPrompt::new(
        DefaultPromptSegment::Basic("gridx".into()),
        DefaultPromptSegment::Empty,
    );

    // Jobs submitted here are announced when they finish, while the user types.
    let watched: Arc<Mutex<HashSet<gridx_proto::JobId>>> = Arc::new(Mutex::new(HashSet::new()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(token) = client.token() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        runtime.spawn(live::follow(
            client.coordinators().clone(),
            token.to_owned(),
            tx,
            stop_rx,
        ));
        let watched = watched.clone();
        runtime.spawn(async move {
            while let Some(event) = rx.recv().await {
                if let LiveEvent::Event(event) = event
                    && let ServerEvent::Job { job } = *event
                    && job.status.is_terminal()
                    && watched
                        .lock()
                        .map(|mut w| w.remove(&job.job_id))
                        .unwrap_or(false)
                {
                    let _ = sender.send(format!("⟫ {}", commands::render::job_line(&job)));
                }
            }
        });
    }
    if from_dashboard {
        println!(
            "Grid-X console. `help` lists commands; `quit` or Ctrl-D returns to the dashboard."
        );
    } else {
        println!(
            "Grid-X console on {}. `help` lists commands; `quit` or Ctrl-D leaves.",
            client.base_url()
        );
    }
    loop {
        let line = match editor.read_line(&prompt)? {
            Signal::Success(line) => {
                // Written now, not only at exit: a killed REPL keeps its history, and
                // whoever reads the file next sees every line already run.
                if let Err(e) = editor.sync_history() {
                    tracing::debug!(error = %e, "could not write the REPL history");
                }
                line
            }
            Signal::CtrlC => continue,
            Signal::CtrlD => break,
            _ => continue,
        };
        let command = match commands::parse_line(&line) {
            Ok(Some(command)) => command,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("{}", inert(&e.to_string()));
                continue;
            }
        };
        if command == ConsoleCommand::Quit {
            break;
        }
        match runtime.block_on(commands::run(
            command,
            &client,
            read_only,
            StdinSource::Unavailable,
        )) {
            Ok(outcome) => {
                if let Outcome::Submitted(job) = &outcome
                    && let Ok(mut w) = watched.lock()
                {
                    w.insert(job.job_id);
                }
                if let Outcome::Theme(Some(_)) = outcome {
                    println!("themes apply to the dashboard");
                }
                if let Outcome::Output {
                    bytes, raw: true, ..
                } = &outcome
                {
                    // `output ID --raw`: the stored bytes, obeyed by this terminal
                    // as the person asked.
                    let mut stdout = std::io::stdout().lock();
                    let _ = stdout.write_all(bytes).and_then(|()| stdout.flush());
                    continue;
                }
                // Lines as `to_lines` writes them: inert.
                for l in commands::render::to_lines(&outcome) {
                    println!("{l}");
                }
            }
            Err(e) => eprintln!("error: {}", inert(&e.to_string())),
        }
    }
    let _ = stop_tx.send(true);
    Ok(())
}

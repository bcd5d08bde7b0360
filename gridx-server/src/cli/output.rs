//! Standard output for the admin commands. A closed stdout (`| head`) is an error to
//! report, not a panic as `println!` would make it.

use color_eyre::eyre::{Context, Result};
use std::io::Write;

pub fn print_stdout(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("writing to stdout")?;
    Ok(())
}

/// Bytes already rendered (a completion script, a man page), written at once.
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("writing to stdout")?;
    Ok(())
}

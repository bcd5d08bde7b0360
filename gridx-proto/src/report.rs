//! The lines an error is printed as at a binary's edge: `error: …` then one
//! `caused by: …` per cause. Shared by `gridx-server` and `gridx-tui` so both print
//! the same way.

/// The messages of an error chain (outermost first) to print: a cause whose text the
/// line before already contains is left out. Error types here keep a cause either in
/// their message or as their `source()`, not both; this catches those of libraries
/// (and `#[error("…: {0}")]` with `#[from]`) that do both, so nothing prints twice.
pub fn chain_lines(chain: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for message in chain {
        let repeated = lines
            .last()
            .is_some_and(|previous| previous.contains(message.trim()));
        if !repeated {
            lines.push(message);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::chain_lines;

    #[test]
    fn a_cause_already_in_the_message_is_not_printed_again() {
        let chain = ["store: database error: disk I/O error", "disk I/O error"];
        assert_eq!(
            chain_lines(chain.map(String::from)),
            ["store: database error: disk I/O error"]
        );
        let chain = ["cannot listen on 0.0.0.0", "invalid socket address"];
        assert_eq!(chain_lines(chain.map(String::from)), chain);
        // Compared with the line just before only: a cause repeated further down is
        // the message of a different layer.
        let chain = ["a: b", "c", "b"];
        assert_eq!(chain_lines(chain.map(String::from)), chain);
    }
}

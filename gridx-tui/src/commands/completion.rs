//! Completion of a partial console line from the command grammar: command names
//! first, then the flags of the command being typed. The dashboard's console and the
//! REPL both use it.

use super::grammar::{command_names, flags_of};

/// Completions of a partial console line: whole lines that could follow.
pub fn complete(input: &str) -> Vec<String> {
    let words: Vec<&str> = input.split_whitespace().collect();
    let ends_with_space = input.ends_with(char::is_whitespace);
    match (words.as_slice(), ends_with_space) {
        ([], _) => command_names(),
        ([command], false) => command_names()
            .into_iter()
            .filter(|n| n.starts_with(command))
            .collect(),
        ([command, ..], _) => {
            let prefix = if ends_with_space {
                ""
            } else {
                words.last().copied().unwrap_or("")
            };
            // Only flags complete; a value is the person's to type.
            if !prefix.is_empty() && !prefix.starts_with('-') {
                return Vec::new();
            }
            let keep = input.strip_suffix(prefix).unwrap_or(input);
            flags_of(command)
                .into_iter()
                .filter(|f| f.starts_with(prefix) && !words.contains(&f.as_str()))
                .map(|f| format!("{keep}{f}"))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::complete;

    #[test]
    fn an_empty_line_offers_every_command() {
        let all = complete("");
        assert!(all.contains(&"submit".to_owned()), "{all:?}");
        assert!(all.contains(&"quit".to_owned()), "{all:?}");
    }

    #[test]
    fn a_command_prefix_completes_to_its_commands() {
        assert_eq!(complete("bal"), ["balance"]);
        let j = complete("jo");
        assert!(
            j.contains(&"job".to_owned()) && j.contains(&"jobs".to_owned()),
            "{j:?}"
        );
        assert!(complete("zzz").is_empty());
    }

    #[test]
    fn flags_complete_after_the_command_but_not_twice() {
        let flags = complete("jobs --st");
        assert_eq!(flags, ["jobs --status"]);
        let after_space = complete("jobs ");
        assert!(
            after_space.contains(&"jobs --status".to_owned()),
            "{after_space:?}"
        );
        let used = complete("jobs --status running ");
        assert!(!used.iter().any(|l| l.ends_with("--status")), "{used:?}");
        assert!(
            complete("jobs --status runn").is_empty(),
            "values are not completed"
        );
    }

    #[test]
    fn unicode_and_other_whitespace_do_not_split_a_character() {
        assert!(complete("submit é").is_empty());
        let tab = complete("jobs\t");
        assert!(tab.iter().all(|l| l.starts_with("jobs\t--")), "{tab:?}");
    }
}

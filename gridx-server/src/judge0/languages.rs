//! The Judge0 language ids this grid runs, with the ids Judge0 CE 1.13.1 gives them
//! (clients hard-code them, keyed by the `/about` version). Only languages a Grid-X
//! worker can run are listed; any other id is "language with id N doesn't exist".

use gridx_proto::Language;
use serde::Serialize;

/// One language as Judge0 describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judge0Language {
    pub id: u16,
    pub language: Language,
    /// The name `/languages` shows. The version is that of the runtime images
    /// (Debian bookworm); a bubblewrap worker runs its host's.
    pub name: &'static str,
    /// What Judge0 calls the source file, shown by `/languages/{id}`.
    pub source_file: &'static str,
    pub run_cmd: &'static str,
}

/// Every language served, by Judge0 id.
pub const LANGUAGES: [Judge0Language; 3] = [
    Judge0Language {
        id: 46,
        language: Language::Bash,
        name: "Bash (5.2.15)",
        source_file: "main.sh",
        run_cmd: "bash main.sh",
    },
    Judge0Language {
        id: 63,
        language: Language::Node,
        name: "JavaScript (Node.js 18.19.0)",
        source_file: "main.js",
        run_cmd: "node main.js",
    },
    Judge0Language {
        id: 71,
        language: Language::Python,
        name: "Python (3.11.2)",
        source_file: "main.py",
        run_cmd: "python3 main.py",
    },
];

pub fn by_id(id: u64) -> Option<&'static Judge0Language> {
    LANGUAGES.iter().find(|l| u64::from(l.id) == id)
}

/// `GET /languages`: id and name, by name.
#[derive(Debug, Serialize)]
pub struct Brief {
    pub id: u16,
    pub name: &'static str,
}

/// `GET /languages/all`: also whether it is archived (none is).
#[derive(Debug, Serialize)]
pub struct Listed {
    pub id: u16,
    pub name: &'static str,
    pub is_archived: bool,
}

/// `GET /languages/{id}`.
#[derive(Debug, Serialize)]
pub struct Detail {
    pub id: u16,
    pub name: &'static str,
    pub is_archived: bool,
    pub source_file: &'static str,
    pub compile_cmd: Option<&'static str>,
    pub run_cmd: &'static str,
}

fn by_name() -> Vec<&'static Judge0Language> {
    let mut all: Vec<_> = LANGUAGES.iter().collect();
    all.sort_by_key(|l| l.name.to_ascii_lowercase());
    all
}

pub fn briefs() -> Vec<Brief> {
    by_name()
        .into_iter()
        .map(|l| Brief {
            id: l.id,
            name: l.name,
        })
        .collect()
}

pub fn listed() -> Vec<Listed> {
    by_name()
        .into_iter()
        .map(|l| Listed {
            id: l.id,
            name: l.name,
            is_archived: false,
        })
        .collect()
}

pub fn detail(l: &Judge0Language) -> Detail {
    Detail {
        id: l.id,
        name: l.name,
        is_archived: false,
        source_file: l.source_file,
        compile_cmd: None,
        run_cmd: l.run_cmd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ids_are_judge0_ce_1_13_1s_and_every_grid_language_has_one() {
        assert_eq!(by_id(71).map(|l| l.language), Some(Language::Python));
        assert_eq!(by_id(63).map(|l| l.language), Some(Language::Node));
        assert_eq!(by_id(46).map(|l| l.language), Some(Language::Bash));
        assert!(by_id(50).is_none(), "C is not served yet");
        for language in Language::ALL {
            assert!(
                LANGUAGES.iter().any(|l| l.language == language),
                "{language}"
            );
        }
        let names: Vec<_> = briefs().into_iter().map(|b| b.id).collect();
        assert_eq!(names, [46, 63, 71], "sorted by name");
    }
}

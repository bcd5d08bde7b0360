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
    /// How the worker compiles it, in words (the real command adds the sandbox's
    /// paths and limits: gridx-tui's `worker::exec::toolchain`).
    pub compile_cmd: Option<&'static str>,
    pub run_cmd: &'static str,
}

/// Every language served, by Judge0 id. Judge0 CE 1.13.1 has three ids for C
/// (48-50: GCC 7.4.0, 8.3.0, 9.2.0) and three for C++ (52-54); here each trio runs
/// the one compiler the runtime image has, and says so in its name. The versions are
/// the runtime images' (Debian bookworm); a bubblewrap worker runs its host's, which
/// docs/judge0.md lists as a difference.
pub const LANGUAGES: [Judge0Language; 13] = [
    Judge0Language {
        id: 46,
        language: Language::Bash,
        name: "Bash (5.2.15)",
        source_file: "main.sh",
        compile_cmd: None,
        run_cmd: "bash main.sh",
    },
    Judge0Language {
        id: 48,
        language: Language::C,
        name: "C (GCC 12.2.0)",
        source_file: "main.c",
        compile_cmd: Some("gcc -O2 -o main main.c -lm"),
        run_cmd: "./main",
    },
    Judge0Language {
        id: 49,
        language: Language::C,
        name: "C (GCC 12.2.0)",
        source_file: "main.c",
        compile_cmd: Some("gcc -O2 -o main main.c -lm"),
        run_cmd: "./main",
    },
    Judge0Language {
        id: 50,
        language: Language::C,
        name: "C (GCC 12.2.0)",
        source_file: "main.c",
        compile_cmd: Some("gcc -O2 -o main main.c -lm"),
        run_cmd: "./main",
    },
    Judge0Language {
        id: 52,
        language: Language::Cpp,
        name: "C++ (GCC 12.2.0)",
        source_file: "main.cpp",
        compile_cmd: Some("g++ -O2 -o main main.cpp"),
        run_cmd: "./main",
    },
    Judge0Language {
        id: 53,
        language: Language::Cpp,
        name: "C++ (GCC 12.2.0)",
        source_file: "main.cpp",
        compile_cmd: Some("g++ -O2 -o main main.cpp"),
        run_cmd: "./main",
    },
    Judge0Language {
        id: 54,
        language: Language::Cpp,
        name: "C++ (GCC 12.2.0)",
        source_file: "main.cpp",
        compile_cmd: Some("g++ -O2 -o main main.cpp"),
        run_cmd: "./main",
    },
    Judge0Language {
        id: 60,
        language: Language::Go,
        name: "Go (1.19.8)",
        source_file: "main.go",
        compile_cmd: Some("go build -o main main.go"),
        run_cmd: "./main",
    },
    Judge0Language {
        id: 62,
        language: Language::Java,
        name: "Java (OpenJDK 17)",
        source_file: "Main.java",
        compile_cmd: Some("javac Main.java"),
        run_cmd: "java Main",
    },
    Judge0Language {
        id: 63,
        language: Language::Node,
        name: "JavaScript (Node.js 18.19.0)",
        source_file: "main.js",
        compile_cmd: None,
        run_cmd: "node main.js",
    },
    Judge0Language {
        id: 71,
        language: Language::Python,
        name: "Python (3.11.2)",
        source_file: "main.py",
        compile_cmd: None,
        run_cmd: "python3 main.py",
    },
    Judge0Language {
        id: 72,
        language: Language::Ruby,
        name: "Ruby (3.1.2)",
        source_file: "main.rb",
        compile_cmd: None,
        run_cmd: "ruby main.rb",
    },
    Judge0Language {
        id: 73,
        language: Language::Rust,
        name: "Rust (1.63.0)",
        source_file: "main.rs",
        compile_cmd: Some("rustc --edition 2021 -O -o main main.rs"),
        run_cmd: "./main",
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
        compile_cmd: l.compile_cmd,
        run_cmd: l.run_cmd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ids_are_judge0_ce_1_13_1s_and_every_grid_language_has_one() {
        let expect = [
            (46, Language::Bash),
            (48, Language::C),
            (49, Language::C),
            (50, Language::C),
            (52, Language::Cpp),
            (53, Language::Cpp),
            (54, Language::Cpp),
            (60, Language::Go),
            (62, Language::Java),
            (63, Language::Node),
            (71, Language::Python),
            (72, Language::Ruby),
            (73, Language::Rust),
        ];
        for (id, language) in expect {
            assert_eq!(by_id(id).map(|l| l.language), Some(language), "{id}");
            assert_eq!(
                by_id(id).map(|l| l.compile_cmd.is_some()),
                Some(language.is_compiled()),
                "{id}"
            );
        }
        assert_eq!(LANGUAGES.len(), expect.len());
        assert!(by_id(51).is_none(), "C# is not served");
        for language in Language::ALL {
            assert!(
                LANGUAGES.iter().any(|l| l.language == language),
                "{language}"
            );
        }
        let names: Vec<_> = briefs().into_iter().map(|b| b.name).collect();
        let mut sorted = names.clone();
        sorted.sort_by_key(|n| n.to_ascii_lowercase());
        assert_eq!(names, sorted, "sorted by name");
    }
}

//! Every relative link in every Markdown file of the repository resolves to a file
//! inside the repository, and a `#fragment` to a heading of its target (GitHub's slug
//! rule). Documentation that points outside the repository, at a file that moved, or
//! at a heading that was renamed fails the build here instead of in a reader's hands.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// A link found in a Markdown file: its destination and the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    line: usize,
    dest: String,
}

/// Removes inline code spans, so that a link written as an example inside backticks
/// is not taken for a link.
fn without_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|&c| c == '`').count();
        let after = &rest[start + ticks..];
        let fence = "`".repeat(ticks);
        match after.find(&fence) {
            Some(end) => rest = &after[end + ticks..],
            // An unmatched backtick is literal text.
            None => {
                out.push_str(&rest[start..start + ticks]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The lines of a Markdown file that are prose, numbered from 1: fenced code blocks
/// are left out.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<(char, usize)> = None;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = marker.map_or(0, |m| trimmed.chars().take_while(|&c| c == m).count());
        match (fence, marker) {
            (None, Some(m)) if run >= 3 => fence = Some((m, run)),
            (Some((m, n)), Some(c)) if c == m && run >= n && trimmed[run..].trim().is_empty() => {
                fence = None
            }
            (None, _) => lines.push((i + 1, line)),
            (Some(_), _) => {}
        }
    }
    lines
}

/// Every link destination in a Markdown text: inline links and images
/// (`[text](dest "title")`, `![alt](<dest>)`) and reference definitions
/// (`[label]: dest`).
fn links(text: &str) -> Vec<Link> {
    let mut found = Vec::new();
    for (line_no, line) in prose_lines(text) {
        let line = without_code_spans(line);
        let trimmed = line.trim_start();
        if trimmed.starts_with('[')
            && let Some(close) = trimmed.find("]:")
            && !trimmed[..close].contains("](")
        {
            if let Some(dest) = trimmed[close + 2..].split_whitespace().next() {
                found.push(Link {
                    line: line_no,
                    dest: dest.trim_matches(|c| c == '<' || c == '>').to_owned(),
                });
            }
            continue;
        }
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let dest = if let Some(inner) = after.strip_prefix('<') {
                inner.split('>').next().unwrap_or_default()
            } else {
                after
                    .split(|c: char| c == ')' || c.is_whitespace())
                    .next()
                    .unwrap_or_default()
            };
            found.push(Link {
                line: line_no,
                dest: dest.to_owned(),
            });
            rest = after;
        }
    }
    found
}

/// GitHub's anchor for a heading: the rendered text lowercased, every character that
/// is not a letter, mark, number, `_`, `-` or space dropped, spaces made hyphens.
fn slug(heading: &str) -> String {
    // What renders: code spans keep their text, links keep their text, emphasis goes.
    let mut text = heading.replace('`', "");
    while let Some(open) = text.find("](") {
        let Some(len) = text[open..].find(')') else {
            break;
        };
        let start = text[..open].rfind('[').unwrap_or(open);
        let label = text[start + 1..open].to_owned();
        text.replace_range(start..open + len + 1, &label);
    }
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            '*' => None,
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown text's ATX headings, with GitHub's `-1`, `-2` suffixes
/// for repeated ones.
fn anchors(text: &str) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (_, line) in prose_lines(text) {
        let trimmed = line.trim_start();
        let level = trimmed.chars().take_while(|&c| c == '#').count();
        let heading = &trimmed[level..];
        if !(1..=6).contains(&level) || !(heading.is_empty() || heading.starts_with(' ')) {
            continue;
        }
        let base = slug(heading.trim().trim_end_matches('#'));
        let count = seen.entry(base.clone()).or_insert(0);
        out.push(if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        });
        *count += 1;
    }
    out
}

/// A destination with a scheme (`https:`, `mailto:`) points off the repository by
/// design and is not checked here.
fn is_external(dest: &str) -> bool {
    let scheme: String = dest.chars().take_while(|c| *c != ':').collect();
    dest.contains(':')
        && !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !scheme.contains('/')
}

/// `path` with `.` and `..` resolved without touching the file system, or `None`
/// when `..` climbs above its start.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A repository as the checker sees it: Markdown texts by path (relative to the
/// root), and whether any other relative path exists.
struct Repo<'a> {
    markdown: &'a BTreeMap<PathBuf, String>,
    exists: &'a dyn Fn(&Path) -> bool,
}

/// Every broken link in the repository, as `file:line: dest: why`.
fn broken_links(repo: &Repo<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    for (file, text) in repo.markdown {
        let dir = file.parent().unwrap_or(Path::new(""));
        for link in links(text) {
            if link.dest.is_empty() || is_external(&link.dest) {
                continue;
            }
            let (path, fragment) = match link.dest.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (link.dest.as_str(), None),
            };
            let report =
                |why: String| format!("{}:{}: {}: {why}", file.display(), link.line, link.dest);
            if path.starts_with('/') {
                problems.push(report(
                    "absolute paths do not work on GitHub; write a relative one".into(),
                ));
                continue;
            }
            let target = if path.is_empty() {
                Some(file.clone())
            } else {
                normalize(&dir.join(percent_decode(path)))
            };
            let Some(target) = target else {
                problems.push(report("points outside the repository".into()));
                continue;
            };
            let target_text = repo.markdown.get(&target);
            if target_text.is_none() && !(repo.exists)(&target) {
                problems.push(report(format!("{} does not exist", target.display())));
                continue;
            }
            if let Some(fragment) = fragment.filter(|f| !f.is_empty()) {
                match target_text {
                    Some(text) if anchors(text).iter().any(|a| *a == percent_decode(fragment)) => {}
                    Some(_) => problems.push(report(format!(
                        "{} has no heading with the anchor #{fragment}",
                        target.display()
                    ))),
                    None => problems.push(report(format!(
                        "#{fragment} on {}, which is not Markdown",
                        target.display()
                    ))),
                }
            }
        }
    }
    problems
}

/// Every `.md` file under `dir`, skipping build output and hidden directories.
fn markdown_files(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !name.starts_with('.') && name != "target" {
                markdown_files(root, &path, out);
            }
        } else if name.ends_with(".md")
            && let (Ok(text), Ok(relative)) =
                (std::fs::read_to_string(&path), path.strip_prefix(root))
        {
            out.insert(relative.to_owned(), text);
        }
    }
}

#[test]
fn every_relative_link_in_the_repository_resolves_inside_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut markdown = BTreeMap::new();
    markdown_files(root, root, &mut markdown);
    for expected in ["README.md", "CONTRIBUTING.md", "docs/api.md"] {
        assert!(
            markdown.contains_key(Path::new(expected)),
            "{expected} not found under {}",
            root.display()
        );
    }
    let exists = |p: &Path| root.join(p).exists();
    let problems = broken_links(&Repo {
        markdown: &markdown,
        exists: &exists,
    });
    assert!(
        problems.is_empty(),
        "{} broken links:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[cfg(test)]
mod unit {
    use super::{Link, Repo, anchors, broken_links, is_external, links, normalize, slug};
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    #[test]
    fn slugs_follow_github() {
        assert_eq!(slug("Job states"), "job-states");
        assert_eq!(slug("`POST /v1/jobs/{id}/cancel`"), "post-v1jobsidcancel");
        assert_eq!(
            slug("Themes, colour and glyphs"),
            "themes-colour-and-glyphs"
        );
        assert_eq!(slug("`[server]` settings"), "server-settings");
        assert_eq!(
            slug("Admin commands while `serve` runs"),
            "admin-commands-while-serve-runs"
        );
        assert_eq!(slug("1. Transport"), "1-transport");
        assert_eq!(
            slug("`hello` (worker → coordinator)"),
            "hello-worker--coordinator"
        );
        assert_eq!(
            slug("Live events: `GET /v1/events` (WebSocket)"),
            "live-events-get-v1events-websocket"
        );
        assert_eq!(
            slug("snake_case **bold** [link](x.md)"),
            "snake_case-bold-link"
        );
        assert_eq!(slug("Größe"), "größe");
    }

    #[test]
    fn repeated_headings_get_numbered_anchors_and_code_is_not_a_heading() {
        let text = "# A\n## Notes\n```sh\n# not a heading\n```\n### Notes\n#nospace\n";
        assert_eq!(anchors(text), ["a", "notes", "notes-1"]);
    }

    #[test]
    fn links_are_found_outside_code_only() {
        let text = "See [a](a.md) and ![img](<pic one.png>) and [t](b.md#x \"title\").\n\
                    `[not](code.md)` and\n```\n[not](fenced.md)\n```\n\
                    [ref]: ../ref.md\n[`x`](c.md)";
        let dests: Vec<String> = links(text).into_iter().map(|l| l.dest).collect();
        assert_eq!(
            dests,
            ["a.md", "pic one.png", "b.md#x", "../ref.md", "c.md"]
        );
        assert_eq!(
            links("x\n\n[y](z.md)")[0],
            Link {
                line: 3,
                dest: "z.md".into()
            }
        );
    }

    #[test]
    fn external_and_relative_destinations_are_told_apart() {
        assert!(is_external("https://example.org/x"));
        assert!(is_external("mailto:someone@example.org"));
        assert!(!is_external("docs/api.md"));
        assert!(!is_external("api.md#get-metrics"));
        assert_eq!(
            normalize(Path::new("docs/../README.md")),
            Some(PathBuf::from("README.md"))
        );
        assert_eq!(normalize(Path::new("../shared/CONTRACT.md")), None);
    }

    fn check(files: &[(&str, &str)], others: &[&str]) -> Vec<String> {
        let markdown: BTreeMap<PathBuf, String> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
            .collect();
        let others: Vec<PathBuf> = others.iter().map(PathBuf::from).collect();
        let exists = |p: &Path| others.iter().any(|o| o == p);
        broken_links(&Repo {
            markdown: &markdown,
            exists: &exists,
        })
    }

    #[test]
    fn a_sound_tree_has_no_problems() {
        let problems = check(
            &[
                (
                    "README.md",
                    "[api](docs/api.md#errors) [lic](LICENSE) [web](https://x.org) [me](#top)\n# Top",
                ),
                (
                    "docs/api.md",
                    "# API\n## Errors\n[up](../README.md) [here](#api)",
                ),
            ],
            &["LICENSE"],
        );
        assert_eq!(problems, Vec::<String>::new());
    }

    #[test]
    fn broken_links_are_reported() {
        let problems = check(
            &[
                (
                    "README.md",
                    "[c](../shared/CONTRACT.md)\n[gone](docs/gone.md)\n[frag](docs/api.md#nope)\n[abs](/docs/api.md)\n[self](#missing)",
                ),
                ("docs/api.md", "# API\n[toml](../gridx.toml#x)"),
            ],
            &["gridx.toml"],
        );
        let expected = [
            "README.md:1: ../shared/CONTRACT.md: points outside the repository",
            "README.md:2: docs/gone.md: docs/gone.md does not exist",
            "README.md:3: docs/api.md#nope: docs/api.md has no heading with the anchor #nope",
            "README.md:4: /docs/api.md: absolute paths do not work on GitHub; write a relative one",
            "README.md:5: #missing: README.md has no heading with the anchor #missing",
            "docs/api.md:2: ../gridx.toml#x: #x on gridx.toml, which is not Markdown",
        ];
        let mut sorted = problems.clone();
        sorted.sort();
        assert_eq!(sorted, expected, "{problems:#?}");
    }
}

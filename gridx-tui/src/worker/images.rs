//! Runtime images without a registry: each language's image is a Debian root
//! filesystem made by `mmdebstrap` and imported into the engine as a tarball through
//! bollard's image creation. Images carry a content hash of their recipe, and a
//! rebuild is skipped when the image with that hash is already there.

use bollard::Docker;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;
use gridx_proto::Language;
use gridx_proto::config::RuntimeImages;
use sha2::{Digest, Sha256};
use std::process::Stdio;
use tokio_util::io::ReaderStream;

/// Label holding the recipe hash on every image built here.
pub const RECIPE_LABEL: &str = "io.gridx.recipe";
/// Label naming the languages an image built here can run (`c,cpp,java`): a worker
/// offers a language from an image only if the image has it, or has no such label
/// (an operator's own image).
pub const LANGUAGES_LABEL: &str = "io.gridx.languages";

/// Debian release the images are built from.
const SUITE: &str = "bookworm";
/// Bump when the build steps change in a way the package list does not show.
const RECIPE_VERSION: u32 = 1;

/// What goes into one runtime image: the languages that share it and every package
/// they need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    pub languages: Vec<Language>,
    pub packages: Vec<&'static str>,
}

/// The Debian packages a language needs on top of the essential set (which already
/// has bash, coreutils and dash).
pub fn packages_of(language: Language) -> &'static [&'static str] {
    match language {
        Language::Python => &["python3-minimal"],
        Language::Node => &["nodejs"],
        Language::Bash => &[],
        Language::C => &["gcc", "libc6-dev"],
        Language::Cpp => &["g++", "libc6-dev"],
        Language::Java => &["default-jdk-headless"],
        Language::Go => &["golang-go"],
        // rustc links through the C compiler driver.
        Language::Rust => &["rustc", "gcc", "libc6-dev"],
        Language::Ruby => &["ruby"],
    }
}

impl Recipe {
    pub fn for_language(language: Language) -> Recipe {
        Recipe::for_languages(&[language])
    }

    /// One image for several languages: the union of their packages.
    pub fn for_languages(languages: &[Language]) -> Recipe {
        let mut packages: Vec<&'static str> = Vec::new();
        for l in languages {
            for p in packages_of(*l) {
                if !packages.contains(p) {
                    packages.push(p);
                }
            }
        }
        Recipe {
            languages: languages.to_vec(),
            packages,
        }
    }

    /// Content hash of everything that decides the image's contents. (For one
    /// language the text is what it was before images could be shared, so those
    /// images are not rebuilt.)
    pub fn hash(&self) -> String {
        let names: Vec<&str> = self.languages.iter().map(|l| l.as_str()).collect();
        let text = format!(
            "v{RECIPE_VERSION}|{SUITE}|essential|{}|{}",
            names.join("+"),
            self.packages.join(",")
        );
        let digest = Sha256::digest(text.as_bytes());
        hex::encode(&digest[..8])
    }

    /// The `LANGUAGES_LABEL` value: what the image was built to run.
    pub fn languages_label(&self) -> String {
        let names: Vec<&str> = self.languages.iter().map(|l| l.as_str()).collect();
        names.join(",")
    }
}

/// Each configured image with the languages that use it, in `Language::ALL`'s order.
pub fn images_by_name(images: &RuntimeImages) -> Vec<(String, Vec<Language>)> {
    let mut out: Vec<(String, Vec<Language>)> = Vec::new();
    for language in Language::ALL {
        let image = images.for_language(language);
        match out.iter_mut().find(|(name, _)| name == image) {
            Some((_, languages)) => languages.push(language),
            None => out.push((image.to_owned(), vec![language])),
        }
    }
    out
}

/// What `images build` did for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildResult {
    Built { image: String, seconds: u64 },
    UpToDate { image: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("mmdebstrap is not installed (apt-get install mmdebstrap)")]
    NoMmdebstrap,
    #[error("mmdebstrap failed for {image}: {message}")]
    Mmdebstrap { image: String, message: String },
    #[error("the engine refused to import {image}: {message}")]
    Import { image: String, message: String },
    #[error("image name {0:?} needs a repository and a tag, like gridx-runtime/python:local")]
    BadName(String),
}

async fn current_hash(docker: &Docker, image: &str) -> Option<String> {
    let inspect = docker.inspect_image(image).await.ok()?;
    inspect.config?.labels?.get(RECIPE_LABEL).cloned()
}

/// Builds the image of every language unless it is up to date (or `force`).
pub async fn build_all(
    docker: &Docker,
    images: &RuntimeImages,
    force: bool,
    mut progress: impl FnMut(&str),
) -> Result<Vec<BuildResult>, ImageError> {
    let mut results = Vec::new();
    for (image, languages) in images_by_name(images) {
        let recipe = Recipe::for_languages(&languages);
        if !force && current_hash(docker, &image).await.as_deref() == Some(recipe.hash().as_str()) {
            progress(&format!("{image}: up to date (recipe {})", recipe.hash()));
            results.push(BuildResult::UpToDate { image });
            continue;
        }
        progress(&format!(
            "{image}: building from Debian {SUITE} packages..."
        ));
        let started = std::time::Instant::now();
        build_one(docker, &recipe, &image).await?;
        let seconds = started.elapsed().as_secs();
        progress(&format!("{image}: built in {seconds} s"));
        results.push(BuildResult::Built { image, seconds });
    }
    Ok(results)
}

async fn build_one(docker: &Docker, recipe: &Recipe, image: &str) -> Result<(), ImageError> {
    let (repo, tag) = image
        .rsplit_once(':')
        .filter(|(r, t)| !r.is_empty() && !t.is_empty() && !t.contains('/'))
        .ok_or_else(|| ImageError::BadName(image.to_owned()))?;
    let mut command = tokio::process::Command::new("mmdebstrap");
    command.args(["--quiet", "--variant=essential", "--format=tar"]);
    if !recipe.packages.is_empty() {
        command.arg(format!("--include={}", recipe.packages.join(",")));
    }
    // Trim what a job never needs: docs, man pages, locales, apt lists.
    command.args([
        "--dpkgopt=path-exclude=/usr/share/{doc,man,info,locale}/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        "--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*",
        SUITE,
        "-",
    ]);
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ImageError::NoMmdebstrap,
        _ => ImageError::Mmdebstrap {
            image: image.to_owned(),
            message: e.to_string(),
        },
    })?;
    let stdout = child.stdout.take().ok_or_else(|| ImageError::Mmdebstrap {
        image: image.to_owned(),
        message: "no stdout".into(),
    })?;
    let stderr = child.stderr.take();
    let stderr_task = tokio::spawn(async move {
        let mut text = String::new();
        if let Some(mut stderr) = stderr {
            use tokio::io::AsyncReadExt;
            let _ = stderr.read_to_string(&mut text).await;
        }
        text
    });
    let options = CreateImageOptionsBuilder::new()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .changes(vec![
            format!("LABEL {RECIPE_LABEL}={}", recipe.hash()),
            format!("LABEL {LANGUAGES_LABEL}={}", recipe.languages_label()),
            "ENV LANG=C.UTF-8".into(),
            "USER 65534:65534".into(),
            "WORKDIR /tmp".into(),
        ])
        .build();
    let body = bollard::body_try_stream(ReaderStream::new(stdout));
    let mut stream = docker.create_image(Some(options), Some(body), None);
    let mut import_error = None;
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            import_error = Some(e.to_string());
        }
    }
    let status = child.wait().await.map_err(|e| ImageError::Mmdebstrap {
        image: image.to_owned(),
        message: e.to_string(),
    })?;
    let stderr = stderr_task.await.unwrap_or_default();
    if !status.success() {
        return Err(ImageError::Mmdebstrap {
            image: image.to_owned(),
            message: stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | "),
        });
    }
    if let Some(message) = import_error {
        return Err(ImageError::Import {
            image: image.to_owned(),
            message,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_hash_differently_and_stably() {
        let py = Recipe::for_language(Language::Python).hash();
        let node = Recipe::for_language(Language::Node).hash();
        assert_ne!(py, node);
        assert_eq!(py, Recipe::for_language(Language::Python).hash());
        assert_eq!(py.len(), 16);
    }

    #[test]
    fn languages_that_share_an_image_share_one_recipe() {
        let by_name = images_by_name(&RuntimeImages::default());
        let names: Vec<&str> = by_name.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names.len(),
            4,
            "python, node, bash and the toolchains: {names:?}"
        );
        let (_, shared) = &by_name[3];
        assert_eq!(shared.len(), 6);
        let recipe = Recipe::for_languages(shared);
        for p in [
            "gcc",
            "g++",
            "default-jdk-headless",
            "golang-go",
            "rustc",
            "ruby",
        ] {
            assert!(recipe.packages.contains(&p), "{p}");
        }
        assert_eq!(
            recipe.packages.iter().filter(|p| **p == "gcc").count(),
            1,
            "each package once"
        );
        assert_eq!(recipe.languages_label(), "c,cpp,java,go,rust,ruby");
        // A one-language image hashes as it did before images could be shared.
        assert_eq!(
            Recipe::for_language(Language::Bash).hash(),
            "d2ece98de2f79418"
        );
    }
}

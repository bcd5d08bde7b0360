//! Loading the server's configuration: defaults, then the TOML file, then `GRIDX_*`
//! environment variables; the CLI applies its flags last.

use gridx_proto::config::{ConfigError, GridxConfig};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no data directory: pass --data-dir or set GRIDX_DATA_DIR (no home directory found)")]
    NoDataDir,
}

/// The default config file: `~/.config/gridx/gridx.toml` on Linux.
pub fn default_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "gridx").map(|d| d.config_dir().join("gridx.toml"))
}

/// Loads the layered config. An explicit `path` must exist; the default one may not.
pub fn load(path: Option<&Path>) -> Result<GridxConfig, SettingsError> {
    Ok(GridxConfig::load(
        path,
        default_config_path(),
        |p| std::fs::read_to_string(p),
        std::env::vars(),
    )?)
}

/// The data directory: the configured one, else the platform's data directory.
pub fn data_dir(configured: Option<&Path>) -> Result<PathBuf, SettingsError> {
    if let Some(dir) = configured {
        return Ok(dir.to_owned());
    }
    directories::ProjectDirs::from("", "", "gridx")
        .map(|d| d.data_dir().to_owned())
        .ok_or(SettingsError::NoDataDir)
}

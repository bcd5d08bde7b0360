//! The full-screen dashboard: the model, reducer and console line editor (`state`),
//! drawing (`draw`), themes, key bindings, and the terminal runtime that ties them to
//! crossterm.

pub mod draw;
/// Compiled for tests and the render benchmark only (the bench turns the `fixtures`
/// feature on through the crate's dev-dependency on itself), never into a release.
#[cfg(any(test, feature = "fixtures"))]
#[doc(hidden)]
pub mod fixtures;
pub mod keymap;
#[cfg(test)]
mod reducer_tests;
#[cfg(test)]
mod result_check_tests;
pub mod runtime;
#[cfg(test)]
mod snapshot_tests;
pub mod state;
pub mod theme;

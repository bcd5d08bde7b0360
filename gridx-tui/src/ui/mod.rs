//! The full-screen dashboard: state and reducer (`state`), drawing (`draw`), themes,
//! key bindings, and the terminal runtime that ties them to crossterm.

pub mod draw;
#[doc(hidden)]
pub mod fixtures;
pub mod keymap;
#[cfg(test)]
mod reducer_tests;
pub mod runtime;
#[cfg(test)]
mod snapshot_tests;
pub mod state;
pub mod theme;

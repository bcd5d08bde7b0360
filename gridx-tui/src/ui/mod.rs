//! The full-screen dashboard: state and reducer (`state`), drawing (`draw`), themes,
//! key bindings, and the terminal runtime that ties them to crossterm.

pub mod draw;
pub mod keymap;
pub mod runtime;
pub mod state;
pub mod theme;

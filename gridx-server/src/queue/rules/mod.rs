//! The rules the queue applies, by concern. Each is a set of `impl State` methods
//! that write to the store first and change memory only once the writes succeeded.

mod accounts;
mod dispatch;
mod jobs;
mod live;
pub(super) mod sessions;
#[cfg(test)]
mod tests;
mod validation;
#[cfg(test)]
mod validation_tests;

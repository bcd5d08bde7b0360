//! The dashboard's state and what changes it, with no terminal in sight so all of it
//! is tested headless: the model (`model`), the console's log and line editor
//! (`console`), and the reducer that applies messages (`reducer`) and keys (`keys`)
//! to them and says which effects the runtime must carry out.

mod console;
mod keys;
mod model;
mod reducer;

pub use console::{Console, LogLevel};
pub use model::{
    AppState, CheckState, Connection, History, JobCheck, JobOutput, JobSort, Mode, OutputShown,
    Overlay, Pane, worker_is_down,
};
pub use reducer::{Effect, Msg};

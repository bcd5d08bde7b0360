//! The coordinator's client side: the REST API and the live event stream. Knows
//! nothing of terminals; the dashboard, the REPL and the one-shot commands share it.

pub mod api;
pub mod coordinators;
pub mod follow;
pub mod live;
pub mod tls;

pub use api::{ApiClient, ClientError};
pub use coordinators::Coordinators;
pub use tls::{Endpoint, EndpointError};

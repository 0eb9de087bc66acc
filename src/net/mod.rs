//! Network: listeners and connections. The only place that awaits sockets.
pub mod conn;
pub mod lifecycle;
pub mod server;

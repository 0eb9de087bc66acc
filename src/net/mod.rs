//! Network: listeners and connections. The only place that awaits sockets.
pub mod compress;
pub mod conn;
pub mod http;
pub mod lifecycle;
pub mod limiter;
pub mod proxy;
pub mod server;
pub mod tls;

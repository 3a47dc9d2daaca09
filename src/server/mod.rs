//! Networking: the accept loop and the per-connection task. Only this module touches sockets.

mod connection;
mod listener;

pub use listener::serve;

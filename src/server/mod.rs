//! Networking: the accept loop and the per-connection task. Only this module touches sockets.

mod connection;
mod listener;
mod sendfile;

pub use listener::serve;

//! What sonde's benchmark programs (`examples/*_bench.rs`, later `sonde
//! bench`) and integration tests share, so that none of them carries its
//! own copy: free ports, child processes that are stopped when dropped,
//! per-process CPU accounting, the versions and installation of the
//! reference servers, small statistics, and workload generators.
//!
//! It depends on nothing of sonde (the server crate uses it only as a
//! dev-dependency), and on no crate at all: std is enough for these.

pub mod install;
pub mod payload;
pub mod proc;
pub mod stats;

use std::net::TcpListener;

/// A free TCP port on 127.0.0.1 (bound once, then released for the caller).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_ports_are_bindable() {
        let p = super::free_port().expect("a free port");
        assert!(std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
    }
}

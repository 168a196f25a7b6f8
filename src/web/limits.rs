//! What one peer, or all of them, may hold of the page's server: the page
//! port is open to every local user, and 1100 half-sent requests once held
//! the daemon's descriptors (status and exec hung, reconnects and the
//! journal failed with EMFILE). As sshd's LoginGraceTime and MaxStartups:
//! a request's headers must arrive within `HEADER_TIME`, and connections
//! are capped in total and per address. An upgraded WebSocket (which needs
//! a ticket, so only the page's own) leaves the count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const HEADER_TIME: Duration = Duration::from_secs(10);
pub const TOTAL: usize = 64;
pub const PER_PEER: usize = 16;

#[derive(Clone, Default)]
pub struct Limits(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One admitted connection; its place is given back when dropped.
pub struct Slot {
    limits: Limits,
    peer: IpAddr,
}

impl Limits {
    /// A place for a connection from `peer`, or None: close it at once.
    pub fn admit(&self, peer: IpAddr) -> Option<Slot> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = all.values().sum();
        let mine = all.entry(peer).or_default();
        if total >= TOTAL || *mine >= PER_PEER {
            return None;
        }
        *mine += 1;
        Some(Slot {
            limits: self.clone(),
            peer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut all = self.limits.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = all.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                all.remove(&self.peer);
            }
        }
    }
}

/// The page's server: `axum::serve`, with the limits above.
pub async fn serve(listener: tokio::net::TcpListener, app: axum::Router) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let limits = Limits::default();
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and such: give the daemon's own work a moment.
                tracing::warn!("the page: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = limits.admit(peer.ip()) else {
            tracing::info!("the page: too many connections; refused {peer}");
            continue;
        };
        // Echoes are a few bytes each: Nagle would hold them for an ACK.
        let _ = tcp.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIME)
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!("the page: {peer}: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_per_peer_and_in_total() {
        let l = Limits::default();
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        let mine: Vec<_> = (0..PER_PEER)
            .map(|_| l.admit(a).expect("admitted"))
            .collect();
        assert!(l.admit(a).is_none());
        drop(mine);
        let held: Vec<_> = (0..TOTAL)
            .map(|i| l.admit(IpAddr::from([10, 0, (i / 200) as u8, (i % 200) as u8])))
            .collect();
        assert!(held.iter().all(Option::is_some));
        assert!(l.admit(a).is_none());
        drop(held);
        assert!(l.admit(a).is_some());
    }
}

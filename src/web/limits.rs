//! What one peer, or all of them, may hold of the page's server: the page
//! port is open to every local user, and 1100 half-sent requests once held
//! the daemon's descriptors (status and exec hung, reconnects and the
//! journal failed with EMFILE). As sshd's LoginGraceTime and MaxStartups:
//! a request's headers must arrive within `HEADER_TIME`, and connections
//! are capped in total and per peer. A peer on this machine is its user
//! (looked up as identd does, in /proc/net/tcp): every local user shares
//! 127.0.0.1, and could take any address of 127/8, so a cap per address
//! would let another user lock ours out. An upgraded WebSocket (which
//! needs a ticket, so only the page's own) leaves the count.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const HEADER_TIME: Duration = Duration::from_secs(10);
pub const TOTAL: usize = 64;
pub const PER_PEER: usize = 16;

/// Who a connection counts against.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Peer {
    User(u32),
    Address(IpAddr),
}

/// The peer of a connection from `remote` to `local`: for a loopback
/// connection, the user owning the other end's socket.
#[cfg(test)]
fn peer_of(local: SocketAddr, remote: SocketAddr) -> Peer {
    peer_in(&owners(), local, remote)
}

fn peer_in(owners: &Owners, local: SocketAddr, remote: SocketAddr) -> Peer {
    if remote.ip().is_loopback()
        && let Some(&uid) = owners.get(&(proc_address(remote), proc_address(local)))
    {
        return Peer::User(uid);
    }
    Peer::Address(remote.ip())
}

/// The address as /proc/net/tcp{,6} prints it: each 32-bit word of the
/// network-order address in hex as the machine reads it, then the port.
fn proc_address(a: SocketAddr) -> String {
    let words: Vec<u8> = match a.ip() {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    let hex: String = words
        .chunks(4)
        .map(|w| format!("{:08X}", u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
        .collect();
    format!("{hex}:{:04X}", a.port())
}

/// The uid of every TCP socket, by (its local end, its remote end).
type Owners = HashMap<(String, String), u32>;

fn owners() -> Owners {
    let mut all = Owners::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(table) = std::fs::read_to_string(file) else {
            continue;
        };
        for l in table.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if let (Some(a), Some(b), Some(Ok(uid))) =
                (f.get(1), f.get(2), f.get(7).map(|u| u.parse()))
            {
                all.insert((a.to_string(), b.to_string()), uid);
            }
        }
    }
    all
}

/// The socket table, read at most once per batch of connections. A read
/// costs as much as the machine has sockets; one per connection, in the
/// accept loop, let another user's flood of connects keep ours waiting
/// for seconds. A read taken after a connection was accepted shows it, so
/// it answers every connection accepted before it.
#[derive(Clone)]
struct OwnerTable(Arc<tokio::sync::Mutex<(std::time::Instant, Arc<Owners>)>>);

impl OwnerTable {
    fn new() -> Self {
        let long_ago = std::time::Instant::now();
        Self(Arc::new(tokio::sync::Mutex::new((
            long_ago,
            Arc::default(),
        ))))
    }

    async fn peer_of(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        accepted: std::time::Instant,
    ) -> Peer {
        if !remote.ip().is_loopback() {
            return Peer::Address(remote.ip());
        }
        let table = {
            let mut t = self.0.lock().await;
            if t.0 <= accepted {
                let taken = std::time::Instant::now();
                let fresh = tokio::task::spawn_blocking(owners)
                    .await
                    .unwrap_or_default();
                *t = (taken, Arc::new(fresh));
            }
            t.1.clone()
        };
        peer_in(&table, local, remote)
    }
}

#[derive(Clone, Default)]
pub struct Limits(Arc<Mutex<HashMap<Peer, usize>>>);

/// One admitted connection; its place is given back when dropped.
pub struct Slot {
    limits: Limits,
    peer: Peer,
}

impl Limits {
    /// A place for a connection from `peer`, or None: close it at once.
    pub fn admit(&self, peer: Peer) -> Option<Slot> {
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
    let owners = OwnerTable::new();
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
        let accepted = std::time::Instant::now();
        let (limits, owners) = (limits.clone(), owners.clone());
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let who = match tcp.local_addr() {
                Ok(local) => {
                    let found = owners.peer_of(local, peer, accepted);
                    match tokio::time::timeout(HEADER_TIME, found).await {
                        Ok(who) => who,
                        Err(_) => return,
                    }
                }
                Err(_) => Peer::Address(peer.ip()),
            };
            let Some(_slot) = limits.admit(who) else {
                tracing::info!("the page: too many connections; refused {peer}");
                return;
            };
            // Echoes are a few bytes each: Nagle would hold them for an ACK.
            let _ = tcp.set_nodelay(true);
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
        let a = Peer::User(1000);
        let mine: Vec<_> = (0..PER_PEER)
            .map(|_| l.admit(a).expect("admitted"))
            .collect();
        assert!(l.admit(a).is_none());
        assert!(l.admit(Peer::User(65534)).is_some());
        drop(mine);
        let held: Vec<_> = (0..TOTAL)
            .map(|i| {
                let ip = IpAddr::from([10, 0, (i / 200) as u8, (i % 200) as u8]);
                l.admit(Peer::Address(ip))
            })
            .collect();
        assert!(held.iter().all(Option::is_some));
        assert!(l.admit(a).is_none());
        drop(held);
        assert!(l.admit(a).is_some());
    }

    #[test]
    fn a_loopback_peer_is_its_user() {
        for at in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(server) = std::net::TcpListener::bind(at) else {
                continue; // no IPv6 here
            };
            let _client = std::net::TcpStream::connect(server.local_addr().expect("addr"));
            let (s, remote) = server.accept().expect("accept");
            let local = s.local_addr().expect("local");
            // SAFETY: getuid cannot fail.
            let me = unsafe { libc::getuid() };
            assert_eq!(peer_of(local, remote), Peer::User(me), "{at}");
        }
    }
}

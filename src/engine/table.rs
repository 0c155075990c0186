//! The bounded connection table: connections live in fixed slots; two indexes find them, by the
//! LAN host's 4-tuple and by (uplink, local port) of any of their subflows. Capacity is reserved
//! at start, so inserting never allocates (std's `HashMap` does not grow below its capacity).

use std::collections::HashMap;
use std::net::SocketAddr;

use super::conn::Conn;

/// Identifies a subflow: uplink index and the router's source port on it.
pub type SubKey = (u8, u16);

pub struct Table {
    slots: Vec<Option<Conn>>,
    free: Vec<usize>,
    by_client: HashMap<(SocketAddr, SocketAddr), usize>,
    by_sub: HashMap<SubKey, (usize, u8)>,
    /// One bit per port per uplink: ports in use by subflows.
    ports: Vec<Vec<u64>>,
    next_port: Vec<u16>,
    range: (u16, u16),
}

impl Table {
    /// The port allocator of each uplink starts at a random place in `range`, so that a
    /// restarted daemon does not reuse the ports whose connections the servers may still hold
    /// in TIME-WAIT.
    pub fn new(
        capacity: usize,
        uplinks: usize,
        range: (u16, u16),
        max_subflows: usize,
        rng: &mut super::rng::Rng,
    ) -> Table {
        let span = (range.1 - range.0) as u32 + 1;
        Table {
            slots: (0..capacity).map(|_| None).collect(),
            free: (0..capacity).rev().collect(),
            by_client: HashMap::with_capacity(capacity),
            by_sub: HashMap::with_capacity(capacity * max_subflows),
            ports: vec![vec![0u64; 1024]; uplinks],
            next_port: (0..uplinks)
                .map(|_| range.0 + (rng.u32() % span) as u16)
                .collect(),
            range,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    pub fn find_client(&self, client: SocketAddr, server: SocketAddr) -> Option<usize> {
        self.by_client.get(&(client, server)).copied()
    }

    pub fn find_sub(&self, key: SubKey) -> Option<(usize, u8)> {
        self.by_sub.get(&key).copied()
    }

    pub fn get(&self, slot: usize) -> Option<&Conn> {
        self.slots.get(slot).and_then(|s| s.as_ref())
    }

    pub fn get_mut(&mut self, slot: usize) -> Option<&mut Conn> {
        self.slots.get_mut(slot).and_then(|s| s.as_mut())
    }

    pub fn iter(&self) -> impl Iterator<Item = (usize, &Conn)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
    }

    /// Store a new connection; `None` when the table is full.
    pub fn insert(&mut self, conn: Conn) -> Option<usize> {
        let slot = self.free.pop()?;
        self.by_client.insert((conn.client, conn.server), slot);
        self.slots[slot] = Some(conn);
        Some(slot)
    }

    /// Take a free local port on `uplink`, if any is left.
    pub fn alloc_port(&mut self, uplink: u8) -> Option<u16> {
        let u = uplink as usize;
        let (lo, hi) = self.range;
        let span = (hi - lo) as u32 + 1;
        let bits = self.ports.get_mut(u)?;
        let mut p = self.next_port[u];
        for _ in 0..span {
            let (w, b) = ((p / 64) as usize, p % 64);
            let next = if p >= hi { lo } else { p + 1 };
            if bits[w] & (1 << b) == 0 {
                bits[w] |= 1 << b;
                self.next_port[u] = next;
                return Some(p);
            }
            p = next;
        }
        None
    }

    /// Register subflow `sub` of connection `slot` under `key` (its port must be allocated).
    pub fn bind_sub(&mut self, key: SubKey, slot: usize, sub: u8) {
        self.by_sub.insert(key, (slot, sub));
    }

    /// Forget a subflow's index entry and free its port.
    pub fn unbind_sub(&mut self, key: SubKey) {
        self.by_sub.remove(&key);
        let (u, p) = (key.0 as usize, key.1);
        if let Some(bits) = self.ports.get_mut(u) {
            bits[(p / 64) as usize] &= !(1 << (p % 64));
        }
    }

    /// Remove a connection and everything that indexes it.
    pub fn remove(&mut self, slot: usize) -> Option<Conn> {
        let conn = self.slots.get_mut(slot)?.take()?;
        self.by_client.remove(&(conn.client, conn.server));
        for s in conn.subs() {
            self.unbind_sub((s.uplink, s.port));
        }
        self.free.push(slot);
        Some(conn)
    }
}

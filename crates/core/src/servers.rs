//! The servers: which ones a request goes to and whether each one is answering.
//!
//! A server is *down* when at least `unanswered_limit` requests that expect an answer
//! (DISCOVER, REQUEST for it, INFORM, BOOTREQUEST) went unanswered and the oldest of them
//! is older than `timeout`. Any reply from it makes it *up* again. `failover` selection
//! uses this (in every mode) to move traffic to the next server, and the metrics report
//! it (`cdra_server_up`). The caching modes do not consult it: a known client is answered
//! from the table whenever its record can answer, whether or not servers answer (paper
//! 2.2), so nothing there waits for a server to be declared down.
//!
//! A server that *declines* a client is not a dead one. A Kea HA pair in load-balancing
//! mode answers each client from one server only (each its half), a hot standby answers
//! nobody while its partner serves; ISC dhcpd and Kea ignore a client they were told to.
//! So ([`ServerPool::on_declined`]): **a request that another server answered does not
//! count against a server that answered anything within `timeout` before that request
//! was sent** — the pair works and this one chose to stay silent. A server that had
//! answered nothing for `timeout` gets no such credit: a dead primary whose requests the
//! standby now answers is still found down (once its last answer is `timeout` older than
//! the requests it ignores). And in `failover` selection a request that nobody answered goes, when the client
//! sends it again, to the next server as well ([`ServerPool::choose_again`]), so that the
//! clients the preferred server declines are served by its partner without the preferred
//! server being declared down.

use core::net::Ipv4Addr;
use core::time::Duration;

use crate::config::ServerSelection;
use crate::time::Timestamp;

/// Most servers a configuration may name (a bitmask of chosen servers fits a `u32`).
pub const MAX_SERVERS: usize = 32;

/// Liveness of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    /// Its address.
    pub addr: Ipv4Addr,
    /// Requests expecting an answer sent since its last reply.
    pub unanswered: u32,
    /// When the oldest of those was sent.
    pub first_unanswered_at: Option<Timestamp>,
    /// When it last replied.
    pub last_reply_at: Option<Timestamp>,
    /// When we last sent it anything.
    pub last_sent_at: Option<Timestamp>,
}

/// The set of servers and the selection policy.
#[derive(Debug, Clone)]
pub struct ServerPool {
    servers: Vec<ServerState>,
    selection: ServerSelection,
    timeout: Duration,
    unanswered_limit: u32,
    retry_interval: Duration,
}

/// A set of server indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerSet(pub u32);

impl ServerSet {
    /// The same servers under new indexes (`map[old]`, `None`: gone).
    pub fn remapped(self, map: &[Option<usize>]) -> ServerSet {
        let mut out = ServerSet::default();
        for (old, new) in map.iter().enumerate() {
            if let (true, Some(new)) = (self.contains(old), new) {
                out.insert(*new);
            }
        }
        out
    }

    /// Add server `i`.
    pub fn insert(&mut self, i: usize) {
        if i < MAX_SERVERS {
            self.0 |= 1 << i;
        }
    }
    /// Is server `i` in the set?
    pub fn contains(&self, i: usize) -> bool {
        i < MAX_SERVERS && self.0 & (1 << i) != 0
    }
    /// Number of servers in the set.
    pub fn len(&self) -> usize {
        self.0.count_ones() as usize
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
    /// The indexes, ascending (one step a member: the set is walked for every request
    /// forwarded).
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let mut rest = self.0;
        core::iter::from_fn(move || {
            let i = rest.trailing_zeros() as usize;
            rest &= rest.checked_sub(1)?;
            Some(i)
        })
    }
}

impl ServerPool {
    /// A pool over `addrs` (at most [`MAX_SERVERS`]; more are ignored).
    pub fn new(
        addrs: &[Ipv4Addr],
        selection: ServerSelection,
        timeout: Duration,
        unanswered_limit: u32,
        retry_interval: Duration,
    ) -> Self {
        let servers = addrs
            .iter()
            .take(MAX_SERVERS)
            .map(|&addr| ServerState {
                addr,
                unanswered: 0,
                first_unanswered_at: None,
                last_reply_at: None,
                last_sent_at: None,
            })
            .collect();
        ServerPool { servers, selection, timeout, unanswered_limit: unanswered_limit.max(1), retry_interval }
    }

    /// What each server of `old` learned (liveness, last reply) carried over to the same
    /// address here (a reload); returns `map[old index]` = new index, `None` if gone.
    pub fn carry_over(&mut self, old: &ServerPool) -> Vec<Option<usize>> {
        old.servers
            .iter()
            .map(|o| {
                let i = self.servers.iter().position(|s| s.addr == o.addr)?;
                if let Some(s) = self.servers.get_mut(i) {
                    *s = o.clone();
                }
                Some(i)
            })
            .collect()
    }

    /// The servers, in configuration order.
    pub fn servers(&self) -> &[ServerState] {
        &self.servers
    }

    /// Index of the server with address `addr`.
    pub fn index_of(&self, addr: Ipv4Addr) -> Option<usize> {
        self.servers.iter().position(|s| s.addr == addr)
    }

    /// Is server `i` answering?
    pub fn is_up(&self, i: usize, now: Timestamp) -> bool {
        match self.servers.get(i) {
            Some(s) => match s.first_unanswered_at {
                Some(first) if s.unanswered >= self.unanswered_limit => now.since(first) < self.timeout,
                _ => true,
            },
            None => false,
        }
    }

    /// Is any server answering?
    pub fn any_up(&self, now: Timestamp) -> bool {
        (0..self.servers.len()).any(|i| self.is_up(i, now))
    }

    /// Which servers a new request goes to.
    pub fn choose(&self, now: Timestamp) -> ServerSet {
        let mut set = ServerSet::default();
        match self.selection {
            ServerSelection::All => (0..self.servers.len()).for_each(|i| set.insert(i)),
            ServerSelection::Failover => {
                for (i, s) in self.servers.iter().enumerate() {
                    if self.is_up(i, now) {
                        set.insert(i);
                        break;
                    }
                    // A preferred server that is down is tried again now and then, so its
                    // return is noticed and traffic moves back to it.
                    let retry_due = s.last_sent_at.is_none_or(|t| now.since(t) >= self.retry_interval);
                    if retry_due {
                        set.insert(i);
                    }
                }
                if !(0..self.servers.len()).any(|i| self.is_up(i, now)) {
                    // Nobody answers: ask everyone, whoever comes back first wins.
                    (0..self.servers.len()).for_each(|i| set.insert(i));
                }
            }
        }
        set
    }

    /// The selection policy.
    pub fn selection(&self) -> ServerSelection {
        self.selection
    }

    /// Which servers a request goes to when the client sends it again and no server has
    /// answered it yet (`asked`: the servers its earlier copies went to). `all` asks
    /// everyone anyway; `failover` asks those again and the first server
    /// not asked yet besides [`ServerPool::choose`]'s, so that a client the preferred server declines (the
    /// other half of a load-balancing pair) reaches the next one (module docs).
    pub fn choose_again(&self, now: Timestamp, asked: ServerSet) -> ServerSet {
        let mut set = self.choose(now);
        if self.selection == ServerSelection::Failover {
            // The ones asked before are asked again (one may just be slow), and one more.
            set.0 |= asked.0;
            if let Some(next) = (0..self.servers.len()).find(|i| !set.contains(*i)) {
                set.insert(next);
            }
        }
        set
    }

    /// Server `i` stayed silent on `requests` requests, the first of them sent at
    /// `first_sent`, that another server answered: it declined that client. The rule
    /// (module docs): a request that another server answered does not count against a
    /// server that answered anything within `timeout` before that request was sent (or
    /// since); one that had answered nothing for that long is not credited (it may be dead,
    /// its partner serving in its place).
    pub fn on_declined(&mut self, i: usize, first_sent: Timestamp, requests: u32) {
        let timeout = self.timeout;
        if let Some(s) = self.servers.get_mut(i) {
            if s.last_reply_at.is_none_or(|t| first_sent.since(t) >= timeout) {
                return;
            }
            s.unanswered = s.unanswered.saturating_sub(requests);
            if s.unanswered == 0 {
                s.first_unanswered_at = None;
            }
        }
    }

    /// Record that a request went to server `i`.
    pub fn on_sent(&mut self, i: usize, now: Timestamp, expects_reply: bool) {
        if let Some(s) = self.servers.get_mut(i) {
            s.last_sent_at = Some(now);
            if expects_reply {
                s.unanswered = s.unanswered.saturating_add(1);
                s.first_unanswered_at.get_or_insert(now);
            }
        }
    }

    /// Record a reply from server `i`.
    pub fn on_reply(&mut self, i: usize, now: Timestamp) {
        if let Some(s) = self.servers.get_mut(i) {
            s.unanswered = 0;
            s.first_unanswered_at = None;
            s.last_reply_at = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn a_server_set_walks_its_members_in_order(bits: u32) {
            let set = ServerSet(bits);
            let want: Vec<usize> = (0..MAX_SERVERS).filter(|i| set.contains(*i)).collect();
            proptest::prop_assert_eq!(set.iter().collect::<Vec<_>>(), want);
            proptest::prop_assert_eq!(set.iter().count(), set.len());
        }
    }
}

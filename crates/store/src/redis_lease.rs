//! Which relay of a pair is the active one when no virtual address says so: the holder of
//! a lease in Redis (leader election), kept by a thread of its own (`cdra-lease`), off the
//! data plane.
//!
//! - The lease is the key `<key_prefix>:active`, its value the holder's node id. A relay
//!   not holding it tries `SET key <id> NX PX <ttl>` (with `GET` and `PTTL` in the same
//!   `MULTI`, to learn who holds it and when it expires) every `ttl / 3`, or as soon as the
//!   holder's key expires if that is sooner.
//! - The holder renews it every `ttl / 3` with a compare-and-extend script
//!   ([`RENEW`]): `PEXPIRE` only if the key still names it. A holder that finds another
//!   id (or none and cannot take it back) has lost it.
//! - The holder counts its lease from when it *sent* the command that set or extended it
//!   (Redis starts the key's time later, when it runs the command), and gives the role up
//!   at `valid_until = sent + ttl * 3 / 4` if no renewal succeeded by then. The thread
//!   wakes at `valid_until` whatever it is waiting for (the next attempt, or nothing), and
//!   an attempt of the holder is cut off at `valid_until` too: each of its calls (connect,
//!   the script, the `MULTI`) is bounded by `ttl / 8` ([`LeaseConfig::reply_timeout`]) *and*
//!   by what is left until `valid_until`, so the whole attempt, however many calls it makes,
//!   ends by then (plus the socket timeouts' slack, a few milliseconds). The role change
//!   then reaches the loop within one of its turns: the holder is silent a quarter of a
//!   lease before Redis lets another relay take the key. (Redis and the relays must count
//!   time at the same rate; clock *offsets* do not matter, only durations are compared.)
//! - Name resolution is not bounded by any timeout (`getaddrinfo` blocks, for as long as
//!   the resolver's own retries take): the Redis host's addresses are resolved while the
//!   relay does not hold the lease, and kept; the holder renews over the addresses it
//!   has, never waiting on DNS (a holder that loses the lease resolves again).
//! - A clean shutdown deletes the key if it is still ours ([`RELEASE`]): the other relay
//!   takes over on its next attempt instead of after the expiry.
//!
//! Redis out of reach ([`Arbiter`]): the holder cannot renew and the standby cannot take
//! the lease. The holder keeps the role until its lease has certainly expired (above), then
//! goes standby: Redis may be out of *its* reach only, and the other relay may hold the
//! lease by then. But a relay's reason to exist is to answer clients while something is
//! down, so a relay that has not reached Redis for `2 * ttl` becomes active on its own
//! ([`LeaseChange::Alone`]), with the table it has: if Redis is down for both relays, neither
//! can be coordinated, and two relays answering (split brain: two answers to a broadcast,
//! each relay writing what it saw once Redis is back, merged with what Redis holds) is
//! better than none answering. If only this relay lost Redis (a partition), the other may
//! hold the lease and answer too; that is the risk the operator accepts without a virtual
//! address, and the reason `[ha] virtual_address` (VRRP decides, on the client segment)
//! is the better arbiter when keepalived runs. When Redis is reached again, the lease
//! decides again: the relay takes it, or finds another holder and goes standby.

use std::net::ToSocketAddrs;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::{Connection, ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use crate::RedisConfig;

/// Compare-and-extend: `PEXPIRE` the key only if it still names this node. 1 if extended.
pub const RENEW: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
/// Compare-and-delete (clean shutdown): 1 if the key was ours and is gone.
pub const RELEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// The lease's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Where (the key is `<key_prefix>:active`); its `timeout` bounds each call too.
    pub redis: RedisConfig,
    /// How long a lease lasts without renewal (`[ha] lease`).
    pub ttl: Duration,
    /// This relay's id, the key's value while it holds the lease.
    pub node_id: String,
}

impl LeaseConfig {
    /// The key holding the lease.
    pub fn key(&self) -> String {
        lease_key(&self.redis)
    }

    /// Longest wait to connect, and for one reply: `ttl / 8`, or the store's timeout if
    /// shorter (see the module's reasoning).
    pub fn reply_timeout(&self) -> Duration {
        self.redis.timeout.min(self.ttl / 8).max(Duration::from_millis(1))
    }
}

/// The key holding a pair's lease: `<key_prefix>:active`.
pub fn lease_key(redis: &RedisConfig) -> String {
    format!("{}:active", redis.key_prefix)
}

/// What this relay is, as far as the lease goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseRole {
    /// Holds the lease: the active one.
    Holder,
    /// Another relay holds it, or this one cannot tell yet: silent.
    Standby,
    /// Redis out of reach for `2 * ttl`: active without the lease.
    Alone,
}

impl LeaseRole {
    /// Whether this role answers clients.
    pub fn active(self) -> bool {
        matches!(self, LeaseRole::Holder | LeaseRole::Alone)
    }
}

/// A change of [`LeaseRole`], counted by label (`cdra_ha_lease_changes_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseChange {
    /// Took the lease (start-up included): active.
    Acquired,
    /// Found another relay holding it: standby.
    Lost,
    /// Could not renew it before it could expire (Redis out of reach): standby.
    Expired,
    /// Redis out of reach for `2 * ttl`: active without the lease.
    Alone,
}

impl LeaseChange {
    /// Every change, in index order.
    pub const ALL: [LeaseChange; 4] =
        [LeaseChange::Acquired, LeaseChange::Lost, LeaseChange::Expired, LeaseChange::Alone];
    /// Number of changes (counter slots).
    pub const COUNT: usize = Self::ALL.len();

    /// Dense index for counter arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The metric label.
    pub const fn label(self) -> &'static str {
        match self {
            LeaseChange::Acquired => "acquired",
            LeaseChange::Lost => "lost",
            LeaseChange::Expired => "expired",
            LeaseChange::Alone => "alone",
        }
    }

    /// The role it leads to.
    pub const fn role(self) -> LeaseRole {
        match self {
            LeaseChange::Acquired => LeaseRole::Holder,
            LeaseChange::Lost | LeaseChange::Expired => LeaseRole::Standby,
            LeaseChange::Alone => LeaseRole::Alone,
        }
    }
}

/// What one attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// This relay holds the lease (taken or extended).
    Held,
    /// Another relay holds it (`holder`, or nobody if it just expired), for `remaining`.
    HeldByOther {
        /// The holder's id (none if its key expired between the two commands).
        holder: Option<String>,
        /// Until its key expires.
        remaining: Duration,
    },
    /// Redis could not be reached (or did not answer in time).
    Unreachable,
}

/// The lease's rules, apart from Redis: fed each attempt's outcome and the time, says
/// when the role changes (see the module's reasoning).
#[derive(Debug, Clone)]
pub struct Arbiter {
    ttl: Duration,
    role: LeaseRole,
    /// Holder: the role is given up at this instant unless renewed.
    valid_until: Option<Instant>,
    /// The last time Redis answered (start-up counts as reached).
    last_reached: Instant,
}

impl Arbiter {
    /// A relay starting: standby until an attempt says otherwise.
    pub fn new(ttl: Duration, now: Instant) -> Self {
        Arbiter { ttl, role: LeaseRole::Standby, valid_until: None, last_reached: now }
    }

    /// The current role.
    pub fn role(&self) -> LeaseRole {
        self.role
    }

    /// Holder: when the role is given up unless renewed before.
    pub fn valid_until(&self) -> Option<Instant> {
        match self.role {
            LeaseRole::Holder => self.valid_until,
            LeaseRole::Standby | LeaseRole::Alone => None,
        }
    }

    /// No attempt ended, but time passed: the holder whose lease ran out by `now` gives the
    /// role up ([`LeaseChange::Expired`]), whether or not an attempt is due.
    pub fn tick(&mut self, now: Instant) -> Option<LeaseChange> {
        let expired = self.valid_until().is_some_and(|v| now >= v);
        expired.then(|| {
            self.valid_until = None;
            self.role = LeaseRole::Standby;
            LeaseChange::Expired
        })
    }

    /// When the thread must be up next: the next attempt, or the holder's `valid_until` if
    /// sooner (the role is given up then, on time, even with no attempt due).
    pub fn wake_at(&self, next_attempt: Instant) -> Instant {
        self.valid_until().map_or(next_attempt, |v| v.min(next_attempt))
    }

    /// An attempt sent at `sent` ended at `now` with `attempt`: the role's change, if any.
    pub fn after(&mut self, sent: Instant, now: Instant, attempt: &Attempt) -> Option<LeaseChange> {
        let change = match attempt {
            Attempt::Held => {
                self.last_reached = now;
                self.valid_until = Some(sent + self.ttl * 3 / 4);
                LeaseChange::Acquired
            }
            Attempt::HeldByOther { .. } => {
                self.last_reached = now;
                self.valid_until = None;
                LeaseChange::Lost
            }
            Attempt::Unreachable => match self.role {
                LeaseRole::Holder if self.valid_until.is_none_or(|v| now >= v) => {
                    self.valid_until = None;
                    LeaseChange::Expired
                }
                LeaseRole::Standby if now.duration_since(self.last_reached) >= self.ttl * 2 => LeaseChange::Alone,
                _ => return None,
            },
        };
        let role = change.role();
        (role != self.role).then(|| {
            self.role = role;
            change
        })
    }

    /// When to try again after an attempt sent at `sent`: every `ttl / 3`; a standby also
    /// right after the holder's key expires, if sooner.
    pub fn next_attempt(&self, sent: Instant, attempt: &Attempt) -> Instant {
        let period = sent + self.ttl / 3;
        match attempt {
            Attempt::HeldByOther { remaining, .. } => period.min(sent + *remaining + Duration::from_millis(5)),
            Attempt::Held | Attempt::Unreachable => period,
        }
    }
}

/// One relay's connection to the lease.
pub struct LeaseClient {
    config: LeaseConfig,
    key: String,
    ttl_millis: u64,
    conn: Option<Connection>,
    /// Where Redis is, its host resolved to addresses (kept while holding the lease: see
    /// the module's reasoning); empty until resolved.
    targets: Vec<ConnectionInfo>,
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "the lease ran out during the attempt"))
}

impl LeaseClient {
    /// Not connected yet: the first attempt connects.
    pub fn new(config: LeaseConfig) -> Self {
        let key = config.key();
        let ttl_millis = config.ttl.as_millis().max(1) as u64;
        LeaseClient { config, key, ttl_millis, conn: None, targets: Vec::new() }
    }

    /// Take the lease, or extend it if this relay holds it (`holding`). With a `deadline`
    /// (the holder's `valid_until`), the whole attempt ends by then: every call's timeout
    /// is cut to what is left.
    pub fn attempt(&mut self, holding: bool, deadline: Option<Instant>) -> Attempt {
        match self.try_attempt(holding, deadline) {
            Ok(a) => a,
            Err(_) => {
                self.conn = None;
                Attempt::Unreachable
            }
        }
    }

    /// The next call's timeout: `ttl / 8`, or what is left until `deadline` if less (an
    /// error if nothing is left).
    fn budget(&self, deadline: Option<Instant>) -> redis::RedisResult<Duration> {
        let timeout = self.config.reply_timeout();
        let Some(deadline) = deadline else { return Ok(timeout) };
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            return Err(timed_out());
        }
        Ok(timeout.min(left))
    }

    /// Where to connect: the URL's host resolved to its addresses, once; again only when
    /// not `holding` (DNS is never waited on while the lease is held).
    fn targets(&mut self, holding: bool) -> redis::RedisResult<Vec<ConnectionInfo>> {
        if holding && !self.targets.is_empty() {
            return Ok(self.targets.clone());
        }
        let info = self.config.redis.url.as_str().into_connection_info()?;
        let targets = match &info.addr {
            ConnectionAddr::Tcp(host, port) => {
                let port = *port;
                (host.as_str(), port)
                    .to_socket_addrs()?
                    .map(|a| ConnectionInfo { addr: ConnectionAddr::Tcp(a.ip().to_string(), port), ..info.clone() })
                    .collect()
            }
            _ => vec![info.clone()],
        };
        if !targets.is_empty() {
            self.targets = targets;
        }
        Ok(self.targets.clone())
    }

    fn connection(&mut self, holding: bool, deadline: Option<Instant>) -> redis::RedisResult<&mut Connection> {
        if self.conn.is_none() {
            let mut last = None;
            for target in self.targets(holding)? {
                let timeout = self.budget(deadline)?;
                match redis::Client::open(target).and_then(|c| c.get_connection_with_timeout(timeout)) {
                    Ok(conn) => {
                        self.conn = Some(conn);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if let (None, Some(e)) = (&self.conn, last) {
                return Err(e);
            }
        }
        let timeout = self.budget(deadline)?;
        let conn =
            self.conn.as_mut().ok_or_else(|| redis::RedisError::from((redis::ErrorKind::IoError, "not connected")))?;
        conn.set_read_timeout(Some(timeout))?;
        conn.set_write_timeout(Some(timeout))?;
        Ok(conn)
    }

    fn try_attempt(&mut self, holding: bool, deadline: Option<Instant>) -> redis::RedisResult<Attempt> {
        let (key, id, ttl) = (self.key.clone(), self.config.node_id.clone(), self.ttl_millis);
        if holding {
            let conn = self.connection(holding, deadline)?;
            let extended: i64 = redis::cmd("EVAL").arg(RENEW).arg(1).arg(&key).arg(&id).arg(ttl).query(conn)?;
            if extended == 1 {
                return Ok(Attempt::Held);
            }
        }
        let conn = self.connection(holding, deadline)?;
        let (_set, holder, remaining): (Option<String>, Option<String>, i64) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&key)
            .arg(&id)
            .arg("NX")
            .arg("PX")
            .arg(ttl)
            .cmd("GET")
            .arg(&key)
            .cmd("PTTL")
            .arg(&key)
            .query(conn)?;
        Ok(match holder {
            Some(h) if h == id => Attempt::Held,
            holder => Attempt::HeldByOther { holder, remaining: Duration::from_millis(remaining.max(0) as u64) },
        })
    }

    /// Delete the key if this relay holds it; whether it did.
    pub fn release(&mut self) -> bool {
        let (key, id) = (self.key.clone(), self.config.node_id.clone());
        let released = self
            .connection(true, None)
            .and_then(|c| redis::cmd("EVAL").arg(RELEASE).arg(1).arg(&key).arg(&id).query(c));
        matches!(released, Ok(1i64))
    }
}

/// The `cdra-lease` thread: attempts on time, role changes handed to the loop.
pub struct Lease {
    changes: Receiver<LeaseChange>,
    stop: Sender<()>,
    thread: JoinHandle<bool>,
}

impl Lease {
    /// Start the thread. `wake` is called after each change is queued (the loop polls a
    /// descriptor it writes to).
    pub fn start(config: LeaseConfig, wake: impl Fn() + Send + 'static) -> std::io::Result<Lease> {
        let (tx, changes) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name("cdra-lease".into()).spawn(move || {
            let ttl = config.ttl;
            let mut client = LeaseClient::new(config);
            let mut arbiter = Arbiter::new(ttl, Instant::now());
            let report = |change: LeaseChange| {
                let sent = tx.send(change).is_ok();
                wake();
                sent
            };
            'attempts: loop {
                let sent = Instant::now();
                let attempt = client.attempt(arbiter.role() == LeaseRole::Holder, arbiter.valid_until());
                if let Some(change) = arbiter.after(sent, Instant::now(), &attempt) {
                    if !report(change) {
                        break;
                    }
                }
                let next = arbiter.next_attempt(sent, &attempt);
                // Up at the next attempt, or at `valid_until` if sooner: the role is given
                // up on time even while no attempt is due.
                loop {
                    let wait = arbiter.wake_at(next).saturating_duration_since(Instant::now());
                    match stopped.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => break 'attempts,
                    }
                    let now = Instant::now();
                    if let Some(change) = arbiter.tick(now) {
                        if !report(change) {
                            break 'attempts;
                        }
                    }
                    if now >= next {
                        break;
                    }
                }
            }
            arbiter.role() == LeaseRole::Holder && client.release()
        })?;
        Ok(Lease { changes, stop, thread })
    }

    /// The next change of role, if one is queued.
    pub fn try_recv(&self) -> Option<LeaseChange> {
        self.changes.try_recv().ok()
    }

    /// Stop the thread, releasing the lease if held (clean shutdown); whether it was
    /// released.
    pub fn stop(self) -> bool {
        let _ = self.stop.send(());
        self.thread.join().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(3);

    fn other(ms: u64) -> Attempt {
        Attempt::HeldByOther { holder: Some("b".into()), remaining: Duration::from_millis(ms) }
    }

    #[test]
    fn the_holder_goes_standby_before_its_key_can_expire_and_alone_after_two_ttls() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut a = Arbiter::new(TTL, t0);
        assert_eq!(a.after(at(0), at(5), &Attempt::Held), Some(LeaseChange::Acquired));
        assert_eq!(a.after(at(1000), at(1005), &Attempt::Held), None, "renewed");
        // Redis gone after the renewal sent at 1000 ms: valid until 1000 + 2250 ms.
        assert_eq!(a.after(at(2000), at(2375), &Attempt::Unreachable), None);
        assert_eq!(a.after(at(3000), at(3249), &Attempt::Unreachable), None);
        assert_eq!(a.after(at(3000), at(3250), &Attempt::Unreachable), Some(LeaseChange::Expired));
        assert_eq!(a.role(), LeaseRole::Standby);
        // Last reached at 1005 ms: alone from 1005 + 6000 ms.
        assert_eq!(a.after(at(6000), at(7004), &Attempt::Unreachable), None);
        assert_eq!(a.after(at(7000), at(7005), &Attempt::Unreachable), Some(LeaseChange::Alone));
        assert!(a.role().active());
        assert_eq!(a.after(at(8000), at(8005), &Attempt::Unreachable), None, "stays alone");
        // Redis back, the other relay holds it: standby.
        assert_eq!(a.after(at(9000), at(9005), &other(2000)), Some(LeaseChange::Lost));
        assert_eq!(a.next_attempt(at(9000), &other(200)), at(9205), "right after its expiry");
        assert_eq!(a.next_attempt(at(9000), &other(2000)), at(10000), "every ttl / 3");
        // Alone counts from the last reply, not from when the relay went standby.
        assert_eq!(a.after(at(15000), at(15004), &Attempt::Unreachable), None);
        assert_eq!(a.after(at(15000), at(15005), &Attempt::Unreachable), Some(LeaseChange::Alone));
    }

    #[test]
    fn alone_then_redis_back_with_the_lease_free_is_an_acquisition() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut a = Arbiter::new(TTL, t0);
        assert_eq!(a.after(at(0), at(375), &Attempt::Unreachable), None, "a relay starting waits");
        assert_eq!(a.after(at(5700), at(6000), &Attempt::Unreachable), Some(LeaseChange::Alone));
        assert_eq!(a.after(at(7000), at(7001), &Attempt::Held), Some(LeaseChange::Acquired));
        assert_eq!(a.role(), LeaseRole::Holder);
    }

    #[test]
    fn the_holder_gives_the_role_up_at_valid_until_with_no_attempt_ending() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut a = Arbiter::new(TTL, t0);
        assert_eq!(a.after(at(0), at(5), &Attempt::Held), Some(LeaseChange::Acquired));
        assert_eq!(a.valid_until(), Some(at(2250)));
        // The next attempt is due at 1000 ms; one that hangs past 2250 ms must not keep the
        // role: the thread is up at valid_until whatever it waits for.
        assert_eq!(a.wake_at(at(1000)), at(1000));
        assert_eq!(a.wake_at(at(4000)), at(2250));
        assert_eq!(a.tick(at(2249)), None);
        assert_eq!(a.tick(at(2250)), Some(LeaseChange::Expired));
        assert_eq!(a.role(), LeaseRole::Standby);
        assert_eq!((a.valid_until(), a.wake_at(at(4000))), (None, at(4000)), "a standby has no deadline");
        assert_eq!(a.tick(at(9000)), None, "given up once");
    }

    #[test]
    fn a_holders_attempt_ends_by_valid_until_however_many_calls_it_makes() {
        // A server that accepts connections (the kernel's backlog) and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("redis://{}/0", silent.local_addr().expect("addr"));
        let lease = LeaseConfig { redis: RedisConfig::new(&url), ttl: Duration::from_secs(8), node_id: "x".into() };
        assert_eq!(lease.reply_timeout(), Duration::from_secs(1));
        let mut client = LeaseClient::new(lease);
        let start = Instant::now();
        let deadline = start + Duration::from_millis(150);
        assert_eq!(client.attempt(true, Some(deadline)), Attempt::Unreachable);
        let took = start.elapsed();
        assert!(took < Duration::from_millis(400), "the attempt took {took:?}, past its deadline");
        // Nothing left: no call at all.
        let start = Instant::now();
        assert_eq!(client.attempt(true, Some(start)), Attempt::Unreachable);
        assert!(start.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn the_redis_host_is_resolved_while_not_holding_and_kept_while_holding() {
        let lease = LeaseConfig { redis: RedisConfig::new("redis://localhost:6399/0"), ttl: TTL, node_id: "x".into() };
        let mut client = LeaseClient::new(lease);
        let targets = client.targets(false).expect("localhost resolves");
        assert!(!targets.is_empty());
        for t in &targets {
            let ConnectionAddr::Tcp(host, port) = &t.addr else { panic!("tcp") };
            assert!(host.parse::<std::net::IpAddr>().is_ok(), "{host} is an address: no DNS on connect");
            assert_eq!(*port, 6399);
        }
        // Holding: the kept addresses, whatever the URL (DNS is not asked).
        client.config.redis.url = "redis://cdra-test.invalid:6399/0".into();
        assert_eq!(client.targets(true).expect("kept").len(), targets.len());
    }

    #[test]
    fn the_lease_key_is_named_by_the_prefix() {
        let mut c = RedisConfig::new("redis://127.0.0.1/0");
        c.key_prefix = "cdra:site1".into();
        let lease = LeaseConfig { redis: c, ttl: TTL, node_id: "x".into() };
        assert_eq!(lease.key(), "cdra:site1:active");
        assert_eq!(lease.reply_timeout(), Duration::from_millis(375));
    }
}

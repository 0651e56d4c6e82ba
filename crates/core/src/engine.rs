//! The engine: one datagram in, actions out.

use core::net::{Ipv4Addr, SocketAddrV4};

use cdra_wire::{Message, Op};

use crate::config::{EngineConfig, Mode};
use crate::counters::{Counters, MessageKind};
use crate::outbox::Outbox;
use crate::proxy::ProxyState;
use crate::servers::ServerPool;
use crate::table::ClientTable;
use crate::time::Timestamp;
use crate::verdict::{DropReason, Verdict};

/// One received UDP datagram, as the I/O layer saw it.
#[derive(Debug, Clone, Copy)]
pub struct Ingress<'a> {
    /// Interface it arrived on (IP_PKTINFO `ipi_ifindex`).
    pub ifindex: u32,
    /// Sender address and port.
    pub src: SocketAddrV4,
    /// Destination address in the IP header (IP_PKTINFO `ipi_addr`).
    pub dst: Ipv4Addr,
    /// The UDP payload.
    pub data: &'a [u8],
}

/// The relay/proxy engine. Owns all state; see the crate docs.
#[derive(Debug)]
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) servers: ServerPool,
    pub(crate) counters: Counters,
    pub(crate) table: ClientTable,
    pub(crate) proxy: ProxyState,
    pub(crate) changes: crate::persist::ChangeLog,
    /// Working space for expanding and rewriting messages (no allocation per packet).
    pub(crate) scratch: Box<[u8]>,
    /// Local answers to unicast renewals, held for `renew_reply_delay`.
    pub(crate) held: crate::outbox::HeldReplies,
}

impl Engine {
    /// An engine for `config` (already validated by the caller).
    pub fn new(config: EngineConfig) -> Self {
        let servers = ServerPool::new(
            &config.servers,
            config.server_selection,
            config.server_timeout,
            config.server_unanswered_limit,
            config.server_retry_interval,
        );
        let counters = Counters::new(config.downstream.len() + 1, config.servers.len());
        let table = ClientTable::new(config.proxy.max_clients, config.proxy.max_tracked_requests, config.proxy.seed);
        let holds = config.mode == Mode::Proxy && !config.proxy.renew_reply_delay.is_zero();
        let held = if holds { config.proxy.max_held_replies } else { 0 };
        Engine {
            config,
            servers,
            counters,
            table,
            proxy: ProxyState::default(),
            changes: Default::default(),
            scratch: vec![0u8; crate::outbox::OUT_BUFFER_SIZE].into_boxed_slice(),
            held: crate::outbox::HeldReplies::new(held),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The client table (proxy mode).
    pub fn table(&self) -> &ClientTable {
        &self.table
    }

    /// The servers and their liveness.
    pub fn servers(&self) -> &ServerPool {
        &self.servers
    }

    /// Names of the counter interface slots: each downstream interface, then "upstream" (everything else).
    pub fn interface_slot_names(&self) -> impl Iterator<Item = &str> {
        self.config.downstream.iter().map(|d| d.name.as_str()).chain(core::iter::once("upstream"))
    }

    /// Index of the downstream interface `ifindex`.
    pub(crate) fn downstream_index(&self, ifindex: u32) -> Option<usize> {
        self.config.downstream.iter().position(|d| d.ifindex == ifindex)
    }

    /// Counter slot of an interface.
    pub(crate) fn slot_of(&self, ifindex: u32) -> usize {
        self.downstream_index(ifindex).unwrap_or(self.config.downstream.len())
    }

    /// Is `addr` one of our own addresses (any downstream or upstream address)?
    pub(crate) fn is_our_address(&self, addr: Ipv4Addr) -> bool {
        self.config.downstream.iter().any(|d| d.all_addresses.contains(&addr))
            || self.config.upstream_addresses.contains(&addr)
    }

    pub(crate) fn drop(&mut self, slot: usize, reason: DropReason) -> Verdict {
        self.counters.dropped(slot, reason);
        Verdict::Dropped(reason)
    }

    /// Handle one received datagram at time `now`; what must be sent is appended to
    /// `outbox`. Never panics, whatever the bytes.
    pub fn handle_datagram(&mut self, now: Timestamp, ingress: Ingress<'_>, outbox: &mut Outbox) -> Verdict {
        let slot = self.slot_of(ingress.ifindex);
        let msg = match Message::new_checked(ingress.data) {
            Ok(m) => m,
            Err(e) => return self.drop(slot, DropReason::Malformed(e)),
        };
        self.counters.received(slot, MessageKind::of(&msg));
        let downstream = self.downstream_index(ingress.ifindex);
        let upstream = self.config.upstream.contains(&ingress.ifindex);
        match msg.op() {
            Op::BootRequest => match downstream {
                Some(ds) if self.config.mode == Mode::Proxy => self.proxy_request(now, ds, &ingress, &msg, outbox),
                Some(ds) => self.relay_request(now, ds, &msg, outbox),
                None if upstream => self.drop(slot, DropReason::RequestOnUpstream),
                None => self.drop(slot, DropReason::UnknownInterface),
            },
            Op::BootReply => {
                if downstream.is_none() && !upstream && !self.config.upstream.is_empty() {
                    return self.drop(slot, DropReason::UnknownInterface);
                }
                match self.config.mode {
                    Mode::Proxy => self.proxy_reply(now, slot, *ingress.src.ip(), &msg, outbox),
                    Mode::Relay => self.relay_reply(now, slot, *ingress.src.ip(), &msg, outbox),
                }
            }
        }
    }
}

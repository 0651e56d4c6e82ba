//! A model DHCP client: the RFC 2131 figure 5 state machine with its timers.
//!
//! INIT -> SELECTING (the first OFFER wins) -> REQUESTING -> BOUND; at T1 RENEWING (unicast
//! to the server identifier it was given), at T2 REBINDING (broadcast), at the end of the
//! lease back to INIT; a reboot with a lease in hand is INIT-REBOOT (REQUEST with option
//! 50, broadcast). RELEASE is unicast to the server identifier, DECLINE broadcast.
//! Retransmissions back off 4, 8, 16, 32, 64 s with +-1 s of jitter (RFC 2131 4.1).
//!
//! Styles: with option 61 (`01`+MAC like udhcpc, or `ff`+IAID+DUID like dhcpcd, RFC 4361)
//! or without (like dhclient); broadcast flag on or off; plain BOOTP.
//!
//! The client never does I/O: it queues [`ClientTx`]s and address changes that the
//! network drains, and exposes its next timer. It records the lease it holds (address and
//! end, the end counted from when the request was first sent, RFC 2131 4.4.1) and whether
//! the address is configured on its interface (then it answers ARP probes and pings).

use cdra_wire::options::OptionCode;
use cdra_wire::{Message, MessageBuilder, MessageType, Op, WireError};
use core::net::Ipv4Addr;

use crate::msg::{build, Kind, KindCounts, Summary};
use crate::rng::SimRng;
use crate::sched::Millis;

/// How the client identifies itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdStyle {
    /// No option 61 (dhclient's default): servers key it by chaddr.
    Hardware,
    /// Option 61 = 01 + MAC (udhcpc, many embedded clients).
    MacId,
    /// Option 61 = ff + IAID + DUID-LL (dhcpcd, systemd-networkd; RFC 4361).
    Duid {
        /// The IAID.
        iaid: u32,
    },
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Its MAC (chaddr).
    pub mac: [u8; 6],
    /// Index of the link it is plugged into.
    pub link: usize,
    /// Identity style.
    pub id_style: IdStyle,
    /// Ask for broadcast replies (RFC 2131 4.1 broadcast bit).
    pub broadcast_flag: bool,
    /// A plain BOOTP client (RFC 951).
    pub bootp: bool,
    /// Option 55.
    pub param_list: Vec<u8>,
    /// When an INIT-REBOOT gets no answer, keep using the unexpired lease (RFC 2131 3.2
    /// allows it; dhclient does it). Off by default, so a reboot without an answer ends in
    /// INIT and the tests see who answered.
    pub reuse_lease_on_reboot_timeout: bool,
    /// REQUEST retransmissions in REQUESTING before going back to INIT.
    pub requesting_retries: u32,
    /// INIT-REBOOT retransmissions before giving up on the old address.
    pub reboot_retries: u32,
    /// A lease shorter than this is taken as this long, renewed at half (busybox udhcpc
    /// raises any lease under 30 s to 30 s). 0: leases as granted.
    pub min_lease_secs: u32,
}

impl ClientConfig {
    /// A DHCP client numbered `n` (MAC 02:5c:nn:nn:nn:nn) on `link`.
    pub fn numbered(n: u32, link: usize, id_style: IdStyle) -> Self {
        let b = n.to_be_bytes();
        Self::new([0x02, 0x5c, b[0], b[1], b[2], b[3]], link, id_style)
    }

    /// A DHCP client with `mac` on link `link`, option 61 per `id_style`.
    pub fn new(mac: [u8; 6], link: usize, id_style: IdStyle) -> Self {
        ClientConfig {
            mac,
            link,
            id_style,
            broadcast_flag: false,
            bootp: false,
            param_list: vec![1, 3, 6, 15, 51, 54, 58, 59],
            reuse_lease_on_reboot_timeout: false,
            requesting_retries: 4,
            reboot_retries: 2,
            min_lease_secs: 0,
        }
    }
}

/// RFC 2131 figure 5 states (plus off, and BOOTP's two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Powered off.
    Off,
    /// Waiting before starting over (after a DECLINE, RFC 2131 3.1 step 5: 10 s).
    Init,
    /// DISCOVER sent, waiting for OFFERs.
    Selecting,
    /// REQUEST for an OFFER sent.
    Requesting,
    /// INIT-REBOOT REQUEST sent.
    Rebooting,
    /// Holding a lease.
    Bound,
    /// Unicast renewal sent (after T1).
    Renewing,
    /// Broadcast renewal sent (after T2).
    Rebinding,
    /// BOOTREQUEST sent.
    BootpWaiting,
    /// Configured by BOOTP.
    BootpBound,
}

impl ClientState {
    /// Does the client use its address in this state?
    pub fn uses_address(self) -> bool {
        matches!(self, ClientState::Bound | ClientState::Renewing | ClientState::Rebinding | ClientState::BootpBound)
    }
}

/// A lease as the client records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The address.
    pub address: Ipv4Addr,
    /// Option 54 of the ACK (where RENEWING and RELEASE go).
    pub server_id: Ipv4Addr,
    /// When the request this lease answers was first sent (RFC 2131 4.4.1).
    pub start: Millis,
    /// Lease time, seconds (`u32::MAX`: infinite).
    pub lease_secs: u32,
    /// T1, seconds from `start`.
    pub t1_secs: u32,
    /// T2, seconds from `start`.
    pub t2_secs: u32,
    /// Option 1.
    pub mask: Option<Ipv4Addr>,
}

impl Lease {
    fn at(&self, secs: u32) -> Millis {
        if self.lease_secs == u32::MAX {
            Millis::MAX
        } else {
            self.start + u64::from(secs) * 1000
        }
    }
    /// When the lease ends (`Millis::MAX`: never).
    pub fn end(&self) -> Millis {
        self.at(self.lease_secs)
    }
    /// When T1 falls.
    pub fn t1(&self) -> Millis {
        self.at(self.t1_secs)
    }
    /// When T2 falls.
    pub fn t2(&self) -> Millis {
        self.at(self.t2_secs)
    }
}

/// What kind of transmission (as the client knows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxClass {
    /// DHCPDISCOVER.
    Discover,
    /// REQUEST answering an OFFER.
    Selecting,
    /// REQUEST in INIT-REBOOT.
    InitReboot,
    /// Unicast REQUEST in RENEWING.
    Renew,
    /// Broadcast REQUEST in REBINDING.
    Rebind,
    /// DHCPRELEASE.
    Release,
    /// DHCPDECLINE.
    Decline,
    /// DHCPINFORM.
    Inform,
    /// BOOTREQUEST.
    Bootp,
}

impl TxClass {
    /// Number of classes.
    pub const COUNT: usize = 9;
    /// Every class, index order.
    pub const ALL: [TxClass; TxClass::COUNT] = [
        TxClass::Discover,
        TxClass::Selecting,
        TxClass::InitReboot,
        TxClass::Renew,
        TxClass::Rebind,
        TxClass::Release,
        TxClass::Decline,
        TxClass::Inform,
        TxClass::Bootp,
    ];
    /// Label.
    pub fn label(self) -> &'static str {
        match self {
            TxClass::Discover => "discover",
            TxClass::Selecting => "selecting",
            TxClass::InitReboot => "init-reboot",
            TxClass::Renew => "renew",
            TxClass::Rebind => "rebind",
            TxClass::Release => "release",
            TxClass::Decline => "decline",
            TxClass::Inform => "inform",
            TxClass::Bootp => "bootp",
        }
    }
}

/// Where a transmission goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxTo {
    /// 255.255.255.255:67 on the client's link, from `src`:68.
    Broadcast {
        /// Source IP (0.0.0.0 or the client's address).
        src: Ipv4Addr,
    },
    /// IP unicast to `dst`:67, from `src`:68.
    Unicast {
        /// Source IP.
        src: Ipv4Addr,
        /// Destination IP.
        dst: Ipv4Addr,
    },
}

/// One datagram the client sends.
#[derive(Debug, Clone)]
pub struct ClientTx {
    /// Where it goes.
    pub to: TxTo,
    /// What it is.
    pub class: TxClass,
    /// First transmission of its transaction (not a retransmission).
    pub first: bool,
    /// The DHCP payload.
    pub data: Vec<u8>,
}

/// A change of the address configured on the client's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrChange {
    /// The address is (still, or newly) configured; its lease may have changed.
    Configured(Ipv4Addr),
    /// The address was removed.
    Unconfigured(Ipv4Addr),
}

/// Counters of one client.
#[derive(Debug, Clone, Default)]
pub struct ClientStats {
    /// Replies addressed to it (its chaddr) that reached it, by kind.
    pub received: KindCounts,
    /// Sent, by kind.
    pub sent: KindCounts,
    /// Sent, by class (index = `TxClass as usize`), first transmissions and retransmissions.
    pub sent_class: [u64; TxClass::COUNT],
    /// OFFERs accepted (one per DISCOVER transaction at most).
    pub offers_taken: u64,
    /// OFFERs for a DISCOVER that already had one (the paper's 5.2 says a proxy must not
    /// let this happen).
    pub extra_offers: u64,
    /// Leases obtained or extended (ACKs accepted).
    pub acks: u64,
    /// NAKs accepted.
    pub naks: u64,
    /// ACKs to a DHCPINFORM.
    pub inform_acks: u64,
    /// Replies ignored (wrong xid or state).
    pub ignored: u64,
    /// Leases that ran out.
    pub expirations: u64,
    /// BOOTREPLYs accepted.
    pub bootreplies: u64,
}

impl ClientStats {
    /// Transmissions of class `c`.
    pub fn sent_of(&self, c: TxClass) -> u64 {
        self.sent_class[c as usize]
    }
}

/// The model client.
#[derive(Debug)]
pub struct ModelClient {
    cfg: ClientConfig,
    state: ClientState,
    xid: u32,
    inform_xid: Option<u32>,
    tries: u32,
    /// When the current transaction's first message went out.
    first_sent: Millis,
    offer: Option<(Ipv4Addr, Ipv4Addr)>,
    /// OFFERs seen per DISCOVER xid (the last few transactions).
    offers_this_xid: Vec<(u32, u32)>,
    lease: Option<Lease>,
    hint: Option<Ipv4Addr>,
    configured: Option<Ipv4Addr>,
    timer: Option<Millis>,
    timer_gen: u64,
    rng: SimRng,
    /// Counters.
    pub stats: ClientStats,
    tx: Vec<ClientTx>,
    changes: Vec<AddrChange>,
}

const BROADCAST_FLAG: u16 = 0x8000;

impl ModelClient {
    /// A powered-off client.
    pub fn new(cfg: ClientConfig, rng: SimRng) -> Self {
        ModelClient {
            cfg,
            state: ClientState::Off,
            xid: 0,
            inform_xid: None,
            tries: 0,
            first_sent: 0,
            offer: None,
            offers_this_xid: Vec::new(),
            lease: None,
            hint: None,
            configured: None,
            timer: None,
            timer_gen: 0,
            rng,
            stats: ClientStats::default(),
            tx: Vec::new(),
            changes: Vec::new(),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }
    /// Its MAC.
    pub fn mac(&self) -> [u8; 6] {
        self.cfg.mac
    }
    /// The link it is on.
    pub fn link(&self) -> usize {
        self.cfg.link
    }
    /// Plug it into another link (the network calls [`ModelClient::link_changed`]).
    pub fn set_link(&mut self, link: usize) {
        self.cfg.link = link;
    }
    /// Its state.
    pub fn state(&self) -> ClientState {
        self.state
    }
    /// Is it powered on?
    pub fn is_on(&self) -> bool {
        self.state != ClientState::Off
    }
    /// The lease it records (also while off: it remembers it for INIT-REBOOT).
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }
    /// The address configured on its interface.
    pub fn configured(&self) -> Option<Ipv4Addr> {
        self.configured
    }
    /// The address it holds at `now` and the lease end: configured and not expired.
    pub fn held(&self, now: Millis) -> Option<(Ipv4Addr, Millis)> {
        let a = self.configured?;
        let end = self.lease.map(|l| l.end()).unwrap_or(0);
        (now < end).then_some((a, end))
    }
    /// The transaction id in use.
    pub fn xid(&self) -> u32 {
        self.xid
    }
    /// The identity a server keys it by (same encoding as [`crate::msg::client_key`]).
    pub fn key(&self) -> Vec<u8> {
        match self.client_id() {
            Some(id) => {
                let mut k = vec![1u8];
                k.extend_from_slice(&id);
                k
            }
            None => {
                let mut k = vec![0u8, 1];
                k.extend_from_slice(&self.cfg.mac);
                k
            }
        }
    }
    /// Option 61, if it sends one.
    pub fn client_id(&self) -> Option<Vec<u8>> {
        if self.cfg.bootp {
            return None;
        }
        match self.cfg.id_style {
            IdStyle::Hardware => None,
            IdStyle::MacId => {
                let mut v = vec![1u8];
                v.extend_from_slice(&self.cfg.mac);
                Some(v)
            }
            IdStyle::Duid { iaid } => {
                // RFC 4361 6.1: type 255, IAID, then a DUID; here DUID-LL (type 3, hw 1).
                let mut v = vec![0xffu8];
                v.extend_from_slice(&iaid.to_be_bytes());
                v.extend_from_slice(&[0, 3, 0, 1]);
                v.extend_from_slice(&self.cfg.mac);
                Some(v)
            }
        }
    }
    /// Next timer and its generation (a timer event carrying an older generation is stale).
    pub fn timer(&self) -> (Option<Millis>, u64) {
        (self.timer, self.timer_gen)
    }
    /// Take the queued transmissions.
    pub fn take_tx(&mut self) -> Vec<ClientTx> {
        std::mem::take(&mut self.tx)
    }
    /// Take the queued address changes.
    pub fn take_changes(&mut self) -> Vec<AddrChange> {
        std::mem::take(&mut self.changes)
    }

    fn set_timer(&mut self, at: Option<Millis>) {
        self.timer = at;
        self.timer_gen += 1;
    }

    fn backoff(&mut self, tries: u32) -> Millis {
        // RFC 2131 4.1: 4 s, doubling up to 64 s, randomized by +-1 s.
        let base = (4000u64 << tries.min(4)).min(64_000);
        base + self.rng.range(0, 2000) - 1000
    }

    fn new_xid(&mut self) -> u32 {
        loop {
            let x = self.rng.next_u32();
            if x != 0 && x != self.xid {
                return x;
            }
        }
    }

    fn configure(&mut self, a: Ipv4Addr) {
        if let Some(old) = self.configured {
            if old != a {
                self.changes.push(AddrChange::Unconfigured(old));
            }
        }
        self.configured = Some(a);
        self.changes.push(AddrChange::Configured(a));
    }

    fn unconfigure(&mut self) {
        if let Some(old) = self.configured.take() {
            self.changes.push(AddrChange::Unconfigured(old));
        }
    }

    // ---- building messages ----

    fn message(
        &self,
        t: MessageType,
        ciaddr: Ipv4Addr,
        broadcast: bool,
        extra: impl FnOnce(&mut MessageBuilder<'_>) -> Result<(), WireError>,
    ) -> Vec<u8> {
        let id = self.client_id();
        let flags = if broadcast && self.cfg.broadcast_flag { BROADCAST_FLAG } else { 0 };
        build(Op::BootRequest, Some(t), |b| {
            b.xid(self.xid).flags(flags).ciaddr(ciaddr).chaddr(1, &self.cfg.mac);
            if let Some(id) = &id {
                b.options().option(OptionCode::CLIENT_ID, id)?;
            }
            extra(b)?;
            Ok(())
        })
    }

    fn send(&mut self, to: TxTo, class: TxClass, data: Vec<u8>) {
        if let Ok(m) = Message::new_checked(&data[..]) {
            self.stats.sent.bump(Kind::of(&m));
        }
        self.stats.sent_class[class as usize] += 1;
        let first = self.tries == 0 || matches!(class, TxClass::Release | TxClass::Decline | TxClass::Inform);
        self.tx.push(ClientTx { to, class, first, data });
    }

    fn send_discover(&mut self) {
        let hint = self.hint;
        let pl = self.cfg.param_list.clone();
        let data = self.message(MessageType::Discover, Ipv4Addr::UNSPECIFIED, true, |b| {
            if let Some(h) = hint {
                b.options().option_addr(OptionCode::REQUESTED_IP, h)?;
            }
            b.options().option(OptionCode::PARAMETER_REQUEST_LIST, &pl)?;
            Ok(())
        });
        self.send(TxTo::Broadcast { src: Ipv4Addr::UNSPECIFIED }, TxClass::Discover, data);
    }

    fn send_selecting(&mut self) {
        let Some((addr, sid)) = self.offer else { return };
        let pl = self.cfg.param_list.clone();
        let data = self.message(MessageType::Request, Ipv4Addr::UNSPECIFIED, true, |b| {
            b.options().option_addr(OptionCode::REQUESTED_IP, addr)?;
            b.options().option_addr(OptionCode::SERVER_ID, sid)?;
            b.options().option(OptionCode::PARAMETER_REQUEST_LIST, &pl)?;
            Ok(())
        });
        self.send(TxTo::Broadcast { src: Ipv4Addr::UNSPECIFIED }, TxClass::Selecting, data);
    }

    fn send_init_reboot(&mut self) {
        let Some(l) = self.lease else { return };
        let pl = self.cfg.param_list.clone();
        let data = self.message(MessageType::Request, Ipv4Addr::UNSPECIFIED, true, |b| {
            b.options().option_addr(OptionCode::REQUESTED_IP, l.address)?;
            b.options().option(OptionCode::PARAMETER_REQUEST_LIST, &pl)?;
            Ok(())
        });
        self.send(TxTo::Broadcast { src: Ipv4Addr::UNSPECIFIED }, TxClass::InitReboot, data);
    }

    fn send_renew(&mut self, rebind: bool) {
        let Some(l) = self.lease else { return };
        let pl = self.cfg.param_list.clone();
        // RFC 2131 4.3.2 / table 5: RENEWING and REBINDING carry ciaddr, no 50, no 54.
        let data = self.message(MessageType::Request, l.address, false, |b| {
            b.options().option(OptionCode::PARAMETER_REQUEST_LIST, &pl)?;
            Ok(())
        });
        if rebind {
            self.send(TxTo::Broadcast { src: l.address }, TxClass::Rebind, data);
        } else {
            self.send(TxTo::Unicast { src: l.address, dst: l.server_id }, TxClass::Renew, data);
        }
    }

    fn send_bootrequest(&mut self) {
        let data = build(Op::BootRequest, None, |b| {
            b.xid(self.xid).chaddr(1, &self.cfg.mac);
            Ok(())
        });
        self.send(TxTo::Broadcast { src: Ipv4Addr::UNSPECIFIED }, TxClass::Bootp, data);
    }

    // ---- transitions ----

    /// Begin a new transaction in `state`: fresh xid, first transmission, first backoff.
    fn start_transaction(&mut self, now: Millis, state: ClientState, send: fn(&mut Self)) {
        self.state = state;
        self.xid = self.new_xid();
        self.tries = 0;
        self.first_sent = now;
        send(self);
        let d = self.backoff(0);
        self.set_timer(Some(now + d));
    }

    fn start_discover(&mut self, now: Millis) {
        self.offer = None;
        self.start_transaction(now, ClientState::Selecting, Self::send_discover);
    }

    fn start_reboot(&mut self, now: Millis) {
        self.start_transaction(now, ClientState::Rebooting, Self::send_init_reboot);
    }

    fn start_bootp(&mut self, now: Millis) {
        self.start_transaction(now, ClientState::BootpWaiting, Self::send_bootrequest);
    }

    fn enter_bound(&mut self, now: Millis) {
        self.state = ClientState::Bound;
        let t1 = self.lease.map(|l| l.t1()).unwrap_or(Millis::MAX);
        self.set_timer((t1 != Millis::MAX).then_some(t1.max(now)));
    }

    fn start_renewing(&mut self, now: Millis) {
        self.state = ClientState::Renewing;
        self.xid = self.new_xid();
        self.tries = 0;
        self.first_sent = now;
        self.send_renew(false);
        self.renew_timer(now);
    }

    fn renew_timer(&mut self, now: Millis) {
        // RFC 2131 4.4.5: wait half the time left until T2 (down to 60 s).
        let Some(l) = self.lease else { return };
        let limit = if self.state == ClientState::Renewing { l.t2() } else { l.end() };
        let wait = (limit.saturating_sub(now) / 2).max(60_000);
        self.set_timer(Some((now + wait).min(limit).max(now)));
    }

    fn start_rebinding(&mut self, now: Millis) {
        self.state = ClientState::Rebinding;
        self.xid = self.new_xid();
        self.tries = 0;
        self.first_sent = now;
        self.send_renew(true);
        self.renew_timer(now);
    }

    fn expire(&mut self, now: Millis) {
        self.stats.expirations += 1;
        self.unconfigure();
        self.hint = self.lease.map(|l| l.address);
        self.lease = None;
        self.start_discover(now);
    }

    /// Power on: INIT-REBOOT with an unexpired remembered lease, else INIT.
    pub fn power_on(&mut self, now: Millis) {
        if self.state != ClientState::Off {
            return;
        }
        if self.cfg.bootp {
            self.start_bootp(now);
            return;
        }
        match self.lease {
            Some(l) if l.end() > now => self.start_reboot(now),
            Some(l) => {
                self.hint = Some(l.address);
                self.lease = None;
                self.start_discover(now);
            }
            None => self.start_discover(now),
        }
    }

    /// Power off; with `release`, send a RELEASE first (RFC 2131 4.4.6) and forget the lease.
    pub fn power_off(&mut self, now: Millis, release: bool) {
        let _ = now;
        if self.state == ClientState::Off {
            return;
        }
        if release && !self.cfg.bootp && self.state.uses_address() {
            if let Some(l) = self.lease {
                let sid = l.server_id;
                self.xid = self.new_xid();
                let data = self.message(MessageType::Release, l.address, false, |b| {
                    b.options().option_addr(OptionCode::SERVER_ID, sid)?;
                    Ok(())
                });
                self.send(TxTo::Unicast { src: l.address, dst: sid }, TxClass::Release, data);
                self.hint = Some(l.address);
                self.lease = None;
            }
        }
        if self.cfg.bootp {
            self.lease = None;
        }
        self.unconfigure();
        self.state = ClientState::Off;
        self.set_timer(None);
    }

    /// Forget the remembered lease (a wiped lease file): the next boot DISCOVERs.
    pub fn forget_lease(&mut self) {
        if self.state == ClientState::Off {
            self.lease = None;
            self.hint = None;
        }
    }

    /// The link changed (RFC 2131 3.7: a client that may have moved verifies its lease
    /// with INIT-REBOOT).
    pub fn link_changed(&mut self, now: Millis) {
        if self.state == ClientState::Off {
            return;
        }
        self.unconfigure();
        if self.cfg.bootp {
            self.start_bootp(now);
            return;
        }
        match self.lease {
            Some(l) if l.end() > now => self.start_reboot(now),
            _ => {
                self.lease = None;
                self.start_discover(now);
            }
        }
    }

    /// Renew now, before T1 (`dhclient` run again, `dhcpcd -n`).
    pub fn renew_now(&mut self, now: Millis) {
        if self.state == ClientState::Bound {
            self.start_renewing(now);
        }
    }

    /// Decline the address (as if an ARP check had found it in use), then start over
    /// after 10 s (RFC 2131 3.1 step 5).
    pub fn decline(&mut self, now: Millis) {
        if !self.state.uses_address() || self.cfg.bootp {
            return;
        }
        let Some(l) = self.lease else { return };
        let sid = l.server_id;
        self.xid = self.new_xid();
        let data = self.message(MessageType::Decline, Ipv4Addr::UNSPECIFIED, false, |b| {
            b.options().option_addr(OptionCode::REQUESTED_IP, l.address)?;
            b.options().option_addr(OptionCode::SERVER_ID, sid)?;
            Ok(())
        });
        self.send(TxTo::Broadcast { src: Ipv4Addr::UNSPECIFIED }, TxClass::Decline, data);
        self.unconfigure();
        self.lease = None;
        self.hint = None;
        self.state = ClientState::Init;
        self.set_timer(Some(now + 10_000));
    }

    /// Send a DHCPINFORM (RFC 2131 4.4.3) for the configured address.
    pub fn inform(&mut self, now: Millis) {
        let _ = now;
        let Some(a) = self.configured else { return };
        let x = self.new_xid();
        self.inform_xid = Some(x);
        let saved = self.xid;
        self.xid = x;
        let pl = self.cfg.param_list.clone();
        let data = self.message(MessageType::Inform, a, false, |b| {
            b.options().option(OptionCode::PARAMETER_REQUEST_LIST, &pl)?;
            Ok(())
        });
        self.xid = saved;
        self.send(TxTo::Broadcast { src: a }, TxClass::Inform, data);
    }

    /// The timer fired (the caller checked the generation).
    pub fn on_timer(&mut self, now: Millis) {
        self.timer = None;
        match self.state {
            ClientState::Off | ClientState::BootpBound => {}
            ClientState::Init => self.start_discover(now),
            ClientState::Selecting => {
                self.tries += 1;
                self.send_discover();
                let d = self.backoff(self.tries);
                self.set_timer(Some(now + d));
            }
            ClientState::Requesting => {
                self.tries += 1;
                if self.tries > self.cfg.requesting_retries {
                    self.start_discover(now);
                } else {
                    self.send_selecting();
                    let d = self.backoff(self.tries);
                    self.set_timer(Some(now + d));
                }
            }
            ClientState::Rebooting => {
                self.tries += 1;
                if self.tries > self.cfg.reboot_retries {
                    match self.lease {
                        Some(l) if self.cfg.reuse_lease_on_reboot_timeout && l.end() > now => {
                            self.configure(l.address);
                            self.enter_bound(now);
                        }
                        _ => {
                            self.hint = self.lease.map(|l| l.address);
                            self.lease = None;
                            self.start_discover(now);
                        }
                    }
                } else {
                    self.send_init_reboot();
                    let d = self.backoff(self.tries);
                    self.set_timer(Some(now + d));
                }
            }
            ClientState::Bound => {
                let Some(l) = self.lease else { return };
                if now >= l.end() {
                    self.expire(now);
                } else if now >= l.t2() {
                    self.start_rebinding(now);
                } else {
                    self.start_renewing(now);
                }
            }
            ClientState::Renewing => {
                let Some(l) = self.lease else { return };
                if now >= l.end() {
                    self.expire(now);
                } else if now >= l.t2() {
                    self.start_rebinding(now);
                } else {
                    self.tries += 1;
                    self.send_renew(false);
                    self.renew_timer(now);
                }
            }
            ClientState::Rebinding => {
                let Some(l) = self.lease else { return };
                if now >= l.end() {
                    self.expire(now);
                } else {
                    self.tries += 1;
                    self.send_renew(true);
                    self.renew_timer(now);
                }
            }
            ClientState::BootpWaiting => {
                self.tries += 1;
                self.send_bootrequest();
                let d = self.backoff(self.tries);
                self.set_timer(Some(now + d));
            }
        }
    }

    /// A datagram reached the client (its chaddr was checked by the network, and is
    /// checked again here).
    pub fn receive(&mut self, now: Millis, data: &[u8]) {
        let Ok(m) = Message::new_checked(data) else { return };
        if m.op() != Op::BootReply || m.chaddr() != &self.cfg.mac[..] || self.state == ClientState::Off {
            return;
        }
        let kind = Kind::of(&m);
        self.stats.received.bump(kind);
        let xid = m.xid();
        if Some(xid) == self.inform_xid && kind == Kind::Ack {
            self.inform_xid = None;
            self.stats.inform_acks += 1;
            return;
        }
        if kind == Kind::Offer {
            match self.offers_this_xid.iter_mut().find(|(x, _)| *x == xid) {
                Some((_, n)) => {
                    *n += 1;
                    self.stats.extra_offers += 1;
                }
                None => {
                    if self.offers_this_xid.len() >= 8 {
                        self.offers_this_xid.remove(0);
                    }
                    self.offers_this_xid.push((xid, 1));
                }
            }
        }
        if xid != self.xid {
            self.stats.ignored += 1;
            return;
        }
        match (self.state, kind) {
            (ClientState::Selecting, Kind::Offer) => {
                let sid = m.server_identifier().unwrap_or(Ipv4Addr::UNSPECIFIED);
                if m.yiaddr().is_unspecified() || sid.is_unspecified() {
                    self.stats.ignored += 1;
                    return;
                }
                self.stats.offers_taken += 1;
                self.offer = Some((m.yiaddr(), sid));
                self.state = ClientState::Requesting;
                self.tries = 0;
                self.first_sent = now;
                self.send_selecting();
                let d = self.backoff(0);
                self.set_timer(Some(now + d));
            }
            (
                ClientState::Requesting | ClientState::Rebooting | ClientState::Renewing | ClientState::Rebinding,
                Kind::Ack,
            ) => {
                let a = m.yiaddr();
                let Some(secs) = m.lease_time() else {
                    self.stats.ignored += 1;
                    return;
                };
                if a.is_unspecified() {
                    self.stats.ignored += 1;
                    return;
                }
                // RFC 2132 9.11/9.12 defaults: T1 = 0.5, T2 = 0.875 of the lease. A client
                // that raises short leases (udhcpc) uses the defaults of the raised one.
                let raised = secs < self.cfg.min_lease_secs;
                let secs = secs.max(self.cfg.min_lease_secs);
                let t1 = m.renewal_time().filter(|_| !raised).unwrap_or(secs / 2);
                let t2 = m.rebinding_time().filter(|_| !raised).unwrap_or((u64::from(secs) * 7 / 8) as u32);
                let t2 = t2.min(secs);
                let t1 = t1.min(t2);
                let sid = m.server_identifier().or(self.lease.map(|l| l.server_id)).unwrap_or(Ipv4Addr::UNSPECIFIED);
                self.lease = Some(Lease {
                    address: a,
                    server_id: sid,
                    start: self.first_sent,
                    lease_secs: secs,
                    t1_secs: t1,
                    t2_secs: t2,
                    mask: m.subnet_mask(),
                });
                self.hint = Some(a);
                self.stats.acks += 1;
                self.configure(a);
                self.enter_bound(now);
            }
            (
                ClientState::Requesting | ClientState::Rebooting | ClientState::Renewing | ClientState::Rebinding,
                Kind::Nak,
            ) => {
                self.stats.naks += 1;
                self.unconfigure();
                self.lease = None;
                self.hint = None;
                self.start_discover(now);
            }
            (ClientState::BootpWaiting, Kind::BootReply) => {
                let a = m.yiaddr();
                if a.is_unspecified() {
                    self.stats.ignored += 1;
                    return;
                }
                self.stats.bootreplies += 1;
                self.lease = Some(Lease {
                    address: a,
                    server_id: m.siaddr(),
                    start: self.first_sent,
                    lease_secs: u32::MAX,
                    t1_secs: u32::MAX,
                    t2_secs: u32::MAX,
                    mask: m.subnet_mask(),
                });
                self.configure(a);
                self.state = ClientState::BootpBound;
                self.set_timer(None);
            }
            _ => self.stats.ignored += 1,
        }
    }

    /// Summary of a datagram, for traces.
    pub fn summarize(data: &[u8]) -> Option<Summary> {
        Summary::parse(data)
    }
}

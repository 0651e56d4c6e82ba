//! Spoofing mode's interception: the router stops forwarding client unicasts to the DHCP
//! servers, so that cdra, which reads them off the client links, answers them (paper 4.2:
//! "It must intercept packets which are addressed to another host ... It would also be
//! beneficial for the spoofing CDRA to have the ability to prevent the unicast packet from
//! reaching its destination").
//!
//! An [`Interception`] is an nftables table that this process creates over a netfilter
//! netlink socket it keeps open for its whole life:
//!
//! ```text
//! table ip cdra_spoof_<pid> {                      # flags owner
//!     set servers { type ipv4_addr; size N; elements = { <servers> } }
//!     chain forward {
//!         type filter hook forward priority filter; policy accept;
//!         iifname "<downstream>" ip protocol udp ip frag-off & 0x3fff == 0
//!             udp dport 67 ip daddr @servers counter drop        # one rule per link
//!     }
//! }
//! ```
//!
//! Guarantees:
//! * **Nothing outlives the process.** The table carries NFT_TABLE_F_OWNER: the kernel
//!   deletes it, with its set, chain and rules, when the netlink socket that created it is
//!   closed — on drop, on exit, on SIGKILL, on a crash. There is no NAT and no conntrack
//!   state (nothing `ct`-related is used), so no flow keeps being diverted after that; the
//!   next renewal of a client is forwarded to its server by the kernel as usual.
//! * **Only what cdra would take is stopped.** UDP to port 67, not fragmented (the taps
//!   read only unfragmented datagrams), arriving on a downstream interface (matched by
//!   name, so a link that is deleted and re-created is still covered), addressed to one of
//!   the intercepted addresses. Every other flow between the client links and the servers
//!   (DNS, ICMP, anything not UDP/67, UDP/67 to other hosts, or from other interfaces) is
//!   untouched, and only the forward hook is used: datagrams addressed to the router
//!   itself are not forwarded anyway and reach cdra's sockets as before.
//! * **cdra still sees what is dropped.** The forward hook runs inside the IPv4 stack,
//!   after the frame was handed to every packet socket of the interface; the AF_PACKET
//!   tap (bound to ETH_P_IP, see [`crate::tap`]) gets its copy first. (A netdev ingress
//!   hook would run before the packet sockets bound to a protocol and hide the frame.)
//! * **Bounded.** The set is created with `size` = the capacity given (the kernel refuses
//!   more elements), and [`Interception::add_address`] refuses beyond it without asking the
//!   kernel ([`Added::Full`]).
//! * **Unique per process.** The table is named after the pid, and created with
//!   NLM_F_EXCL: a cdra never adopts or changes another process's table (owner tables
//!   cannot be changed by another socket anyway).
//! * Needs CAP_NET_ADMIN for every change (the kernel checks it per message), in the
//!   network namespace the interception was installed in.
//!
//! Why these crates: the messages are built with `netlink-packet-netfilter` (the
//! rust-netlink family's nftables types: tables with the owner flag, chains and hooks,
//! rules with payload/cmp/meta/lookup/immediate expressions, sets, set elements and the
//! batch begin/end control messages) and sent over `netlink-sys`'s socket. The rest is
//! what `nft` would send for the ruleset above; no `nft` binary or libnftnl is needed at
//! run time.

use std::io;
use std::net::Ipv4Addr;
use std::ops::ControlFlow;
use std::time::Duration;

use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_netfilter::nftables::{
    Bitwise, ChainAttribute, ChainMessage, Cmp, DataAttribute, ExpressionAttribute, Expressions, Hook, Immediate,
    InetHookNumber, ListAttribute, Lookup, Meta, MetaKey, NfTablesMessage, Operator, Payload, Register, RuleAttribute,
    RuleMessage, SetAttribute, SetDescription, SetElementAttribute, SetElementList, SetElementMessage, SetFlags,
    SetMessage, TableAttribute, TableFlags, TableMessage, Verdict, VerdictAttribute,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use netlink_sys::protocols::NETLINK_NETFILTER;

use crate::error::check_ifname;
use crate::nl::NlSocket;
use crate::SysError;

/// The name of the set of intercepted addresses in the table.
pub const SET_NAME: &str = "servers";
/// The name of the base chain on the forward hook.
pub const CHAIN_NAME: &str = "forward";
/// What a table name starts with; the pid follows.
pub const TABLE_PREFIX: &str = "cdra_spoof_";

/// How long the kernel's answer to a batch is waited for. The kernel processes a batch
/// while the send call runs, so its answers are queued when `send` returns.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// `NFNL_SUBSYS_NFTABLES`: the subsystem a batch is for.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NF_DROP`.
const NF_DROP: u32 = 0;
/// `NF_ACCEPT`: the chain's policy.
const NF_ACCEPT: u32 = 1;
/// `NFT_PAYLOAD_NETWORK_HEADER`.
const NETWORK_HEADER: u32 = 1;
/// `NFT_PAYLOAD_TRANSPORT_HEADER`.
const TRANSPORT_HEADER: u32 = 2;
/// nftables' data type of an IPv4 address (`TYPE_IPADDR`), for the set's key.
const TYPE_IPADDR: u32 = 7;
/// `NF_IP_PRI_FILTER`.
const PRIORITY_FILTER: u32 = 0;
/// The set's id within the creating batch (rules refer to it before it is committed).
const SET_ID: u32 = 1;
/// `IPPROTO_UDP`.
const IPPROTO_UDP: u8 = 17;
/// The DHCP server port (RFC 2131 4.1).
const SERVER_PORT: u16 = 67;
/// `IFNAMSIZ`: `meta iifname` loads this many bytes, NUL-padded.
const IFNAMSIZ: usize = 16;

/// What [`Interception::add_address`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// The address is intercepted from now on.
    Added,
    /// It already was.
    AlreadyThere,
    /// The set is at its capacity: not added.
    Full,
}

/// The interception table of this process; the kernel deletes it when this is dropped (or
/// the process dies). See the module documentation.
pub struct Interception {
    socket: NlSocket,
    table: String,
    interfaces: Vec<String>,
    addresses: Vec<Ipv4Addr>,
    capacity: usize,
}

impl std::fmt::Debug for Interception {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interception")
            .field("table", &self.table)
            .field("interfaces", &self.interfaces)
            .field("addresses", &self.addresses)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Interception {
    /// Creates the table in the calling thread's network namespace: client unicasts to
    /// UDP port 67 of `addresses` arriving on any of `interfaces` are no longer forwarded.
    /// At most `capacity` addresses can ever be intercepted (at least one; more than
    /// `addresses` leaves room for [`Interception::add_address`]).
    ///
    /// Errors: an interface name no interface can have, no interface, more addresses than
    /// `capacity`, a kernel without nftables, or no CAP_NET_ADMIN (a
    /// [`SysError::PermissionDenied`] that says so).
    pub fn install(interfaces: &[&str], addresses: &[Ipv4Addr], capacity: usize) -> Result<Interception, SysError> {
        const ACTION: &str = "installing the spoofing-mode interception (nftables)";
        for name in interfaces {
            check_ifname(name)?;
        }
        if interfaces.is_empty() {
            return Err(invalid(ACTION, "no downstream interface"));
        }
        let capacity = capacity.max(1);
        let mut unique: Vec<Ipv4Addr> = Vec::with_capacity(addresses.len());
        for a in addresses {
            if !unique.contains(a) {
                unique.push(*a);
            }
        }
        if unique.len() > capacity {
            return Err(invalid(ACTION, &format!("{} addresses, capacity {capacity}", unique.len())));
        }
        let size = u32::try_from(capacity).map_err(|_| invalid(ACTION, "capacity too large"))?;
        let socket = NlSocket::open(NETLINK_NETFILTER, "nftables", "CAP_NET_ADMIN")?;
        let mut me = Interception {
            socket,
            table: format!("{TABLE_PREFIX}{}", std::process::id()),
            interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
            addresses: Vec::new(),
            capacity,
        };
        let table = me.table.clone();
        let mut batch: Vec<(Step, NfTablesMessage, u16)> = vec![
            (
                Step::Table,
                NfTablesMessage::NewTable(TableMessage {
                    attributes: vec![
                        TableAttribute::Name(table.clone()),
                        TableAttribute::Flags(TableFlags::Owner),
                        TableAttribute::UserData(comment(&format!(
                            "cdra spoofing relay, pid {}: deleted by the kernel when cdra exits",
                            std::process::id()
                        ))),
                    ],
                }),
                NLM_F_CREATE | NLM_F_EXCL,
            ),
            (
                Step::Set,
                NfTablesMessage::NewSet(SetMessage {
                    attributes: vec![
                        SetAttribute::Table(table.clone()),
                        SetAttribute::Name(SET_NAME.to_string()),
                        SetAttribute::Flags(SetFlags::empty()),
                        SetAttribute::KeyType(TYPE_IPADDR),
                        SetAttribute::KeyLen(4),
                        SetAttribute::Id(SET_ID),
                        SetAttribute::Description(vec![SetDescription::Size(size)]),
                    ],
                }),
                NLM_F_CREATE | NLM_F_EXCL,
            ),
            (
                Step::Chain,
                NfTablesMessage::NewChain(ChainMessage {
                    attributes: vec![
                        ChainAttribute::Table(table.clone()),
                        ChainAttribute::Name(CHAIN_NAME.to_string()),
                        ChainAttribute::Hook(vec![
                            Hook::Number(InetHookNumber::Forward.into()),
                            Hook::Priority(PRIORITY_FILTER),
                        ]),
                        ChainAttribute::Policy(NF_ACCEPT),
                        ChainAttribute::Type("filter".to_string()),
                    ],
                }),
                NLM_F_CREATE | NLM_F_EXCL,
            ),
        ];
        for name in interfaces {
            batch.push((
                Step::Rule,
                NfTablesMessage::NewRule(RuleMessage {
                    attributes: vec![
                        RuleAttribute::Table(table.clone()),
                        RuleAttribute::Chain(CHAIN_NAME.to_string()),
                        RuleAttribute::Expressions(drop_rule(name)),
                    ],
                }),
                NLM_F_CREATE | NLM_F_APPEND,
            ));
        }
        if !unique.is_empty() {
            batch.push((Step::Elements, elements(&table, &unique, true), NLM_F_CREATE));
        }
        me.transact(ACTION, batch)?;
        me.addresses = unique;
        Ok(me)
    }

    /// Intercepts `addr` too (a server identifier first seen in an ACK). Nothing is sent to
    /// the kernel for an address already intercepted or beyond the capacity.
    pub fn add_address(&mut self, addr: Ipv4Addr) -> Result<Added, SysError> {
        if self.addresses.contains(&addr) {
            return Ok(Added::AlreadyThere);
        }
        if self.addresses.len() >= self.capacity {
            return Ok(Added::Full);
        }
        let msg = elements(&self.table, &[addr], false);
        self.transact(
            "adding an address to the spoofing-mode interception",
            vec![(Step::Elements, msg, NLM_F_CREATE)],
        )?;
        self.addresses.push(addr);
        Ok(Added::Added)
    }

    /// The table's name (`cdra_spoof_<pid>`).
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The interfaces whose client unicasts are intercepted.
    pub fn interfaces(&self) -> &[String] {
        &self.interfaces
    }

    /// The intercepted addresses, in the order they were added.
    pub fn addresses(&self) -> &[Ipv4Addr] {
        &self.addresses
    }

    /// The most addresses this interception can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sends `steps` as one nftables transaction (all or nothing) and waits for the kernel
    /// to acknowledge each.
    fn transact(&mut self, action: &str, steps: Vec<(Step, NfTablesMessage, u16)>) -> Result<(), SysError> {
        let begin = self.socket.next_seq();
        let mut messages = Vec::with_capacity(steps.len() + 2);
        let mut what = Vec::with_capacity(steps.len());
        messages.push(control(ControlMessage::BatchBegin, begin));
        for (step, msg, flags) in steps {
            let seq = self.socket.next_seq();
            let header = NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0);
            let mut m = NetlinkMessage::from(NetfilterMessage::new(header, msg));
            m.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
            m.header.sequence_number = seq;
            messages.push(m);
            what.push((seq, step));
        }
        let end = self.socket.next_seq();
        messages.push(control(ControlMessage::BatchEnd, end));
        let needs = "CAP_NET_ADMIN";
        self.socket.send(&mut messages).map_err(|e| SysError::from_io(action, needs, e))?;
        let mut acked = 0usize;
        let mut failure: Option<(Step, i32)> = None;
        let expected = what.len();
        let answered = self
            .socket
            .read::<NetfilterMessage>(begin..=end, ANSWER_TIMEOUT, |msg| {
                if let NetlinkPayload::Error(e) = msg.payload {
                    let step = what.iter().find(|(s, _)| *s == msg.header.sequence_number).map(|(_, st)| *st);
                    match (e.code, step) {
                        (None, Some(_)) => acked += 1,
                        (Some(code), step) => {
                            failure = Some((step.unwrap_or(Step::Batch), code.get()));
                            return ControlFlow::Break(());
                        }
                        (None, None) => {}
                    }
                }
                if acked == expected {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .map_err(|e| SysError::from_io(action, needs, e))?;
        if let Some((step, code)) = failure {
            let err = io::Error::from_raw_os_error(code.saturating_abs());
            return Err(SysError::from_io(format!("{action}: {}", step.label()), needs, err));
        }
        if !answered {
            return Err(SysError::from_io(action, needs, io::Error::from(io::ErrorKind::TimedOut)));
        }
        Ok(())
    }
}

/// One message of a transaction, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Table,
    Set,
    Chain,
    Rule,
    Elements,
    Batch,
}

impl Step {
    fn label(self) -> &'static str {
        match self {
            Step::Table => "creating the table",
            Step::Set => "creating the set of servers",
            Step::Chain => "creating the forward chain",
            Step::Rule => "adding a rule",
            Step::Elements => "adding server addresses",
            Step::Batch => "the transaction",
        }
    }
}

fn invalid(action: &str, what: &str) -> SysError {
    SysError::from_io(action, "", io::Error::new(io::ErrorKind::InvalidInput, what.to_string()))
}

/// A batch begin or end message (`NFNL_MSG_BATCH_*`, resource id = the nftables subsystem).
fn control(msg: ControlMessage, seq: u32) -> NetlinkMessage<NetfilterMessage> {
    let header = NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, NFNL_SUBSYS_NFTABLES);
    let mut m = NetlinkMessage::from(NetfilterMessage::new(header, msg));
    m.header.flags = NLM_F_REQUEST;
    m.header.sequence_number = seq;
    m
}

/// A NEWSETELEM message adding `addrs` to the set (`by_id`: the set is created in the same
/// batch).
fn elements(table: &str, addrs: &[Ipv4Addr], by_id: bool) -> NfTablesMessage {
    let mut attributes = vec![SetElementList::Table(table.to_string()), SetElementList::Set(SET_NAME.to_string())];
    if by_id {
        attributes.push(SetElementList::SetId(SET_ID));
    }
    attributes.push(SetElementList::Elements(
        addrs
            .iter()
            .map(|a| ListAttribute::Element(vec![SetElementAttribute::Key(DataAttribute::Value(a.octets().to_vec()))]))
            .collect(),
    ));
    NfTablesMessage::NewSetElement(SetElementMessage { attributes })
}

/// The expressions of the rule for one downstream interface:
/// `iifname NAME ip protocol udp ip frag-off & 0x3fff == 0 udp dport 67 ip daddr @servers
/// counter drop`.
fn drop_rule(interface: &str) -> Vec<ListAttribute<ExpressionAttribute>> {
    let mut name = [0u8; IFNAMSIZ];
    for (d, s) in name.iter_mut().zip(interface.as_bytes()) {
        *d = *s;
    }
    let load = |offset: u32, len: u32, base: u32| {
        Expressions::Payload(vec![
            Payload::DestinationRegister(Register::Reg1),
            Payload::Base(base),
            Payload::Offset(offset),
            Payload::Len(len),
        ])
        .into()
    };
    let equals = |value: Vec<u8>| {
        Expressions::Cmp(vec![
            Cmp::SourceRegister(Register::Reg1),
            Cmp::Op(Operator::Equal),
            Cmp::Data(DataAttribute::Value(value)),
        ])
        .into()
    };
    vec![
        // meta iifname NAME: by name, so a re-created interface is still matched.
        Expressions::Meta(vec![Meta::Key(MetaKey::Iifname), Meta::DestinationRegister(Register::Reg1)]).into(),
        equals(name.to_vec()),
        // ip protocol udp
        load(9, 1, NETWORK_HEADER),
        equals(vec![IPPROTO_UDP]),
        // ip frag-off & 0x3fff == 0: not a fragment (what the taps read).
        load(6, 2, NETWORK_HEADER),
        Expressions::Bitwise(vec![
            Bitwise::SourceRegister(Register::Reg1),
            Bitwise::DestinationRegister(Register::Reg1),
            Bitwise::Length(2),
            Bitwise::Mask(DataAttribute::Value(vec![0x3f, 0xff])),
            Bitwise::Xor(DataAttribute::Value(vec![0, 0])),
        ])
        .into(),
        equals(vec![0, 0]),
        // udp dport 67
        load(2, 2, TRANSPORT_HEADER),
        equals(SERVER_PORT.to_be_bytes().to_vec()),
        // ip daddr @servers
        load(16, 4, NETWORK_HEADER),
        Expressions::Lookup(vec![
            Lookup::SourceRegister(Register::Reg1),
            Lookup::Set(SET_NAME.to_string()),
            Lookup::SetId(SET_ID),
        ])
        .into(),
        // counter: `nft list ruleset` shows how many datagrams were stopped.
        Expressions::Other { expression_type: "counter".to_string(), attributes: Vec::new() }.into(),
        // drop
        Expressions::Immediate(vec![
            Immediate::DestinationRegister(Register::Verdict),
            Immediate::Data(DataAttribute::Verdict(vec![VerdictAttribute::Code(Verdict::Other(NF_DROP))])),
        ])
        .into(),
    ]
}

/// A table comment as `nft` writes it in the table's user data (`NFTNL_UDATA_TABLE_COMMENT`:
/// type 0, length, NUL-terminated text), at most 254 bytes.
fn comment(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let len = bytes.len().min(253);
    let mut out = Vec::with_capacity(len + 3);
    out.push(0);
    out.push((len + 1) as u8);
    out.extend_from_slice(bytes.get(..len).unwrap_or(bytes));
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    #[test]
    fn the_rule_matches_the_interface_by_its_padded_name_and_port_67() {
        let exprs = drop_rule("rd0");
        let text = format!("{exprs:?}");
        assert!(text.contains("Iifname"));
        assert!(text.contains(&format!("{:?}", b"rd0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec())));
        assert!(text.contains("[0, 67]"), "udp dport 67: {text}");
        assert!(text.contains("[17]"), "ip protocol udp");
        assert!(text.contains("Other(0)"), "verdict drop");
        // Every expression serializes (no panic on emit) to whole 4-byte units.
        let list = RuleAttribute::Expressions(exprs);
        let mut buf = vec![0u8; list.buffer_len()];
        list.emit(&mut buf);
        assert_eq!(buf.len() % 4, 0);
    }

    #[test]
    fn table_comment_is_a_udata_tlv() {
        assert_eq!(comment("ab"), vec![0, 3, b'a', b'b', 0]);
        let long = "x".repeat(400);
        let c = comment(&long);
        assert_eq!(c.len(), 256);
        assert_eq!(c[1], 254);
    }

    #[test]
    fn bad_arguments_are_errors_before_any_socket() {
        let e = Interception::install(&[], &[], 4).unwrap_err();
        assert!(e.to_string().contains("no downstream interface"), "{e}");
        let e = Interception::install(&["a/b"], &[], 4).unwrap_err();
        assert!(matches!(e, SysError::InvalidInterfaceName { .. }));
        let many = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];
        let e = Interception::install(&["eth0"], &many, 1).unwrap_err();
        assert!(e.to_string().contains("capacity 1"), "{e}");
    }
}

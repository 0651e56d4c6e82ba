//! Answering a cache hit allocates nothing (issue: "zero heap allocations per cache-hit
//! answer"). A counting global allocator around the system one; the test fails on any
//! allocation made while the engine answers warm RENEWs and DISCOVERs.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};

use cdra_core::config::Mode;
use cdra_core::Verdict;
use cdra_wire::MessageType;

use common::*;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Counting is on for this thread: only the engine's thread is counted (the test
    /// harness's main thread allocates while it waits for the test, at a moment that
    /// varies from run to run).
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count() {
    if COUNTING.with(std::cell::Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarding the caller's layout to the system allocator unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr was allocated by System with this layout (alloc above).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as for alloc/dealloc.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 100);

#[test]
fn cache_hit_answers_allocate_nothing() {
    let mut c = config();
    c.mode = Mode::Proxy;
    c.proxy.safe_network = true;
    let mut h = Harness::new(c);
    // Relay a first lease so the table holds the client's ACK.
    h.client_sends(&Msg::request(MessageType::Discover));
    let mut offer = Msg::reply(MessageType::Offer);
    offer.yiaddr = ADDR;
    h.server_sends(SERVER, &offer);
    let mut request = Msg::request(MessageType::Request);
    request.options.push((54, DS_ADDR.octets().to_vec()));
    request.options.push((50, ADDR.octets().to_vec()));
    h.client_sends(&request);
    let mut ack = Msg::reply(MessageType::Ack);
    ack.yiaddr = ADDR;
    h.server_sends(SERVER, &ack);

    let mut renew = Msg::request(MessageType::Request);
    renew.ciaddr = ADDR;
    let renew = renew.bytes();
    let discover = Msg::request(MessageType::Discover).bytes();
    let ingress = |data: &'static [u8], dst| cdra_core::Ingress {
        link_source: None,
        ifindex: DS_IF,
        src: std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        dst,
        data,
    };
    let renew: &'static [u8] = Box::leak(renew.into_boxed_slice());
    let discover: &'static [u8] = Box::leak(discover.into_boxed_slice());
    // Warm up (first use of any lazily grown structure), then count.
    for _ in 0..10 {
        h.advance(1);
        h.outbox.clear();
        h.engine.handle_datagram(h.now, ingress(renew, DS_ADDR), &mut h.outbox);
        h.outbox.clear();
        h.engine.handle_datagram(h.now, ingress(discover, Ipv4Addr::BROADCAST), &mut h.outbox);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    for _ in 0..1000 {
        // A second between requests keeps the client within its rate limit.
        h.advance(1);
        h.outbox.clear();
        let v = h.engine.handle_datagram(h.now, ingress(renew, DS_ADDR), &mut h.outbox);
        assert_eq!(v, Verdict::AnsweredLocally);
        h.outbox.clear();
        let v = h.engine.handle_datagram(h.now, ingress(discover, Ipv4Addr::BROADCAST), &mut h.outbox);
        assert_eq!(v, Verdict::AnsweredLocally);
    }
    COUNTING.with(|c| c.set(false));
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(allocations, 0, "{allocations} allocations in 2000 cache-hit answers");
}

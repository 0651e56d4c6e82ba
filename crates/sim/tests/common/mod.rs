//! Helpers shared by the simulation tests.
#![allow(dead_code)]

use core::net::Ipv4Addr;

use cdra_core::Mode;
use cdra_sim::{secs, IdStyle, Sim, SimConfig};

/// Address `last` on link `link` of the small topology (10.77.{link+1}.{last}).
pub fn addr(link: u8, last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, link + 1, last)
}

/// A proxy-mode network with one server (1-day leases) and precautions on unless `safe`.
pub fn proxy_sim(seed: u64, safe: bool) -> Sim {
    let mut c = SimConfig::small(seed, Mode::Proxy);
    c.proxy.safe_network = safe;
    c.servers[0].lease_secs = 86_400;
    Sim::new(c)
}

/// Same as [`proxy_sim`] but violations are recorded, not panicked on.
pub fn proxy_sim_recording(seed: u64, safe: bool) -> Sim {
    caching_sim_recording(seed, Mode::Proxy, safe)
}

/// A network in caching mode `mode` (one server, 1-day leases), precautions on unless
/// `safe`, violations recorded, not panicked on.
pub fn caching_sim_recording(seed: u64, mode: Mode, safe: bool) -> Sim {
    let mut c = SimConfig::small(seed, mode);
    c.proxy.safe_network = safe;
    c.servers[0].lease_secs = 86_400;
    c.panic_on_violation = false;
    Sim::new(c)
}

/// A network in caching mode `mode` (one server, 1-day leases), precautions on unless
/// `safe`.
pub fn caching_sim(seed: u64, mode: Mode, safe: bool) -> Sim {
    let mut c = SimConfig::small(seed, mode);
    c.proxy.safe_network = safe;
    c.servers[0].lease_secs = 86_400;
    Sim::new(c)
}

/// The server identifier a client on `link` sees in what the engine sends it: the engine's
/// address on the link (proxy, paper 4.1) or the server's own (spoof, paper 4.2).
pub fn identity_seen(sim: &Sim, link: usize) -> Ipv4Addr {
    match sim.config().mode {
        Mode::Spoof => sim.server(0).addr(),
        _ => sim.link_addr(link),
    }
}

/// Power `c` on and let it finish (10 s); returns the address it holds.
pub fn boot(sim: &mut Sim, c: usize) -> Option<Ipv4Addr> {
    sim.power_on(c);
    sim.run_for(secs(10));
    sim.held(c)
}

/// Add a client with option 61 = 01+MAC on `link`.
pub fn client(sim: &mut Sim, link: usize) -> usize {
    sim.add_dhcp_client(link, IdStyle::MacId)
}

/// Panic with the report and the trace.
pub fn fail(sim: &Sim, what: &str) -> ! {
    panic!("{what}\n{}\n{}", sim.report(), sim.trace_dump())
}

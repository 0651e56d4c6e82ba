//! Micro-benchmark: check a typical server ACK (as Kea sends it, ~300 bytes) and patch it
//! the way the proxy does for a local answer (xid, flags, ciaddr/yiaddr, option 54, lease,
//! T1, T2). Target: under 100 ns. `cargo bench -p cdra-wire --bench view_patch`.

use std::hint::black_box;
use std::net::Ipv4Addr;

use cdra_wire::options::OptionCode;
use cdra_wire::{Message, MessageBuilder, MessageType, Op};
use criterion::{criterion_group, criterion_main, Criterion};

fn typical_ack() -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let mut b = MessageBuilder::new(&mut buf, Op::BootReply, Some(MessageType::Ack)).expect("builder");
    b.xid(0xdead_beef)
        .yiaddr(Ipv4Addr::new(10, 77, 1, 100))
        .giaddr(Ipv4Addr::new(10, 77, 1, 1))
        .chaddr(1, &[2, 0, 0, 0, 0, 1]);
    for (code, data) in [
        (54u8, &[10u8, 77, 0, 1][..]),
        (51, &3600u32.to_be_bytes()[..]),
        (58, &1800u32.to_be_bytes()[..]),
        (59, &3150u32.to_be_bytes()[..]),
        (1, &[255, 255, 255, 0][..]),
        (3, &[10, 77, 1, 1][..]),
        (6, &[10, 77, 0, 53, 10, 77, 0, 54][..]),
        (15, &b"branch.example.net"[..]),
        (61, &[1, 2, 0, 0, 0, 0, 1][..]),
    ] {
        b.option(code, data).expect("option");
    }
    let len = b.finish().expect("finish");
    buf.truncate(len);
    buf
}

fn bench(c: &mut Criterion) {
    let ack = typical_ack();
    // The buffer is reset to the server's bytes outside the timed part (setup of
    // iter_batched_ref); what is timed is the check and the patches.
    c.bench_function("check+patch typical ACK", |b| {
        b.iter_batched_ref(
            || ack.clone(),
            |work| {
                let mut m = Message::new_checked(black_box(&mut work[..])).expect("valid");
                m.set_xid(0x1234_5678);
                m.set_flags(0);
                m.set_ciaddr(Ipv4Addr::new(10, 77, 1, 100));
                m.set_yiaddr(Ipv4Addr::new(10, 77, 1, 100));
                m.set_giaddr(Ipv4Addr::UNSPECIFIED);
                m.patch_options(&[
                    (OptionCode::MESSAGE_TYPE, &[5]),
                    (OptionCode::SERVER_ID, &[10, 77, 1, 1]),
                    (OptionCode::LEASE_TIME, &3000u32.to_be_bytes()),
                    (OptionCode::RENEWAL_T1, &1500u32.to_be_bytes()),
                    (OptionCode::REBINDING_T2, &2625u32.to_be_bytes()),
                ]);
                black_box(m.as_bytes().len())
            },
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("check only typical ACK", |b| b.iter(|| Message::new_checked(black_box(&ack[..])).is_ok()));
}

criterion_group!(benches, bench);
criterion_main!(benches);

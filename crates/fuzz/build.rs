//! Embeds the wire crate's committed fuzz corpus (real-world shaped captures: dhclient,
//! udhcpc, dhcpcd, Kea, ISC dhcpd, dnsmasq, relayed and hostile messages) so the engine
//! fuzzer can mutate them without reading files at run time.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest).join("../wire/fuzz/corpus/message");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut out = String::from("/// The wire crate's fuzz corpus: (file name, bytes), sorted by name.\n");
    out.push_str("pub static CORPUS: &[(&str, &[u8])] = &[\n");
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let path = f.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let _ = writeln!(out, "    ({name:?}, include_bytes!({:?})),", path.display().to_string());
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("corpus.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
}

//! Manual pages generated from the command line itself (`clap_mangen`): cdra(8), and one
//! page per subcommand, cdra-run(8), cdra-cache(8), cdra-cache-list(8) and so on.
//!
//! Why the binary writes them (`cdra manpages DIR`, a hidden subcommand) rather than a
//! build script or an xtask: the pages come from the very `clap` definition the installed
//! binary parses, with no second copy of it to drift (a build script would have to
//! `include!` main.rs's CLI types, an xtask would need them in a library crate), and the
//! only extra dependency is `clap_mangen` (a small crate writing roff). `scripts/package`
//! runs the release binary, gzips the pages and hands them to `cargo deb`.

use std::io;
use std::path::{Path, PathBuf};

/// Write `cmd`'s page and one for each (nested) subcommand into `dir`, section 8 (system
/// administration: cdra needs privileges to run). Returns the files written.
pub fn write_all(cmd: clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd.disable_help_subcommand(true);
    // Globals reach the subcommands only once the command is built.
    cmd.build();
    let mut written = Vec::new();
    write_tree(&cmd, cmd.get_name().to_string(), dir, &mut written)?;
    Ok(written)
}

fn write_tree(cmd: &clap::Command, name: String, dir: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
    let page = cmd.clone().name(name.clone()).bin_name(name.replace('-', " "));
    let mut roff = Vec::new();
    clap_mangen::Man::new(page).section("8").manual("cdra manual").render(&mut roff)?;
    let path = dir.join(format!("{name}.8"));
    std::fs::write(&path, roff)?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        write_tree(sub, format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_per_subcommand_in_section_8() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cmd = clap::Command::new("cdra")
            .about("a caching DHCPv4 relay agent")
            .subcommand(clap::Command::new("run").about("Run").arg(clap::Arg::new("config").long("config")))
            .subcommand(clap::Command::new("cache").subcommand(clap::Command::new("list").about("List")))
            .subcommand(clap::Command::new("secret").hide(true));
        let files = write_all(cmd, dir.path()).expect("written");
        let names: Vec<String> =
            files.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["cdra.8", "cdra-run.8", "cdra-cache.8", "cdra-cache-list.8"]);
        let run = std::fs::read_to_string(dir.path().join("cdra-run.8")).expect("page");
        assert!(run.contains(".TH cdra-run 8"), "{run}");
        assert!(run.contains("\\-\\-config"), "{run}");
    }
}

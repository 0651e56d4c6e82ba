//! Every fuzz case that ever failed (`regressions.txt`), replayed; every one must pass.
//! `expect=item1` marks the cases found before the reply-acceptance rule of issue 10 item 1
//! landed (they failed on old main), `expect=pass` the others.

use cdra_fuzz::{run, Case};

const FILE: &str = include_str!("../regressions.txt");

fn cases(expect: &str) -> Vec<(Case, &'static str)> {
    FILE.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter(|l| l.split('#').next().unwrap_or("").split_whitespace().any(|w| w == format!("expect={expect}")))
        .map(|l| (l.parse().unwrap_or_else(|e| panic!("regressions.txt: {e}")), l))
        .collect()
}

fn replay(expect: &str) {
    let cases = cases(expect);
    let failed: Vec<String> =
        cases.iter().filter_map(|(c, line)| run(c).err().map(|f| format!("{line}\n{f}"))).collect();
    assert!(failed.is_empty(), "{} of {} cases failed; the first:\n{}", failed.len(), cases.len(), failed[0]);
}

#[test]
fn every_line_parses_and_says_what_it_expects() {
    for line in FILE.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')) {
        let _: Case = line.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
        let code = line.split('#').next().unwrap_or("");
        assert!(
            code.split_whitespace().any(|w| w == "expect=pass" || w == "expect=item1"),
            "{line}: needs expect=pass or expect=item1"
        );
    }
}

#[test]
fn regressions_that_pass() {
    replay("pass");
}

#[test]
fn regressions_of_issue_10_item_1() {
    replay("item1");
}

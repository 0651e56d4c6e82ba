//! Unit tests of cdra-wire against hand-assembled, RFC-shaped messages (tests/common).

mod common;

#[path = "unit/accessors.rs"]
mod accessors;
#[path = "unit/builder.rs"]
mod builder;
#[path = "unit/checked.rs"]
mod checked;
#[path = "unit/ipv4.rs"]
mod ipv4;
#[path = "unit/options.rs"]
mod options;
#[path = "unit/relay_agent.rs"]
mod relay_agent;
#[path = "unit/rewrite.rs"]
mod rewrite;
#[path = "unit/unchecked.rs"]
mod unchecked;

//! The per-client event log (`[log] events = "json" | "text"`): the engine queues each
//! lease event as data ([`cdra_core::events`]); after every turn the loop hands them here
//! and they are written to standard output, one line each, while the diagnostic log stays
//! on standard error. Under systemd both reach the journal (`journalctl -u cdra -o cat`
//! shows the lines as written); redirect standard output to keep them apart.
//!
//! The engine's queue is bounded (`[log] events_queue`): events beyond it within one
//! turn are dropped and counted (`cdra_events_dropped_total`). A write that fails is
//! counted too (`cdra_events_write_errors_total`) and never stops the relay. A reload that
//! changes `[log]` takes effect at the end of the turn it happens in ([`turn`]); interface
//! names are looked up when the lines are written, so a reload's new interfaces are named.

use std::io::Write;
use std::net::Ipv4Addr;
use std::time::{Duration, UNIX_EPOCH};

use cdra_core::{Engine, LeaseEvent};
use serde::Serialize;

use crate::config::{EventFormat, EventLogSettings};

/// One JSON line. Absent fields are left out.
#[derive(Debug, Serialize)]
struct Line<'a> {
    /// RFC 3339, UTC, milliseconds.
    ts: String,
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<&'static str>,
    client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
}

impl<'a> Line<'a> {
    fn of<S: AsRef<str>>(e: &LeaseEvent, names: &'a [S]) -> Self {
        let at = UNIX_EPOCH + Duration::from_millis(e.at.as_millis());
        Line {
            ts: humantime::format_rfc3339_millis(at).to_string(),
            event: e.kind.label(),
            cause: e.kind.cause(),
            client: e.client.to_string(),
            interface: e.interface.and_then(|i| names.get(usize::from(i))).map(AsRef::as_ref),
            address: e.address,
            server: e.server,
            message: e.message.map(|m| m.label()),
        }
    }
}

/// Format one event as a line (with its line feed).
pub fn format_event<S: AsRef<str>>(format: EventFormat, e: &LeaseEvent, names: &[S]) -> String {
    let line = Line::of(e, names);
    let mut out = match format {
        EventFormat::Off => return String::new(),
        EventFormat::Json => serde_json::to_string(&line).unwrap_or_default(),
        EventFormat::Text => {
            use std::fmt::Write as _;
            let mut s = format!("{} {}", line.ts, line.event);
            if let Some(c) = line.cause {
                let _ = write!(s, " cause={c}");
            }
            let _ = write!(s, " client={}", line.client);
            if let Some(i) = line.interface {
                let _ = write!(s, " interface={i}");
            }
            if let Some(a) = line.address {
                let _ = write!(s, " address={a}");
            }
            if let Some(a) = line.server {
                let _ = write!(s, " server={a}");
            }
            if let Some(m) = line.message {
                let _ = write!(s, " message={m}");
            }
            s
        }
    };
    out.push('\n');
    out
}

/// What the loop calls at the end of every turn: follow `settings` (a reload may have
/// turned the log on, off, or changed it), then write what the engine queued.
pub fn turn(log: &mut Option<EventLog<std::io::Stdout>>, settings: EventLogSettings, engine: &mut Engine) {
    let running = log.as_ref().map(|l| l.settings);
    let wanted = (settings.format != EventFormat::Off).then_some(settings);
    if running != wanted {
        if let Some(l) = log.as_mut() {
            l.write_pending(engine);
        }
        let write_errors = log.as_ref().map_or(0, |l| l.write_errors);
        engine.set_event_log(0);
        *log = EventLog::start(settings, engine);
        if let Some(l) = log.as_mut() {
            l.write_errors = write_errors;
        }
    }
    if let Some(l) = log.as_mut() {
        l.write_pending(engine);
    }
}

/// Where the loop sends the engine's events.
pub struct EventLog<W: Write> {
    settings: EventLogSettings,
    format: EventFormat,
    out: W,
    buf: String,
    /// Writes that failed (the events in them are lost).
    pub write_errors: u64,
}

impl EventLog<std::io::Stdout> {
    /// Turn the engine's event queue on as `settings` say; `None` when the log is off.
    pub fn start(settings: EventLogSettings, engine: &mut Engine) -> Option<Self> {
        Self::with_writer(settings, engine, std::io::stdout())
    }
}

impl<W: Write> EventLog<W> {
    /// As [`EventLog::start`], writing to `out`.
    pub fn with_writer(settings: EventLogSettings, engine: &mut Engine, out: W) -> Option<Self> {
        if settings.format == EventFormat::Off {
            return None;
        }
        engine.set_event_log(settings.queue);
        Some(EventLog { settings, format: settings.format, out, buf: String::new(), write_errors: 0 })
    }

    /// Write every event the engine queued since the last call, in one write.
    pub fn write_pending(&mut self, engine: &mut Engine) {
        let events: Vec<LeaseEvent> = engine.drain_events().collect();
        if events.is_empty() {
            return;
        }
        let names: Vec<&str> = engine.config().downstream.iter().map(|d| d.name.as_str()).collect();
        self.buf.clear();
        for e in &events {
            self.buf.push_str(&format_event(self.format, e, &names));
        }
        if self.out.write_all(self.buf.as_bytes()).and_then(|()| self.out.flush()).is_err() {
            self.write_errors += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use cdra_core::counters::ProxyEvent;
    use cdra_core::table::{ClientKey, Removal};
    use cdra_core::{EventKind, Mode, Timestamp};
    use cdra_sim::SimConfig;

    use super::*;

    fn event(kind: EventKind) -> LeaseEvent {
        LeaseEvent {
            at: Timestamp::from_millis(1_780_000_000_123),
            kind,
            client: ClientKey::hardware(1, &[2, 0, 0, 0, 0, 7]),
            interface: Some(0),
            address: Some(Ipv4Addr::new(10, 0, 0, 7)),
            server: Some(Ipv4Addr::new(10, 9, 0, 1)),
            message: Some(cdra_core::counters::MessageKind::Dhcp(cdra_wire::MessageType::Ack)),
        }
    }

    #[test]
    fn json_lines_carry_every_field_and_leave_out_the_absent_ones() {
        let line = format_event(EventFormat::Json, &event(EventKind::Proxy(ProxyEvent::LocalAck)), &["ds0"]);
        assert!(line.ends_with("}\n") && line.lines().count() == 1, "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(v["ts"], "2026-05-28T20:26:40.123Z");
        assert_eq!(v["event"], "local_ack");
        assert_eq!(v["client"], "hw:1:02:00:00:00:00:07");
        assert_eq!(v["interface"], "ds0");
        assert_eq!(v["address"], "10.0.0.7");
        assert_eq!(v["server"], "10.9.0.1");
        assert_eq!(v["message"], "ack");
        assert!(v.get("cause").is_none());
        let mut gone = event(EventKind::Removed(Removal::Evicted));
        gone.server = None;
        gone.message = None;
        let v: serde_json::Value =
            serde_json::from_str(&format_event(EventFormat::Json, &gone, &["ds0"])).expect("JSON");
        assert_eq!((v["event"].as_str(), v["cause"].as_str()), (Some("removed"), Some("evicted")));
        assert!(v.get("server").is_none() && v.get("message").is_none(), "{v}");
    }

    #[test]
    fn text_lines_are_key_value() {
        let line = format_event(EventFormat::Text, &event(EventKind::Removed(Removal::Released)), &["ds0"]);
        assert_eq!(
            line,
            "2026-05-28T20:26:40.123Z removed cause=released client=hw:1:02:00:00:00:00:07 interface=ds0 \
             address=10.0.0.7 server=10.9.0.1 message=ack\n"
        );
    }

    #[test]
    fn off_means_no_queue_and_on_drains_the_engine() {
        let mut engine = Engine::new(SimConfig::small(1, Mode::Proxy).engine_config());
        let off = EventLogSettings { format: EventFormat::Off, queue: 16 };
        assert!(EventLog::with_writer(off, &mut engine, Vec::new()).is_none());
        let on = EventLogSettings { format: EventFormat::Json, queue: 16 };
        let mut log = EventLog::with_writer(on, &mut engine, Vec::new()).expect("on");
        let key = ClientKey::hardware(1, &[2, 0, 0, 0, 0, 1]);
        assert!(!engine.flush_client(&key), "nothing to flush, nothing logged");
        log.write_pending(&mut engine);
        assert!(log.out.is_empty());
    }
}

//! The promises every answer srvd renders must keep, checked after each run.

#![allow(dead_code)]

use srvd::records::{Answer, MAX_NAME, Srv};

/// Only letters, digits, hyphens, underscores and dots reach a template.
pub fn plain(s: &str) -> bool {
    s.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
    })
}

pub fn check_answer(answer: &Answer) {
    for r in &answer.records {
        check_record(r);
    }
    for w in answer.records.windows(2) {
        assert!(
            w[0].render_order(&w[1]).is_lt(),
            "records out of order or duplicated: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    for r in &answer.rejected {
        // Rejected targets are logged: printable ASCII only, one line.
        assert!(
            r.target.bytes().all(|b| b.is_ascii_graphic()),
            "a rejected target unsafe to log: {:?}",
            r.target
        );
        assert!(
            !r.reason.contains('\n'),
            "a reason on several lines: {:?}",
            r.reason
        );
    }
    if answer.records.is_empty() {
        return;
    }
    assert!(answer.had_records, "records without had_records");
}

pub fn check_record(r: &Srv) {
    assert!(
        plain(&r.host),
        "unsafe host reached a template: {:?}",
        r.host
    );
    assert!(!r.host.is_empty(), "an empty host");
    assert!(
        r.host.len() <= MAX_NAME,
        "a host of {} octets",
        r.host.len()
    );
    assert!(
        r.host.split('.').all(|l| !l.is_empty() && l.len() <= 63),
        "a bad label in {:?}",
        r.host
    );
    assert_eq!(r.target, format!("{}.", r.host), "target and host disagree");
    assert_ne!(r.port, 0, "port 0 reached a template");
}

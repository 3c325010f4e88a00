//! srvd.toml as anyone may write it: `config::parse` must turn any text into
//! settings or a list of problems, never panic, hang or blow up memory.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The one key that makes parse read a file named by the input; a fuzz
    // target touches no file outside its own.
    if text.contains("secret_file") {
        return;
    }
    // Relative paths resolve under a directory that does not exist.
    let path = Path::new("/nonexistent-srvd-fuzz/srvd.toml");
    match srvd::config::parse(text, path) {
        Ok(settings) => {
            assert!(
                !settings.templates.is_empty(),
                "settings without a template"
            );
            for t in &settings.templates {
                assert!(!t.domains.is_empty(), "a template without a domain");
                assert!(!t.timing.interval.is_zero(), "interval 0 accepted");
                assert!(!t.timing.timeout.is_zero(), "timeout 0 accepted");
                if let Some(w) = t.timing.wait {
                    assert!(w.min <= w.max, "wait min > max accepted");
                }
            }
        }
        Err(e) => {
            assert!(!e.problems.is_empty(), "an error without a problem");
            for p in &e.problems {
                assert!(!p.trim().is_empty(), "an empty problem");
            }
            // The message is printed whole: it must be formattable.
            let _ = e.to_string();
        }
    }
});

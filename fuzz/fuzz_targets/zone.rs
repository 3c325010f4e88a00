//! Zone files (`zone_file`, `srvd render --zone`): any file must give records
//! or an error from every lookup, never a panic, and whatever records come out
//! obey the same rules as records from DNS.
#![no_main]

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::OnceLock;

use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;
use srvd::zone::ZoneFile;

mod common;

/// One file in this process's own temporary directory, rewritten every run.
fn zone_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("srvd-fuzz-zone-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the fuzz directory");
        dir.join("fuzz.zone")
    })
}

const NAMES: &[&str] = &[
    "_mysql._tcp.example.com.",
    "_alias._tcp.example.com.",
    "example.com.",
    "db-001.example.com.",
    ".",
];

fuzz_target!(|data: &[u8]| {
    // $INCLUDE reads another file, named by the input: not here.
    if data.windows(8).any(|w| w.eq_ignore_ascii_case(b"$include")) {
        return;
    }
    let path = zone_path();
    std::fs::write(path, data).expect("writing the fuzz zone file");
    let zone = ZoneFile::open(path);
    let mut names: Vec<Name> = NAMES.iter().map(|n| Name::from_str(n).unwrap()).collect();
    // Also ask for the names the file itself mentions first on each line.
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines().take(8) {
            if let Some(word) = line.split_whitespace().next() {
                if let Ok(n) = Name::from_str(word) {
                    let origin = Name::from_str("example.com.").unwrap();
                    match n.clone().append_domain(&origin) {
                        Ok(full) if !n.is_fqdn() => names.push(full),
                        _ => names.push(n),
                    }
                }
            }
        }
    }
    for name in &names {
        if let Ok(answer) = zone.srv(name) {
            common::check_answer(&answer);
        }
        let _ = zone.addrs(name);
    }
});

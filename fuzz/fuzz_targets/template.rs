//! Templates as anyone may write them: compiling and rendering any text with
//! srvd's Tera setup gives text or an error, never a panic or a crash.
#![no_main]

use std::str::FromStr;

use hickory_proto::rr::rdata::SRV;
use hickory_proto::rr::{Name, RData, Record};
use libfuzzer_sys::fuzz_target;
use srvd::records::{self, Srv};
use srvd::render::Renderer;

/// Records as srvd makes them from an answer.
fn srvs(list: &[(&str, u16, u16)]) -> Vec<Srv> {
    let owner = Name::from_str("_x._tcp.example.com.").unwrap();
    let answer: Vec<Record> = list
        .iter()
        .map(|&(host, port, priority)| {
            let target = Name::from_str(&format!("{host}.")).unwrap();
            Record::from_rdata(
                owner.clone(),
                30,
                RData::SRV(SRV::new(priority, 5, port, target)),
            )
        })
        .collect();
    records::answer_from(&owner, &answer).records
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Helpers that read the host's interfaces are fine; nothing here may
    // read a file, and Tera has no include without a loader.
    let Ok(r) = Renderer::from_sources(vec![("fuzz.tmpl".into(), text.into())]) else {
        return;
    };
    let a = srvs(&[
        ("db-001.example.com", 3306, 10),
        ("db-002.example.com", 3307, 20),
    ]);
    let b = srvs(&[("cache.example.com", 6379, 0)]);
    let _ = r.render(
        0,
        &[
            ("_mysql._tcp.example.com", &a),
            ("_redis._tcp.example.com", &b),
        ],
        "fuzzhost",
    );
});

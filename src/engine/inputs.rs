//! A template's inputs: its domains' records under its rules (`allow_empty`,
//! `min_records`, `resolve_targets`), and the render cache that turns the
//! same records into no render at all (the common case: nothing changed).

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::rr::Name;

use super::error::Error;
use super::state::{Attempt, TemplateRun};
use crate::config::{RecordSource, TemplateSettings};
use crate::records::{self, Answer, LookupError, Rejected, Srv};
use crate::render::{self, Renderer};
use crate::source::{Source, SrvResult};
use crate::status::Counters;

/// Where records come from and how templates turn into bytes; what rejected
/// records were already logged.
pub struct Inputs {
    pub source: Source,
    pub renderer: Renderer,
    /// This host's name, for templates (`hostname`).
    pub hostname: String,
    /// Rejected records already logged, per domain: each is logged once.
    warned: HashMap<Name, Vec<Rejected>>,
    /// The same for targets left out for want of an address.
    warned_addrs: HashMap<Name, Vec<Rejected>>,
}

impl Inputs {
    pub fn new(source: &RecordSource, renderer: Renderer) -> anyhow::Result<Self> {
        Ok(Inputs {
            source: Source::new(source)?,
            renderer,
            hostname: render::host_name(),
            warned: HashMap::new(),
            warned_addrs: HashMap::new(),
        })
    }

    /// Looks up `wanted` (the cache answers what is fresh; `direct` names
    /// domains to ask a zone's primaries for now) and logs rejected records
    /// and counts errors of the answers that were asked for.
    pub async fn fetch(
        &mut self,
        wanted: &[Name],
        now: Instant,
        direct: &HashMap<Name, Vec<SocketAddr>>,
        counters: &mut Counters,
    ) -> HashMap<Name, SrvResult> {
        let fetched = self.source.srv(wanted, now, direct).await;
        let mut answers = HashMap::new();
        for f in fetched {
            if f.asked {
                match &f.result {
                    Ok(answer) => self.warn_rejected(&f.domain, &answer.rejected, false, counters),
                    Err(e) => *counters.dns_errors.entry(e.kind()).or_default() += 1,
                }
            }
            answers.insert(f.domain, f.result);
        }
        answers
    }

    /// The records of `t`'s domains under its rules, or why they cannot be
    /// used; each domain's line of /status is updated on the way.
    pub async fn records(
        &mut self,
        t: &TemplateSettings,
        run: &mut TemplateRun,
        answers: &HashMap<Name, SrvResult>,
        now: Instant,
        counters: &mut Counters,
    ) -> Result<Vec<Arc<Answer>>, Error> {
        let (allow_empty, min_records) = (t.allow_empty, t.min_records);
        let mut inputs = Vec::with_capacity(t.domains.len());
        let mut errors = Vec::new();
        for (d, status) in t.domains.iter().zip(run.domains.iter_mut()) {
            status.warning = match answers.get(&d.name) {
                Some(Ok(answer)) => answer.warning.clone(),
                _ => None,
            };
            let result = match answers.get(&d.name) {
                Some(Ok(answer)) => {
                    records::usable(answer, allow_empty, min_records).map(|()| answer.clone())
                }
                Some(Err(e)) => Err(e.clone()),
                None => Err(LookupError::Other("not looked up".into())),
            };
            let result = match result {
                Ok(answer) if t.resolve_targets => {
                    match self.source.resolve_targets(&d.name, &answer, now).await {
                        Ok(a) => {
                            // Past the SRV answer's own rejections: the
                            // targets without any address.
                            let unresolved = a.rejected.get(answer.rejected.len()..).unwrap_or(&[]);
                            self.warn_rejected(&d.name, unresolved, true, counters);
                            records::usable(&a, allow_empty, min_records).map(|()| a)
                        }
                        Err(e) => Err(e),
                    }
                }
                other => other,
            };
            match result {
                Ok(answer) => {
                    status.records = Some(answer.records.len());
                    status.error = None;
                    inputs.push(answer);
                }
                Err(e) => {
                    status.error = Some(e.to_string());
                    errors.push((d.text.clone(), e));
                }
            }
        }
        if errors.is_empty() {
            Ok(inputs)
        } else {
            Err(Error::Lookup(errors))
        }
    }

    /// Renders template `index` and returns the hash of the result, or reuses
    /// the last render when the records are the same. The bytes stay in
    /// `run.last` (see `content`).
    pub fn render(
        &self,
        index: usize,
        t: &TemplateSettings,
        run: &mut TemplateRun,
        inputs: &[Arc<Answer>],
        counters: &mut Counters,
    ) -> Result<u64, Error> {
        let reuse = match run.last.as_mut() {
            Some(a) if same_inputs(&a.inputs, inputs) => {
                // The render stands; hold the answers the cache holds now,
                // so that the ones they replaced are freed, not kept twice.
                a.inputs.clear();
                a.inputs.extend_from_slice(inputs);
                true
            }
            _ => false,
        };
        if !reuse {
            counters.renders += 1;
            let domains: Vec<(&str, &[Srv])> = t
                .domains
                .iter()
                .zip(inputs)
                .map(|(d, a)| (d.text.as_str(), a.records.as_slice()))
                .collect();
            let result = self
                .renderer
                .render(index, &domains, &self.hostname)
                .map(|text| {
                    let bytes: Arc<[u8]> = text.into_bytes().into();
                    let hash = hash_of(&bytes);
                    (bytes, hash)
                });
            if result.is_err() {
                counters.render_errors += 1;
            }
            run.last = Some(Attempt {
                inputs: inputs.to_vec(),
                result,
            });
        }
        match &run.last.as_ref().expect("set above").result {
            Ok((_, hash)) => Ok(*hash),
            Err(e) => Err(Error::Render(e.clone())),
        }
    }

    /// Logs each rejected record of `domain` once, until it comes back after
    /// having gone; `addresses` picks the list of targets without an address.
    fn warn_rejected(
        &mut self,
        domain: &Name,
        rejected: &[Rejected],
        addresses: bool,
        counters: &mut Counters,
    ) {
        let warned = if addresses {
            &mut self.warned_addrs
        } else {
            &mut self.warned
        };
        let seen = warned.entry(domain.clone()).or_default();
        for r in rejected {
            if !seen.contains(r) {
                counters.rejected_records += 1;
                log::warn!(srvd_domain = domain.to_string().as_str();
                    "{domain}: dropped SRV record {} port {}: {}", r.target, r.port, r.reason);
            }
        }
        *seen = rejected.to_vec();
    }
}

/// The bytes of the last successful render in `run`, or none.
pub fn content(run: &TemplateRun) -> &[u8] {
    match run.last.as_ref().map(|a| &a.result) {
        Some(Ok((content, _))) => content,
        _ => &[],
    }
}

/// The last render of `run`, shared (empty when there is none).
pub fn shared_content(run: &TemplateRun) -> Arc<[u8]> {
    match run.last.as_ref().map(|a| &a.result) {
        Some(Ok((content, _))) => content.clone(),
        _ => Arc::from(&[][..]),
    }
}

/// The targets (host:port) the records name, as dest's change log counts them.
pub fn targets_of(inputs: &[Arc<Answer>]) -> BTreeSet<String> {
    inputs
        .iter()
        .flat_map(|a| a.records.iter())
        .map(|r| format!("{}:{}", r.host, r.port))
        .collect()
}

fn hash_of(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Same records as last time: the same shared answers, or equal ones.
fn same_inputs(a: &[Arc<Answer>], b: &[Arc<Answer>]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| Arc::ptr_eq(x, y) || x.records == y.records)
}

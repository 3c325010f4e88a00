//! HAProxy's own interfaces: applying server changes through the runtime API
//! instead of a reload, and reloading through the master CLI with a verdict.
//!
//! - [`servers`]: what changed between two rendered configs, as server
//!   changes or as the reason a reload is needed (pure);
//! - [`runtime`]: the commands for those changes, carried out and checked on
//!   the stats socket;
//! - [`master`]: `reload` over the master CLI and its verdict from `show proc`;
//! - [`socket`]: one command per connection, bounded in time and size;
//! - [`template`]: the `haproxy_servers` template filter, records as server
//!   lines with unique names, weights and backups (pure).

pub mod master;
pub mod runtime;
pub mod servers;
pub mod socket;
pub mod template;

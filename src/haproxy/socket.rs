//! Talking to HAProxy's CLI sockets (the stats socket's runtime API and the
//! master CLI): one command per connection, an answer read to the end, every
//! step bounded by a deadline.
//!
//! HAProxy's CLI in its default, non-interactive mode answers one command line
//! and closes the connection (management.txt section 9.3), so the answer is
//! whatever arrives before end of file. Addresses are written as HAProxy
//! writes them in `stats socket` and `-S`: a path (or `unix@PATH`),
//! `ipv4@HOST:PORT`, `ipv6@[HOST]:PORT`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::timeout;

/// The most srvd reads of one answer. `show servers state` of a backend with
/// thousands of servers fits; a runaway answer does not fill memory.
const MAX_ANSWER: usize = 8 << 20;

/// Where a HAProxy CLI listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliAddress {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl CliAddress {
    /// Parses an address as srvd.toml writes it. `Err` says what forms exist.
    pub fn parse(text: &str) -> Result<CliAddress, String> {
        let hint = "write a socket path such as \"/run/haproxy/admin.sock\", or \
                    \"ipv4@127.0.0.1:9999\" / \"ipv6@[::1]:9999\"";
        let text = text.trim();
        if text.is_empty() {
            return Err(format!("the address is empty: {hint}"));
        }
        if let Some(path) = text.strip_prefix("unix@") {
            return Ok(CliAddress::Unix(PathBuf::from(path)));
        }
        for prefix in ["ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@"] {
            if let Some(addr) = text.strip_prefix(prefix) {
                return addr
                    .parse()
                    .map(CliAddress::Tcp)
                    .map_err(|_| format!("{text:?} is not HOST:PORT after {prefix}: {hint}"));
            }
        }
        if text.contains('@') {
            return Err(format!("{text:?}: unknown address prefix: {hint}"));
        }
        Ok(CliAddress::Unix(PathBuf::from(text)))
    }
}

impl fmt::Display for CliAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliAddress::Unix(p) => write!(f, "{}", p.display()),
            CliAddress::Tcp(a) if a.is_ipv4() => write!(f, "ipv4@{a}"),
            CliAddress::Tcp(a) => write!(f, "ipv6@{a}"),
        }
    }
}

/// A command that did not get an answer.
#[derive(Debug)]
pub enum CliError {
    Connect(std::io::Error),
    Io(std::io::Error),
    Timeout,
    TooLong,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Connect(e) => write!(f, "cannot connect: {e}"),
            CliError::Io(e) => write!(f, "{e}"),
            CliError::Timeout => f.write_str("no answer within the timeout"),
            CliError::TooLong => write!(f, "the answer is longer than {MAX_ANSWER} bytes"),
        }
    }
}

impl std::error::Error for CliError {}

/// Sends one command line and returns the whole answer, within `limit`.
pub async fn ask(addr: &CliAddress, command: &str, limit: Duration) -> Result<String, CliError> {
    debug_assert!(!command.contains('\n'), "one line per command");
    match timeout(limit, ask_unbounded(addr, command)).await {
        Ok(r) => r,
        Err(_) => Err(CliError::Timeout),
    }
}

async fn ask_unbounded(addr: &CliAddress, command: &str) -> Result<String, CliError> {
    match addr {
        CliAddress::Unix(path) => {
            let s = UnixStream::connect(path).await.map_err(CliError::Connect)?;
            exchange(s, command).await
        }
        CliAddress::Tcp(a) => {
            let s = TcpStream::connect(a).await.map_err(CliError::Connect)?;
            exchange(s, command).await
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    command: &str,
) -> Result<String, CliError> {
    s.write_all(format!("{command}\n").as_bytes())
        .await
        .map_err(CliError::Io)?;
    // The master CLI answers only once the client has finished sending.
    s.shutdown().await.map_err(CliError::Io)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut buf).await.map_err(CliError::Io)?;
        if n == 0 {
            break;
        }
        if out.len() + n > MAX_ANSWER {
            return Err(CliError::TooLong);
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_haproxy_writes_them() {
        assert_eq!(
            CliAddress::parse("/run/haproxy/admin.sock"),
            Ok(CliAddress::Unix("/run/haproxy/admin.sock".into()))
        );
        assert_eq!(
            CliAddress::parse("unix@/run/m.sock"),
            Ok(CliAddress::Unix("/run/m.sock".into()))
        );
        assert_eq!(
            CliAddress::parse("ipv4@127.0.0.1:9999"),
            Ok(CliAddress::Tcp("127.0.0.1:9999".parse().unwrap()))
        );
        assert_eq!(
            CliAddress::parse("ipv6@[::1]:9999").unwrap().to_string(),
            "ipv6@[::1]:9999"
        );
        let e = CliAddress::parse("ipv4@localhost").unwrap_err();
        assert!(
            e.contains("HOST:PORT") && e.contains("/run/haproxy/admin.sock"),
            "{e}"
        );
        assert!(
            CliAddress::parse("abns@x")
                .unwrap_err()
                .contains("unknown address prefix")
        );
        assert!(CliAddress::parse(" ").is_err());
    }

    #[tokio::test]
    async fn an_answer_is_read_to_the_end_and_a_silent_peer_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cli.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let addr = CliAddress::Unix(path);
        let server = tokio::spawn(async move {
            // First connection: answer and close. Second: say nothing.
            let (mut s, _) = listener.accept().await.unwrap();
            let mut line = [0u8; 64];
            let n = s.read(&mut line).await.unwrap();
            assert_eq!(&line[..n], b"show info\n");
            s.write_all(b"Name: HAProxy\nPid: 7\n").await.unwrap();
            drop(s);
            let (s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        });
        let answer = ask(&addr, "show info", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(answer, "Name: HAProxy\nPid: 7\n");
        let e = ask(&addr, "show info", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(e, CliError::Timeout), "{e}");
        server.abort();
        let gone = CliAddress::Unix(dir.path().join("none.sock"));
        let e = ask(&gone, "show info", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with("cannot connect"), "{e}");
    }
}

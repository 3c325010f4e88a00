//! The status endpoint's HTTP/1.x: GET /status and GET /metrics, one request
//! per connection. Every connection is bounded in size, time and number, so a
//! slow or hostile client cannot hold memory or stall the poll loop: they run
//! as their own tasks and only ever read the latest published snapshot.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::timeout;

use crate::status::Snapshot;

/// Largest request head read; more is refused with 431.
const MAX_REQUEST: usize = 8 * 1024;
/// Whole-connection deadline: request read and response written.
const DEADLINE: Duration = Duration::from_secs(5);
/// Connections served at once; the rest wait in the listen backlog.
const MAX_CONNECTIONS: usize = 128;

/// Serves forever on `listener`, answering from the latest snapshot.
pub async fn serve(listener: TcpListener, snapshots: watch::Receiver<Arc<Snapshot>>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                log::debug!("status endpoint: accept: {e}");
                // EMFILE and friends: give the system a moment.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let snapshots = snapshots.clone();
        tokio::spawn(async move {
            let _ = timeout(DEADLINE, handle(stream, snapshots)).await;
            drop(permit);
        });
    }
}

async fn handle(mut stream: TcpStream, snapshots: watch::Receiver<Arc<Snapshot>>) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(end) = find_head_end(&buf) {
            break end;
        }
        if buf.len() >= MAX_REQUEST {
            let _ = respond(&mut stream, 431, "text/plain", "request too large\n", false).await;
            return;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let (status, ctype, body, head_only) = route(&head, &snapshots.borrow());
    let _ = respond(&mut stream, status, ctype, &body, head_only).await;
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n"))
}

/// Picks the response for a request head. A plain function, tested below.
fn route(head: &str, snapshot: &Arc<Snapshot>) -> (u16, &'static str, String, bool) {
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target), Some(version)) = (method, target, version) else {
        return (400, "text/plain", "bad request\n".into(), false);
    };
    if !version.starts_with("HTTP/1.") {
        return (400, "text/plain", "bad request\n".into(), false);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return (405, "text/plain", "only GET and HEAD\n".into(), false),
    };
    let path = target.split('?').next().unwrap_or(target);
    match path {
        "/status" => (200, "application/json", snapshot.json() + "\n", head_only),
        "/metrics" => (
            200,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            snapshot.metrics_text(),
            head_only,
        ),
        "/" => (
            200,
            "text/plain",
            format!("srvd {}: see /status and /metrics\n", snapshot.version),
            head_only,
        ),
        _ => (404, "text/plain", "not found\n".into(), head_only),
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    ctype: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_status_metrics_and_refuses_the_rest() {
        let s = Arc::new(Snapshot::new("x".into()));
        assert_eq!(route("GET /status HTTP/1.1\r\nHost: x", &s).0, 200);
        assert!(
            route("GET /status?pretty HTTP/1.0", &s)
                .2
                .contains("\"Ok\"")
        );
        assert_eq!(route("GET /metrics HTTP/1.1", &s).0, 200);
        assert!(route("HEAD /metrics HTTP/1.1", &s).3);
        assert_eq!(route("POST /status HTTP/1.1", &s).0, 405);
        assert_eq!(route("GET /nope HTTP/1.1", &s).0, 404);
        assert_eq!(route("garbage", &s).0, 400);
        assert_eq!(route("GET /status SPDY/3", &s).0, 400);
        assert_eq!(route("", &s).0, 400);
    }
}

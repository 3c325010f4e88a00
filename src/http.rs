//! The status endpoint's HTTP/1.x: GET /status and GET /metrics, served by
//! hyper on srvd's own runtime, one request per connection. Every connection
//! is bounded in size, time and number, so a slow or hostile client cannot
//! hold memory or stall the poll loop: they run as their own tasks and only
//! ever read the latest published snapshot. hyper costs 153 KiB of binary
//! and about 0.4 MiB of peak RSS under load over the hand-written server it
//! replaced (docs/results/dependencies.md), under the 0.5 MiB that would
//! have justified keeping our own.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::timeout;

use crate::status::Snapshot;

/// Largest request head read, in bytes; hyper answers a longer one with 431.
/// 8 KiB is also the smallest read buffer hyper accepts.
const MAX_REQUEST: usize = 8 * 1024;
/// Whole-connection deadline: request read and response written. A client
/// still sending (slowloris) or not reading is dropped when it runs out.
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
            let service = service_fn(move |request| {
                // Taken when the request is read, not held across an await.
                let snapshot = Arc::clone(&snapshots.borrow());
                let response = answer(request.method(), request.uri().path(), &snapshot);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1::Builder::new()
                .keep_alive(false)
                .max_buf_size(MAX_REQUEST)
                .serve_connection(TokioIo::new(stream), service);
            if let Ok(Err(e)) = timeout(DEADLINE, connection).await {
                log::debug!("status endpoint: {e}");
            }
            drop(permit);
        });
    }
}

/// The response to one parsed request. hyper has already answered what it
/// could not parse (400), a head over `MAX_REQUEST` (431), and leaves out
/// the body of a HEAD response; `Connection: close` comes from keep-alive
/// being off.
fn answer(method: &Method, path: &str, snapshot: &Arc<Snapshot>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = route(method, path, snapshot);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    response
}

/// Picks status, content type and body for a request. A plain function,
/// tested below.
fn route(
    method: &Method,
    path: &str,
    snapshot: &Arc<Snapshot>,
) -> (StatusCode, &'static str, String) {
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET and HEAD\n".into(),
        );
    }
    match path {
        "/status" => (StatusCode::OK, "application/json", snapshot.json() + "\n"),
        "/metrics" => (
            StatusCode::OK,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            snapshot.metrics_text(),
        ),
        "/" => (
            StatusCode::OK,
            "text/plain",
            format!("srvd {}: see /status and /metrics\n", snapshot.version),
        ),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    #[test]
    fn routes_status_metrics_and_refuses_the_rest() {
        let s = Arc::new(Snapshot::new("x".into()));
        assert_eq!(route(&Method::GET, "/status", &s).0, StatusCode::OK);
        assert!(route(&Method::GET, "/status", &s).2.contains("\"Ok\""));
        assert_eq!(route(&Method::GET, "/metrics", &s).0, StatusCode::OK);
        assert_eq!(route(&Method::HEAD, "/metrics", &s).0, StatusCode::OK);
        assert_eq!(route(&Method::GET, "/", &s).0, StatusCode::OK);
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
            let (status, ..) = route(&method, "/status", &s);
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        }
        assert_eq!(route(&Method::GET, "/nope", &s).0, StatusCode::NOT_FOUND);
    }

    /// Serves a fresh snapshot on a loopback port; returns its address.
    async fn endpoint() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(Arc::new(Snapshot::new("x".into())));
        tokio::spawn(async move {
            let _keep = tx;
            serve(listener, rx).await;
        });
        addr
    }

    /// Sends `request` as is, reads until the server closes: the whole
    /// response as text. Fails the test if the server does not close.
    async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // The server may close before reading all of an oversized request.
        let _ = s.write_all(request).await;
        let mut out = Vec::new();
        let read = timeout(DEADLINE * 2, s.read_to_end(&mut out)).await;
        assert!(read.is_ok(), "the server kept the connection open");
        String::from_utf8_lossy(&out).into_owned()
    }

    fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
        let head = response.split("\r\n\r\n").next()?;
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    #[tokio::test]
    async fn answers_one_request_per_connection_and_closes() {
        let addr = endpoint().await;
        let r = exchange(addr, b"GET /status?pretty HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert_eq!(header(&r, "connection"), Some("close"), "{r}");
        assert_eq!(header(&r, "content-type"), Some("application/json"));
        assert_eq!(header(&r, "cache-control"), Some("no-store"));
        let body = r.split_once("\r\n\r\n").unwrap().1;
        assert_eq!(header(&r, "content-length"), Some(&*body.len().to_string()));
        assert!(body.contains("\"LastUpdate\""), "{r}");

        let r = exchange(addr, b"GET /metrics HTTP/1.0\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.0 200 OK\r\n"), "{r}");
        assert!(r.contains("\r\n\r\n# HELP srvd_cycles_total "), "{r}");
        assert_eq!(
            header(&r, "content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
    }

    #[tokio::test]
    async fn head_has_the_length_of_get_and_no_body() {
        let addr = endpoint().await;
        let get = exchange(addr, b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let head = exchange(addr, b"HEAD /status HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "a body after HEAD: {head}");
        assert_eq!(
            header(&head, "content-length"),
            header(&get, "content-length")
        );
    }

    #[tokio::test]
    async fn refuses_bad_methods_paths_versions_garbage_and_oversized_heads() {
        let addr = endpoint().await;
        let r = exchange(addr, b"POST /status HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{r}");
        assert_eq!(header(&r, "allow"), Some("GET, HEAD"));
        let r = exchange(addr, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
        for garbage in [
            &b"GET /status SPDY/3\r\n\r\n"[..],
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
            b"garbage\r\n\r\n",
        ] {
            let r = exchange(addr, garbage).await;
            assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{r}");
        }
        let mut big = b"GET /status HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 2 * MAX_REQUEST));
        big.extend(b"\r\n\r\n");
        let r = exchange(addr, &big).await;
        assert!(
            r.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{r}"
        );
        // Still serving.
        let r = exchange(addr, b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    }
}

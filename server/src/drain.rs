//! Keeps HTTP/1.1 connections of the API reusable after a handler answers without reading the
//! request body.
//!
//! Many answers come before the body is read: 401 for a missing key, 429 for a tenant over
//! its rate, 503 while the node is starting. If the body has not fully arrived when the
//! handler drops it, hyper closes the connection after the response — silently, without
//! `Connection: close`. A keep-alive client that sends its next request on that connection
//! meanwhile sees it closed without a response, which most HTTP clients report as an error
//! and do not retry.
//!
//! [`drain_unread_body`] reads and discards up to [`MAX_DRAIN_BYTES`] of what the handler left
//! (bounded in time by [`DRAIN_TIMEOUT`]), so the connection stays usable; when more is left,
//! or the client is slow, the response says `Connection: close` and the client knows not to
//! reuse it, as it does when the request asked for `100 Continue` (its body was never sent).
//! Nothing drained is held: each frame is dropped as it arrives. A response that already says
//! `Connection: close` is left alone.
//!
//! The OTLP/HTTP listener does not drain: a refused export's body is not worth reading, and
//! its early errors say `Connection: close` themselves (`strata_ingest::http`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, Version, header};
use parking_lot::Mutex;
use strata_ingest::http::discard_body;

/// Most unread body bytes read and discarded to keep a connection open.
pub const MAX_DRAIN_BYTES: usize = 256 * 1024;

/// Longest wait for the rest of an unread body.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Middleware (`axum::middleware::from_fn`) for the HTTP listeners.
pub async fn drain_unread_body(request: Request, next: Next) -> Response {
    if !matches!(request.version(), Version::HTTP_10 | Version::HTTP_11)
        || request.body().is_end_stream()
    {
        return next.run(request).await;
    }
    // A client waiting for `100 Continue` has not sent its body: nothing to drain.
    let awaits_continue = request.headers().contains_key(header::EXPECT);
    let (parts, body) = request.into_parts();
    let slot = Arc::new(Mutex::new(Some(body)));
    let shared = Body::new(SharedBody(slot.clone()));
    let mut response = next.run(Request::from_parts(parts, shared)).await;
    // The handler has answered; whatever is left of the body is ours (the handler's half of
    // the slot is dropped with its request, or finished).
    let rest = slot.lock().take();
    let closing = response.headers().get(header::CONNECTION) == Some(&CLOSE);
    if let Some(rest) = rest
        && !closing
        && !rest.is_end_stream()
        && (awaits_continue || !drain(rest).await)
    {
        response.headers_mut().insert(header::CONNECTION, CLOSE);
    }
    response
}

const CLOSE: HeaderValue = HeaderValue::from_static("close");

/// Reads `body` to its end if that takes at most [`MAX_DRAIN_BYTES`] and [`DRAIN_TIMEOUT`].
async fn drain(body: Body) -> bool {
    tokio::time::timeout(DRAIN_TIMEOUT, discard_body(body, MAX_DRAIN_BYTES))
        .await
        .unwrap_or(false)
}

/// The request body as the handler sees it; the body itself stays in a slot the middleware
/// can take back once the handler is done.
struct SharedBody(Arc<Mutex<Option<Body>>>);

impl HttpBody for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let mut slot = self.0.lock();
        match slot.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        let slot = self.0.lock();
        slot.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let slot = self.0.lock();
        slot.as_ref()
            .map(HttpBody::size_hint)
            .unwrap_or_else(|| http_body::SizeHint::with_exact(0))
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::Router;
    use axum::routing::post;
    use http::StatusCode;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::Notify;

    use super::*;

    /// A server with `/reject` (answers 401 without reading the body, after telling the test
    /// it has run) and `/echo` (reads the body).
    async fn serve() -> (SocketAddr, Arc<Notify>) {
        let answered = Arc::new(Notify::new());
        let signal = answered.clone();
        let router = Router::new()
            .route(
                "/reject",
                post(move || async move {
                    signal.notify_one();
                    (StatusCode::UNAUTHORIZED, "no key")
                }),
            )
            .route("/echo", post(|body: Bytes| async move { body }))
            .layer(axum::middleware::from_fn(drain_unread_body));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (addr, answered)
    }

    fn head(path: &str, length: usize, extra: &str) -> Vec<u8> {
        format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n{extra}\r\n")
            .into_bytes()
    }

    /// Reads one response: its head (lower-cased) and its body.
    async fn response(stream: &mut TcpStream) -> (String, String) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.trim().parse().unwrap());
                while buf.len() < end + 4 + length {
                    let n = stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "connection closed inside a response");
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into();
                return (head, body);
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed without a response: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    #[tokio::test]
    async fn a_body_sent_after_an_early_answer_keeps_the_connection() {
        let (addr, answered) = serve().await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let body = br#"{"sql": "SELECT 1"}"#;
        stream
            .write_all(&head("/reject", body.len(), ""))
            .await
            .unwrap();
        // The handler answers and drops the body before any of it has arrived.
        answered.notified().await;
        stream.write_all(body).await.unwrap();
        let (head_1, body_1) = response(&mut stream).await;
        assert!(head_1.starts_with("http/1.1 401"), "{head_1}");
        assert!(!head_1.contains("connection: close"), "{head_1}");
        assert_eq!(body_1, "no key");
        // The same connection answers the next request.
        stream.write_all(&head("/echo", 5, "")).await.unwrap();
        stream.write_all(b"hello").await.unwrap();
        let (head_2, body_2) = response(&mut stream).await;
        assert!(head_2.starts_with("http/1.1 200"), "{head_2}");
        assert_eq!(body_2, "hello");
    }

    #[tokio::test]
    async fn a_large_unread_body_closes_the_connection_and_says_so() {
        let (addr, answered) = serve().await;
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        let length = 4 * MAX_DRAIN_BYTES;
        write.write_all(&head("/reject", length, "")).await.unwrap();
        answered.notified().await;
        // The server stops reading part way: the writer may fail, which is expected.
        let writer = tokio::spawn(async move {
            let _ = write.write_all(&vec![b'x'; length]).await;
        });
        let mut buf = Vec::new();
        read.read_to_end(&mut buf).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&buf).to_lowercase();
        assert!(text.starts_with("http/1.1 401"), "{text}");
        assert!(text.contains("connection: close"), "{text}");
        writer.abort();
    }

    #[tokio::test]
    async fn a_request_awaiting_continue_is_answered_without_asking_for_its_body() {
        let (addr, answered) = serve().await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(&head("/reject", 1000, "Expect: 100-continue\r\n"))
            .await
            .unwrap();
        answered.notified().await;
        let (head, body) = response(&mut stream).await;
        assert!(head.starts_with("http/1.1 401"), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        assert_eq!(body, "no key");
    }

    #[tokio::test]
    async fn a_body_the_handler_reads_is_untouched() {
        let (addr, _) = serve().await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        for word in ["first", "second"] {
            stream
                .write_all(&head("/echo", word.len(), ""))
                .await
                .unwrap();
            stream.write_all(word.as_bytes()).await.unwrap();
            let (head, body) = response(&mut stream).await;
            assert!(head.starts_with("http/1.1 200"), "{head}");
            assert!(!head.contains("connection: close"), "{head}");
            assert_eq!(body, word);
        }
    }
}

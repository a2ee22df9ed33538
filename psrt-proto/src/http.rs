//! The stats HTTP endpoint as pure functions: request-head parsing (on
//! `httparse`) and complete HTTP/1.1 responses, with no I/O.
//!
//! A driver serves one request per connection:
//!
//! 1. feed the bytes read so far to [`parse_request`] until it returns a
//!    request (or an error: answer [`bad_request`] and close);
//! 2. answer [`method_not_allowed`] unless [`HttpRequest::is_allowed_method`];
//! 3. check access (open when the anonymous ACL has `admin`, otherwise the
//!    [`HttpRequest::basic_auth`] credentials of an admin) and answer
//!    [`unauthorized`] on failure;
//! 4. render by [`route`]; for HEAD send only [`head_of`] the response;
//! 5. write it and close (every response says `Connection: close`).
//!
//! The driver reads the clock and the host name and passes them in
//! [`StatusInfo`].

use base64::Engine as _;
use serde::Serialize;

use crate::stats::{ClientInfo, Counters, History, StatsSnapshot, TopicRate, TopicStat};

mod metrics;

pub use metrics::{MetricsText, runtime_of};

mod cluster;

/// Largest request head accepted (request line and headers), in bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most header lines accepted in a request.
pub const MAX_HEADERS: usize = 32;

/// Why a request head was refused; the driver answers [`bad_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The head did not end within [`MAX_HEAD`] bytes.
    #[error("request head exceeds {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// More than [`MAX_HEADERS`] header lines.
    #[error("request has more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    /// Not a syntactically valid HTTP/1.x request head.
    #[error("malformed request: {0}")]
    Malformed(httparse::Error),
}

/// The parts of a request the stats endpoint looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method as sent (`GET`, `HEAD`, ...).
    pub method: String,
    /// The request path without its query string.
    pub path: String,
    /// Credentials of an `Authorization: Basic` header: login and password.
    /// `None` when the header is absent or cannot be decoded.
    pub basic_auth: Option<(String, Vec<u8>)>,
}

impl HttpRequest {
    /// Whether the method is one the endpoint serves (GET or HEAD).
    pub fn is_allowed_method(&self) -> bool {
        matches!(self.method.as_str(), "GET" | "HEAD")
    }

    /// Whether only the head of the response is to be sent.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// What a request path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/`: the human page ([`render_index`]).
    Index,
    /// `/status`: upstream's JSON ([`render_status`]).
    Status,
    /// `/live`: clients and top topics as JSON ([`render_live`]).
    Live,
    /// `/history`: the server-side history as JSON ([`render_history`]).
    History,
    /// `/metrics`: Prometheus text ([`render_metrics`]).
    Metrics,
    /// Anything else ([`not_found`]).
    NotFound,
}

/// The driver's share of `/status`: what the core cannot know without a
/// clock or the operating system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusInfo {
    /// Wall-clock time, µs since the Unix epoch.
    pub time_us: u64,
    /// Seconds since the server started.
    pub uptime_s: u64,
    /// The host name.
    pub host: String,
    /// The server version.
    pub version: String,
    /// How the server was built ([`crate::spec::ServerSpec::build`]).
    pub build: String,
    /// Connections counted by the driver.
    pub connections: ConnectionCounts,
    /// Memory and open files of the process, where the driver can tell.
    pub process: Option<ProcessInfo>,
    /// The short history the driver samples.
    pub history: History,
}

/// Connections as the driver counts them, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    /// Connections whose greeting was accepted, per
    /// [`crate::conn::ListenerKind::index`].
    pub opened: [u64; 3],
    /// Those of them that have closed.
    pub closed: [u64; 3],
    /// TLS handshakes that failed.
    pub tls_handshake_failures: u64,
    /// Plain clients refused by a server that requires TLS.
    pub tls_required_refusals: u64,
}

/// The server process as the operating system sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Resident memory, in bytes.
    pub resident_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
}

/// Parses a request head from the start of `buf`. Returns `None` while the
/// head is incomplete, else the request and the head's length in bytes
/// (a body, if any, is ignored: the connection closes after the answer).
pub fn parse_request(buf: &[u8]) -> Result<Option<(HttpRequest, usize)>, HttpError> {
    let window = buf.get(..MAX_HEAD).unwrap_or(buf);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(window) {
        Ok(httparse::Status::Complete(len)) => Ok(Some((to_request(&req), len))),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Err(HttpError::HeadTooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::TooManyHeaders),
        Err(e) => Err(HttpError::Malformed(e)),
    }
}

/// Maps a request path (query string already removed) to a page.
pub fn route(path: &str) -> Route {
    match path {
        "/" => Route::Index,
        "/status" => Route::Status,
        "/live" => Route::Live,
        "/history" => Route::History,
        "/metrics" => Route::Metrics,
        _ => Route::NotFound,
    }
}

/// `200` with upstream's `/status` JSON, field for field.
pub fn render_status(stats: &StatsSnapshot, info: &StatusInfo) -> Vec<u8> {
    json_response(&StatusBody {
        time: info.time_us,
        uptime: info.uptime_s,
        data_queue_size: stats.data_queue_size,
        host: &info.host,
        version: &info.version,
        build: &info.build,
        counters: &stats.counters,
        clients: ClientCounts {
            subscription_count: stats.subscription_count,
            client_count: stats.client_count,
        },
        cluster: cluster::status_body(&stats.cluster),
    })
}

/// Topics ranked by recent rate on the live page.
const RECENT_TOPICS: usize = 20;

/// `200` with `{"runtime":..,"clients":[...],"top_topics":[...],
/// "top_recent":[...]}` for the page's tables: the busiest topics by
/// total and by their rate over the last seconds.
pub fn render_live(stats: &StatsSnapshot, info: &StatusInfo) -> Vec<u8> {
    json_response(&LiveBody {
        runtime: runtime_of(&info.build),
        clients: &stats.clients,
        top_topics: &stats.top_topics,
        top_recent: info.history.recent_topics(RECENT_TOPICS),
    })
}

/// `200` with the server-side history: `[{"time":..,"counters":{..}}..]`,
/// oldest first, each point shaped like `/status`, so the page charts it
/// at once.
pub fn render_history(info: &StatusInfo) -> Vec<u8> {
    json_response(&info.history.points())
}

/// `200` with Prometheus text exposition format 0.0.4; the series are
/// listed in [`metrics`](self::metrics).
pub fn render_metrics(stats: &StatsSnapshot, info: &StatusInfo) -> Vec<u8> {
    let body = metrics::render(stats, info);
    response(
        "200 OK",
        "text/plain; version=0.0.4; charset=utf-8",
        "",
        body.as_bytes(),
    )
}

/// `200` with the self-contained status page (inline CSS and JS, no
/// external resources) that polls `/status` and `/live` every second.
pub fn render_index() -> Vec<u8> {
    response(
        "200 OK",
        "text/html; charset=utf-8",
        "",
        INDEX_HTML.as_bytes(),
    )
}

/// `401` asking the browser for Basic credentials.
pub fn unauthorized() -> Vec<u8> {
    plain_response(
        "401 Unauthorized",
        "WWW-Authenticate: Basic realm=\"psrt\"\r\n",
        "authentication required\n",
    )
}

/// `403` for a logged-in user who may not see the page (not an admin).
pub fn forbidden() -> Vec<u8> {
    plain_response("403 Forbidden", "", "forbidden: the user is not an admin\n")
}

/// `404` for an unknown path.
pub fn not_found() -> Vec<u8> {
    plain_response("404 Not Found", "", "not found\n")
}

/// `400` for a request head that could not be parsed.
pub fn bad_request() -> Vec<u8> {
    plain_response("400 Bad Request", "", "bad request\n")
}

/// `405` for any method but GET and HEAD.
pub fn method_not_allowed() -> Vec<u8> {
    plain_response(
        "405 Method Not Allowed",
        "Allow: GET, HEAD\r\n",
        "method not allowed\n",
    )
}

/// The status line and headers of a rendered response, without the body:
/// what a HEAD request gets (Content-Length still gives the body's size).
pub fn head_of(response: &[u8]) -> &[u8] {
    response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .and_then(|pos| response.get(..pos + 4))
        .unwrap_or(response)
}

/// Upstream's `/status` document; field order as upstream serialises it.
#[derive(Serialize)]
struct StatusBody<'a> {
    time: u64,
    uptime: u64,
    data_queue_size: usize,
    host: &'a str,
    version: &'a str,
    /// Not upstream's: how the server was built (runtime, allocator).
    build: &'a str,
    counters: &'a Counters,
    clients: ClientCounts,
    /// The cluster peers' links; `null` on a standalone node.
    cluster: Option<cluster::ClusterBody<'a>>,
}

/// The `clients` object of `/status`.
#[derive(Serialize)]
struct ClientCounts {
    subscription_count: usize,
    client_count: usize,
}

/// The `/live` document.
#[derive(Serialize)]
struct LiveBody<'a> {
    runtime: &'a str,
    clients: &'a [ClientInfo],
    top_topics: &'a [TopicStat],
    top_recent: Vec<TopicRate>,
}

/// Builds the request from a completely parsed head.
fn to_request(req: &httparse::Request<'_, '_>) -> HttpRequest {
    let target = req.path.unwrap_or_default();
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    HttpRequest {
        method: req.method.unwrap_or_default().to_owned(),
        path: path.to_owned(),
        basic_auth: basic_auth(req.headers),
    }
}

/// Decodes `Authorization: Basic base64(login:password)`; `None` for a
/// missing header, another scheme, bad base64, no colon or a non-UTF-8 login.
fn basic_auth(headers: &[httparse::Header<'_>]) -> Option<(String, Vec<u8>)> {
    let header = headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("authorization"))?;
    let value = std::str::from_utf8(header.value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let (login, rest) = decoded.split_at(colon);
    let password = rest.get(1..).unwrap_or_default().to_vec();
    let login = String::from_utf8(login.to_vec()).ok()?;
    Some((login, password))
}

/// `200` with a JSON body, or `500` if serialisation failed.
fn json_response<T: Serialize>(value: &T) -> Vec<u8> {
    match serde_json::to_vec(value) {
        Ok(body) => response("200 OK", "application/json", "", &body),
        Err(_) => plain_response("500 Internal Server Error", "", "internal error\n"),
    }
}

/// A short `text/plain` response.
fn plain_response(status: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    response(
        status,
        "text/plain; charset=utf-8",
        extra_headers,
        body.as_bytes(),
    )
}

/// A complete HTTP/1.1 response; `extra_headers` are whole `\r\n`-ended lines.
fn response(status: &str, content_type: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\nCache-Control: no-store\r\n\
         X-Content-Type-Options: nosniff\r\n{extra_headers}\r\n",
        body.len()
    );
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    out
}

/// The status page. Self-contained so it works offline and behind strict
/// networks: inline CSS, inline JS drawing on `<canvas>`, same-origin
/// requests only. Table cells are filled with `textContent`, so topic names
/// and logins cannot inject markup.
const INDEX_HTML: &str = include_str!("http/index.html");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{ClientInfo, Counters, TopicStat};
    use serde_json::Value;

    fn snapshot() -> StatsSnapshot {
        StatsSnapshot {
            counters: Counters {
                c_sub_ops: 1,
                c_pub_messages: 2,
                c_pub_bytes: 3,
                c_sent_messages: 4,
                c_sent_bytes: 5,
                c_sent_latency: 6,
            },
            subscription_count: 7,
            client_count: 8,
            data_queue_size: 1024,
            clients: vec![ClientInfo {
                login: "bob".into(),
                peer: "127.0.0.1:5000".into(),
                subscriptions: 2,
                data_socket: true,
                queued: 3,
            }],
            cluster: Vec::new(),
            top_topics: vec![TopicStat {
                topic: "a/\"b\"".into(),
                messages: 10,
                bytes: 20,
                error: 1,
            }],
            queued_messages: 3,
            tallies: crate::stats::Tallies::default(),
        }
    }

    fn info() -> StatusInfo {
        StatusInfo {
            time_us: 1_700_000_000_000_000,
            uptime_s: 42,
            host: "node1".into(),
            version: "0.1.0".into(),
            build: "runtime tokio; allocator \"system\"".into(),
            connections: ConnectionCounts {
                opened: [5, 2, 1],
                closed: [4, 0, 1],
                tls_handshake_failures: 3,
                tls_required_refusals: 2,
            },
            process: Some(ProcessInfo {
                resident_bytes: 1 << 20,
                open_fds: 9,
            }),
            history: History::default(),
        }
    }

    /// Splits a response into status line, headers (lower-cased names) and body.
    fn split(resp: &[u8]) -> (String, Vec<(String, String)>, Vec<u8>) {
        let head_len = head_of(resp).len();
        let head = std::str::from_utf8(&resp[..head_len]).unwrap();
        let mut lines = head.trim_end().split("\r\n");
        let status = lines.next().unwrap().to_owned();
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap();
                (n.to_ascii_lowercase(), v.to_owned())
            })
            .collect();
        (status, headers, resp[head_len..].to_vec())
    }

    fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Checks the headers every response must carry and returns the body.
    fn check_common(resp: &[u8], status: &str, content_type: &str) -> Vec<u8> {
        let (line, headers, body) = split(resp);
        assert_eq!(line, format!("HTTP/1.1 {status}"));
        assert_eq!(header(&headers, "content-type"), Some(content_type));
        assert_eq!(
            header(&headers, "content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(header(&headers, "connection"), Some("close"));
        assert_eq!(header(&headers, "cache-control"), Some("no-store"));
        body
    }

    #[test]
    fn parses_a_complete_request() {
        let raw = b"GET /status?x=1 HTTP/1.1\r\nHost: a\r\n\r\nextra";
        let (req, len) = parse_request(raw).unwrap().unwrap();
        assert_eq!(len, raw.len() - b"extra".len());
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/status");
        assert_eq!(req.basic_auth, None);
        assert!(req.is_allowed_method());
        assert!(!req.is_head());
    }

    #[test]
    fn incomplete_head_needs_more_bytes_at_every_length() {
        let raw = b"HEAD /metrics HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
        for n in 0..raw.len() {
            assert_eq!(parse_request(&raw[..n]), Ok(None), "prefix of {n} bytes");
        }
        let (req, len) = parse_request(raw).unwrap().unwrap();
        assert_eq!(len, raw.len());
        assert!(req.is_head() && req.is_allowed_method());
    }

    #[test]
    fn oversized_head_is_refused() {
        let mut raw = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        raw.resize(MAX_HEAD, b'a');
        assert_eq!(parse_request(&raw), Err(HttpError::HeadTooLarge));
        raw.truncate(MAX_HEAD - 1);
        assert_eq!(parse_request(&raw), Ok(None));
        raw.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_request(&raw), Err(HttpError::HeadTooLarge));
    }

    #[test]
    fn too_many_headers_is_refused() {
        let mut raw = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        let mut ok = raw.clone();
        ok.extend_from_slice(b"\r\n");
        assert!(parse_request(&ok).unwrap().is_some());
        raw.extend_from_slice(b"X-last: v\r\n\r\n");
        assert_eq!(parse_request(&raw), Err(HttpError::TooManyHeaders));
    }

    #[test]
    fn malformed_heads_are_refused() {
        for raw in [
            &b"GET / HTTP/9.9\r\n\r\n"[..],
            b"G\x01T / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ] {
            assert!(
                matches!(parse_request(raw), Err(HttpError::Malformed(_))),
                "{raw:?}"
            );
        }
    }

    fn auth_of(value: &str) -> Option<(String, Vec<u8>)> {
        let raw = format!("GET / HTTP/1.1\r\nAuthorization: {value}\r\n\r\n");
        parse_request(raw.as_bytes()).unwrap().unwrap().0.basic_auth
    }

    #[test]
    fn basic_auth_decoding() {
        // "admin:pa:ss" — the password may hold colons.
        assert_eq!(
            auth_of("Basic YWRtaW46cGE6c3M="),
            Some(("admin".into(), b"pa:ss".to_vec()))
        );
        assert_eq!(
            auth_of("basic   YWRtaW46cGE6c3M=  "),
            Some(("admin".into(), b"pa:ss".to_vec()))
        );
        // ":" — empty login and password.
        assert_eq!(auth_of("Basic Og=="), Some((String::new(), Vec::new())));
        assert_eq!(auth_of("Basic not*base64"), None);
        // "nocolon"
        assert_eq!(auth_of("Basic bm9jb2xvbg=="), None);
        // "\xff:x" — login not UTF-8.
        assert_eq!(auth_of("Basic /zp4"), None);
        assert_eq!(auth_of("Bearer YWRtaW46cGE6c3M="), None);
        assert_eq!(auth_of("Basic"), None);
    }

    #[test]
    fn routes() {
        assert_eq!(route("/"), Route::Index);
        assert_eq!(route("/status"), Route::Status);
        assert_eq!(route("/live"), Route::Live);
        assert_eq!(route("/metrics"), Route::Metrics);
        assert_eq!(route("/history"), Route::History);
        assert_eq!(route("/status/"), Route::NotFound);
        assert_eq!(route(""), Route::NotFound);
    }

    #[test]
    fn status_json_has_every_upstream_field() {
        let body = check_common(
            &render_status(&snapshot(), &info()),
            "200 OK",
            "application/json",
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        let expected = serde_json::json!({
            "time": 1_700_000_000_000_000_u64,
            "uptime": 42,
            "data_queue_size": 1024,
            "host": "node1",
            "version": "0.1.0",
            "build": "runtime tokio; allocator \"system\"",
            "counters": {
                "c_sub_ops": 1, "c_pub_messages": 2, "c_pub_bytes": 3,
                "c_sent_messages": 4, "c_sent_bytes": 5, "c_sent_latency": 6
            },
            "clients": { "subscription_count": 7, "client_count": 8 },
            "cluster": null
        });
        assert_eq!(v, expected);
        let text = std::str::from_utf8(&body).unwrap();
        assert!(
            text.starts_with("{\"time\":"),
            "upstream field order: {text}"
        );
    }

    #[test]
    fn live_json_lists_clients_and_topics() {
        let body = check_common(
            &render_live(&snapshot(), &info()),
            "200 OK",
            "application/json",
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        let expected = serde_json::json!({
            "runtime": "tokio",
            "top_recent": [],
            "clients": [{
                "login": "bob", "peer": "127.0.0.1:5000", "subscriptions": 2,
                "data_socket": true, "queued": 3
            }],
            "top_topics": [{ "topic": "a/\"b\"", "messages": 10, "bytes": 20, "error": 1 }]
        });
        assert_eq!(v, expected);
    }

    #[test]
    fn metrics_text_format() {
        let body = check_common(
            &render_metrics(&snapshot(), &info()),
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
        );
        let text = String::from_utf8(body).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for line in [
            r#"psrt_build_info{version="0.1.0",runtime="tokio",build="runtime tokio; allocator \"system\""} 1"#,
            "# TYPE psrt_build_info gauge",
            "psrt_sub_ops_total 1",
            "psrt_pub_messages_total 2",
            "psrt_pub_bytes_total 3",
            "psrt_sent_messages_total 4",
            "psrt_sent_bytes_total 5",
            "psrt_clients 8",
            "psrt_subscriptions 7",
            "psrt_queued_messages 3",
            "psrt_uptime_seconds 42",
            "psrt_data_queue_size 1024",
            r#"psrt_connections_total{listener="tcp"} 5"#,
            r#"psrt_connections{listener="tcp"} 1"#,
            r#"psrt_connections{listener="tls"} 2"#,
            r#"psrt_connections{listener="unix"} 0"#,
            "psrt_tls_handshake_failures_total 3",
            "psrt_tls_required_refusals_total 2",
            r#"psrt_logins_total{outcome="granted"} 0"#,
            r#"psrt_acl_denials_total{operation="subscribe"} 0"#,
            r#"psrt_udp_frames_total{outcome="bad_key"} 0"#,
            "# TYPE psrt_delivery_latency_seconds histogram",
            r#"psrt_delivery_latency_seconds_bucket{le="+Inf"} 0"#,
            "process_resident_memory_bytes 1048576",
            "process_open_fds 9",
        ] {
            assert!(lines.contains(&line), "{line} missing from:\n{text}");
        }
        assert!(
            !text.contains("psrt_sent_latency_total"),
            "latency is a histogram in seconds now"
        );
    }

    #[test]
    fn index_page_is_self_contained() {
        let resp = render_index();
        let body = check_common(&resp, "200 OK", "text/html; charset=utf-8");
        let html = String::from_utf8(body).unwrap();
        let lower = html.to_ascii_lowercase();
        assert!(!lower.contains("http://") && !lower.contains("https://"));
        assert!(!lower.contains("//cdn") && !lower.contains("src=\""));
        assert!(!lower.contains("<link"));
        for needle in [
            "<canvas",
            "/status",
            "/live",
            "/history",
            "top_recent",
            "id=\"runtime\"",
            "c_sent_latency",
            "setTimeout(tick, POLL_MS)",
        ] {
            assert!(html.contains(needle), "{needle}");
        }
        assert!(html.contains("const POLL_MS = 1000;"));
    }

    #[test]
    fn error_responses() {
        let resp = unauthorized();
        let (_, headers, _) = split(&resp);
        check_common(&resp, "401 Unauthorized", "text/plain; charset=utf-8");
        assert_eq!(
            header(&headers, "www-authenticate"),
            Some("Basic realm=\"psrt\"")
        );
        check_common(&not_found(), "404 Not Found", "text/plain; charset=utf-8");
        check_common(&forbidden(), "403 Forbidden", "text/plain; charset=utf-8");
        check_common(
            &bad_request(),
            "400 Bad Request",
            "text/plain; charset=utf-8",
        );
        let resp = method_not_allowed();
        check_common(&resp, "405 Method Not Allowed", "text/plain; charset=utf-8");
        assert_eq!(header(&split(&resp).1, "allow"), Some("GET, HEAD"));
    }

    #[test]
    fn head_of_drops_only_the_body() {
        let resp = not_found();
        let head = head_of(&resp);
        assert!(head.ends_with(b"\r\n\r\n"));
        assert_eq!(head.len() + b"not found\n".len(), resp.len());
        assert_eq!(head_of(b"no blank line"), b"no blank line");
    }

    #[test]
    fn post_is_parsed_but_not_allowed() {
        let (req, _) = parse_request(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!req.is_allowed_method());
    }

    proptest::proptest! {
        #[test]
        fn parse_request_never_panics(buf in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse_request(&buf);
        }
    }
}

use std::cell::Cell;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// `respond` with a renderer that counts its calls.
fn answer(head: &str) -> (Response, usize) {
    let calls = Cell::new(0);
    let render = || {
        calls.set(calls.get() + 1);
        "m 1\n".to_string()
    };
    let r = respond(head.as_bytes(), &render);
    (r, calls.get())
}

#[test]
fn get_and_head_of_metrics_are_served() {
    let (r, calls) = answer("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
    assert_eq!((r.status, calls), (200, 1));
    assert_eq!(r.content_type, CONTENT_TYPE);
    assert_eq!(r.body, "m 1\n");
    assert!(!r.head_only);
    // A query string is ignored; HTTP/1.0 needs no Host; bare LF line ends are accepted;
    // empty lines before the request line are skipped.
    for head in [
        "GET /metrics?name[]=x HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /metrics HTTP/1.0\r\n\r\n",
        "GET /metrics HTTP/1.1\nhost:x\n\n",
        "\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        assert_eq!(answer(head).0.status, 200, "{head:?}");
    }
    let (r, _) = answer("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r.head_only);
    let bytes = String::from_utf8(r.encode(UNIX_EPOCH)).unwrap();
    assert!(bytes.contains("Content-Length: 4\r\n"), "{bytes}");
    assert!(bytes.ends_with("\r\n\r\n"), "HEAD sends no body: {bytes:?}");
}

#[test]
fn other_paths_methods_and_garbage_get_their_status() {
    let cases = [
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("GET /metricsx HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("GET /metrics/ HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n",
            405,
        ),
        ("DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        ("GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        ("GET /metrics HTTP/1.1\r\n\r\n", 400),
        ("GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        ("GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
        ("GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        ("GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /met\x01rics HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /metrics HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400),
        ("GET /metrics FTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("G(T /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("hello\r\n\r\n", 400),
        ("\r\n\r\n", 400),
    ];
    for (head, status) in cases {
        let (r, calls) = answer(head);
        assert_eq!(r.status, status, "{head:?}: {}", r.body);
        assert_eq!(calls, 0, "no scrape for {head:?}");
        assert!(r.body.starts_with(&format!("{status} ")), "{}", r.body);
    }
    let (r, _) = answer("PUT /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let bytes = String::from_utf8(r.encode(UNIX_EPOCH)).unwrap();
    assert!(
        bytes.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{bytes}"
    );
    assert!(bytes.contains("\r\nAllow: GET, HEAD\r\n"), "{bytes}");
    // Not UTF-8 at all.
    let r = respond(b"GET /metrics HTTP/1.1\r\nHost: \xff\r\n\r\n", &|| String::new());
    assert_eq!(r.status, 400);
}

#[test]
fn head_end_finds_the_empty_line() {
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), Some(27));
    assert_eq!(head_end(b"GET / HTTP/1.1\nHost: x\n\nbody"), Some(24));
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    assert_eq!(head_end(b"\r\n\r\n"), None, "empty lines before the request line");
    assert_eq!(head_end(b"\r\nGET / HTTP/1.0\r\n\r\n"), Some(20));
    assert_eq!(head_end(b""), None);
}

#[test]
fn dates_are_imf_fixdates() {
    let at = |secs: u64| http_date(UNIX_EPOCH + Duration::from_secs(secs));
    assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(at(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
    assert_eq!(at(4_102_444_800), "Fri, 01 Jan 2100 00:00:00 GMT");
}

// ---- over real sockets ----

/// Short limits, so that the timeout tests take a fraction of a second.
const TEST_LIMITS: Limits = Limits {
    max_head: 1024,
    read_timeout: Duration::from_millis(300),
    write_timeout: Duration::from_secs(2),
    max_connections: 8,
    linger: Duration::from_millis(300),
    linger_bytes: 256 * 1024,
};

/// A server on 127.0.0.1 (a free port) with `limits`; returns its address and the sender that
/// keeps it running.
fn server(limits: Limits) -> (SocketAddr, mpsc::UnboundedSender<Change>) {
    let l = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let render: Render = Arc::new(|| "# HELP m x\n# TYPE m gauge\nm 1\n".to_string());
    tokio::spawn(serve(Some(l), rx, render, limits));
    (addr, tx)
}

/// Sends `request` and reads until the server closes.
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may answer (and stop reading) before the whole request is written.
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8(out).unwrap()
}

fn status_of(response: &str) -> u16 {
    response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a response: {response:?}"))
}

#[tokio::test]
async fn a_scrape_over_tcp_gets_the_text() {
    let (addr, _keep) = server(TEST_LIMITS);
    let r = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(status_of(&r), 200, "{r}");
    assert!(
        r.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{r}"
    );
    assert!(r.contains("\r\nConnection: close\r\n"), "{r}");
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    assert_eq!(body, "# HELP m x\n# TYPE m gauge\nm 1\n");
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    assert!(head.contains("\r\nDate: "), "{head}");
    // Garbage and wrong paths over the wire too.
    assert_eq!(
        status_of(&exchange(addr, b"\x16\x03\x01\x02\x00\x01\r\n\r\n").await),
        400
    );
    assert_eq!(
        status_of(&exchange(addr, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await),
        404
    );
}

#[tokio::test]
async fn many_scrapers_at_once_are_all_served() {
    let (addr, _keep) = server(Limits {
        max_connections: 64,
        ..TEST_LIMITS
    });
    let clients: Vec<_> = (0..50)
        .map(|_| tokio::spawn(exchange(addr, b"GET /metrics HTTP/1.0\r\n\r\n")))
        .collect();
    for c in clients {
        let r = c.await.unwrap();
        assert_eq!(status_of(&r), 200, "{r}");
        assert!(r.ends_with("m 1\n"), "{r}");
    }
}

#[tokio::test]
async fn a_slow_client_times_out_however_it_trickles() {
    let (addr, _keep) = server(TEST_LIMITS);
    // Half a request, then nothing.
    let started = Instant::now();
    let r = exchange(addr, b"GET /metr").await;
    assert_eq!(status_of(&r), 408, "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A byte every 50 ms: each read is quick, the whole head is not.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut reply = Vec::new();
    for b in request {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut buf = [0u8; 512];
        // Has the server answered already?
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            reply.extend_from_slice(&buf[..n]);
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut reply)).await;
    let r = String::from_utf8(reply).unwrap();
    assert_eq!(status_of(&r), 408, "{r}");
    // The whole request would take 1.7 s at this pace: a deadline per read would have let it
    // through (200); the one for the whole head cut it.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "cut at the deadline: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_oversized_request_is_refused() {
    let (addr, _keep) = server(TEST_LIMITS);
    let mut request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'a', 4096));
    let r = exchange(addr, &request).await;
    assert_eq!(status_of(&r), 431, "{r}");
    // A long header that fits is fine.
    let mut request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 900));
    request.extend(b"\r\n\r\n");
    assert_eq!(status_of(&exchange(addr, &request).await), 200);
}

#[tokio::test]
async fn a_request_with_a_body_gets_its_answer() {
    let (addr, _keep) = server(TEST_LIMITS);
    // 100 kB of body the server never parses: it answers from the head alone. (Whether the
    // lingering close matters cannot be seen here: Linux hands the client its queued data even
    // after a reset; other stacks drop it, which is why the server lingers.)
    let mut request = b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'z', 100_000));
    let r = exchange(addr, &request).await;
    assert_eq!(status_of(&r), 405, "{r}");
    assert!(r.contains("Allow: GET, HEAD"), "{r}");
}

#[tokio::test]
async fn beyond_the_connection_limit_clients_get_503_and_the_server_recovers() {
    // A long read deadline: the idle connections below hold their permits for the whole test.
    let limits = Limits {
        read_timeout: Duration::from_secs(30),
        ..TEST_LIMITS
    };
    let (addr, _keep) = server(limits);
    let mut idle = Vec::new();
    for _ in 0..limits.max_connections {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // The next one is refused at once (it need not even send its request).
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut r = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut r))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status_of(&r), 503, "{r}");
    drop(idle);
    // The permits come back as those connections end.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let r = exchange(addr, b"GET /metrics HTTP/1.0\r\n\r\n").await;
        if status_of(&r) == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A free loopback port (bound and released: good enough for a test).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls until `addr` accepts connections (`true`) or refuses them (`false`).
async fn wait_listening(addr: SocketAddr, want: bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while TcpStream::connect(addr).await.is_ok() != want {
        assert!(Instant::now() < deadline, "{addr} listening should be {want}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn reload_moves_stops_and_restarts_the_listener() {
    let a: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let b: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = |enabled, listen| MetricsConfig { enabled, listen };
    let render: Render = Arc::new(|| "m 1\n".to_string());
    let mut ep = Endpoint::start(&config(true, a), render).unwrap();
    wait_listening(a, true).await;
    assert!(ep.prepare(&config(true, a)).unwrap().is_none(), "no change");

    // Move to b: bound at once (so the reload can be refused), a closed by the task.
    let p = ep.prepare(&config(true, b)).unwrap().unwrap();
    ep.commit(p);
    assert_eq!(ep.config().listen, b);
    wait_listening(b, true).await;
    wait_listening(a, false).await;
    let r = exchange(b, b"GET /metrics HTTP/1.1\r\nHost: b\r\n\r\n").await;
    assert_eq!(status_of(&r), 200, "{r}");

    // An address someone else holds: the reload is refused and b keeps serving.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap();
    let e = ep.prepare(&config(true, taken)).unwrap_err();
    assert!(
        e.starts_with(&format!("metrics.listen: cannot listen on {taken}: ")) && e.contains("in use"),
        "{e}"
    );
    assert_eq!(ep.config().listen, b);
    wait_listening(b, true).await;

    // Off, then on again at a.
    let p = ep.prepare(&config(false, b)).unwrap().unwrap();
    ep.commit(p);
    wait_listening(b, false).await;
    assert!(ep.prepare(&config(false, a)).unwrap().is_none(), "off stays off");
    let p = ep.prepare(&config(true, a)).unwrap().unwrap();
    ep.commit(p);
    wait_listening(a, true).await;

    // A disabled endpoint binds nothing at start.
    let c: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _off = Endpoint::start(&config(false, c), Arc::new(String::new)).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(TcpStream::connect(c).await.is_err());
    // And a start on a taken address is an error for the operator.
    let e = Endpoint::start(&config(true, taken), Arc::new(String::new)).unwrap_err();
    assert!(e.contains("set [metrics] listen to another port"), "{e}");
}

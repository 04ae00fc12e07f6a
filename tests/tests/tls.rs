//! TLS end to end with certificates made in the test: SNI picks the
//! certificate, ALPN picks HTTP/2, guests see `https://` URIs, bad files
//! fail the start, and fetch speaks TLS to an origin (h2 by ALPN).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use verge::daemon::{CapabilityConfig, DaemonConfig, LocalApp, RunningDaemon, TlsListener};
use verge::runtime::{EngineSettings, Limits};
use verge::server::HttpLimits;
use verge::server::tls::TlsCertificate;
use verge_tests::origin::Origin;
use verge_tests::pki::Pki;
use verge_tests::{Setup, TestServer, guest};

async fn start(tls: TlsListener, data_dir: &std::path::Path) -> anyhow::Result<RunningDaemon> {
    let config = DaemonConfig {
        listen: "127.0.0.1:0".parse()?,
        engine: EngineSettings {
            pool_instances: 16,
            ..EngineSettings::default()
        },
        limits: Limits::default(),
        http: HttpLimits::default(),
        access_log: None,
        capabilities: CapabilityConfig::default(),
        tls: Some(tls),
        connections: Default::default(),
        compile_worker: None,
        serving_threads: None,
    };
    let app = LocalApp {
        name: "echo".into(),
        wasm: guest("echo"),
        vars: Default::default(),
        data_dir: data_dir.to_owned(),
        allowed_hosts: Vec::new(),
    };
    verge::daemon::start(&config, &app).await
}

fn pair(leaf: &verge_tests::pki::Leaf) -> TlsCertificate {
    TlsCertificate {
        cert: leaf.cert.clone(),
        key: leaf.key.clone(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_selects_the_certificate_and_alpn_negotiates_h2() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["b.test", "*.b.test"]);
    let listener = TlsListener {
        listen: "127.0.0.1:0".parse().unwrap(),
        certificates: vec![pair(&a), pair(&b)],
    };
    let daemon = start(listener, pki.dir()).await.unwrap();
    let addr = daemon.tls_addr.unwrap();
    for name in ["a.test", "b.test", "www.b.test"] {
        // The client verifies the certificate against the name it asked for.
        let tls = pki.connect(addr, name).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "{name}");
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = Request::get(format!("https://{name}/hello"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let res = sender.send_request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.version(), http::Version::HTTP_2);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains(&format!("uri=https://{name}/hello")),
            "{body}"
        );
    }
    // A name no certificate covers gets the default, which the client refuses.
    let err = pki.connect(addr, "c.test").await.unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    // Plain HTTP keeps working beside TLS.
    assert_ne!(daemon.addr, addr);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http1_clients_negotiate_http1() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let listener = TlsListener {
        listen: "127.0.0.1:0".parse().unwrap(),
        certificates: vec![pair(&a)],
    };
    let daemon = start(listener, pki.dir()).await.unwrap();
    let tcp = tokio::net::TcpStream::connect(daemon.tls_addr.unwrap())
        .await
        .unwrap();
    let mut config = (*pki.client_config()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect("a.test".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/one")
        .header("host", "a.test")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_11);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("uri=https://a.test/one"));
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_certificate_files_fail_the_start_with_the_path() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["b.test"]);
    let missing = TlsCertificate {
        cert: pki.dir().join("missing.pem"),
        key: a.key.clone(),
    };
    let mismatched = TlsCertificate {
        cert: a.cert.clone(),
        key: b.key.clone(),
    };
    let garbage_path = pki.dir().join("garbage.pem");
    std::fs::write(&garbage_path, "not pem").unwrap();
    let garbage = TlsCertificate {
        cert: garbage_path,
        key: a.key.clone(),
    };
    for (pair, expect) in [
        (missing, "missing.pem"),
        (mismatched, "b.key"),
        (garbage, "garbage.pem"),
    ] {
        let listener = TlsListener {
            listen: "127.0.0.1:0".parse().unwrap(),
            certificates: vec![pair],
        };
        let err = start(listener, pki.dir()).await.err().unwrap();
        let message = format!("{err:#}");
        assert!(message.contains(expect), "{expect}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_speaks_tls_to_origins_it_trusts() {
    let pki = Pki::new();
    let leaf = pki.leaf("origin", &["localhost"]);
    let origin = Origin::start_tls(&leaf.cert, &leaf.key).await;
    let url = format!(
        "/fetch-probe?url=https://localhost:{}/headers",
        origin.addr.port()
    );
    let setup = |ca: Option<std::path::PathBuf>| Setup {
        allowed_hosts: vec!["https://localhost:*".into()],
        capabilities: CapabilityConfig {
            outbound_allow_cidrs: vec!["127.0.0.1/32".parse().unwrap()],
            outbound_ca_file: ca,
            ..CapabilityConfig::default()
        },
        ..Setup::default()
    };
    let s = TestServer::start_with(&["fetch-probe"], setup(Some(pki.ca_file()))).await;
    let r = s.get(&url).await;
    let text = r.text();
    assert!(text.starts_with("ok 200 "), "{text}");
    assert!(text.contains("version: HTTP/2.0"), "h2 by ALPN: {text}");
    // The same origin without its CA is an untrusted certificate.
    let s = TestServer::start_with(&["fetch-probe"], setup(None)).await;
    let r = s.get(&url).await;
    assert!(r.text().starts_with("error connection: "), "{}", r.text());
    assert!(r.text().contains("certificate"), "{}", r.text());
}

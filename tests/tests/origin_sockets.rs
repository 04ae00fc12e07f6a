//! Origin sockets held open by unread response bodies are counted per
//! request and per tenant (`capabilities/fetch/sockets.rs`): a hostile
//! guest that keeps every body open, or moves them into `wait_until`,
//! stops at its caps while another tenant fetches and deploys.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use serde_json::json;
use verge::capabilities::fetch::{
    MAX_OPEN_ORIGIN_BODIES_PER_REQUEST, MAX_OPEN_ORIGIN_EXCHANGES_PER_TENANT,
};
use verge_tests::origin::Origin;
use verge_tests::{Platform, Setup, TestServer};

fn port_of(origin: &Origin) -> String {
    origin.addr.port().to_string()
}

#[tokio::test]
async fn a_request_holds_at_most_its_cap_of_unread_bodies() {
    let origin = Origin::start().await;
    let s = TestServer::start_with(&["fetch-async-probe"], Setup::loopback()).await;
    let url = origin.url("/stream?chunks=2%26ms=1500");
    let n = MAX_OPEN_ORIGIN_BODIES_PER_REQUEST + 8;
    let r = s
        .get(&format!(
            "/fetch-async-probe?mode=hold&n={n}&t=300&url={url}"
        ))
        .await;
    let text = r.text();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("held {MAX_OPEN_ORIGIN_BODIES_PER_REQUEST}").as_str()),
        "{text}"
    );
    // Past the cap a start waits for a body to finish, here past its
    // 300 ms timeout.
    assert_eq!(lines.filter(|l| *l == "error timeout").count(), 8, "{text}");
    assert_eq!(
        origin.max_streams_open(),
        MAX_OPEN_ORIGIN_BODIES_PER_REQUEST as u64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_holding_bodies_in_wait_until_stops_at_its_cap_and_a_neighbour_is_served() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path()).await;
    let grant = format!("127.0.0.1/32:{}", port_of(&origin));
    let mut tokens = Vec::new();
    for (tenant, guest) in [("hog", "fetch-async-probe"), ("calm", "fetch-probe")] {
        let token = p.tenant_with_outbound(tenant, &[&grant]).await;
        let manifest = json!({
            "routes": [format!("{tenant}.test")],
            "allowed_hosts": ["http://127.0.0.1:*"],
        });
        let deployed = p
            .deploy_manifest(&token, tenant, "probe", manifest, guest)
            .await;
        assert_eq!(deployed.status, 201, "{}", deployed.text());
        tokens.push(token);
    }
    // 12 requests × 32 bodies, each read only after the response, 2 s
    // later: 384 wanted, the tenant's cap allows 256.
    let url = origin.url("/stream?chunks=2%26ms=2000");
    let per = MAX_OPEN_ORIGIN_BODIES_PER_REQUEST;
    let flood: Vec<_> = (0..12)
        .map(|_| {
            let path = format!("/fetch-async-probe?mode=hold&n={per}&t=500&bg=1&url={url}");
            let p = &p;
            async move { p.get("hog.test", &path).await.text() }
        })
        .collect();
    let neighbour = async {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        let fetched = p
            .get(
                "calm.test",
                &format!("/fetch-probe?url={}&echo=0", origin.url("/hello")),
            )
            .await
            .text();
        let bytes = std::fs::read(verge_tests::guest("fetch-probe")).unwrap();
        let deployed = p
            .admin(
                "POST",
                "/v1/tenants/calm/apps/probe/versions",
                Some(&tokens[1]),
                bytes,
            )
            .await;
        (fetched, deployed.status.as_u16())
    };
    let (answers, (fetched, deployed)) =
        tokio::join!(futures_util::future::join_all(flood), neighbour);
    let held: usize = answers
        .iter()
        .map(|a| {
            a.lines()
                .next()
                .and_then(|l| l.strip_prefix("held "))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("{a}"))
        })
        .sum();
    // Bodies finished in the background give their places to later
    // requests, so more than the cap are held over the run, never at once.
    assert!(held < 12 * per, "{held}");
    assert!(
        answers.iter().any(|a| a.contains("error timeout")),
        "some starts waited past their timeout at the tenant's cap"
    );
    // The hog's at most 256 at once, plus the neighbour's one.
    let most = origin.max_streams_open();
    assert!(
        most <= MAX_OPEN_ORIGIN_EXCHANGES_PER_TENANT as u64 + 1,
        "{most}"
    );
    assert!(
        most >= (MAX_OPEN_ORIGIN_EXCHANGES_PER_TENANT / 2) as u64,
        "{most}: the flood was real"
    );
    assert!(
        fetched.starts_with("ok 200"),
        "the neighbour's fetch: {fetched}"
    );
    assert_eq!(deployed, 201, "the neighbour's deploy");
}

//! The admin pages' sessions: who may sign in, what a session cookie looks
//! like, CSRF and origin refusals that change nothing, and how sessions end.

use std::time::Duration;

use serde_json::json;

use crate::admin::{PAGES, audit_actions, endpoint_count, key_id_of};
use crate::admin_client::AdminClient;
use crate::helpers::TestApp;
use crate::listener::Listener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_page_needs_a_session() {
    let app = TestApp::spawn().await;
    let mut browser = AdminClient::new(&app);
    for page in PAGES {
        let reply = browser.get(page).await;
        assert_eq!(reply.status, 303, "{page}");
        assert_eq!(reply.location.as_deref(), Some("/admin/sign-in"), "{page}");
    }
    // An API key is not a session: the pages ignore Authorization.
    let with_key = app
        .client
        .get(format!("{}/admin/integrations", app.base))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(with_key.url().path(), "/admin/sign-in");
    let forged = browser.post("/admin/integrations", &[("url", "x")]).await;
    assert_eq!(forged.status, 303);
    assert_eq!(endpoint_count(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_superadmin_keys_sign_in_and_the_cookie_is_locked_down() {
    let app = TestApp::spawn().await;
    for key in [&app.staff, &app.integration] {
        let mut browser = AdminClient::new(&app);
        let refused = browser.sign_in(key).await;
        assert_eq!(refused.status, 403);
        assert!(
            refused.body.contains("Superadmins only"),
            "{}",
            refused.body
        );
        assert!(!browser.cookies.contains_key("cw_session"));
    }
    let mut browser = AdminClient::new(&app);
    let unknown = browser
        .sign_in("cwk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .await;
    assert_eq!(unknown.status, 401);
    assert!(unknown.body.contains("unknown or has been revoked"));
    assert!(!unknown.body.contains("cwk_AAAA"), "the key is not echoed");
    let mut browser = AdminClient::new(&app);
    let landed = browser.sign_in(&app.admin).await;
    assert_eq!(landed.status, 303);
    let cookie = landed
        .set_cookies
        .iter()
        .find(|c| c.starts_with("cw_session="))
        .expect("a session cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    assert!(!cookie.contains("Secure"), "plain http: no Secure flag");
    assert!(!cookie.contains(&app.admin), "the cookie is not the key");
    let page = browser.get("/admin/integrations").await;
    assert_eq!(page.status, 200);
    let again = browser.get("/admin/sign-in").await;
    assert_eq!(
        again.location.as_deref(),
        Some("/admin/integrations"),
        "already signed in"
    );
    let actions = audit_actions(&app).await;
    let admin_id = key_id_of(&app, "admin").await;
    assert!(
        actions
            .iter()
            .any(|a| a["action"] == "admin.signed_in" && a["actor"]["id"] == admin_id.as_str())
    );
    assert!(actions.iter().any(|a| a["action"] == "auth.failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_the_right_csrf_token_or_origin_change_nothing() {
    let app = TestApp::spawn().await;
    let mut fresh = AdminClient::new(&app);
    let no_cookie = fresh
        .post_raw(
            "/admin/sign-in",
            format!("csrf=abc&api_key={}", app.admin),
            None,
        )
        .await;
    assert_eq!(no_cookie.status, 403, "sign-in without its cookie");
    let (mut browser, csrf) = AdminClient::signed_in(&app, &app.admin).await;
    let (_, other_csrf) = AdminClient::signed_in(&app, &app.admin).await;
    assert_ne!(csrf, other_csrf, "each session has its own token");
    let listener = Listener::start().await;
    let url = listener.url("csrf");
    let fields = |token: &str| {
        vec![
            ("csrf".to_owned(), token.to_owned()),
            ("url".to_owned(), url.clone()),
            ("events".to_owned(), "patient.created".to_owned()),
            ("ordering".to_owned(), "none".to_owned()),
            ("content".to_owned(), "record".to_owned()),
            ("signature".to_owned(), "hmac".to_owned()),
            ("enabled".to_owned(), "on".to_owned()),
        ]
    };
    let encode = |token: &str| serde_urlencoded::to_string(fields(token)).unwrap();
    let origin = browser.base.clone();
    for (body, origin, why) in [
        (encode(""), Some(origin.as_str()), "no token"),
        (encode("forged"), Some(origin.as_str()), "a made-up token"),
        (
            encode(&other_csrf),
            Some(origin.as_str()),
            "another session's token",
        ),
        (encode(&csrf), Some("http://evil.example"), "another origin"),
    ] {
        let refused = browser.post_raw("/admin/integrations", body, origin).await;
        assert_eq!(refused.status, 403, "{why}");
        assert!(refused.body.contains("Form refused"), "{why}");
    }
    assert_eq!(endpoint_count(&app).await, 0, "nothing was created");
    let accepted = browser
        .post_raw("/admin/integrations", encode(&csrf), Some(origin.as_str()))
        .await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    assert_eq!(endpoint_count(&app).await, 1);
    // Signing out needs the token too.
    let sign_out = browser
        .post_raw("/admin/sign-out", String::new(), None)
        .await;
    assert_eq!(sign_out.status, 403);
    assert_eq!(
        browser.get("/admin/keys").await.status,
        200,
        "still signed in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_at_sign_out_when_idle_and_when_their_key_is_revoked() {
    let app = TestApp::spawn_configured(|c| {
        c.admin_sessions.idle = Duration::from_secs(2);
    })
    .await;
    let (mut browser, csrf) = AdminClient::signed_in(&app, &app.admin).await;
    let stolen = browser.cookies.clone();
    let out = browser.post("/admin/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location.as_deref(), Some("/admin/sign-in?signed_out=1"));
    assert!(
        !browser.cookies.contains_key("cw_session"),
        "the cookie is cleared"
    );
    browser.cookies = stolen;
    let replayed = browser.get("/admin/integrations").await;
    assert_eq!(
        replayed.status, 303,
        "a signed-out session's cookie no longer works"
    );
    assert!(
        audit_actions(&app)
            .await
            .iter()
            .any(|a| a["action"] == "admin.signed_out")
    );

    let (mut idle, _) = AdminClient::signed_in(&app, &app.admin).await;
    // In use, a session outlives its idle limit…
    for _ in 0..8 {
        assert_eq!(idle.get("/admin/keys").await.status, 200, "in use");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // …and ends once unused for longer than it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(idle.get("/admin/keys").await.status, 303, "idle too long");

    let second = app
        .post(
            "/api/v1/keys",
            json!({"name": "second", "role": "superadmin"}),
        )
        .await
        .body;
    let (mut revoked, _) = AdminClient::signed_in(&app, second["key"].as_str().unwrap()).await;
    let id = second["id"].as_str().unwrap();
    let reply = app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/keys/{id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(reply.status, 204);
    tokio::time::sleep(chartwire::auth::AUTH_CACHE_TTL).await;
    assert_eq!(revoked.get("/admin/keys").await.status, 303, "revoked key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_counts_against_its_keys_rate_limit() {
    let app = TestApp::spawn_configured(|c| c.api_rate_limit = Some(1)).await;
    let (mut browser, _) = AdminClient::signed_in(&app, &app.admin).await;
    let mut limited = None;
    for _ in 0..10 {
        let page = browser.get("/admin/keys").await;
        if page.status == 429 {
            limited = Some(page);
            break;
        }
        assert_eq!(page.status, 200);
    }
    let limited = limited.expect("the limit is reached within ten requests");
    assert!(limited.body.contains("Too many requests"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_tls_proxy_cookies_are_secure_and_the_forwarded_origin_counts() {
    let app = TestApp::spawn().await;
    let proxy = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "ehr.clinic.example"),
    ];
    let mut browser = AdminClient::new(&app);
    let form = browser.get_with("/admin/sign-in", &proxy).await;
    assert!(
        form.set_cookies.iter().all(|c| c.contains("; Secure")),
        "{:?}",
        form.set_cookies
    );
    let body = serde_urlencoded::to_string([("csrf", form.csrf()), ("api_key", app.admin.clone())])
        .unwrap();
    let mut headers = proxy.to_vec();
    headers.push(("origin", "https://ehr.clinic.example"));
    let landed = browser.post_with("/admin/sign-in", body, &headers).await;
    assert_eq!(landed.status, 303, "{}", landed.body);
    assert!(landed.set_cookies.iter().all(|c| c.contains("; Secure")));
    // The same form from a page that is neither the host nor the forwarded host.
    let (mut other, _) = AdminClient::signed_in(&app, &app.admin).await;
    let csrf = other.get("/admin/keys").await.csrf();
    let body =
        serde_urlencoded::to_string([("csrf", csrf.as_str()), ("name", "x"), ("role", "staff")])
            .unwrap();
    let forged = other
        .post_with(
            "/admin/keys",
            body,
            &[
                ("x-forwarded-host", "ehr.clinic.example"),
                ("origin", "https://evil.example"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
}

//! End to end in headless Chromium: a Superadmin signs in, adds an endpoint
//! pointing at a local listener, sees deliveries succeed and fail, retries
//! one, reveals and rotates the secret, visits every page, and signs out.
//! A screenshot of each main page goes to `target/tmp/admin-screenshots/`.
//! Fails (never skips) when Chromium is missing.

use std::path::PathBuf;
use std::time::Duration;

use chartwire::webhooks::schedule::RetrySchedule;
use chartwire::webhooks::signing::Signer;
use serde_json::json;

use crate::chromium::Chromium;
use crate::helpers::TestApp;
use crate::listener::{Behaviour, Listener};

const WAIT: Duration = Duration::from_secs(20);

fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("admin-screenshots")
        .join(format!("{name}.png"))
}

/// A JavaScript test for "the delivery log shows a delivery of this event
/// type with this status".
fn delivery_shown(event_type: &str, status: &str) -> String {
    format!(
        "document.querySelector('tr.delivery[data-event-type=\"{event_type}\"][data-status=\"{status}\"]')"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superadmin_manages_an_integration_in_a_real_browser() {
    // A long retry delay: the failed delivery waits for the admin's retry.
    let app = TestApp::spawn_configured(|c| {
        c.webhooks.retry_schedule = RetrySchedule::parse("1h").unwrap();
    })
    .await;
    let listener = Listener::start().await;
    let browser = Chromium::launch().await;
    let base = app.base.clone();

    // Signing in.
    browser.goto(&format!("{base}/admin")).await;
    assert!(browser.eval("location.pathname").await == "/admin/sign-in");
    browser.screenshot(&screenshot_path("01-sign-in")).await;
    browser.type_into("#api_key", &app.admin).await;
    browser.click_and_load("button[type=submit]").await;
    assert_eq!(
        browser.eval("location.pathname").await,
        "/admin/integrations",
        "{}",
        browser.text("body").await
    );
    assert!(browser.text("main").await.contains("No endpoints yet"));

    // Adding an endpoint with two event types ticked.
    browser
        .click_and_load("a[href='/admin/integrations/new']")
        .await;
    browser.type_into("#url", "https://localhost/hook").await;
    browser.click("input[value='patient.created']").await;
    browser.click("input[value='appointment.created']").await;
    browser.click_and_load("button.primary[type=submit]").await;
    assert!(
        browser
            .text("#url-error")
            .await
            .contains("This URL was refused")
    );
    assert!(
        browser
            .text("#url-rules")
            .await
            .contains("fully qualified host")
    );
    browser
        .screenshot(&screenshot_path("02-endpoint-form-refused"))
        .await;
    for ticked in ["patient.created", "appointment.created"] {
        let checked = browser
            .eval(&format!(
                "document.querySelector(\"input[value='{ticked}']\").checked"
            ))
            .await;
        assert_eq!(checked, json!(true), "{ticked} stays ticked");
    }
    browser.type_into("#url", &listener.url("browser")).await;
    browser
        .type_into("#description", "Front desk app <script>alert(1)</script>")
        .await;
    browser
        .type_into("input[name=header_name]", "Authorization")
        .await;
    browser
        .type_into("input[name=header_value]", "Bearer from-the-form")
        .await;
    browser
        .screenshot(&screenshot_path("03-endpoint-form"))
        .await;
    browser.click_and_load("button.primary[type=submit]").await;
    assert!(
        browser
            .text(".notice")
            .await
            .contains("The endpoint was added"),
        "{}",
        browser.text("main").await
    );
    let h1 = browser.text("h1").await;
    assert_eq!(
        h1, "Front desk app <script>alert(1)</script>",
        "shown as text"
    );
    let endpoint_path = browser.eval("location.pathname").await;
    let endpoint_path = endpoint_path.as_str().unwrap().to_owned();
    let endpoints = app.get("/api/v1/webhooks/endpoints").await.body;
    assert_eq!(
        endpoints["data"][0]["events"],
        json!(["patient.created", "appointment.created"])
    );

    // A patient created through the API shows up as delivered (the log
    // refreshes itself).
    app.create(
        "patients",
        json!({"first_name": "Ada", "last_name": "Lovelace", "date_of_birth": "1815-12-10"}),
    )
    .await;
    browser
        .wait_until(&delivery_shown("patient.created", "succeeded"), WAIT)
        .await;
    let received = listener.wait_for("browser", 1, WAIT).await;
    assert_eq!(received[0].json()["type"], "patient.created");
    assert_eq!(received[0].header("authorization"), "Bearer from-the-form");

    // The listener fails: the failure shows with its status code.
    listener.set("browser", Behaviour::answer(500));
    app.create(
        "patients",
        json!({"first_name": "Rosa", "last_name": "Parks", "date_of_birth": "1913-02-04"}),
    )
    .await;
    browser
        .wait_until(
            "[...document.querySelectorAll('tr.delivery[data-status=\"pending\"]')].some(r => r.innerText.includes('HTTP 500'))",
            WAIT,
        )
        .await;
    let failing = browser
        .eval("document.querySelector('tr.delivery[data-status=\"pending\"]').dataset.delivery")
        .await;
    let failing = failing.as_str().unwrap().to_owned();
    browser
        .click(&format!("details#attempts-{failing} > summary"))
        .await;
    browser
        .wait_until(
            &format!("document.querySelector('details#attempts-{failing}').innerText.includes('HTTP 500')"),
            WAIT,
        )
        .await;
    browser
        .screenshot(&screenshot_path("04-endpoint-failing"))
        .await;

    // Fixed, then retried from the page: it succeeds.
    listener.set("browser", Behaviour::answer(200));
    browser
        .click_and_load(&format!("button[data-retry='{failing}']"))
        .await;
    assert!(
        browser
            .text(".notice")
            .await
            .contains("queued for another attempt")
    );
    browser
        .wait_until(
            &format!("document.querySelector('tr.delivery[data-delivery=\"{failing}\"][data-status=\"succeeded\"]')"),
            WAIT,
        )
        .await;

    // The secret: hidden, revealed (it verifies what the listener got), rotated.
    assert!(!browser.text("main").await.contains("whsec_"));
    browser.click_and_load("#reveal-secret").await;
    let secret = browser.text("#secret-value").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    let got = listener.received("browser");
    let last = got.last().unwrap();
    let signer = Signer::from_secret(&secret).unwrap();
    let expected = signer.sign(
        last.header("webhook-id"),
        last.header("webhook-timestamp").parse().unwrap(),
        &last.body,
    );
    assert!(
        last.header("webhook-signature")
            .split(' ')
            .any(|s| s == expected),
        "the revealed secret signs the deliveries"
    );
    browser.click_and_load("#rotate-secret").await;
    let rotated = browser.text("#secret-value").await;
    assert!(rotated.starts_with("whsec_") && rotated != secret);
    assert!(
        browser
            .text("main")
            .await
            .contains("The secret was rotated")
    );
    browser
        .screenshot(&screenshot_path("05-endpoint-secret"))
        .await;

    // A test event, with its result.
    browser.click_and_load("#send-test").await;
    assert!(
        browser.text("#test-result").await.contains("was delivered"),
        "{}",
        browser.text("#test-result").await
    );

    // Two more endpoints: one switched off, one whose receiver said 410 Gone.
    app.endpoint(
        json!({"url": listener.url("lab"), "events": ["lab_result.*"],
        "description": "Lab interface", "enabled": false}),
    )
    .await;
    listener.set("gone", Behaviour::answer(410));
    let gone = app
        .endpoint(json!({"url": listener.url("gone"), "events": ["patient.*"],
            "description": "Old patient portal"}))
        .await;
    app.create(
        "patients",
        json!({"first_name": "Mary", "last_name": "Seacole", "date_of_birth": "1805-11-23"}),
    )
    .await;
    let gone_path = format!(
        "/api/v1/webhooks/endpoints/{}",
        gone["id"].as_str().unwrap()
    );
    let deadline = std::time::Instant::now() + WAIT;
    while app.get(&gone_path).await.body["status"] != "disabled" {
        assert!(
            std::time::Instant::now() < deadline,
            "410 disables the endpoint"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The other pages.
    browser.goto(&format!("{base}/admin/integrations")).await;
    browser
        .wait_until("document.querySelector('table.endpoints')", WAIT)
        .await;
    let table = browser.text("table.endpoints tbody").await;
    assert!(table.contains("Enabled"), "{table}");
    assert!(table.contains("switched off by an admin"), "{table}");
    assert!(table.contains("the receiver answered 410 Gone"), "{table}");
    browser
        .screenshot(&screenshot_path("06-integrations"))
        .await;
    browser.set_width(390, 844).await;
    for (page, name) in [
        ("/admin/integrations".to_owned(), "07-integrations-narrow"),
        (endpoint_path.clone(), "08-endpoint-narrow"),
        (format!("{endpoint_path}/edit"), "09-endpoint-form-narrow"),
    ] {
        browser.goto(&format!("{base}{page}")).await;
        let fits = browser
            .eval("document.documentElement.scrollWidth <= window.innerWidth + 1")
            .await;
        let wide = browser
            .eval(
                "[...document.querySelectorAll('body *')].filter(e => !e.closest('.table-wrap') && e.getBoundingClientRect().right > window.innerWidth + 1)\
                 .slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).join(', ')",
            )
            .await;
        assert_eq!(
            fits,
            json!(true),
            "{page} is wider than a narrow screen: {wide}"
        );
        browser.screenshot(&screenshot_path(name)).await;
    }
    browser.set_width(1280, 900).await;
    for (page, name, expect) in [
        (
            "/admin/event-types",
            "10-event-catalogue",
            "patient.created",
        ),
        ("/admin/egress", "11-egress", "egress-bind"),
        ("/admin/keys", "12-api-keys", "admin"),
        ("/admin/audit", "13-audit-log", "endpoint.secret_revealed"),
    ] {
        browser.goto(&format!("{base}{page}")).await;
        assert!(browser.text("main").await.contains(expect), "{page}");
        browser.screenshot(&screenshot_path(name)).await;
    }
    browser.goto(&format!("{base}{endpoint_path}/edit")).await;
    assert_eq!(
        browser
            .eval("document.querySelector('input[value=\"patient.created\"]').checked")
            .await,
        json!(true)
    );
    browser
        .screenshot(&screenshot_path("14-endpoint-edit"))
        .await;

    // Signing out.
    browser.click_and_load(".sign-out button").await;
    assert!(browser.text("main").await.contains("You are signed out"));
    browser.goto(&format!("{base}/admin/integrations")).await;
    assert_eq!(browser.eval("location.pathname").await, "/admin/sign-in");

    // Nothing was loaded from anywhere but this server, and no script ran
    // from what the admin typed.
    let requested = browser.requested.lock().unwrap().clone();
    assert!(requested.len() > 10);
    for url in &requested {
        assert!(
            url.starts_with(&base) || url.starts_with("data:") || url == "about:blank",
            "the page requested {url}"
        );
    }
    assert!(
        browser.dialogs.lock().unwrap().is_empty(),
        "a dialog opened"
    );
}

//! TLS: endpoint certificates are verified (a private CA is trusted only
//! through --ca-bundle) and chartwire serves HTTPS itself.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use chartwire::app::TlsFiles;
use chartwire::webhooks::address::StaticResolver;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::json;
use tokio::sync::watch;

use crate::helpers::TestApp;

/// A throw-away CA and a certificate it signed for `hooks.clinic.test` and 127.0.0.1.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "chartwire test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["hooks.clinic.test".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["chartwire.client.test".to_owned()])
            .unwrap()
            .signed_by(&client_key, &ca)
            .unwrap();
        std::fs::write(dir.path().join("client.pem"), client.pem()).unwrap();
        std::fs::write(dir.path().join("client.key"), client_key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn server_files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
        }
    }
}

/// An HTTPS listener with `config` that counts the webhooks it gets.
async fn serve_counting(
    config: Arc<rustls::ServerConfig>,
) -> (u16, Arc<AtomicUsize>, watch::Sender<bool>) {
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let app = Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(chartwire::tls::serve(socket, config, app, stopped));
    (port, received, stop)
}

/// An HTTPS listener with the test CA's server certificate.
async fn https_listener(pki: &Pki) -> (u16, Arc<AtomicUsize>, watch::Sender<bool>) {
    let files = pki.server_files();
    serve_counting(chartwire::tls::server_config(&files.cert, &files.key).unwrap()).await
}

fn resolver() -> Arc<StaticResolver> {
    let mut names = HashMap::new();
    names.insert(
        "hooks.clinic.test".to_owned(),
        vec!["127.0.0.1".parse().unwrap()],
    );
    Arc::new(StaticResolver {
        names,
        fallback: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_is_trusted_only_through_the_ca_bundle() {
    let pki = Pki::new();
    let (port, received, _stop) = https_listener(&pki).await;
    let url = format!("https://hooks.clinic.test:{port}/hook");

    let strict = TestApp::spawn_configured(|c| c.webhooks.resolver = Some(resolver())).await;
    let endpoint = strict
        .endpoint(json!({"url": url, "events": ["patient.created"]}))
        .await;
    strict
        .create(
            "patients",
            json!({"first_name": "T", "last_name": "L", "date_of_birth": "1980-01-01"}),
        )
        .await;
    let delivery = strict.first_attempt(endpoint["id"].as_str().unwrap()).await;
    assert_eq!(
        delivery["attempts_log"][0]["error_kind"], "tls",
        "{delivery}"
    );
    assert_eq!(received.load(Ordering::SeqCst), 0);

    let trusting = TestApp::spawn_configured(|c| {
        c.webhooks.resolver = Some(resolver());
        c.webhooks.ca_bundle = Some(pki.path("ca.pem"));
    })
    .await;
    let endpoint = trusting
        .endpoint(json!({"url": url, "events": ["patient.created"]}))
        .await;
    trusting
        .create(
            "patients",
            json!({"first_name": "T", "last_name": "L", "date_of_birth": "1980-01-01"}),
        )
        .await;
    let delivery = trusting
        .first_attempt(endpoint["id"].as_str().unwrap())
        .await;
    assert_eq!(
        delivery["attempts_log"][0]["http_status"], 200,
        "{delivery}"
    );
    assert_eq!(received.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chartwire_serves_https_with_the_given_certificate() {
    let pki = Pki::new();
    let app = TestApp::spawn_configured(|c| c.tls = Some(pki.server_files())).await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(pki.path("ca.pem")).unwrap()).unwrap();
    chartwire::app::install_crypto_provider();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let reply = client
        .get(format!("https://127.0.0.1:{port}/api/v1/patients"))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    // Over TLS the admin pages' cookies are `Secure`.
    let sign_in = client
        .get(format!("https://127.0.0.1:{port}/admin/sign-in"))
        .send()
        .await
        .unwrap();
    let cookie = sign_in.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let untrusting = crate::helpers::client();
    assert!(
        untrusting
            .get(format!("https://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_err()
    );
    assert!(
        untrusting
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_err(),
        "no plain http on a TLS port"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_with_a_client_certificate_passes_an_mtls_listener_and_one_without_does_not() {
    use rustls::server::WebPkiClientVerifier;
    let pki = Pki::new();
    let ca_pem = std::fs::read(pki.path("ca.pem")).unwrap();
    let client_pem = std::fs::read_to_string(pki.path("client.pem")).unwrap();
    let client_key_pem = std::fs::read_to_string(pki.path("client.key")).unwrap();
    // The listener demands a client certificate from the CA.
    chartwire::app::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in chartwire::tls::certificates(&ca_pem, "ca").unwrap() {
        roots.add(cert).unwrap();
    }
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let files = pki.server_files();
    let chain = chartwire::tls::certificates(&std::fs::read(&files.cert).unwrap(), "cert").unwrap();
    let key = chartwire::tls::private_key(&std::fs::read(&files.key).unwrap(), "key").unwrap();
    let server = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    let (port, received, _stop) = serve_counting(Arc::new(server)).await;

    let app = TestApp::spawn_configured(|c| {
        c.webhooks.resolver = Some(resolver());
        c.webhooks.ca_bundle = Some(pki.path("ca.pem"));
    })
    .await;
    let url = format!("https://hooks.clinic.test:{port}/hook");
    let with = app
        .endpoint(json!({"url": url, "events": ["patient.created"],
            "client_certificate": {"certificate": client_pem, "private_key": client_key_pem}}))
        .await;
    assert_eq!(with["client_certificate"], json!({"configured": true}));
    assert!(!with.to_string().contains("PRIVATE KEY"));
    let without = app
        .endpoint(json!({"url": url, "events": ["patient.created"]}))
        .await;
    let bad = app
        .post(
            "/api/v1/webhooks/endpoints",
            json!({"url": url, "events": ["*"],
            "client_certificate": {"certificate": "not pem", "private_key": "nope"}}),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["field"], "client_certificate");
    app.create(
        "patients",
        json!({"first_name": "M", "last_name": "T", "date_of_birth": "1980-01-01"}),
    )
    .await;
    let accepted = app.first_attempt(with["id"].as_str().unwrap()).await;
    assert_eq!(
        accepted["attempts_log"][0]["http_status"], 200,
        "{accepted}"
    );
    let refused = app.first_attempt(without["id"].as_str().unwrap()).await;
    assert!(
        refused["attempts_log"][0]["http_status"].is_null(),
        "{refused}"
    );
    assert_eq!(received.load(Ordering::SeqCst), 1);
}

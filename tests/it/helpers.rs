//! Shared test helpers: a real server on port 0 with a fresh database per
//! test, keys for every role, an HTTP client, and sample records.

use std::time::Duration;

use chartwire::app::{self, RunningServer, ServeConfig};
use chartwire::auth::{KeyService, Role};
use chartwire::webhooks::schedule::RetrySchedule;
use reqwest::Method;
use serde_json::{Value, json};

/// An HTTP client for talking to test servers.
pub fn client() -> reqwest::Client {
    chartwire::app::install_crypto_provider();
    reqwest::Client::new()
}

pub use crate::db::{Backend, TestDb};

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn id(&self) -> i64 {
        self.body["id"].as_i64().expect("a record id")
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub admin: String,
    pub staff: String,
    pub integration: String,
    pub database_url: String,
    pub db: TestDb,
    server: Option<RunningServer>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(Duration::from_secs(90 * 86_400)).await
    }

    pub async fn spawn_with(retention: Duration) -> TestApp {
        TestApp::spawn_configured(|config| config.event_retention = retention).await
    }

    /// A server whose webhooks may reach 127.0.0.0/8, retrying on a
    /// schedule of seconds; `adjust` changes anything else.
    pub async fn spawn_configured(adjust: impl FnOnce(&mut ServeConfig)) -> TestApp {
        let db = TestDb::new().await;
        let database_url = db.url.clone();
        let mut config = ServeConfig::new(
            database_url.clone(),
            "127.0.0.1:0".parse().unwrap(),
            db.path_buf(),
        );
        config.master_key = db.master_key.clone();
        config.webhooks.lease_ttl = Duration::from_secs(3);
        config.webhooks.endpoint_allow = vec!["127.0.0.0/8".parse().unwrap()];
        config.webhooks.retry_schedule = RetrySchedule::parse("1s,1s,1s,1s,1s,1s").unwrap();
        adjust(&mut config);
        let server = app::start(config).await.expect("server starts");
        let keys = KeyService::new(server.store.clone());
        let cli = chartwire::events::Actor::command_line();
        let admin = keys
            .create("admin", Role::Superadmin, &cli)
            .await
            .unwrap()
            .1;
        let staff = keys.create("staff", Role::Staff, &cli).await.unwrap().1;
        let integration = keys
            .create("integration", Role::Integration, &cli)
            .await
            .unwrap()
            .1;
        TestApp {
            base: format!("http://{}", server.addr),
            client: client(),
            admin,
            staff,
            integration,
            database_url,
            db,
            server: Some(server),
        }
    }

    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("running")
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, Some(&self.admin), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(&self.admin), Some(body))
            .await
    }

    /// POST with no body as the Superadmin (test sends, retries, rotations).
    pub async fn action(&self, path: &str) -> Reply {
        self.call(Method::POST, path, Some(&self.admin), None).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(&self.admin), Some(body))
            .await
    }

    /// The first delivery of an endpoint once an attempt has been made, with
    /// its attempts.
    pub async fn first_attempt(&self, endpoint_id: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = self
                .get(&format!(
                    "/api/v1/webhooks/endpoints/{endpoint_id}/deliveries"
                ))
                .await
                .body;
            if let Some(first) = log["data"].as_array().and_then(|d| d.first())
                && first["attempts"].as_i64().unwrap_or(0) > 0
            {
                let id = first["id"].as_str().unwrap();
                return self
                    .get(&format!("/api/v1/webhooks/deliveries/{id}"))
                    .await
                    .body;
            }
            assert!(std::time::Instant::now() < deadline, "no attempt was made");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Create a webhook endpoint and insist on 201.
    pub async fn endpoint(&self, body: Value) -> Value {
        let reply = self.post("/api/v1/webhooks/endpoints", body).await;
        assert_eq!(reply.status, 201, "creating an endpoint: {}", reply.body);
        reply.body
    }

    /// Create a record and insist on 201.
    pub async fn create(&self, plural: &str, body: Value) -> Value {
        let reply = self.post(&format!("/api/v1/{plural}"), body).await;
        assert_eq!(reply.status, 201, "creating a {plural}: {}", reply.body);
        reply.body
    }

    /// Every event in the feed from the beginning.
    pub async fn all_events(&self) -> Vec<Value> {
        let mut events = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/changes?limit=1000&after={c}"),
                None => "/api/v1/changes?limit=1000".to_owned(),
            };
            let page = self.get(&path).await;
            assert_eq!(page.status, 200, "{}", page.body);
            events.extend(page.body["data"].as_array().unwrap().iter().cloned());
            cursor = Some(page.body["next_cursor"].as_str().unwrap().to_owned());
            if !page.body["has_more"].as_bool().unwrap() {
                return events;
            }
        }
    }

    /// A provider, a patient and an appointment, for records that need them.
    pub async fn fixtures(&self) -> Fixtures {
        let provider = self
            .create(
                "providers",
                json!({"first_name": "Ada", "last_name": "Quill", "email": "ada@clinic.example"}),
            )
            .await["id"]
            .as_i64()
            .unwrap();
        let patient = self
            .create(
                "patients",
                json!({"first_name": "Bo", "last_name": "Reed", "date_of_birth": "1984-07-09"}),
            )
            .await["id"]
            .as_i64()
            .unwrap();
        let appointment = self
            .create(
                "appointments",
                json!({"patient_id": patient, "provider_id": provider,
                "start_at": "2026-12-01T09:00:00Z", "end_at": "2026-12-01T09:30:00Z"}),
            )
            .await["id"]
            .as_i64()
            .unwrap();
        Fixtures {
            provider,
            patient,
            appointment,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Fixtures {
    pub provider: i64,
    pub patient: i64,
    pub appointment: i64,
}

/// A valid create body for every record type (by plural), and a field that
/// a patch can change to another valid value.
pub fn sample(plural: &str, f: Fixtures) -> (Value, Value) {
    match plural {
        "providers" => (
            json!({"first_name": "Cy", "last_name": "Moss", "email": "cy@clinic.example", "npi": "1234567893", "specialty": "cardiology"}),
            json!({"specialty": "nephrology"}),
        ),
        "patients" => (
            json!({"first_name": "Di", "last_name": "Lane", "date_of_birth": "1990-02-28", "sex": "female",
            "address": {"line1": "1 Main St", "city": "Springfield", "country": "US"}, "primary_provider_id": f.provider}),
            json!({"phone": "+1 555 0100"}),
        ),
        "appointments" => (
            json!({"patient_id": f.patient, "provider_id": f.provider, "start_at": "2026-12-02T10:00:00Z",
            "end_at": "2026-12-02T10:20:00Z", "status": "confirmed", "reason": "follow-up"}),
            json!({"location": "Room 3"}),
        ),
        "encounters" => (
            json!({"patient_id": f.patient, "provider_id": f.provider, "appointment_id": f.appointment,
            "occurred_on": "2026-12-01", "chief_complaint": "cough"}),
            json!({"note": "better"}),
        ),
        "prescriptions" => (
            json!({"patient_id": f.patient, "prescriber_id": f.provider, "medication": "amoxicillin",
            "dosage": "500 mg", "quantity": 21, "refills": 0, "start_date": "2026-12-01", "end_date": "2026-12-08"}),
            json!({"refills": 1}),
        ),
        "lab_results" => (
            json!({"patient_id": f.patient, "ordering_provider_id": f.provider, "test_name": "Hemoglobin",
            "loinc_code": "718-7", "value": "13.2", "unit": "g/dL", "flag": "normal"}),
            json!({"flag": "low"}),
        ),
        "vitals" => (
            json!({"patient_id": f.patient, "measured_at": "2026-12-01T09:05:00Z", "systolic_mmhg": 120,
            "diastolic_mmhg": 80, "temperature_c": 36.8, "spo2_percent": 98}),
            json!({"heart_rate_bpm": 72}),
        ),
        "allergies" => (
            json!({"patient_id": f.patient, "allergen": "penicillin", "severity": "severe"}),
            json!({"reaction": "hives"}),
        ),
        "problems" => (
            json!({"patient_id": f.patient, "description": "asthma", "icd10_code": "J45"}),
            json!({"status": "inactive"}),
        ),
        "documents" => (
            json!({"patient_id": f.patient, "title": "Referral", "content_type": "application/pdf", "size_bytes": 18233}),
            json!({"category": "letters"}),
        ),
        "tasks" => (
            json!({"title": "Call back", "assignee_id": f.provider, "patient_id": f.patient, "due_date": "2026-12-05"}),
            json!({"priority": "high"}),
        ),
        other => panic!("no sample for {other}"),
    }
}

/// Plural → singular for the eleven types.
pub fn singular(plural: &str) -> &'static str {
    chartwire::records::schema::RECORD_TYPES
        .iter()
        .find(|k| k.plural == plural)
        .map(|k| k.name)
        .expect("a record type")
}

pub fn plurals() -> Vec<&'static str> {
    chartwire::records::schema::RECORD_TYPES
        .iter()
        .map(|k| k.plural)
        .collect()
}

/// Run `tests/py/check.py KIND` on `cases` with the Python the test command
/// installed (reference implementations: `standardwebhooks`, `jsonschema_rs`).
pub fn python_check(kind: &str, cases: &Value) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("CHARTWIRE_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target/test-venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/test.sh, which installs the reference verifiers",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.json");
    std::fs::write(&file, serde_json::to_vec(cases).unwrap()).unwrap();
    let out = std::process::Command::new(python)
        .arg(root.join("tests/py/check.py"))
        .arg(kind)
        .arg(&file)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{kind} check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

//! A plain HTTP client for the admin pages that keeps cookies and follows
//! nothing by itself, so tests see every redirect and `Set-Cookie`.

use std::collections::HashMap;

use crate::helpers::TestApp;

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Page {
    /// The text after the first `marker`, up to (not including) `end`.
    pub fn between(&self, marker: &str, end: char) -> String {
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("`{marker}` is not on the page"))
            + marker.len();
        let len = self.body[start..].find(end).expect("the text's end");
        self.body[start..start + len].to_owned()
    }

    /// The CSRF token of the first form on the page.
    pub fn csrf(&self) -> String {
        self.between("name=\"csrf\" value=\"", '"')
    }

    /// The id of the endpoint a redirect leads to (after adding one).
    pub fn endpoint_id(&self) -> String {
        let location = self.location.as_deref().expect("a redirect");
        let path = location.split('?').next().unwrap();
        path.strip_prefix("/admin/integrations/")
            .expect("an endpoint's page")
            .to_owned()
    }
}

pub struct AdminClient {
    pub base: String,
    client: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

impl AdminClient {
    pub fn new(app: &TestApp) -> AdminClient {
        AdminClient::at(&app.base)
    }

    /// A client for the server at `base` (`http://127.0.0.1:port`).
    pub fn at(base: &str) -> AdminClient {
        chartwire::app::install_crypto_provider();
        AdminClient {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = if self.cookies.is_empty() {
            request
        } else {
            request.header("cookie", self.cookie_header())
        };
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let set_cookies: Vec<String> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        for line in &set_cookies {
            let pair = line.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                if line.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        let body = response.text().await.unwrap_or_default();
        Page {
            status,
            location,
            set_cookies,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.base));
        self.finish(request).await
    }

    /// POST a form as a browser on this server's page would (same origin).
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("origin", self.base.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).unwrap());
        self.finish(request).await
    }

    /// POST a form with the given headers and no cookies' say.
    pub async fn post_raw(&mut self, path: &str, body: String, origin: Option<&str>) -> Page {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
        self.post_with(path, body, &headers).await
    }

    /// POST a form body with exactly these extra headers.
    pub async fn post_with(&mut self, path: &str, body: String, headers: &[(&str, &str)]) -> Page {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.finish(request).await
    }

    /// GET with extra headers.
    pub async fn get_with(&mut self, path: &str, headers: &[(&str, &str)]) -> Page {
        let mut request = self.client.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.finish(request).await
    }

    /// Sign in with `key`; returns the page it lands on.
    pub async fn sign_in(&mut self, key: &str) -> Page {
        let form = self.get("/admin/sign-in").await;
        assert_eq!(form.status, 200);
        let csrf = form.csrf();
        self.post("/admin/sign-in", &[("csrf", &csrf), ("api_key", key)])
            .await
    }

    /// Sign in with `key` and insist that it worked; returns the CSRF token
    /// of the signed-in pages.
    pub async fn signed_in(app: &TestApp, key: &str) -> (AdminClient, String) {
        let mut client = AdminClient::new(app);
        let landed = client.sign_in(key).await;
        assert_eq!(landed.status, 303, "sign-in: {}", landed.body);
        assert_eq!(landed.location.as_deref(), Some("/admin/integrations"));
        let page = client.get("/admin/integrations").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = page.csrf();
        (client, csrf)
    }
}

//! A headless Chromium driven over the DevTools protocol through a pipe
//! (`--remote-debugging-pipe`: commands on the browser's fd 3, answers on
//! its fd 4, each message ended by a NUL byte). No WebDriver, no browser
//! download: Debian's `chromium`, with a fresh profile per browser.
//!
//! Input is real: clicks are mouse events at the element's position and
//! text is inserted as typed input into the focused field.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::oneshot;

type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

pub struct Chromium {
    child: Child,
    commands: Mutex<std::io::PipeWriter>,
    waiting: Waiting,
    /// Every URL the page asked for (`Network.requestWillBeSent`).
    pub requested: Arc<Mutex<Vec<String>>>,
    /// Dialogs the page opened (`alert`, `confirm`): there should be none.
    pub dialogs: Arc<Mutex<Vec<String>>>,
    next_id: AtomicU64,
    session: String,
    _profile: tempfile::TempDir,
}

/// The flags every test browser starts with: headless, and nothing that
/// reaches for the network on its own.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
    "--window-size=1280,900",
];

fn chromium_path() -> PathBuf {
    let path =
        std::env::var("CHARTWIRE_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let path = PathBuf::from(path);
    assert!(
        path.exists(),
        "Chromium is missing at {} (install Debian's `chromium`; scripts/test.sh does, \
         or point CHARTWIRE_TEST_CHROMIUM at one)",
        path.display()
    );
    path
}

/// A copy of `fd` numbered 10 or above, so moving it to 3 or 4 in the child
/// never collides with the other.
fn high_copy(fd: i32) -> i32 {
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
    assert!(copy >= 10, "fcntl(F_DUPFD_CLOEXEC) failed");
    copy
}

impl Chromium {
    pub async fn launch() -> Chromium {
        let profile = tempfile::tempdir().expect("a profile folder");
        let (browser_reads, commands) = std::io::pipe().expect("a pipe");
        let (answers, browser_writes) = std::io::pipe().expect("a pipe");
        let read_fd = high_copy(browser_reads.as_raw_fd());
        let write_fd = high_copy(browser_writes.as_raw_fd());
        let log = std::fs::File::create(profile.path().join("chromium.log")).expect("a log file");
        let mut command = Command::new(chromium_path());
        command
            .args(FLAGS)
            .arg(format!(
                "--user-data-dir={}",
                profile.path().join("data").display()
            ))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: only async-signal-safe calls (dup2) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(read_fd, 3) < 0 || libc::dup2(write_fd, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("Chromium starts");
        unsafe {
            libc::close(read_fd);
            libc::close(write_fd);
        }
        drop(browser_reads);
        drop(browser_writes);
        let waiting: Waiting = Arc::default();
        let requested: Arc<Mutex<Vec<String>>> = Arc::default();
        let dialogs: Arc<Mutex<Vec<String>>> = Arc::default();
        {
            let (waiting, requested, dialogs) =
                (waiting.clone(), requested.clone(), dialogs.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(answers);
                loop {
                    let mut message = Vec::new();
                    match reader.read_until(0, &mut message) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    message.pop();
                    let Ok(value) = serde_json::from_slice::<Value>(&message) else {
                        continue;
                    };
                    if let Some(id) = value["id"].as_u64() {
                        if let Some(reply) = waiting.lock().unwrap().remove(&id) {
                            let _ = reply.send(value);
                        }
                        continue;
                    }
                    match value["method"].as_str() {
                        Some("Network.requestWillBeSent") => {
                            if let Some(url) = value["params"]["request"]["url"].as_str() {
                                requested.lock().unwrap().push(url.to_owned());
                            }
                        }
                        Some("Page.javascriptDialogOpening") => {
                            let text = value["params"]["message"].as_str().unwrap_or("");
                            dialogs.lock().unwrap().push(text.to_owned());
                        }
                        _ => {}
                    }
                }
            });
        }
        let mut browser = Chromium {
            child,
            commands: Mutex::new(commands),
            waiting,
            requested,
            dialogs,
            next_id: AtomicU64::new(1),
            session: String::new(),
            _profile: profile,
        };
        let target = browser
            .send(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await
            .expect("a page");
        let attached = browser
            .send(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await
            .expect("attached to the page");
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session")
            .to_owned();
        for domain in ["Page.enable", "Runtime.enable", "Network.enable"] {
            browser.call(domain, json!({})).await;
        }
        browser
    }

    async fn send(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let (reply, answer) = oneshot::channel();
        self.waiting.lock().unwrap().insert(id, reply);
        {
            let mut commands = self.commands.lock().unwrap();
            let mut bytes = serde_json::to_vec(&message).unwrap();
            bytes.push(0);
            commands.write_all(&bytes).expect("Chromium takes commands");
        }
        let answer = tokio::time::timeout(Duration::from_secs(30), answer)
            .await
            .unwrap_or_else(|_| panic!("Chromium did not answer {method} within 30 s"))
            .expect("Chromium is running");
        if answer.get("error").is_some() {
            Err(answer["error"].clone())
        } else {
            Ok(answer["result"].clone())
        }
    }

    /// A command on the page; panics on a protocol error.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(Some(&session), method, params)
            .await
            .unwrap_or_else(|err| panic!("{method} failed: {err}"))
    }

    /// Evaluate JavaScript in the page and return its value.
    pub async fn eval(&self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("the page threw evaluating `{expression}`: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Wait until `condition` (JavaScript) is true; panics after `within`.
    pub async fn wait_until(&self, condition: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let ready = self
                .call(
                    "Runtime.evaluate",
                    json!({"expression": format!("Boolean({condition})"), "returnByValue": true}),
                )
                .await;
            if ready["result"]["value"] == json!(true) {
                return;
            }
            if Instant::now() > deadline {
                let url = self.eval("location.href").await;
                let text = self
                    .eval("document.body ? document.body.innerText.slice(0, 2000) : ''")
                    .await;
                panic!("waited {within:?} for `{condition}` on {url}; the page says:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Mark the current document, so the next one can be told apart.
    async fn mark(&self) {
        self.eval("window.__chartwireOld = true").await;
    }

    async fn wait_for_new_page(&self) {
        self.wait_until(
            "!window.__chartwireOld && document.readyState === 'complete'",
            Duration::from_secs(20),
        )
        .await;
    }

    pub async fn goto(&self, url: &str) {
        self.mark().await;
        self.call("Page.navigate", json!({"url": url})).await;
        self.wait_for_new_page().await;
    }

    pub async fn text(&self, selector: &str) -> String {
        let value = self
            .eval(&format!(
                "(document.querySelector({}) || {{innerText: ''}}).innerText",
                json!(selector)
            ))
            .await;
        value.as_str().unwrap_or("").to_owned()
    }

    /// Click the element with the mouse, at its centre.
    pub async fn click(&self, selector: &str) {
        let rect = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({}); if (!e) return null; \
                 e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
                 return [r.x + r.width / 2, r.y + r.height / 2]; }})()",
                json!(selector)
            ))
            .await;
        let (x, y) = match rect.as_array() {
            Some(xy) => (xy[0].as_f64().unwrap(), xy[1].as_f64().unwrap()),
            None => panic!("nothing on the page matches `{selector}`"),
        };
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await;
        }
    }

    /// Click something that submits a form or follows a link, and wait for
    /// the page that comes of it.
    pub async fn click_and_load(&self, selector: &str) {
        self.mark().await;
        self.click(selector).await;
        self.wait_for_new_page().await;
    }

    /// Type `text` into the field (replacing what it holds).
    pub async fn type_into(&self, selector: &str, text: &str) {
        self.click(selector).await;
        self.eval(&format!(
            "document.querySelector({}).select()",
            json!(selector)
        ))
        .await;
        self.call("Input.insertText", json!({"text": text})).await;
    }

    /// A PNG of the whole page.
    pub async fn screenshot(&self, path: &Path) {
        let metrics = self.call("Page.getLayoutMetrics", json!({})).await;
        let size = &metrics["cssContentSize"];
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true, "clip": {
                    "x": 0, "y": 0, "scale": 1,
                    "width": size["width"].as_f64().unwrap_or(1280.0),
                    "height": size["height"].as_f64().unwrap_or(900.0).min(8000.0),
                }}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("image data"))
            .expect("base64");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("screenshot folder");
        }
        std::fs::write(path, png).expect("screenshot written");
    }

    /// Lay the page out as on a screen `width` CSS pixels wide.
    pub async fn set_width(&self, width: u32, height: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

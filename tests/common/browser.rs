//! Debian's headless Chromium, driven over WebDriver (chromedriver) with
//! fantoccini: the page's tests run in a real browser.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `webrepl-mount web MOUNTPOINT`: the page's address.
pub fn page_of(m: &super::Mount) -> String {
    let o = m.cmd().arg("web").arg(m.path()).output().expect("web");
    assert!(
        o.status.success(),
        "web: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let url = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.contains("/#"),
        "{url}"
    );
    url
}

pub struct Browser {
    driver: Child,
    pub client: Client,
    /// Where downloads land.
    pub downloads: tempfile::TempDir,
    _profile: tempfile::TempDir,
    /// Chromium's own temporary files: a browser killed with its driver
    /// leaves its scoped directories, which the suite counts as leaked.
    _scratch: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        Browser::at_scale(1).await
    }

    /// With `scale` device pixels to a CSS pixel (2: a HiDPI screen).
    pub async fn at_scale(scale: u32) -> Browser {
        Browser::launch(scale, None).await
    }

    /// A phone's screen: 400 x 800 CSS pixels (Chromium's emulation: a
    /// window cannot be made narrower than 500).
    pub async fn phone() -> Browser {
        Browser::launch(1, Some((400, 800))).await
    }

    async fn launch(scale: u32, phone: Option<(u32, u32)>) -> Browser {
        let port = super::free_port();
        let scratch = tempfile::tempdir().expect("Chromium's temporary directory");
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .env("TMPDIR", scratch.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: dropping the fixture ends Chromium too.
            .process_group(0)
            .spawn()
            .expect("chromedriver (scripts/test.sh installs chromium-driver)");
        super::eventually(10, "chromedriver listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let downloads = tempfile::tempdir().expect("downloads");
        let profile = tempfile::tempdir().expect("profile");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                // root needs --no-sandbox (BROWSER-TLS-NOTES.md).
                "args": ["--headless=new", "--no-sandbox", "--window-size=1280,800",
                         format!("--force-device-scale-factor={scale}"),
                         format!("--user-data-dir={}", profile.path().display())],
                "prefs": {
                    "download.default_directory": downloads.path().display().to_string(),
                    "download.prompt_for_download": false,
                },
            }),
        );
        if let Some((width, height)) = phone {
            caps["goog:chromeOptions"]["mobileEmulation"] = json!({
                "deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0, "touch": false},
            });
        }
        // fantoccini's rustls brings a second crypto provider: choose one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = ClientBuilder::rustls()
            .expect("rustls roots")
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session with Chromium");
        Browser {
            driver,
            client,
            downloads,
            _profile: profile,
            _scratch: scratch,
        }
    }

    /// The value of a JavaScript expression.
    pub async fn eval(&self, expr: &str) -> serde_json::Value {
        self.client
            .execute(&format!("return ({expr});"), vec![])
            .await
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    /// Waits for a JavaScript expression to be true, up to `secs`. One that
    /// throws meanwhile (what it reads is not there yet: the editor's code
    /// loads after the prompt) counts as false.
    pub async fn until(&self, secs: u64, expr: &str) {
        let holds = async || {
            self.client
                .execute(&format!("return ({expr});"), vec![])
                .await
                .is_ok_and(|v| v == json!(true))
        };
        // The page changes on its own time, and WebDriver cannot wait on a
        // condition: it is asked.
        if !super::within_async(secs, holds).await {
            panic!(
                "{expr} never held; the terminal shows {:?}, the status line {:?}",
                self.terminal_text().await,
                self.eval("document.getElementById('status').textContent")
                    .await
            );
        }
    }

    pub async fn terminal_text(&self) -> String {
        self.eval("(document.querySelector('.xterm-rows') || {}).innerText || ''")
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Types into the terminal as a person would.
    pub async fn type_keys(&self, keys: &str) {
        self.client
            .find(Locator::Css(".xterm-helper-textarea"))
            .await
            .expect("the terminal's input")
            .send_keys(keys)
            .await
            .expect("typing");
    }

    /// Presses keys as a keyboard would, wherever the focus is: modifiers
    /// (WebDriver's Shift \u{E008}, Control \u{E009}, Alt \u{E00A}) are
    /// held from where they come until the end, the others pressed and let
    /// go in turn.
    pub async fn press(&self, keys: &str) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let modifier = |c: char| ('\u{E008}'..='\u{E00A}').contains(&c);
        let mut seq = KeyActions::new("keyboard".into());
        for c in keys.chars() {
            seq = seq.then(KeyAction::Down { value: c });
            if !modifier(c) {
                seq = seq.then(KeyAction::Up { value: c });
            }
        }
        for c in keys.chars().filter(|&c| modifier(c)) {
            seq = seq.then(KeyAction::Up { value: c });
        }
        self.client.perform_actions(seq).await.expect("keys");
    }

    /// Clicks the button `action` on the row of `path` in the files panel.
    pub async fn click_row(&self, path: &str, action: &str) {
        self.click_in_tree(&format!(
            "#tree li[data-path='{path}'] button[data-action='{action}']"
        ))
        .await;
    }

    /// Clicks the name of `path` in the files panel (a file opens in the
    /// editor).
    pub async fn click_row_name(&self, path: &str) {
        self.click_in_tree(&format!("#tree li[data-path='{path}'] .name"))
            .await;
    }

    /// Clicks what `css` finds in the files panel. The tree is redrawn
    /// every 3 s: an element found just before a redraw is stale by the
    /// click. Found again then.
    async fn click_in_tree(&self, css: &str) {
        let mut last = None;
        for _ in 0..5 {
            self.until(10, &format!("!!document.querySelector(\"{css}\")"))
                .await;
            let found = self.client.find(Locator::Css(css)).await;
            match found {
                Ok(e) => match e.click().await {
                    Ok(()) => return,
                    Err(e) => last = Some(e),
                },
                Err(e) => last = Some(e),
            }
        }
        panic!("click {css}: {last:?}");
    }

    /// Picks a local file with the files panel's picker.
    pub async fn pick(&self, file: &std::path::Path) {
        self.client
            .find(Locator::Css("#pick"))
            .await
            .expect("the picker")
            .send_keys(&file.display().to_string())
            .await
            .expect("pick the file");
    }

    /// The words of a prompt() or confirm() once it is up.
    pub async fn dialog_text(&self) -> String {
        let mut text = None;
        let up = super::within_async(10, async || {
            text = self.client.get_alert_text().await.ok();
            text.is_some()
        })
        .await;
        assert!(up, "no dialog came up");
        text.unwrap_or_default()
    }

    /// Answers a prompt() or confirm() once it is up.
    pub async fn answer_dialog(&self, text: Option<&str>) {
        let up = super::within_async(10, async || self.client.get_alert_text().await.is_ok()).await;
        assert!(up, "no dialog came up");
        if let Some(t) = text {
            self.client
                .send_alert_text(t)
                .await
                .expect("type in the dialog");
        }
        self.client.accept_alert().await.expect("accept the dialog");
    }

    /// How many pixels of the screen inside the box of the element that
    /// `css` finds are drawn in a light colour (text on the page's dark
    /// background): read from a real screenshot, decoded by the browser.
    pub async fn lit_pixels(&self, css: &str) -> u64 {
        use base64::Engine;
        let png = self.client.screenshot().await.expect("screenshot");
        let url = format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(png)
        );
        let script = r#"
            const [css, url, done] = arguments;
            const r = document.querySelector(css).getBoundingClientRect();
            const k = window.devicePixelRatio;
            const img = new Image();
            img.onload = () => {
                const c = document.createElement('canvas');
                c.width = img.width; c.height = img.height;
                const g = c.getContext('2d');
                g.drawImage(img, 0, 0);
                const x = Math.floor(r.left * k), y = Math.floor(r.top * k);
                const w = Math.max(1, Math.ceil(r.width * k)), h = Math.max(1, Math.ceil(r.height * k));
                const px = g.getImageData(x, y, w, h).data;
                let lit = 0;
                for (let i = 0; i < px.length; i += 4) if (px[i] + px[i + 1] + px[i + 2] > 300) lit++;
                done(lit);
            };
            img.onerror = () => done(-1);
            img.src = url;
        "#;
        let v = self
            .client
            .execute_async(script, vec![json!(css), json!(url)])
            .await
            .expect("read the screenshot");
        v.as_u64()
            .unwrap_or_else(|| panic!("{css}: no pixels: {v}"))
    }

    /// chromedriver's process id: Chromium's processes descend from it.
    pub fn driver_pid(&self) -> u32 {
        self.driver.id()
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = self.driver.id() as i32;
        // SAFETY: signals the process group started above.
        unsafe { libc::killpg(group, libc::SIGKILL) };
        let _ = self.driver.wait();
        // Chromium's processes end after the driver: until they have, one
        // may still write in the profile the temporary directories below
        // are about to remove (a directory left in the suite's TMPDIR).
        let deadline = Instant::now() + Duration::from_secs(10);
        // SAFETY: signal 0 only asks whether the group has a process left.
        while unsafe { libc::killpg(group, 0) } == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

//! The console in a real browser: headless Chromium from the distribution's packages, driven
//! over WebDriver (chromedriver). Logs in, finds a delivery, redelivers it, activates an
//! environment (and sees production's deactivation refused), retries a job, is refused a
//! forged form and logs out, saving a screenshot of every page under
//! `target/console-screenshots/` for a person to look at.
//!
//! Without Chromium the test fails under CI (`CI` set) and is skipped with a message locally.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use relay_core::IntegrationType;
use serde_json::json;
use sqlx::PgPool;

use crate::console_pages::{add_environment, dead_job, report_deployment, stored_delivery};
use crate::support::*;

/// chromedriver on a free port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Chromium and chromedriver: `RELAY_CHROMIUM` / `RELAY_CHROMEDRIVER`, else from `PATH`.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let pick = |var: &str, names: &[&str]| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| on_path(names))
    };
    Some((
        pick(
            "RELAY_CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        )?,
        pick("RELAY_CHROMEDRIVER", &["chromedriver"])?,
    ))
}

async fn start_driver(chromedriver: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver does not start");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{}/status", driver.url))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    driver
}

async fn connect(driver: &Driver, chromium: &Path, profile: &Path) -> Client {
    let args = [
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": chromium.to_string_lossy(), "args": args }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("no WebDriver session")
}

fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp: the screenshots go next to it, this run's only
    // (an earlier run's with other numbers would mislead whoever looks).
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("console-screenshots");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The browser session, with what every step checks.
struct Tab {
    client: Client,
    base: String,
    shots: PathBuf,
    secrets: Vec<String>,
    taken: usize,
}

impl Tab {
    async fn shot(&mut self, name: &str) {
        self.taken += 1;
        // The whole page, not only the window: grow the window to the page for the shot.
        let (width, height) = self.client.get_window_size().await.unwrap();
        let page_height = self
            .client
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(height);
        // The window is a little taller than the page's viewport: leave room for that.
        let full = (page_height + 160).clamp(height, 6000);
        self.client
            .set_window_size(width as u32, full as u32)
            .await
            .unwrap();
        let png = self.client.screenshot().await.unwrap();
        self.client
            .set_window_size(width as u32, height as u32)
            .await
            .unwrap();
        let path = self.shots.join(format!("{:02}-{name}.png", self.taken));
        std::fs::write(&path, png).unwrap();
        let html = self.client.source().await.unwrap();
        for secret in &self.secrets {
            assert!(!html.contains(secret.as_str()), "{name} shows a secret");
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn wait(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
    }

    async fn button(&self, label: &str) -> fantoccini::elements::Element {
        let xpath = format!("//button[normalize-space()='{label}']");
        self.client
            .find(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no {label} button: {e}"))
    }

    async fn flash(&self) -> String {
        self.wait("p.flash").await.text().await.unwrap()
    }

    /// Waits until the page's heading is `expected` (the click's navigation has landed).
    async fn heading_is(&self, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let h1 = self.wait("h1").await.text().await.unwrap_or_default();
            if h1 == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "heading {h1:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn status_of(pool: &PgPool, delivery: i64) -> String {
    sqlx::query_scalar("SELECT status FROM deliveries WHERE id = $1")
        .bind(delivery)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn fail_delivery(pool: &PgPool, delivery: i64) {
    sqlx::query("UPDATE deliveries SET status = 'failed', attempts = 8, last_error = 'deploy hook answered 502' WHERE id = $1")
        .bind(delivery)
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_operator_works_through_the_console_in_a_real_browser(pool: PgPool) {
    let Some((chromium, chromedriver)) = browser() else {
        let message = "headless Chromium not found: install the chromium and chromium-driver packages (scripts/test.sh does)";
        assert!(std::env::var_os("CI").is_none(), "{message}");
        eprintln!("skipped: {message}");
        return;
    };
    let server = TestServer::start(pool.clone()).await;
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    sqlx::query("UPDATE integrations SET environment_url = 'https://{environment}.preview.example.com', deploy_hook_url = 'https://deploy.example.com/hook'")
        .execute(&pool)
        .await
        .unwrap();
    let delivery = stored_delivery(&server, &integration, "browser-1").await;
    fail_delivery(&pool, delivery).await;
    let job = dead_job(&pool, &integration.id, Some(delivery)).await;
    add_environment(&pool, &integration.id, "main", "production", "active").await;
    add_environment(
        &pool,
        &integration.id,
        "feature-login",
        "branch",
        "inactive",
    )
    .await;
    report_deployment(&pool, &integration.id, "main", "https://main.example.com").await;

    let driver = start_driver(&chromedriver).await;
    let profile = tempfile::tempdir().unwrap();
    let client = connect(&driver, &chromium, profile.path()).await;
    client.set_window_size(1400, 1000).await.unwrap();
    let mut tab = Tab {
        client,
        base: server.url(""),
        shots: screenshot_dir(),
        secrets: vec![
            ADMIN_TOKEN.into(),
            integration.webhook_secret.clone(),
            "consumer-secret-value".into(),
        ],
        taken: 0,
    };
    login(&mut tab).await;
    integration_page(&mut tab, &integration).await;
    redeliver_and_forge(&mut tab, &pool, delivery).await;
    environments(&mut tab, &pool, &integration).await;
    jobs(&mut tab, &pool, job).await;
    phone_width(&mut tab, delivery).await;
    live_refresh_and_logout(&mut tab, &pool, &integration).await;
    tab.client.close().await.unwrap();
    drop(driver);
    eprintln!("screenshots in {}", tab.shots.display());
}

async fn login(tab: &mut Tab) {
    // Login: a wrong token first, then the right one.
    tab.goto("/console").await;
    assert_eq!(
        tab.client.current_url().await.unwrap().path(),
        "/console/login"
    );
    tab.shot("login").await;
    tab.wait("#token")
        .await
        .send_keys("not-the-token")
        .await
        .unwrap();
    tab.button("Log in").await.click().await.unwrap();
    assert!(tab.flash().await.contains("That is not the admin token."));
    tab.shot("login-refused").await;
    tab.wait("#token")
        .await
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap();
    tab.button("Log in").await.click().await.unwrap();
    tab.wait("table").await;
    tab.heading_is("Overview").await;
    tab.shot("overview").await;
}

async fn integration_page(tab: &mut Tab, integration: &TestIntegration) {
    // The integration: copy button (JavaScript), Validate.
    tab.client
        .find(Locator::LinkText(&integration.id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    tab.heading_is(&format!("Integration {}", integration.id))
        .await;
    assert!(
        tab.wait("button[data-copy]")
            .await
            .is_displayed()
            .await
            .unwrap(),
        "copy button shown with JavaScript"
    );
    tab.shot("integration").await;
    tab.button("Validate").await.click().await.unwrap();
    assert!(tab
        .wait("#checks-title")
        .await
        .text()
        .await
        .unwrap()
        .starts_with("Validation"));
    tab.shot("integration-validated").await;
}

async fn redeliver_and_forge(tab: &mut Tab, pool: &PgPool, delivery: i64) {
    // Find the delivery, redeliver it.
    tab.client
        .find(Locator::LinkText("Deliveries"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    tab.wait("tbody[data-rows]").await;
    tab.shot("deliveries").await;
    tab.client
        .find(Locator::LinkText(&format!("#{delivery}")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    tab.heading_is(&format!("Delivery #{delivery}")).await;
    tab.shot("delivery").await;
    tab.button("Redeliver").await.click().await.unwrap();
    assert!(tab.flash().await.contains("is queued again"));
    assert_eq!(status_of(pool, delivery).await, "pending");
    tab.shot("delivery-redelivered").await;

    // A forged form (another CSRF token) is refused and changes nothing.
    fail_delivery(pool, delivery).await;
    tab.goto(&format!("/console/deliveries/{delivery}")).await;
    tab.client
        .execute("document.querySelector('form[action$=\"/redeliver\"] input[name=csrf]').value = 'forged';", vec![])
        .await
        .unwrap();
    tab.button("Redeliver").await.click().await.unwrap();
    tab.heading_is("Refused").await;
    assert_eq!(status_of(pool, delivery).await, "failed");
    tab.shot("csrf-refused").await;
}

async fn live_refresh_and_logout(tab: &mut Tab, pool: &PgPool, integration: &TestIntegration) {
    // Live refresh: a delivery arriving while the list is open shows up without a reload.
    tab.goto("/console/deliveries").await;
    let newer = relay_store::deliveries::insert(
        pool,
        &relay_store::deliveries::NewDelivery {
            integration_id: integration.id.clone(),
            request_id: Some("browser-live".into()),
            event_key: "repo:push".into(),
            headers: json!({}),
            body: bytes::Bytes::from_static(b"{}"),
        },
    )
    .await
    .unwrap();
    let relay_store::deliveries::InsertOutcome::Stored(newer) = newer else {
        panic!("not stored")
    };
    tab.wait(&format!("a[href='/console/deliveries/{newer}']"))
        .await;

    // Log out: the session ends, the console asks for the token again.
    tab.button("Log out").await.click().await.unwrap();
    assert!(tab.flash().await.contains("You are logged out."));
    tab.shot("logged-out").await;
    tab.goto("/console/jobs").await;
    assert_eq!(
        tab.client.current_url().await.unwrap().path(),
        "/console/login"
    );
}

async fn environments(tab: &mut Tab, pool: &PgPool, integration: &TestIntegration) {
    tab.client
        .find(Locator::LinkText("Back to the overview"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    tab.heading_is("Overview").await;
    tab.client
        .find(Locator::LinkText("Environments"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    tab.heading_is("Environments").await;
    tab.shot("environments").await;
    let activate = format!(
        "form[action='/console/environments/{}/feature-login/activate'] button",
        integration.id
    );
    tab.wait(&activate).await.click().await.unwrap();
    // Queued as a relay:transition delivery, which the flash links to.
    let flash = tab.flash().await;
    assert!(
        flash.starts_with("Activation of feature-login queued (delivery "),
        "{flash}"
    );
    tab.shot("environment-activate").await;
    let queued: String = flash.chars().filter(char::is_ascii_digit).collect();
    tab.wait("p.flash a").await.click().await.unwrap();
    tab.heading_is(&format!("Delivery #{queued}")).await;
    assert!(tab
        .client
        .source()
        .await
        .unwrap()
        .contains("relay:transition"));
    tab.shot("transition-delivery").await;

    // The processor applies it: feature-login is active and may now be deactivated.
    let processor = relay::worker::Processor::new(
        pool.clone(),
        std::sync::Arc::new(relay::metrics::Metrics::new()),
        Default::default(),
    );
    while processor.process_next().await.unwrap() > 0 {}
    tab.goto("/console/environments").await;
    tab.heading_is("Environments").await;
    let deactivate = format!(
        "form[action='/console/environments/{}/feature-login/deactivate']",
        integration.id
    );
    tab.wait(&deactivate).await;
    tab.shot("environment-activated").await;

    // Production offers no Deactivate; a hand-made form for it is refused with the reason.
    // (Changed and sent in one script, so a live refresh cannot put the old form back.)
    let forged = format!(
        "const form = document.querySelector(\"{deactivate}\");
         form.action = '/console/environments/{}/main/deactivate';
         form.requestSubmit();",
        integration.id
    );
    tab.client.execute(&forged, vec![]).await.unwrap();
    let flash = tab.flash().await;
    assert!(
        flash.contains(
            "is the production environment (the default branch) and cannot be deactivated"
        ),
        "{flash}"
    );
    tab.shot("production-refused").await;
}

async fn jobs(tab: &mut Tab, pool: &PgPool, job: i64) {
    tab.client
        .find(Locator::LinkText("Jobs"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    tab.heading_is("Jobs").await;
    tab.shot("jobs").await;
    tab.button("Retry").await.click().await.unwrap();
    assert!(tab
        .flash()
        .await
        .contains(&format!("Job #{job} is queued again.")));
    let state: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
        .bind(job)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(state, "pending");
    tab.shot("job-retried").await;
}

async fn phone_width(tab: &mut Tab, delivery: i64) {
    tab.client.set_window_size(390, 844).await.unwrap();
    for (path, name) in [
        ("/console".to_owned(), "phone-overview"),
        (format!("/console/deliveries/{delivery}"), "phone-delivery"),
        ("/console/environments".to_owned(), "phone-environments"),
    ] {
        tab.goto(&path).await;
        tab.wait("h1").await;
        tab.shot(name).await;
    }
    tab.client.set_window_size(1400, 1000).await.unwrap();
}

//! The web console over real HTTP: login, sessions, CSRF, security headers. The pages
//! themselves are in `console_pages.rs`, the browser test in `console_browser.rs`.

use relay_core::IntegrationType;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use sqlx::PgPool;

use crate::support::*;

/// A console user: a reqwest client that follows no redirects, with the session cookie
/// and CSRF token it logged in with.
pub(crate) struct Operator {
    pub base: String,
    pub cookie: String,
    pub csrf: String,
}

pub(crate) struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub(crate) fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn page(response: reqwest::Response) -> Page {
    Page {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

pub(crate) fn form(fields: &[(&str, &str)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        out.append_pair(name, value);
    }
    out.finish()
}

pub(crate) async fn post_form(base: &str, path: &str, cookie: Option<&str>, body: String) -> Page {
    let mut request = client()
        .post(format!("{base}{path}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    page(request.send().await.unwrap()).await
}

pub(crate) async fn get_page(base: &str, path: &str, cookie: Option<&str>) -> Page {
    let mut request = client().get(format!("{base}{path}"));
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    page(request.send().await.unwrap()).await
}

/// The `name=value` of the session cookie a response sets, if any.
pub(crate) fn session_cookie(page: &Page) -> Option<String> {
    page.headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("relay_console="))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

/// The CSRF token in a page's forms.
pub(crate) fn csrf_in(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker).expect("no CSRF field on the page") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

impl Operator {
    pub(crate) async fn login(server: &TestServer) -> Self {
        let base = server.url("");
        let response = post_form(
            &base,
            "/console/login",
            None,
            form(&[("token", ADMIN_TOKEN)]),
        )
        .await;
        assert_eq!(response.status, 303, "{}", response.body);
        let cookie = session_cookie(&response).expect("login sets the session cookie");
        let overview = get_page(&base, "/console", Some(&cookie)).await;
        assert_eq!(overview.status, 200);
        Self {
            csrf: csrf_in(&overview.body),
            base,
            cookie,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Page {
        get_page(&self.base, path, Some(&self.cookie)).await
    }

    /// Posts `fields` with this session's CSRF token.
    pub(crate) async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, form(&all)).await
    }

    pub(crate) async fn post_raw(&self, path: &str, body: String) -> Page {
        post_form(&self.base, path, Some(&self.cookie), body).await
    }

    /// Follows a redirect after an action and returns the page it lands on.
    pub(crate) async fn follow(&self, response: &Page) -> Page {
        assert_eq!(response.status, 303, "{}", response.body);
        self.get(response.location()).await
    }
}

/// Every state-changing console path, with the fields a real form sends.
pub(crate) fn actions(
    integration: &str,
    delivery: i64,
    job: i64,
) -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    vec![
        ("/console/logout".into(), vec![]),
        (
            format!("/console/integrations/{integration}"),
            vec![
                ("flags", "1"),
                ("deploy_hook_url", "https://deploy.example.com/hook"),
            ],
        ),
        (
            format!("/console/integrations/{integration}/validate"),
            vec![],
        ),
        (
            format!("/console/integrations/{integration}/resync"),
            vec![],
        ),
        (format!("/console/deliveries/{delivery}/redeliver"), vec![]),
        (format!("/console/jobs/{job}/retry"), vec![]),
        (
            format!("/console/environments/{integration}/main/activate"),
            vec![],
        ),
        (
            format!("/console/environments/{integration}/main/deactivate"),
            vec![],
        ),
    ]
}

pub(crate) const PAGES: &[&str] = &[
    "/console",
    "/console/deliveries",
    "/console/environments",
    "/console/jobs",
];

fn assert_security_headers(page: &Page, what: &str) {
    let header = |name: &str| {
        page.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{what}: no {name}"))
            .to_owned()
    };
    let csp = header("content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("x-content-type-options"), "nosniff");
}

#[sqlx::test(migrations = "../../migrations")]
async fn without_a_session_pages_redirect_to_login_and_actions_are_refused(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let base = server.url("");
    let detail = format!("/console/integrations/{}", integration.id);
    for path in PAGES
        .iter()
        .copied()
        .chain([detail.as_str(), "/console/deliveries/1"])
    {
        let page = get_page(&base, path, None).await;
        assert_eq!(page.status, 303, "{path}");
        let next = url::form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>();
        assert_eq!(
            page.location(),
            format!("/console/login?next={next}"),
            "{path}"
        );
        assert_security_headers(&page, path);
        let forged = get_page(&base, path, Some("relay_console=forged-session-value")).await;
        assert_eq!(forged.status, 303, "{path} with an unknown cookie");
    }
    for (path, fields) in actions(&integration.id, 1, 1) {
        let page = post_form(&base, &path, None, form(&fields)).await;
        assert_eq!(page.status, 403, "{path}");
        assert!(session_cookie(&page).is_none());
    }
    let login = get_page(&base, "/console/login", None).await;
    assert_eq!(login.status, 200);
    assert_security_headers(&login, "login");
    assert!(login
        .body
        .starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert!(login.body.contains(r#"<label for="token">"#));
    assert!(login.body.contains(r#"name="token" type="password""#));
    assert!(login
        .body
        .contains(r#"<button type="submit">Log in</button>"#));
    for asset in ["/console/assets/console.css", "/console/assets/console.js"] {
        let page = get_page(&base, asset, None).await;
        assert_eq!(page.status, 200, "{asset}");
        assert!(!page.body.is_empty());
    }
    let unknown = get_page(&base, "/console/no-such-page", None).await;
    assert_eq!(unknown.status, 404);
    assert_security_headers(&unknown, "404");
}

#[sqlx::test(migrations = "../../migrations")]
async fn login_sets_a_strict_expiring_cookie_and_comes_back_to_the_page_asked_for(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let base = server.url("");
    let response = post_form(
        &base,
        "/console/login",
        None,
        form(&[("token", ADMIN_TOKEN), ("next", "/console/jobs?state=dead")]),
    )
    .await;
    assert_eq!(response.status, 303);
    assert_eq!(response.location(), "/console/jobs?state=dead");
    let set_cookie = response.headers.get(SET_COOKIE).unwrap().to_str().unwrap();
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=43200",
        "Secure",
    ] {
        assert!(set_cookie.contains(part), "{set_cookie}");
    }
    let cookie = session_cookie(&response).unwrap();
    let jobs = get_page(&base, "/console/jobs?state=dead", Some(&cookie)).await;
    assert_eq!(jobs.status, 200);
    // The table holds a hash of the cookie, never the cookie.
    let value = cookie.trim_start_matches("relay_console=");
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT id_hash FROM console_sessions")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(!stored[0]
        .windows(value.len())
        .any(|w| w == value.as_bytes()));

    let elsewhere = post_form(
        &base,
        "/console/login",
        None,
        form(&[
            ("token", ADMIN_TOKEN),
            ("next", "https://evil.example.com/"),
        ]),
    )
    .await;
    assert_eq!(elsewhere.location(), "/console");
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_wrong_token_sets_nothing_and_repeated_failures_are_rate_limited(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let base = server.url("");
    for attempt in 0..5 {
        let page = post_form(&base, "/console/login", None, form(&[("token", "guess")])).await;
        assert_eq!(page.status, 401, "attempt {attempt}");
        assert!(page.headers.get(SET_COOKIE).is_none());
        assert!(page.body.contains("That is not the admin token."));
        assert!(page.body.contains(r#"role="alert""#));
    }
    let empty = post_form(&base, "/console/login", None, form(&[])).await;
    assert_eq!(empty.status, 429);
    // Held back even with the right token, or the limit would tell which guess was right.
    let right = post_form(
        &base,
        "/console/login",
        None,
        form(&[("token", ADMIN_TOKEN)]),
    )
    .await;
    assert_eq!(right.status, 429);
    assert!(right.headers.get(SET_COOKIE).is_none());
    assert!(
        right.body.contains("Too many failed logins"),
        "{}",
        right.body
    );
    assert!(right.headers.get("retry-after").is_some());
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM console_sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sessions, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn log_out_ends_the_session_on_the_server(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let operator = Operator::login(&server).await;
    let refused = operator.post_raw("/console/logout", form(&[])).await;
    assert_eq!(refused.status, 403, "logging out needs the CSRF token too");
    assert_eq!(operator.get("/console").await.status, 200);

    let out = operator.post("/console/logout", &[]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), "/console/login?signed_out=1");
    let cleared = out.headers.get(SET_COOKIE).unwrap().to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let login = get_page(&operator.base, out.location(), None).await;
    assert!(login.body.contains("You are logged out."));
    // The old cookie, replayed, is dead everywhere.
    for path in PAGES {
        assert_eq!(operator.get(path).await.status, 303, "{path}");
    }
    assert_eq!(operator.post("/console/logout", &[]).await.status, 403);
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM console_sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sessions, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_expired_session_no_longer_works(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let operator = Operator::login(&server).await;
    sqlx::query("UPDATE console_sessions SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(operator.get("/console").await.status, 303);
}

#[sqlx::test(migrations = "../../migrations")]
async fn every_action_without_this_sessions_csrf_token_is_refused_and_changes_nothing(
    pool: PgPool,
) {
    let server = TestServer::start(pool.clone()).await;
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let delivery = crate::console_pages::stored_delivery(&server, &integration, "csrf-1").await;
    crate::console_pages::add_environment(&pool, &integration.id, "main", "production", "active")
        .await;
    let job = crate::console_pages::dead_job(&pool, &integration.id, Some(delivery)).await;
    let operator = Operator::login(&server).await;
    let other = Operator::login(&server).await;
    let before = crate::console_pages::snapshot(&pool).await;
    for (path, fields) in actions(&integration.id, delivery, job) {
        let missing = operator.post_raw(&path, form(&fields)).await;
        assert_eq!(missing.status, 403, "{path} without a token");
        assert!(missing.body.contains("Refused"), "{path}: {}", missing.body);
        let mut wrong = fields.clone();
        wrong.push(("csrf", "not-the-token"));
        assert_eq!(
            operator.post_raw(&path, form(&wrong)).await.status,
            403,
            "{path} wrong token"
        );
        let mut foreign = fields.clone();
        foreign.push(("csrf", &other.csrf));
        assert_eq!(
            operator.post_raw(&path, form(&foreign)).await.status,
            403,
            "{path} with another session's token"
        );
    }
    assert_eq!(crate::console_pages::snapshot(&pool).await, before);
    assert_eq!(
        operator.get("/console").await.status,
        200,
        "still logged in"
    );
}

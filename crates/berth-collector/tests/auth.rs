//! The collector's own API and page behind its read token: refusals without it, the bearer
//! header, the page's login cookie, a listen beyond loopback refused without a token, the
//! token file's and the database's modes, TLS; and CSV on every table, parsed back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use berth_testkit::daemon::http;
use common::*;

const TOKEN: &str = "c0llector-t0ken";

/// The collector's config with no node (the API answers all the same).
fn toml(db: &Path, extra: &str) -> String {
    format!("{}{extra}", collector_toml(db, None, &[])).replacen(
        "listen = \"127.0.0.1:0\"\n",
        "",
        1,
    )
}

fn token_file(dir: &Path, mode: u32) -> std::path::PathBuf {
    let p = dir.join("collector.token");
    std::fs::write(&p, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// Run the collector on `text`; it must exit 1 saying `want`.
fn refused(dir: &Path, text: &str, want: &str) {
    let config = dir.join("refused.toml");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(COLLECTOR)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(want), "want {want:?} in: {err}");
}

#[test]
fn refusals_token_login_and_database_mode() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    // A token file others can read is refused, with the reason and the fix.
    let loose = token_file(dir.path(), 0o644);
    refused(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:0\"\n{}",
            toml(&db, &format!("read_token_file = \"{}\"\n", loose.display()))
        ),
        "is mode 0644",
    );
    // Beyond loopback without a token: refused, like svcd.
    refused(
        dir.path(),
        &format!("listen = \"0.0.0.0:0\"\n{}", toml(&db, "")),
        "beyond loopback",
    );
    // A database left 0644 by an older collector is made 0600.
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();

    let tf = token_file(dir.path(), 0o600);
    let text = format!(
        "listen = \"127.0.0.1:0\"\n{}",
        toml(&db, &format!("read_token_file = \"{}\"\n", tf.display()))
    );
    let mut c = Collector::start(dir.path(), &text);
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        c.log_text().contains("was mode 0644: now 0600"),
        "{}",
        c.log_text()
    );

    // No token: 401 on the API and metrics, the login form for the page; healthz is open.
    let r = c.get("/api/nodes");
    assert_eq!(r.code, 401, "{}", r.text());
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert!(r.json()["error"].as_str().unwrap().contains("read token"));
    assert_eq!(c.get("/metrics").code, 401);
    assert_eq!(c.get("/api/chargeback?format=csv").code, 401);
    let page = c.get("/");
    assert_eq!(page.code, 401);
    assert!(
        page.text()
            .contains("<form method=\"post\" action=\"/login\"")
    );
    assert_eq!(c.get("/healthz").code, 200);
    let wrong = get(c.port, "/api/nodes", &[("Authorization", "Bearer nope")]);
    assert_eq!(wrong.code, 401);
    // The bearer header.
    let bearer = format!("Bearer {TOKEN}");
    let ok = get(c.port, "/api/nodes", &[("Authorization", &bearer)]);
    assert_eq!(ok.code, 200, "{}", ok.text());
    // The page's login: a wrong token is refused, the right one sets a cookie that opens the
    // page and the API the page reads.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let bad = http(c.port, "POST", "/login", &form, b"token=nope");
    assert_eq!(bad.code, 401);
    assert!(bad.text().contains("wrong token"));
    let good = http(
        c.port,
        "POST",
        "/login",
        &form,
        format!("token={TOKEN}").as_bytes(),
    );
    assert_eq!(good.code, 303, "{}", good.text());
    let cookie = good.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let page = get(c.port, "/", &[("Cookie", &pair)]);
    assert_eq!(page.code, 200);
    assert!(page.text().contains("<title>"), "{}", page.text());
    assert_eq!(get(c.port, "/api/fleet", &[("Cookie", &pair)]).code, 200);
    // print status sends the token of the config.
    let out = Command::new(COLLECTOR)
        .arg("--config")
        .arg(&c.config)
        .args([
            "print",
            "status",
            "--url",
            &format!("http://127.0.0.1:{}", c.port),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.stop();
}

/// TLS on the collector's own endpoint (rustls), with the token.
#[test]
fn tls_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("collector test CA");
    let (cert, key) = ca.server_cert();
    std::fs::write(dir.path().join("c.pem"), cert).unwrap();
    std::fs::write(dir.path().join("c.key"), key).unwrap();
    let ca_file = dir.path().join("ca.pem");
    ca.write(&ca_file);
    let tf = token_file(dir.path(), 0o600);
    let text = format!(
        "listen = \"127.0.0.1:0\"\n{}",
        toml(
            &dir.path().join("c.db"),
            &format!(
                "read_token_file = \"{}\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
                tf.display(),
                dir.path().join("c.pem").display(),
                dir.path().join("c.key").display()
            )
        )
    );
    let c = Collector::start(dir.path(), &text);
    assert!(
        c.log_text().contains(" on https://127.0.0.1:"),
        "{}",
        c.log_text()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{}", c.port);
    let with = berth_collector::client::Target::new("c", &url, Some(&ca_file), Some(&tf)).unwrap();
    let (code, _, body) = rt
        .block_on(berth_collector::client::get(
            &with,
            "/api/nodes",
            None,
            1 << 20,
        ))
        .unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let without = berth_collector::client::Target::new("c", &url, Some(&ca_file), None).unwrap();
    let (code, _, _) = rt
        .block_on(berth_collector::client::get(
            &without,
            "/api/nodes",
            None,
            1 << 20,
        ))
        .unwrap();
    assert_eq!(code, 401);
}

//! Alerts against a real svcd (root), delivered to a webhook receiver of the test's own on
//! loopback and to a command: a failure held past `for` is sent (retried after a 500), a
//! shorter one is not (`for = "60s"`), a restart repeats nothing, the recovery is sent once,
//! a node going stale alerts; `GET /api/alerts` records every delivery.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// A webhook receiver: every POSTed JSON body, in order; the first `fail` requests get a 500.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Receiver {
    fn start(fail: usize) -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(AtomicUsize::new(0));
        let g = got.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let l = line.trim_end().to_ascii_lowercase();
                    if l.is_empty() {
                        break;
                    }
                    if let Some(v) = l.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let answer = if n < fail {
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope"
                } else {
                    g.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                };
                let _ = s.write_all(answer.as_bytes());
            }
        });
        Receiver { port, got }
    }

    fn count(&self, alert: &str, kind: &str, subject: &str) -> usize {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b["alert"] == alert && b["kind"] == kind && b["subject"] == subject)
            .count()
    }

    fn all(&self) -> String {
        format!("{:?}", self.got.lock().unwrap())
    }
}

#[test]
fn webhook_and_command_alerts() {
    let hook = Receiver::start(1);
    let mut n1 = Node::new("n1", None);
    n1.fs_service("web", "app = \"shop\"");
    n1.svc(&["web", "start"]);
    n1.start();
    let dir = tempfile::tempdir().unwrap();
    let mails = dir.path().join("mails");
    let url = format!("http://127.0.0.1:{}/hooks/berth", hook.port);
    let nodes = vec![("n1".to_string(), n1.url(), String::new())];
    let toml = format!(
        "{}[[alerts]]\nname = \"ops\"\nwebhook = \"{url}\"\nfor = \"1s\"\nretries = 3\n\
         [[alerts]]\nname = \"slow\"\nwebhook = \"{url}\"\nfor = \"60s\"\n\
         [[alerts]]\nname = \"crm\"\nwebhook = \"{url}\"\napp = \"crm\"\n\
         [[alerts]]\nname = \"mail\"\ncommand = [\"sh\", \"-c\", \"cat >> {m}; echo >> {m}\"]\n\
         min = \"down\"\nservice = \"web\"\nfor = \"1s\"\n",
        collector_toml(&dir.path().join("c.db"), None, &nodes),
        m = mails.display()
    );
    let mut c = Collector::start(dir.path(), &toml);
    c.wait_avail("web", "n1", "up");

    // A failure (the filesystem unmounted behind berth's back; the target is still up).
    let mnt = n1.t.path("mnt/web");
    let st = std::process::Command::new("umount")
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "umount {}", mnt.display());
    let sent = wait_for(Duration::from_secs(20), || {
        hook.count("ops", "problem", "service web") == 1
    });
    assert!(
        sent.is_some(),
        "no problem sent: {}\n{}",
        hook.all(),
        c.log_text()
    );
    let body = hook.got.lock().unwrap()[0].clone();
    assert_eq!(body["status"], "down", "{body}");
    assert_eq!(body["app"], "shop", "{body}");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("berth: service web (shop) is down"),
        "{body}"
    );
    // The first POST got a 500: retried, both attempts recorded.
    let delivered = wait_for(Duration::from_secs(5), || {
        c.json("/api/alerts")["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["alert"] == "ops" && d["state"] == "delivered" && d["attempts"] == 2)
    });
    assert!(delivered.is_some(), "{}", c.get("/api/alerts").text());
    let mailed = wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&mails).is_ok_and(|m| m.contains("\"subject\":\"service web\""))
    });
    assert!(
        mailed.is_some(),
        "the command got nothing: {}",
        c.get("/api/alerts").text()
    );

    // A restart while the problem holds: nothing is sent again.
    c.stop();
    let mut c = Collector::start(dir.path(), &toml);
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(
        hook.count("ops", "problem", "service web"),
        1,
        "{}",
        hook.all()
    );
    let active = c.json("/api/alerts")["active"].clone();
    assert!(
        active
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["alert"] == "ops" && a["sent"] == true),
        "{active}"
    );

    // The recovery, once; the 60 s alert never saw a problem hold long enough; app = crm
    // never matched.
    n1.svc(&["web", "start"]);
    let recovered = wait_for(Duration::from_secs(15), || {
        hook.count("ops", "recovery", "service web") == 1
    });
    assert!(recovered.is_some(), "{}", hook.all());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        hook.count("ops", "recovery", "service web"),
        1,
        "{}",
        hook.all()
    );
    let from = |alert: &str| {
        hook.got
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b["alert"] == alert)
            .count()
    };
    assert_eq!((from("slow"), from("crm")), (0, 0), "{}", hook.all());
    let mailed = wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&mails).is_ok_and(|m| m.contains("\"kind\":\"recovery\""))
    });
    assert!(
        mailed.is_some(),
        "{}",
        std::fs::read_to_string(&mails).unwrap_or_default()
    );

    // A node going stale alerts too.
    n1.kill();
    let stale = wait_for(Duration::from_secs(20), || {
        hook.count("ops", "problem", "node n1") == 1
    });
    assert!(stale.is_some(), "{}", hook.all());
    let csv = csv_maps(&c, "/api/alerts?format=csv");
    assert!(csv.iter().any(|d| d["subject"] == "node n1"), "{csv:?}");
    c.stop();
    n1.svc(&["web", "stop"]);
}

//! Alerts: `[[alerts]]` rules over the fleet. The engine (pure) turns each evaluation of the
//! fleet into problems (a subject bad for `for`) and recoveries (a problem sent, then good
//! again); the recorder stores its state and the deliveries in the database (so a restart
//! repeats nothing), and [`deliver`] sends them: a webhook POST or a command's stdin, retried
//! with backoff.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use berth_model::config::{AlertConfig, AlertSink};
use berth_model::fleet::Fleet;
use berth_model::status::Status;
use serde::Serialize;

/// A subject an alert watches: `service NAME` or `node NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Subject {
    key: String,
    service: Option<String>,
    node: Option<String>,
    app: Option<String>,
    env: Option<String>,
    nodes: Vec<String>,
    /// The status word: a service's fleet-wide word, `stale` / `up` for a node.
    word: String,
    /// Stopped by an operator (down where a stop was asked): not a problem.
    stopped: bool,
}

fn subjects(fleet: &Fleet) -> Vec<Subject> {
    let mut out = Vec::with_capacity(fleet.services.len() + fleet.nodes.len());
    for (name, s) in &fleet.services {
        let word = s.status_word();
        let stopped = word == "down"
            && s.nodes.values().any(|c| c.target.is_some())
            && s.nodes
                .values()
                .all(|c| c.target.is_none_or(|t| t == Status::Down));
        out.push(Subject {
            key: format!("service {name}"),
            service: Some(name.clone()),
            node: None,
            app: s.app.clone(),
            env: s.env.clone(),
            nodes: s.nodes.keys().cloned().collect(),
            word: word.to_string(),
            stopped,
        });
    }
    for (name, n) in &fleet.nodes {
        out.push(Subject {
            key: format!("node {name}"),
            service: None,
            node: Some(name.clone()),
            app: None,
            env: None,
            nodes: vec![name.clone()],
            word: if n.hb == Status::Down { "stale" } else { "up" }.to_string(),
            stopped: false,
        });
    }
    out
}

/// Whether `rule` watches `s`: its filters match (a node subject only for rules without
/// app, env or service filters).
fn watches(rule: &AlertConfig, s: &Subject) -> bool {
    let eq = |want: &Option<String>, have: &Option<String>| {
        want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
    };
    if s.service.is_none() && (rule.app.is_some() || rule.env.is_some() || rule.service.is_some()) {
        return false;
    }
    eq(&rule.app, &s.app)
        && eq(&rule.env, &s.env)
        && (rule.service.is_none() || s.service.is_none() || eq(&rule.service, &s.service))
        && rule.node.as_ref().is_none_or(|n| s.nodes.contains(n))
}

/// Whether `word` is a problem for `rule`.
fn bad(rule: &AlertConfig, s: &Subject) -> bool {
    if s.stopped {
        return false;
    }
    match s.word.as_str() {
        "down" | "stale" | "undef" => true,
        "warn" => !rule.down_only,
        _ => false,
    }
}

/// A problem being watched: since when, and whether it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    /// The rule.
    pub rule: String,
    /// The subject (`service web`, `node n1`).
    pub subject: String,
    /// Bad since (ms since the epoch).
    pub since_ms: i64,
    /// The problem was sent (a recovery is due when it ends).
    pub fired: bool,
    /// The status word.
    pub status: String,
}

/// A notice to send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    /// The rule's name.
    pub alert: String,
    /// `problem` or `recovery`.
    pub kind: &'static str,
    /// `service web` / `node n1`.
    pub subject: String,
    /// The service, for a service subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The node, for a node subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The service's app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The service's env.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The status word now.
    pub status: String,
    /// Bad since.
    pub since_ms: i64,
    /// When the notice was made.
    pub at_ms: i64,
    /// One line for people (Slack's `text`).
    pub text: String,
}

/// What one evaluation changed: notices to send, active states to write or delete.
#[derive(Debug, Default)]
pub struct Changes {
    /// New notices.
    pub notices: Vec<Notice>,
    /// Active states to upsert.
    pub upsert: Vec<Active>,
    /// Active states to delete: `(rule, subject)`.
    pub delete: Vec<(String, String)>,
}

/// The rules and what each watches now.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<AlertConfig>,
    active: BTreeMap<(String, String), Active>,
}

impl Engine {
    /// The rules, with the active states stored before a restart.
    pub fn new(rules: Vec<AlertConfig>, stored: Vec<Active>) -> Engine {
        let names: BTreeSet<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        let active = stored
            .into_iter()
            .filter(|a| names.contains(a.rule.as_str()))
            .map(|a| ((a.rule.clone(), a.subject.clone()), a))
            .collect();
        Engine { rules, active }
    }

    /// Whether there is nothing to watch.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a problem waits for its `for` (the fleet must be evaluated again soon).
    pub fn waiting(&self) -> bool {
        self.active.values().any(|a| !a.fired)
    }

    /// The rule named `name`.
    pub fn rule(&self, name: &str) -> Option<&AlertConfig> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// Evaluate the fleet at `now`.
    pub fn evaluate(&mut self, fleet: &Fleet, now: i64) -> Changes {
        let mut ch = Changes::default();
        let subjects = subjects(fleet);
        let mut seen = BTreeSet::new();
        for rule in &self.rules {
            let hold = i64::try_from(rule.hold.as_millis()).unwrap_or(i64::MAX);
            for s in subjects.iter().filter(|s| watches(rule, s)) {
                let key = (rule.name.clone(), s.key.clone());
                if !bad(rule, s) {
                    continue;
                }
                seen.insert(key.clone());
                let a = self.active.entry(key).or_insert_with(|| {
                    let a = Active {
                        rule: rule.name.clone(),
                        subject: s.key.clone(),
                        since_ms: now,
                        fired: false,
                        status: s.word.clone(),
                    };
                    ch.upsert.push(a.clone());
                    a
                });
                if a.status != s.word && a.fired {
                    a.status = s.word.clone();
                    ch.upsert.push(a.clone());
                }
                if !a.fired && now - a.since_ms >= hold {
                    a.fired = true;
                    a.status = s.word.clone();
                    ch.upsert.push(a.clone());
                    ch.notices.push(notice(rule, s, "problem", a.since_ms, now));
                }
            }
        }
        // Good again (or gone): a recovery for what was sent; nothing for what was not.
        let ended: Vec<(String, String)> = self
            .active
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for key in ended {
            let Some(a) = self.active.remove(&key) else {
                continue;
            };
            ch.delete.push(key.clone());
            if !a.fired {
                continue;
            }
            let Some(rule) = self.rules.iter().find(|r| r.name == a.rule) else {
                continue;
            };
            let s = subjects
                .iter()
                .find(|s| s.key == a.subject)
                .cloned()
                .unwrap_or_else(|| Subject {
                    key: a.subject.clone(),
                    service: a.subject.strip_prefix("service ").map(str::to_string),
                    node: a.subject.strip_prefix("node ").map(str::to_string),
                    app: None,
                    env: None,
                    nodes: vec![],
                    word: "gone".into(),
                    stopped: false,
                });
            ch.notices
                .push(notice(rule, &s, "recovery", a.since_ms, now));
        }
        ch
    }
}

fn notice(rule: &AlertConfig, s: &Subject, kind: &'static str, since: i64, now: i64) -> Notice {
    let what = match (&s.app, &s.env) {
        (Some(a), Some(e)) => format!(" ({a}/{e})"),
        (Some(a), None) => format!(" ({a})"),
        (None, Some(e)) => format!(" ({e})"),
        (None, None) => String::new(),
    };
    let text = match kind {
        "problem" => format!(
            "berth: {}{what} is {} (for {}s)",
            s.key,
            s.word,
            (now - since) / 1000
        ),
        _ => format!(
            "berth: {}{what} recovered: {} after {}s",
            s.key,
            s.word,
            (now - since) / 1000
        ),
    };
    Notice {
        alert: rule.name.clone(),
        kind,
        subject: s.key.clone(),
        service: s.service.clone(),
        node: s.node.clone(),
        app: s.app.clone(),
        env: s.env.clone(),
        status: s.word.clone(),
        since_ms: since,
        at_ms: now,
        text,
    }
}

/// The wait before attempt `n` (1 s, 2 s, 4 s... up to 1 min).
pub fn retry_wait(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.min(6)).min(Duration::from_secs(60))
}

/// Send one delivery once: POST the JSON to the webhook (a 2xx answer is a success) or run
/// the command with the JSON on stdin (exit 0 is a success). The error says why not.
pub async fn deliver(sink: &AlertSink, body: &[u8], timeout: Duration) -> Result<(), String> {
    match sink {
        AlertSink::Webhook { url, ca } => {
            crate::client::post_json(url, ca.as_deref(), body, timeout).await
        }
        AlertSink::Command(argv) => {
            let argv = argv.clone();
            let body = body.to_vec();
            tokio::task::spawn_blocking(move || run_command(&argv, &body, timeout))
                .await
                .map_err(|e| format!("command task: {e}"))?
        }
    }
}

fn run_command(argv: &[String], body: &[u8], timeout: Duration) -> Result<(), String> {
    use std::io::{Read as _, Write as _};
    use std::process::{Command, Stdio};
    let (prog, args) = argv.split_first().ok_or("empty command")?;
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(body);
    }
    let start = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return if st.success() {
                    Ok(())
                } else {
                    Err(format!("{prog} exited with {st}: {}", err.trim()))
                };
            }
            Ok(None) if start.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{prog} did not end within {}s", timeout.as_secs()));
            }
            Err(e) => return Err(format!("waiting for {prog}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::fleet::{FleetCell, FleetNode, FleetService};

    fn rule(hold_ms: u64) -> AlertConfig {
        AlertConfig {
            name: "ops".into(),
            sink: AlertSink::Command(vec!["true".into()]),
            app: None,
            env: None,
            service: None,
            node: None,
            down_only: false,
            hold: Duration::from_millis(hold_ms),
            retries: 5,
        }
    }

    fn fleet(web: Status, n1: Status) -> Fleet {
        let mut f = Fleet::default();
        f.nodes.insert("n1".into(), FleetNode::new(n1));
        let mut s = FleetService {
            app: Some("shop".into()),
            ..FleetService::default()
        };
        let mut c = FleetCell::new(web, web);
        c.target = Some(Status::Up);
        s.nodes.insert("n1".into(), c);
        f.services.insert("web".into(), s);
        f
    }

    /// `for` debounces: a blip shorter than it sends nothing; a problem that holds is sent
    /// once, its end is a recovery.
    #[test]
    fn debounce_problem_recovery() {
        let mut e = Engine::new(vec![rule(1000)], vec![]);
        let ch = e.evaluate(&fleet(Status::Down, Status::Up), 0);
        assert!(ch.notices.is_empty());
        assert_eq!(ch.upsert.len(), 1);
        assert!(e.waiting());
        let ch = e.evaluate(&fleet(Status::Up, Status::Up), 500);
        assert!(ch.notices.is_empty(), "a blip: {ch:?}");
        assert_eq!(ch.delete.len(), 1);
        e.evaluate(&fleet(Status::Down, Status::Up), 1000);
        assert!(
            e.evaluate(&fleet(Status::Down, Status::Up), 1500)
                .notices
                .is_empty()
        );
        let ch = e.evaluate(&fleet(Status::Down, Status::Up), 2000);
        assert_eq!(ch.notices.len(), 1);
        assert_eq!(ch.notices[0].kind, "problem");
        assert_eq!(
            ch.notices[0].text,
            "berth: service web (shop) is down (for 1s)"
        );
        assert!(
            e.evaluate(&fleet(Status::Down, Status::Up), 9000)
                .notices
                .is_empty()
        );
        let ch = e.evaluate(&fleet(Status::Up, Status::Up), 9500);
        assert_eq!(ch.notices.len(), 1);
        assert_eq!(ch.notices[0].kind, "recovery");
        assert_eq!(ch.notices[0].since_ms, 1000);
    }

    /// A restart restores what was sent: a problem still there is not sent again.
    #[test]
    fn restored_state_repeats_nothing() {
        let stored = vec![Active {
            rule: "ops".into(),
            subject: "service web".into(),
            since_ms: 0,
            fired: true,
            status: "down".into(),
        }];
        let mut e = Engine::new(vec![rule(0)], stored);
        assert!(
            e.evaluate(&fleet(Status::Down, Status::Up), 5)
                .notices
                .is_empty()
        );
        assert_eq!(
            e.evaluate(&fleet(Status::Up, Status::Up), 6).notices[0].kind,
            "recovery"
        );
    }

    /// A node going stale alerts; filters; an operator's stop is no problem; min = down.
    #[test]
    fn nodes_filters_stops() {
        let mut e = Engine::new(vec![rule(0)], vec![]);
        let mut f = fleet(Status::Up, Status::Down);
        let ch = e.evaluate(&f, 0);
        assert_eq!(ch.notices.len(), 1);
        assert_eq!(ch.notices[0].subject, "node n1");
        assert_eq!(ch.notices[0].status, "stale");
        // The operator stops web: down with target down is no problem.
        let c = f
            .services
            .get_mut("web")
            .unwrap()
            .nodes
            .get_mut("n1")
            .unwrap();
        c.avail = Status::Down;
        c.overall = Status::Down;
        c.target = Some(Status::Down);
        f.nodes.insert("n1".into(), FleetNode::new(Status::Up));
        let ch = e.evaluate(&f, 1);
        assert_eq!(ch.notices.len(), 1, "{ch:?}");
        assert_eq!(ch.notices[0].kind, "recovery");
        let mut other = rule(0);
        other.app = Some("crm".into());
        let mut e = Engine::new(vec![other], vec![]);
        assert!(
            e.evaluate(&fleet(Status::Down, Status::Down), 0)
                .notices
                .is_empty()
        );
        let mut down = rule(0);
        down.down_only = true;
        let mut e = Engine::new(vec![down], vec![]);
        assert!(
            e.evaluate(&fleet(Status::Warn, Status::Up), 0)
                .notices
                .is_empty()
        );
        assert_eq!(
            e.evaluate(&fleet(Status::Down, Status::Up), 1)
                .notices
                .len(),
            1
        );
    }

    #[test]
    fn retry_waits_double_up_to_a_minute() {
        let w: Vec<u64> = (0..8).map(|n| retry_wait(n).as_secs()).collect();
        assert_eq!(w, [1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn commands_get_the_json_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got");
        let argv = vec![
            "sh".to_string(),
            "-c".to_string(),
            format!("cat > {}", out.display()),
        ];
        run_command(&argv, b"{\"a\":1}", Duration::from_secs(5)).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"a\":1}");
        let e = run_command(
            &["sh".into(), "-c".into(), "echo nope >&2; exit 3".into()],
            b"",
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(e.contains("nope") && e.contains("3"), "{e}");
    }
}

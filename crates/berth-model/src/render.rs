//! The `print status` text layout of OpenSVC, column for column:
//! ```text
//! web
//! overall                   warn
//! |- avail                  warn
//! |  |- container#1    .... down     busybox:latest
//! |  |  |                            # docker daemon is not running
//! |  '- ip#1           .... down     192.0.2.10@eth0
//! |- sync                   n/a
//! '- hb                     n/a
//! ```

use std::fmt::Write as _;

use crate::status::{Level, NodeStatus, ResourceStatus, ServiceStatus, Status};

/// Where the status word starts.
const STATUS_COL: usize = 26;
/// Where the label (and `# comment` lines) start.
const LABEL_COL: usize = 35;

fn paint(s: &str, status: Status, color: bool) -> String {
    if !color {
        return s.to_string();
    }
    let code = match status {
        Status::Up | Status::StdbyUp => "32",
        Status::Down | Status::StdbyDown => "31",
        Status::Warn => "33",
        Status::NotApplicable | Status::Undef => return s.to_string(),
    };
    format!("\x1b[{code}m{s}\x1b[0m")
}

fn pad(out: &mut String, col: usize) {
    let len = out.rsplit('\n').next().map_or(0, |l| l.chars().count());
    for _ in len..col {
        out.push(' ');
    }
}

fn status_line(out: &mut String, head: &str, status: Status, color: bool) {
    out.push_str(head);
    pad(out, STATUS_COL);
    out.push_str(&paint(status.as_str(), status, color));
    out.push('\n');
}

/// Render one service's tree. `color` adds ANSI colours to the status words.
pub fn render_service(s: &ServiceStatus, color: bool) -> String {
    let mut out = String::new();
    out.push_str(&s.name);
    if s.frozen {
        out.push_str("  (frozen)");
    }
    out.push('\n');
    status_line(&mut out, "overall", s.overall, color);
    status_line(&mut out, "|- avail", s.avail, color);
    if let Some(err) = &s.error {
        let _ = writeln!(out, "|  '- # {err}");
    }
    let (rows, syncs): (Vec<&ResourceStatus>, Vec<&ResourceStatus>) = s
        .resources
        .iter()
        .partition(|r| r.rid.kind.runs_with_service());
    resource_rows(&mut out, &rows, color);
    status_line(&mut out, "|- sync", s.sync, color);
    if let Some(c) = &s.config_sync {
        let last = syncs.is_empty();
        let branch = if last { "'- " } else { "|- " };
        let _ = write!(out, "|  {branch}{:<15}.... ", "sync#i0");
        out.push_str(&paint(
            &format!("{:<8}", c.status.as_str()),
            c.status,
            color,
        ));
        let _ = writeln!(out, " service file rev {} ({})", c.revision, c.checksum);
        for line in &c.behind {
            out.push_str(if last { "|     |" } else { "|  |  |" });
            pad(&mut out, LABEL_COL);
            let _ = writeln!(out, "# warn: {line}");
        }
    }
    resource_rows(&mut out, &syncs, color);
    status_line(&mut out, "'- hb", s.hb, color);
    out
}

/// The rows under `avail` or `sync`.
fn resource_rows(out: &mut String, rows: &[&ResourceStatus], color: bool) {
    let n = rows.len();
    for (i, r) in rows.iter().enumerate() {
        let last = i + 1 == n;
        let branch = if last { "'- " } else { "|- " };
        let _ = write!(
            out,
            "|  {branch}{:<15}{} ",
            r.rid.to_string(),
            r.flags.chars()
        );
        let word = format!("{:<8}", r.status.as_str());
        out.push_str(&paint(&word, r.status, color));
        if !r.label.is_empty() {
            out.push(' ');
            out.push_str(&r.label);
        }
        // A line must not end in blanks (a label may be empty).
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
        for entry in &r.log {
            out.push_str(if last { "|     |" } else { "|  |  |" });
            pad(out, LABEL_COL);
            let prefix = match entry.level {
                Level::Info => "",
                Level::Warn => "warn: ",
                Level::Error => "error: ",
            };
            let _ = writeln!(out, "# {prefix}{}", entry.message);
        }
    }
}

/// Render every service of a node, one tree after the other.
pub fn render_node(n: &NodeStatus, color: bool) -> String {
    n.services
        .iter()
        .map(|s| render_service(s, color))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{Flags, LogEntry, ResourceStatus};

    fn res(rid: &str, status: Status, label: &str, log: &[&str]) -> ResourceStatus {
        ResourceStatus {
            network: None,
            rid: rid.parse().unwrap(),
            status,
            label: label.into(),
            flags: Flags::default(),
            log: log.iter().map(|m| LogEntry::info(*m)).collect(),
        }
    }

    /// The seed's service, with `container`, `fs#1`, `fs#2`, `ip` and `vg` statuses given.
    fn seed(c: (Status, &str, &[&str]), vg: Status, fs: Status, ip: Status) -> ServiceStatus {
        ServiceStatus::from_resources(
            "docker.opensvc.com".into(),
            vec![
                res("container#1", c.0, c.1, c.2),
                res("vg#1", vg, "vgdocker", &[]),
                res(
                    "fs#1",
                    fs,
                    "/dev/mapper/vgdocker-lvdockerroot@/opt/docker.opensvc.com",
                    &[],
                ),
                res(
                    "fs#2",
                    fs,
                    "/dev/mapper/vgdocker-lvdockerdata@/opt/docker.opensvc.com/appdata",
                    &[],
                ),
                res("ip#1", ip, "docker.opensvc.com@eth0", &[]),
            ],
            false,
        )
    }

    /// Lines copied from the core seed (leading 8 spaces of the rst block removed).
    const SEED_DOWN: &str = "\
docker.opensvc.com
overall                   down
|- avail                  down
|  |- container#1    .... down     f66342b343ae
|  |  |                            # docker daemon is not running
|  |- vg#1           .... down     vgdocker
|  |- fs#1           .... down     /dev/mapper/vgdocker-lvdockerroot@/opt/docker.opensvc.com
|  |- fs#2           .... down     /dev/mapper/vgdocker-lvdockerdata@/opt/docker.opensvc.com/appdata
|  '- ip#1           .... down     docker.opensvc.com@eth0
|- sync                   n/a
'- hb                     n/a
";

    const SEED_PARTIAL: &str = "\
docker.opensvc.com
overall                   warn
|- avail                  warn
|  |- container#1    .... down     busybox:latest
|  |  |                            # can not find container id
|  |- vg#1           .... up       vgdocker
|  |- fs#1           .... up       /dev/mapper/vgdocker-lvdockerroot@/opt/docker.opensvc.com
|  |- fs#2           .... up       /dev/mapper/vgdocker-lvdockerdata@/opt/docker.opensvc.com/appdata
|  '- ip#1           .... up       docker.opensvc.com@eth0
|- sync                   n/a
'- hb                     n/a
";

    const SEED_UP: &str = "\
docker.opensvc.com
overall                   up
|- avail                  up
|  |- container#1    .... up       20f6aabc5ce1@busybox:latest
|  |- vg#1           .... up       vgdocker
|  |- fs#1           .... up       /dev/mapper/vgdocker-lvdockerroot@/opt/docker.opensvc.com
|  |- fs#2           .... up       /dev/mapper/vgdocker-lvdockerdata@/opt/docker.opensvc.com/appdata
|  '- ip#1           .... up       docker.opensvc.com@eth0
|- sync                   n/a
'- hb                     n/a
";

    #[test]
    fn seed_down_tree() {
        let s = seed(
            (
                Status::Down,
                "f66342b343ae",
                &["docker daemon is not running"],
            ),
            Status::Down,
            Status::Down,
            Status::Down,
        );
        assert_eq!(render_service(&s, false), SEED_DOWN);
    }

    #[test]
    fn seed_partially_up_tree() {
        let s = seed(
            (
                Status::Down,
                "busybox:latest",
                &["can not find container id"],
            ),
            Status::Up,
            Status::Up,
            Status::Up,
        );
        assert_eq!(render_service(&s, false), SEED_PARTIAL);
    }

    #[test]
    fn seed_up_tree() {
        let s = seed(
            (Status::Up, "20f6aabc5ce1@busybox:latest", &[]),
            Status::Up,
            Status::Up,
            Status::Up,
        );
        assert_eq!(render_service(&s, false), SEED_UP);
    }

    /// The seed's `print status` trees, copied into the repository (the file says where from).
    const SEED_TREES: &str = include_str!("render_fixtures/seed001_print_status.txt");

    /// The trees of the fixture, each as printed.
    fn fixture_trees() -> Vec<String> {
        let mut trees: Vec<String> = Vec::new();
        let mut current: Option<String> = None;
        for line in SEED_TREES.lines() {
            if line.starts_with("# tree") {
                trees.extend(current.take());
                current = Some(String::new());
            } else if let Some(t) = current.as_mut()
                && !line.is_empty()
            {
                t.push_str(line);
                t.push('\n');
            }
        }
        trees.extend(current);
        trees
    }

    /// Every tree the seed prints, rebuilt from its resource lines (status, label, comment) and
    /// rendered: the same text, `overall` and `avail` included (they come from the merge).
    #[test]
    fn every_tree_of_the_seed_is_rendered_as_printed() {
        let trees = fixture_trees();
        assert_eq!(trees.len(), 8, "the seed prints 8 trees");
        for (n, tree) in trees.iter().enumerate() {
            let status_of = |rid: &str| -> (Status, String, Vec<String>) {
                let lines: Vec<&str> = tree.lines().collect();
                let i = lines
                    .iter()
                    .position(|l| l.contains(&format!("- {rid} ")))
                    .unwrap_or_else(|| panic!("tree {n}: no {rid}"));
                let words: Vec<&str> = lines[i].split_whitespace().collect();
                let status = match words[4] {
                    "up" => Status::Up,
                    "down" => Status::Down,
                    other => panic!("tree {n}: status {other}"),
                };
                let comment = lines
                    .get(i + 1)
                    .and_then(|l| l.split_once("# "))
                    .map(|(_, c)| c.to_string());
                (status, words[5].to_string(), comment.into_iter().collect())
            };
            let (cs, clabel, clog) = status_of("container#1");
            let clog: Vec<&str> = clog.iter().map(String::as_str).collect();
            let (fs1, _, _) = status_of("fs#1");
            let (fs2, _, _) = status_of("fs#2");
            assert_eq!(fs1, fs2, "tree {n}: the seed moves both fs together");
            let s = seed(
                (cs, &clabel, &clog),
                status_of("vg#1").0,
                fs1,
                status_of("ip#1").0,
            );
            assert_eq!(&render_service(&s, false), tree, "tree {n}");
        }
        // The three trees the tests above build by hand are the seed's.
        for tree in [SEED_DOWN, SEED_PARTIAL, SEED_UP] {
            assert!(trees.iter().any(|t| t == tree), "not in the seed:\n{tree}");
        }
    }

    #[test]
    fn last_resource_comments_and_colour() {
        let s = ServiceStatus::from_resources(
            "web".into(),
            vec![res(
                "container#1",
                Status::Down,
                "busybox:latest",
                &["docker daemon is not running"],
            )],
            false,
        );
        let text = render_service(&s, false);
        assert!(text.contains("|  '- container#1    .... down     busybox:latest\n|     |                            # docker daemon is not running\n"), "{text}");
        let coloured = render_service(&s, true);
        assert!(coloured.contains("\x1b[31mdown    \x1b[0m"), "{coloured}");
    }

    /// The config row `sync#i0` under `sync`, its nodes behind as comment lines.
    #[test]
    fn the_config_row_shows_under_sync() {
        let mut st = ServiceStatus::from_resources("web".into(), Vec::new(), false);
        st.config_sync = Some(crate::status::ConfigSync {
            status: Status::Warn,
            revision: 42,
            checksum: "4f0c".into(),
            behind: vec!["n2: behind or in conflict: 9a1b (cluster: 4f0c rev 42)".into()],
        });
        st.set_cluster(
            Status::Up,
            Status::Up,
            crate::status::ServiceCluster::default(),
        );
        assert_eq!(st.sync, Status::Warn);
        let text = render_service(&st, false);
        assert!(
            text.ends_with(
                "|- sync                   warn\n\
                 |  '- sync#i0        .... warn     service file rev 42 (4f0c)\n\
                 |     |                            # warn: n2: behind or in conflict: 9a1b (cluster: 4f0c rev 42)\n\
                 '- hb                     up\n"
            ),
            "{text}"
        );
    }
}

//! Man pages: one per program from its clap `Command` (clap_mangen), and `berth.conf(5)`.

use clap_mangen::Man;
use roff::{Inline, Roff, bold, italic, roman};

use crate::keywords::{REFERENCE, describe, reference_rows, sections};

/// The `.TH` source and manual fields.
fn source() -> String {
    format!("berth {}", env!("CARGO_PKG_VERSION"))
}
const MANUAL: &str = "berth manual";

/// The FILES and SEE ALSO sections every berth page ends with.
fn common_tail(roff: &mut Roff, name: &str) {
    roff.control("SH", ["FILES"]);
    for (path, what) in [
        (
            "/etc/berth/node.toml",
            "the node's settings (node name, svcd's listen address, token file, monitor interval)",
        ),
        (
            "/etc/berth/services/",
            "one file per service: SVC.toml (berth TOML), SVC.env or SVC.conf (OpenSVC INI)",
        ),
        (
            "/var/lib/berth/",
            "locks, pidfiles, last action results, private docker sockets, each service's action log (SVC/actions.log)",
        ),
        ("/run/berth/", "dockerd exec roots"),
        (
            "/usr/share/doc/berth/",
            "the full documentation (configuration.md, cli.md, operations.md, http-api.md)",
        ),
    ] {
        roff.control("TP", [])
            .text([bold(path)])
            .text([roman(what)]);
    }
    roff.control("SH", ["SEE ALSO"]);
    let others: Vec<&str> = ["svc(1)", "svcd(1)", "berth.conf(5)"]
        .into_iter()
        .filter(|p| !p.starts_with(&format!("{name}(")))
        .collect();
    roff.text([roman(others.join(", "))]);
}

/// The page of a program, from its clap definition: name, synopsis, description, options, the
/// after-help text (svc's actions), version, files.
/// `more`: a second set of options under its own heading (svc's action options).
/// `sections`: the program's own sections, after the options (svcd's ENVIRONMENT...).
pub fn program_page(
    cmd: clap::Command,
    more: Option<(&str, clap::Command)>,
    sections: &[crate::ManSection],
) -> std::io::Result<Vec<u8>> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let name = cmd.get_name().to_string();
    let man = Man::new(cmd.clone()).source(source()).manual(MANUAL);
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    if let Some((heading, more)) = more {
        let mut more = more.disable_help_flag(true);
        more.build();
        let mut section = Vec::new();
        Man::new(more).render_options_section(&mut section)?;
        let section = String::from_utf8_lossy(&section).replacen(
            ".SH OPTIONS",
            &format!(".SH \"{}\"", heading.to_uppercase()),
            1,
        );
        out.extend_from_slice(section.as_bytes());
    }
    let mut roff = Roff::new();
    if let Some(after) = cmd.get_after_long_help().or_else(|| cmd.get_after_help()) {
        roff.control("SH", ["USAGE"]);
        // Keep the help text's layout (its columns line up).
        roff.control("nf", []);
        for line in after.to_string().lines() {
            roff.text([roman(line)]);
        }
        roff.control("fi", []);
    }
    for section in sections {
        roff.control("SH", [section.heading]);
        if !section.text.is_empty() {
            roff.text([roman(section.text)]);
        }
        for (term, definition) in section.items {
            roff.control("TP", [])
                .text([bold(*term)])
                .text([roman(*definition)]);
        }
    }
    roff.control("SH", ["VERSION"]);
    roff.text([roman(crate::VERSION)]);
    common_tail(&mut roff, &name);
    roff.to_writer(&mut out)?;
    Ok(one_preamble(&out))
}

/// Each clap_mangen section comes with roff's preamble (the `Aq` string); keep the first.
fn one_preamble(page: &[u8]) -> Vec<u8> {
    const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    let text = String::from_utf8_lossy(page);
    let mut parts = text.split(PREAMBLE);
    let mut out = parts.next().unwrap_or_default().to_string();
    out.push_str(PREAMBLE);
    for p in parts {
        out.push_str(p);
    }
    out.into_bytes()
}

/// Markdown inline text (code spans, bold, links) as roff inlines.
fn inlines(md: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    for (i, part) in md.split('`').enumerate() {
        if i % 2 == 1 {
            out.push(bold(part));
            continue;
        }
        for (j, p) in part.split("**").enumerate() {
            let text = strip_links(p);
            if text.is_empty() {
                continue;
            }
            out.push(if j % 2 == 1 {
                italic(text)
            } else {
                roman(text)
            });
        }
    }
    out
}

/// `[text](target)` -> `text`.
fn strip_links(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|c| open + c) else {
            break;
        };
        let Some(end) = rest[close..].find(')').map(|e| close + e) else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&rest[open + 1..close]);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `berth.conf(5)`: every service file keyword, section by section, in the model's order, with the
/// type, default and meaning the configuration reference gives.
pub fn keywords_page() -> String {
    let rows = reference_rows(REFERENCE);
    let mut roff = Roff::new();
    roff.control("TH", ["BERTH.CONF", "5", "", &source(), MANUAL]);
    roff.control("SH", ["NAME"]);
    roff.text([roman("berth.conf - berth service file keywords")]);
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([
        bold("/etc/berth/services/"),
        italic("SVC"),
        bold(".toml"),
        roman(" (berth TOML), or "),
        italic("SVC"),
        bold(".env"),
        roman(" / "),
        italic("SVC"),
        bold(".conf"),
        roman(" (OpenSVC INI, read as it is)"),
    ]);
    roff.control("SH", ["DESCRIPTION"]);
    roff.text([roman(
        "A service is one file named after it. TOML writes sections as [service] and [fs.1], INI as \
         [DEFAULT] and [fs#1]; a keyword means the same in both. An unknown keyword is an error in \
         TOML and a warning in INI; every error names the file, line, section and keyword. \
         Durations are \"500ms\", \"5s\", \"2m\" or a number of seconds. \
         \"svc SVC print config\" shows the file with berth's keyword names; \"svc SVC print \
         config --eval\" shows the service as this node evaluates it, every default spelled out. \
         OpenSVC v1.8, v2 and v3 files are read as OpenSVC reads them: aliases, [disk#N] type = vg, \
         key@node scoping and {...} references; what berth cannot do is refused with the reason.",
    )]);
    for section in sections() {
        roff.control("SH", [section.title.as_str()]);
        for keyword in section.keywords {
            roff.control("TP", []);
            roff.text([bold(*keyword)]);
            let Some(row) = describe(&rows, section.id, keyword) else {
                roff.text([roman("(not described in the configuration reference)")]);
                continue;
            };
            let mut text = Vec::new();
            let mut meaning = String::new();
            for (header, cell) in &row.cells {
                if cell.is_empty() {
                    continue;
                }
                if header == "meaning" {
                    meaning = cell.clone();
                } else {
                    text.push(roman(format!("{header}: ")));
                    text.extend(inlines(cell));
                    text.push(roman(". "));
                }
            }
            if !meaning.is_empty() {
                text.push(line_end());
                text.extend(inlines(&meaning));
            }
            roff.text(text);
        }
    }
    roff.control("SH", ["EXAMPLE"]);
    roff.control("nf", []);
    for line in EXAMPLE.lines() {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
    common_tail(&mut roff, "berth.conf");
    roff.to_roff()
}

fn line_end() -> Inline {
    roff::line_break()
}

const EXAMPLE: &str = r#"[service]
nodes = ["node1", "node2"]
autostart_node = "node1"

[ip.1]
ipdev = "eth0"
ipname = "192.0.2.10"
netmask = 24

[fs.1]
dev = "/dev/vgweb/root"
mnt = "/srv/web"
type = "ext4""#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_page_lists_every_keyword_with_its_meaning() {
        let page = keywords_page();
        assert!(page.starts_with(".TH BERTH.CONF 5"), "{}", &page[..80]);
        for s in sections() {
            for k in s.keywords {
                let k = k.replace('-', "\\-");
                assert!(page.contains(&format!("\\fB{k}\\fR")), "{k} missing");
            }
        }
        assert!(
            !page.contains("not described"),
            "a keyword lacks its description"
        );
        // A meaning from the reference, markdown turned into roff.
        assert!(page.contains("the volume group"), "vgname's meaning");
        assert!(!page.contains("**"), "bold markers left in");
    }

    #[test]
    fn links_are_reduced_to_their_text() {
        assert_eq!(
            strip_links("see [the docs](x.md#a) and more"),
            "see the docs and more"
        );
        assert_eq!(strip_links("[a] b"), "[a] b");
    }

    #[test]
    fn program_page_renders_options_and_after_help() {
        let cmd = clap::Command::new("svcx")
            .about("does x")
            .version(crate::VERSION)
            .after_help("Actions:\n  start   starts")
            .arg(
                clap::Arg::new("config-dir")
                    .long("config-dir")
                    .help("where"),
            );
        let more = clap::Command::new("x").arg(clap::Arg::new("rid").long("rid").help("only"));
        let sections = [crate::ManSection {
            heading: "EXIT STATUS",
            text: "as follows",
            items: &[("0", "done"), ("2", "bad config")],
        }];
        let page = String::from_utf8(
            program_page(cmd, Some(("action options", more)), &sections).unwrap(),
        )
        .unwrap();
        assert!(
            page.contains(
                ".SH \"EXIT STATUS\"\nas follows\n.TP\n\\fB0\\fR\ndone\n.TP\n\\fB2\\fR\nbad config"
            ),
            "{page}"
        );
        let version = page.find(".SH VERSION").unwrap();
        assert!(page.find("EXIT STATUS").unwrap() < version, "{page}");
        assert!(page.contains(".SH \"ACTION OPTIONS\""), "{page}");
        assert!(page.contains("\n.TH svcx 1"), "{page}");
        assert_eq!(page.matches(".ds Aq").count(), 2, "{page}");
        assert!(page.contains("config\\-dir"), "{page}");
        assert!(page.contains(".SH USAGE"), "{page}");
        assert!(page.contains(crate::GIT_COMMIT), "{page}");
        assert!(page.contains("berth.conf(5)"), "{page}");
    }
}

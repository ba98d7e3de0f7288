//! `svc --completions SHELL` run by the real shells: the script clap_complete writes, with the
//! hook that asks `svc --complete-words` for service names (from the config dir), actions, action
//! options, rids and tags. bash and fish are driven through their completion entry points; zsh's
//! hook function is called with the variables compsys gives it. Also `--version` and the man
//! pages. No root needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use berth_testkit::describe;

const SVC: &str = env!("CARGO_BIN_EXE_svc");

fn config_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("services")).unwrap();
    std::fs::write(
        d.path().join("services/web.toml"),
        "[fs.1]\ndev = \"/x.img\"\nmnt = \"/srv/x\"\ntype = \"ext4\"\n\n\
         [ip.1]\nipdev = \"eth0\"\nipname = \"192.0.2.10\"\nnetmask = 24\n",
    )
    .unwrap();
    std::fs::write(d.path().join("services/db.conf"), "[DEFAULT]\n").unwrap();
    d
}

fn script(shell: &str, dir: &Path) -> std::path::PathBuf {
    let out = Command::new(SVC)
        .args(["--completions", shell])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let path = dir.join(format!("svc.{shell}"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

fn shell(program: &str, args: &[&str], config: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .env("BERTH_CONFIG_DIR", config)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (scripts/deps.sh installs it): {e}"));
    assert!(out.status.success(), "{program}: {}", describe(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// bash: `COMP_WORDS` as bash sets them, then the function `complete -p svc` names.
fn bash(line: &str) -> Vec<String> {
    let d = config_dir();
    let file = script("bash", d.path());
    let prog = format!(
        r#"source {file}
f=$(complete -p svc | sed -E 's/.*-F ([^ ]+).*/\1/')
read -ra COMP_WORDS <<< "$LINE"
[[ $LINE == *' ' ]] && COMP_WORDS+=("")
COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
COMPREPLY=()
"$f" "${{COMP_WORDS[0]}}" "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        file = file.display()
    );
    let out = Command::new("bash")
        .args(["-c", &prog])
        .env("BERTH_CONFIG_DIR", d.path())
        .env("LINE", format!("{SVC} {line}"))
        .output()
        .expect("run bash");
    assert!(out.status.success(), "bash: {}", describe(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn bash_completes_services_actions_options_and_rids() {
    assert_eq!(
        bash(""),
        [
            "print",
            "mon",
            "validate",
            "json_status",
            "node",
            "db",
            "web"
        ]
    );
    assert_eq!(bash("w"), ["web"]);
    assert_eq!(
        bash("web sta"),
        [
            "status",
            "start",
            "startip",
            "startvg",
            "startfs",
            "startcontainer"
        ]
    );
    assert_eq!(bash("web print "), ["status", "config", "resinfo", "devs"]);
    assert_eq!(bash("web edit "), ["config"]);
    assert_eq!(bash("web set --k"), ["--kw"]);
    // Only the options the action takes (the action table): startfs takes no --refresh.
    assert_eq!(bash("web startfs --r"), ["--rid"]);
    assert_eq!(bash("-s "), ["db", "web"]);
    assert_eq!(bash("-s web "), bash("web "));
    assert_eq!(bash("web startfs --ri"), ["--rid"]);
    assert_eq!(bash("web start --rid "), ["fs#1", "ip#1"]);
    // Global options and their values: clap_complete's part of the script.
    assert_eq!(bash("--form"), ["--format"]);
    assert_eq!(bash("--format "), ["text", "json"]);
    assert_eq!(bash("--completions "), ["bash", "zsh", "fish"]);
}

#[test]
fn fish_completes_services_actions_and_options() {
    let d = config_dir();
    let file = script("fish", d.path());
    // fish sorts the candidates.
    let complete = |line: &str| -> Vec<String> {
        let prog = format!("source {}; complete -C '{SVC} {line}'", file.display());
        shell("fish", &["--no-config", "-c", &prog], d.path())
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        complete(""),
        [
            "db",
            "json_status",
            "mon",
            "node",
            "print",
            "validate",
            "web"
        ]
    );
    assert_eq!(complete("web stopf"), ["stopfs"]);
    assert_eq!(complete("-s "), ["db", "web"]);
    assert_eq!(complete("web start --rid "), ["fs#1", "ip#1"]);
    assert!(complete("--form").contains(&"--format".to_string()));
}

#[test]
fn zsh_script_parses_and_its_hook_offers_services_and_actions() {
    let d = config_dir();
    let file = script("zsh", d.path());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("#compdef svc"), "{text}");
    assert!(text.contains(":_svc_berth_words' \\"), "{text}");
    // Autoloaded, the file's last lines call `_svc`: the hook must be defined before them.
    let hook = text.find("_svc_berth_words() {").expect("the hook");
    let dispatch = text
        .find("if [ \"$funcstack[1]\" = \"_svc\" ]")
        .expect("the dispatch");
    assert!(hook < dispatch, "{text}");
    shell("zsh", &["-n", &file.to_string_lossy()], d.path());
    // The hook, as compsys calls it for the words after the options: `words` holds them,
    // `opt_args` the options given; compadd is recorded.
    let bin = Path::new(SVC).parent().unwrap();
    let call_fn = |function: &str, words: &str, current: usize| -> Vec<String> {
        let prog = format!(
            r#"compdef() {{ : }}
source {file}
compadd() {{ print -l -- "${{(@P)2}}" }}
typeset -A opt_args
opt_args[--config-dir]={config}
words=({words} '')
CURRENT={current}
{function}"#,
            file = file.display(),
            config = d.path().display(),
        );
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("zsh")
            .args(["-f", "-c", &prog])
            .env("PATH", path)
            .env_remove("BERTH_CONFIG_DIR")
            .output()
            .expect("run zsh");
        assert!(out.status.success(), "zsh: {}", describe(&out));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    };
    let call = |words: &str, current: usize| call_fn("_svc_berth_words", words, current);
    assert_eq!(
        call("", 1),
        [
            "print",
            "mon",
            "validate",
            "json_status",
            "node",
            "db",
            "web"
        ]
    );
    assert!(call("web", 2).contains(&"startfs".to_string()));
    // `svc -s <TAB>`: the option's value is asked of svc too, the whole line given.
    assert!(text.contains(":_svc_berth_words_value' \\"), "{text}");
    let line = format!("svc --config-dir {} -s", d.path().display());
    assert_eq!(call_fn("_svc_berth_words_value", &line, 5), ["db", "web"]);
}

#[test]
fn a_service_named_completions_is_still_a_service() {
    // `svc completions ...` is a service named "completions": no collision with the option.
    let d = config_dir();
    let out = Command::new(SVC)
        .args([
            "--config-dir",
            &d.path().to_string_lossy(),
            "completions",
            "print",
            "status",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("completions"),
        "{}",
        describe(&out)
    );
}

#[test]
fn version_names_the_git_commit() {
    let out = Command::new(SVC).arg("--version").output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("svc {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.trim_end().ends_with(')'), "{text}");
}

#[test]
fn man_pages_for_svc_and_the_service_file_keywords() {
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(SVC)
        .arg("--generate-man")
        .arg(d.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let svc = std::fs::read_to_string(d.path().join("svc.1")).unwrap();
    assert!(svc.contains("\n.TH svc 1"), "{svc}");
    for needle in [
        "config\\-dir",
        "ACTION OPTIONS",
        "dry\\-run",
        "berth.conf(5)",
    ] {
        assert!(svc.contains(needle), "{needle} not in svc.1");
    }
    let conf = std::fs::read_to_string(d.path().join("berth.conf.5")).unwrap();
    assert!(conf.starts_with(".TH BERTH.CONF 5"), "{conf}");
    assert!(conf.contains("\\fBrun_image\\fR"), "{conf}");
}

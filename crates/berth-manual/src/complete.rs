//! Completion scripts: clap_complete's, plus a hook for programs whose words are not clap
//! subcommands (`svc [SERVICE] ACTION`: service names come from the config dir).
//!
//! The hook: the script calls `PROGRAM --complete-words -- WORD... CURRENT` (the words typed after
//! the program's name, the one under the cursor last, possibly empty). The program prints the
//! candidates for CURRENT, one a line, and exits 0; or exits 1 to say "not mine", and the script
//! falls back to clap_complete's completion of the program's options. `--complete-words` is read
//! before clap parses anything ([`requested_words`]), so it is in no help text or script.

use std::process::ExitCode;

use clap::Command;

use crate::Shell;

/// The first argument that asks for candidates.
pub const COMPLETE_WORDS: &str = "--complete-words";

/// The words to complete when the program was run as `PROGRAM --complete-words -- WORDS...`.
pub fn requested_words() -> Option<Vec<String>> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != COMPLETE_WORDS || args.next()? != "--" {
        return None;
    }
    Some(args.map(|a| a.to_string_lossy().into_owned()).collect())
}

/// Prints the candidates (exit 0), or says "not mine" (exit 1).
pub fn answer(candidates: Option<Vec<String>>) -> ExitCode {
    let Some(candidates) = candidates else {
        return ExitCode::from(1);
    };
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for c in candidates {
        if !crate::out::print(format_args!("{c}\n")) {
            break;
        }
    }
    crate::out::finish(&name, 0)
}

/// The words typed before the cursor, split where the program's own options end.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Split {
    /// `(long option name, value)` of the options given before the first other word.
    pub options: Vec<(String, String)>,
    /// The complete words from the first one that is not an option (or its value).
    pub rest: Vec<String>,
    /// The last complete word is an option that takes a value: the current word is that value.
    pub value_pending: bool,
}

impl Split {
    /// The value given to `--name`, the last one if given twice.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits the complete words (all but the current one) of a command line of `cmd`: its options
/// (looked up in `cmd`, so this follows the clap definition), then the rest.
pub fn split<S: AsRef<str>>(cmd: &Command, words: &[S]) -> Split {
    let takes_value = |long: &str| {
        cmd.get_arguments()
            .find(|a| a.get_long() == Some(long))
            .is_some_and(|a| a.get_action().takes_values())
    };
    let short_takes_value = |short: char| {
        cmd.get_arguments()
            .find(|a| a.get_short() == Some(short))
            .is_some_and(|a| a.get_action().takes_values())
    };
    let mut out = Split::default();
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_ref();
        if w == "--" {
            i += 1;
            break;
        }
        if let Some(long) = w.strip_prefix("--") {
            match long.split_once('=') {
                Some((name, value)) => out.options.push((name.to_string(), value.to_string())),
                None if takes_value(long) => match words.get(i + 1) {
                    Some(value) => {
                        out.options
                            .push((long.to_string(), value.as_ref().to_string()));
                        i += 1;
                    }
                    None => out.value_pending = true,
                },
                None => out.options.push((long.to_string(), String::new())),
            }
        } else if w.len() > 1 && w.starts_with('-') {
            let last = w.chars().last().unwrap_or('-');
            if w.len() == 2 && short_takes_value(last) {
                if words.get(i + 1).is_some() {
                    i += 1;
                } else {
                    out.value_pending = true;
                }
            }
        } else {
            break;
        }
        i += 1;
    }
    out.rest = words[i.min(words.len())..]
        .iter()
        .map(|w| w.as_ref().to_string())
        .collect();
    out
}

/// The completion script of `cmd` for `shell`; with `hook`, it asks the program for the words
/// that are not options (see the module's doc).
pub fn script(shell: Shell, mut cmd: Command, hook: bool) -> String {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(generator, &mut cmd, &name, &mut out);
    let mut text = String::from_utf8_lossy(&out).into_owned();
    if !hook {
        return text;
    }
    let f = format!("_{}_berth_words", name.replace('-', "_"));
    // The options whose values the program knows (`-s SERVICE`): `ValueHint::Other`.
    let asked: Vec<(Option<char>, Option<String>)> = cmd
        .get_arguments()
        .filter(|a| a.get_value_hint() == clap::ValueHint::Other)
        .map(|a| (a.get_short(), a.get_long().map(String::from)))
        .collect();
    match shell {
        // bash: a function that asks the program first, then falls back to clap's `_NAME`;
        // registered after clap's, so it replaces it.
        Shell::Bash => text.push_str(&format!(
            r#"
# berth: service names, actions and action options come from the program itself.
{f}() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} out
    if out=$("${{COMP_WORDS[0]}}" {COMPLETE_WORDS} -- "${{COMP_WORDS[@]:1:COMP_CWORD}}" 2>/dev/null); then
        if [[ -n $out ]]; then
            compopt +o default +o bashdefault 2>/dev/null
            local IFS=$'\n'
            COMPREPLY=($(compgen -W "$out" -- "$cur"))
        else
            COMPREPLY=()
        fi
        return 0
    fi
    _{n} "$@"
}}
complete -F {f} -o bashdefault -o default {name}
"#,
            n = name.replace('-', "_"),
        )),
        // zsh: clap's `_arguments` spec completes the options; the words after them go to a
        // function that asks the program (with the config dir given on the line, if any).
        Shell::Zsh => {
            // The spec of the trailing words (`'*::words -- HELP:_default'`) gets the hook.
            let mut hooked = false;
            let value_of_asked = |l: &str| {
                asked.iter().any(|(short, long)| {
                    short.is_some_and(|c| l.starts_with(&format!("'-{c}+[")))
                        || long
                            .as_ref()
                            .is_some_and(|n| l.starts_with(&format!("'--{n}=[")))
                })
            };
            text = text
                .lines()
                .map(|l| {
                    if l.starts_with("'*::words") && l.contains(":_default'") && !hooked {
                        hooked = true;
                        l.replacen(":_default'", &format!(":{f}'"), 1)
                    } else if value_of_asked(l) {
                        // The option's value spec ends the line: `...:VALUE_NAME:' \`
                        // (no action for `ValueHint::Other`).
                        match l.rfind(":'") {
                            Some(at) => format!("{}:{f}_value'{}", &l[..at], &l[at + 2..]),
                            None => l.to_string(),
                        }
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            text.push('\n');
            if hooked {
                let hook = format!(
                    r#"# berth: service names, actions and action options come from the program itself.
(( $+functions[{f}] )) ||
{f}() {{
    local -a opts cands
    local out
    [[ -n ${{opt_args[--config-dir]}} ]] && opts=(--config-dir "${{opt_args[--config-dir]}}")
    out=$({name} {COMPLETE_WORDS} -- "${{opts[@]}}" "${{(@)words[1,CURRENT]}}" 2>/dev/null) || return 1
    cands=("${{(@f)out}}")
    [[ -n $out ]] && compadd -a cands
}}

# berth: the values of the options the program knows (-s SERVICE): the whole line goes to it.
(( $+functions[{f}_value] )) ||
{f}_value() {{
    local -a cands
    local out
    out=$({name} {COMPLETE_WORDS} -- "${{(@)words[2,CURRENT]}}" 2>/dev/null) || return 1
    cands=("${{(@f)out}}")
    [[ -n $out ]] && compadd -a cands
}}

"#
                );
                // Before clap's closing dispatch: autoloaded, the file runs `_NAME "$@"` there,
                // which must find the hook defined.
                let dispatch = format!("if [ \"$funcstack[1]\" = \"_{}\" ]", name.replace('-', "_"));
                match text.find(&dispatch) {
                    Some(at) => text.insert_str(at, &hook),
                    None => text.push_str(&hook),
                }
            }
        }
        // fish: one more rule, active when the program answers.
        Shell::Fish => text.push_str(&format!(
            r#"
# berth: service names, actions and action options come from the program itself.
function {f}
    set -l words (commandline -opc) (commandline -ct)
    $words[1] {COMPLETE_WORDS} -- $words[2..-1] 2>/dev/null
end
complete -c {name} -f -n '{f} >/dev/null' -a '({f})'
{}"#,
            asked
                .iter()
                .map(|(short, long)| {
                    let mut rule = format!("complete -c {name}");
                    if let Some(c) = short {
                        rule.push_str(&format!(" -s {c}"));
                    }
                    if let Some(l) = long {
                        rule.push_str(&format!(" -l {l}"));
                    }
                    format!("{rule} -x -a '({f})'\n")
                })
                .collect::<String>()
        )),
    }
    text
}

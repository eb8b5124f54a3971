//! The shell completions (`packaging/completions/`) and the manual page
//! (`packaging/man/tether.1`) against `tether help`:
//! every command and every option the help names is offered by both, so
//! they cannot drift; bash's completes for real, zsh's parses.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn file(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("packaging/completions")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The commands and options `tether help` names.
fn named_in_help() -> (BTreeSet<String>, BTreeSet<String>) {
    let out = common::tether_command().arg("help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let mut commands = BTreeSet::new();
    let mut options = BTreeSet::new();
    for line in help
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
    {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.chars().all(|c| c.is_ascii_lowercase()) && !first.is_empty() {
            commands.insert(first.to_string());
        }
        // Options on a command's or an option's line, up to its description.
        let usage = line.split("  ").find(|p| !p.is_empty()).unwrap_or("");
        for w in usage.split(|c: char| c.is_whitespace() || "[]|,=".contains(c)) {
            if w.starts_with('-') && w.len() > 1 && !w.contains('<') {
                options.insert(w.to_string());
            }
        }
    }
    (commands, options)
}

#[test]
fn both_completions_offer_every_command_and_option_of_the_help() {
    let (commands, options) = named_in_help();
    for must in ["run", "check", "status", "config", "disable"] {
        assert!(
            commands.contains(must),
            "{must} not read from the help: {commands:?}"
        );
    }
    for must in [
        "--config",
        "--conf-dir",
        "--json",
        "--token-file",
        "--version",
    ] {
        assert!(
            options.contains(must),
            "{must} not read from the help: {options:?}"
        );
    }
    for name in ["tether.bash", "_tether"] {
        let text = file(name);
        let words: BTreeSet<&str> = text
            .split(|c: char| c.is_whitespace() || "'\"()[]{}|:".contains(c))
            .collect();
        for w in commands.iter().chain(options.iter()) {
            assert!(words.contains(w.as_str()), "{name} does not offer {w}");
        }
    }
}

/// What bash's completion offers for the words typed so far (the last is
/// the one being completed).
fn bash_complete(typed: &[&str]) -> Vec<String> {
    let script = format!(
        "source '{}/packaging/completions/tether.bash'; COMP_WORDS=({}); COMP_CWORD={}; _tether; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        env!("CARGO_MANIFEST_DIR"),
        typed.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
        typed.len() - 1
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_commands_subcommands_options_and_files() {
    assert_eq!(bash_complete(&["tether", "st"]), ["status"]);
    assert_eq!(
        bash_complete(&["tether", "-c", "/x.toml", "con"]),
        ["config"]
    );
    assert_eq!(
        bash_complete(&["tether", "config", ""]),
        ["default", "effective"]
    );
    assert_eq!(
        bash_complete(&["tether", "status", "--h"]),
        ["--history", "--help"]
    );
    assert_eq!(
        bash_complete(&["tether", "disable", "--for", ""]),
        Vec::<String>::new(),
        "a duration is not a file"
    );
    let dir = common::temp_dir("completion");
    std::fs::write(dir.join("site.toml"), "").unwrap();
    let typed = format!("{}/si", dir.display());
    assert_eq!(
        bash_complete(&["tether", "--config", &typed]),
        [format!("{}/site.toml", dir.display())]
    );
}

#[test]
fn the_zsh_completion_parses() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packaging/completions/_tether");
    let out = Command::new("zsh")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("zsh (Debian package zsh) must be installed: .ci/run installs it");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(file("_tether").starts_with("#compdef tether\n"));
}

/// The manual page names every command (`.It Cm NAME`) and option
/// (`Fl -long`, `Fl c`) that `tether help` names.
#[test]
fn the_manual_page_names_every_command_and_option_of_the_help() {
    let page = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packaging/man/tether.1"),
    )
    .unwrap();
    let (commands, options) = named_in_help();
    for c in &commands {
        assert!(
            page.lines().any(|l| l.starts_with(&format!(".It Cm {c}"))),
            "tether.1 has no `.It Cm {c}`"
        );
    }
    for o in &options {
        let mdoc = format!("Fl {}", &o[1..]);
        assert!(page.contains(&mdoc), "tether.1 never names {o} (`{mdoc}`)");
    }
}

/// One mdoc section of the manual page (`.Sh NAME` up to the next `.Sh`).
fn man_section(page: &str, name: &str) -> String {
    let start = page
        .find(&format!(".Sh {name}\n"))
        .unwrap_or_else(|| panic!("tether.1 has no {name} section"));
    let rest = &page[start + 5 + name.len()..];
    rest[..rest.find("\n.Sh ").unwrap_or(rest.len())].to_string()
}

/// Every exit code a command's own help gives (`N word` after `Exit:`) is
/// in that command's entry of the manual page's EXIT STATUS, every command
/// but `help` gives its codes, and every absolute path the help names is in
/// FILES or the page's text.
#[test]
fn the_manual_page_gives_every_exit_code_and_file_the_help_gives() {
    let page = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packaging/man/tether.1"),
    )
    .unwrap();
    let exits = man_section(&page, "EXIT STATUS");
    let (commands, _) = named_in_help();
    let mut helps = String::new();
    for c in commands.iter().filter(|c| *c != "help") {
        let out = common::tether_command().args(["help", c]).output().unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        helps += &help;
        let said = help
            .split_once("Exit: ")
            .unwrap_or_else(|| panic!("`tether help {c}` gives no exit codes:\n{help}"))
            .1;
        let said = said.split("\n\n").next().unwrap().replace('\n', " ");
        let codes: Vec<String> = said
            .split(", ")
            .filter_map(|item| {
                let mut words = item.split(' ');
                let code = words.next()?;
                (code.len() == 1 && code.as_bytes()[0].is_ascii_digit())
                    .then(|| format!("{code} {}", words.next().unwrap_or("")))
            })
            .collect();
        assert!(!codes.is_empty(), "{c}: {said}");
        let entry = exits
            .split_once(&format!(".It Cm {c}\n"))
            .unwrap_or_else(|| panic!("EXIT STATUS has no `.It Cm {c}`"))
            .1;
        let entry = entry.split("\n.It ").next().unwrap();
        let entry = entry.split("\n.El").next().unwrap().replace('\n', " ");
        for code in &codes {
            assert!(
                entry.contains(code.trim_end_matches(['.', ','])),
                "tether.1 EXIT STATUS for {c} lacks `{code}` (the help says: {said}); it says: {entry}"
            );
        }
    }
    let usage = String::from_utf8(
        common::tether_command()
            .arg("help")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    helps += &usage;
    // Files, not the endpoint's paths (/status).
    let files = helps
        .split_whitespace()
        .map(|w| {
            w.trim_start_matches('(')
                .trim_end_matches([',', '.', ')', ';'])
        })
        .filter(|w| {
            ["/etc/", "/var/", "/usr/", "/run/"]
                .iter()
                .any(|d| w.starts_with(d))
        });
    let mut named = 0;
    for path in files {
        named += 1;
        assert!(
            page.contains(&format!(".Pa {path}")),
            "the help names {path}; tether.1 does not (`.Pa {path}`)"
        );
    }
    assert!(named > 0, "the help names no file at all?");
}

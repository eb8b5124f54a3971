//! Configuration that composes, with the real binary: drop-ins from
//! `conf.d` (or `-d DIR`) in name order, what they may not hold, a check
//! name used twice across files, variables from the environment and the
//! host's name, and SIGHUP reading the drop-ins again.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{temp_dir, wait_for, with_agent_defaults, Agent};

fn tether(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = common::tether_command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `dir/tether.toml` (with a private state dir) and `dir/conf.d/`.
fn main_file(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("tether.toml");
    std::fs::write(&p, with_agent_defaults(body, dir)).unwrap();
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    p
}

fn check(name: &str, path: &str) -> String {
    format!("[[check]]\nname = \"{name}\"\nkind = \"file\"\npath = \"{path}\"\n\n")
}

#[test]
fn drop_ins_are_read_in_name_order_after_the_main_file() {
    let dir = temp_dir("dropins-order");
    let main = main_file(&dir, &check("main", "/"));
    let d = dir.join("conf.d");
    std::fs::write(d.join("20-b.toml"), check("b", "/")).unwrap();
    std::fs::write(d.join("10-a.toml"), check("a", "/") + &check("a2", "/")).unwrap();
    // Not drop-ins: another extension, a dotfile (an editor's), a directory.
    std::fs::write(d.join("30-c.toml.bak"), "garbage").unwrap();
    std::fs::write(d.join(".40-d.toml"), "garbage").unwrap();
    std::fs::create_dir(d.join("50-e.toml")).unwrap_or(());
    let m = main.to_string_lossy();
    let o = tether(&["-c", &m, "check", "--json"], &[]);
    let json = String::from_utf8_lossy(&o.stdout);
    let order: Vec<usize> = ["\"main\"", "\"a\"", "\"a2\"", "\"b\""]
        .iter()
        .map(|n| {
            json.find(&format!("\"name\":{n}"))
                .unwrap_or_else(|| panic!("{n} in {json}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{json}");
    // -d names another directory instead.
    let other = dir.join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("x.toml"), check("x", "/")).unwrap();
    let o = tether(&["-c", &m, "-d", &other.to_string_lossy(), "validate"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{m}: ok, 2 checks\n")
    );
}

#[test]
fn a_drop_in_holds_checks_only_and_a_name_twice_names_both_places() {
    let dir = temp_dir("dropins-errors");
    let main = main_file(&dir, &check("db", "/"));
    let d = dir.join("conf.d");
    let bad = d.join("10-bad.toml");
    std::fs::write(
        &bad,
        format!("{}[upstream]\nurl = \"https://x\"\n", check("ok", "/")),
    )
    .unwrap();
    let twice = d.join("20-twice.toml");
    std::fs::write(&twice, format!("\n{}", check("db", "/"))).unwrap();
    let o = tether(&["-c", &main.to_string_lossy(), "validate"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{}:6: `upstream`: a drop-in may hold [[check]] tables and [agent] labels only",
            bad.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{}:2: duplicate check name \"db\" (first defined in {}:",
            twice.display(),
            main.display()
        )),
        "{err}"
    );
    // Each drop-in's own mistakes carry its own file and line.
    std::fs::write(
        &bad,
        "[[check]]\nname = \"t\"\nkind = \"tcp\"\ntarget = \"nope\"\n",
    )
    .unwrap();
    let o = tether(&["-c", &main.to_string_lossy(), "validate"], &[]);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{}:4: check \"t\"", bad.display())),
        "{err}"
    );
}

#[test]
fn variables_come_from_the_environment_and_the_host_name() {
    let dir = temp_dir("dropins-vars");
    let main = main_file(
        &dir,
        "[[check]]\nname = \"snap-${SITE}\"\nkind = \"file\"\npath = \"/${SNAP_DIR}\"\n\n[[check]]\nname = \"lit\"\nkind = \"file\"\npath = \"/tmp/$${NOT_A_VAR}\"\n",
    );
    std::fs::write(
        dir.join("conf.d/host.toml"),
        "[[check]]\nname = \"on-${HOSTNAME}\"\nkind = \"file\"\npath = \"/\"\n",
    )
    .unwrap();
    let m = main.to_string_lossy();
    let o = tether(
        &["-c", &m, "check", "--json"],
        &[("SITE", "fra1"), ("SNAP_DIR", "tmp")],
    );
    let json = String::from_utf8_lossy(&o.stdout);
    assert!(json.contains("\"name\":\"snap-fra1\""), "{json}");
    assert!(
        json.contains(&format!("\"name\":\"on-{}\"", common::hostname())),
        "{json}"
    );
    // A literal `${`: no variable, the path as written.
    let o = tether(
        &["-c", &m, "validate"],
        &[("SITE", "fra1"), ("SNAP_DIR", "tmp")],
    );
    assert!(stderr(&o).contains("/tmp/${NOT_A_VAR}"), "{}", stderr(&o));
    // Undefined: an error naming file, line and variable; never an empty string.
    let o = tether(&["-c", &m, "validate"], &[("SITE", "fra1")]);
    assert_eq!(o.status.code(), Some(2));
    let want = format!("{m}:8: undefined variable ${{SNAP_DIR}}");
    assert!(stderr(&o).contains(&want), "{want} in {}", stderr(&o));
}

#[test]
fn sighup_reads_the_drop_ins_again() {
    let dir = temp_dir("dropins-hup");
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    let a = Agent::start_in(dir.clone(), &check("main", "/"));
    std::fs::write(dir.join("conf.d/new.toml"), check("added", "/")).unwrap();
    a.signal("HUP");
    wait_for("the drop-in's check", Duration::from_secs(10), || {
        let (_, s) = a.get("/status");
        s.contains("\"name\":\"added\"").then_some(())
    });
    // A broken drop-in is refused like a broken file: the running one stays.
    std::fs::write(dir.join("conf.d/new.toml"), "[agent]\nname = \"x\"\n").unwrap();
    a.signal("HUP");
    a.wait_log(
        "a drop-in may hold [[check]] tables and [agent] labels only",
        Duration::from_secs(5),
    );
    let (_, s) = a.get("/status");
    assert!(s.contains("\"name\":\"added\""), "{s}");
}

#[test]
fn config_effective_shows_each_check_with_where_it_came_from() {
    let dir = temp_dir("dropins-effective");
    let main = main_file(
        &dir,
        "[agent]\ninterval = \"10s\"\nlabels = { site = \"${SITE}\" }\n\n[[check]]\nname = \"main\"\nkind = \"file\"\npath = \"/\"\n",
    );
    let drop = dir.join("conf.d/db.toml");
    std::fs::write(&drop, "\n[[check]]\nname = \"db\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:5432\"\ntimeout = \"2s\"\nlabels = { service = \"db\" }\n").unwrap();
    let m = main.to_string_lossy();
    let o = tether(&["-c", &m, "config", "effective"], &[("SITE", "fra1")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("labels = { site = \"fra1\" }"), "{text}");
    assert!(
        text.contains(&format!(
            "# from {}:2\n[[check]]\nname = \"db\"",
            drop.display()
        )),
        "{text}"
    );
    // The defaults resolved: the drop-in's check runs every 10s from [agent].
    let db = text.split("name = \"db\"").nth(1).unwrap();
    assert!(
        db.contains("interval = \"10s\"\ntimeout = \"2s\""),
        "{text}"
    );
    let o = tether(
        &["-c", &m, "config", "effective", "--json"],
        &[("SITE", "fra1")],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["checks"][1]["from"], format!("{}:2", drop.display()));
    assert_eq!(v["checks"][1]["labels"]["service"], "db");
    assert_eq!(v["agent"]["labels"]["site"], "fra1");
}

#[test]
fn a_drop_in_may_add_the_agents_labels_once_each() {
    let dir = temp_dir("dropins-labels");
    let main = main_file(&dir, "[agent]\nlabels = { tier = \"prod\" }\n");
    let site = dir.join("conf.d/site.toml");
    std::fs::write(
        &site,
        "[agent]\nlabels = { site = \"fra1\", group = \"eu-west\" }\n",
    )
    .unwrap();
    let m = main.to_string_lossy();
    let o = tether(&["-c", &m, "config", "effective", "--json"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["agent"]["labels"]["site"], "fra1");
    assert_eq!(v["agent"]["labels"]["tier"], "prod");
    // A name set twice names where it was set first.
    std::fs::write(
        dir.join("conf.d/tier.toml"),
        "\n[agent]\nlabels = { tier = \"dev\" }\n",
    )
    .unwrap();
    let o = tether(&["-c", &m, "validate"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let want = format!(
        "{}:2: [agent] labels: `tier` is already set (in {m})",
        dir.join("conf.d/tier.toml").display()
    );
    assert!(stderr(&o).contains(&want), "{want} in {}", stderr(&o));
}

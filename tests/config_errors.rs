//! One fixture per configuration error in tests/fixtures/config/, each
//! starting with `# expect: <exact message>` (`{file}` stands for its path).
//! Both the library and `tether validate` must produce exactly that message.

mod common;

use std::path::Path;

fn fixtures() -> Vec<(String, String)> {
    let dir = Path::new("tests/fixtures/config");
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let expect = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# expect: "))
                .expect("fixture starts with # expect:");
            let path = p.to_string_lossy().into_owned();
            (path.clone(), expect.replace("{file}", &path))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_fixture_gives_its_exact_message() {
    let all = fixtures();
    assert!(all.len() >= 25, "fixtures missing: {}", all.len());
    for (path, expect) in all {
        let err = tether::config::load(Path::new(&path)).expect_err(&path);
        assert_eq!(err.to_string(), expect, "{path}");
    }
}

#[test]
fn validate_exits_2_with_the_message_on_stderr() {
    for (path, expect) in fixtures() {
        let out = common::tether_command()
            .args(["validate", "-c", &path])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{path}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim_end(),
            expect,
            "{path}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn validate_accepts_the_reference_and_the_default() {
    let out = common::tether_command()
        .args(["validate", "-c", "packaging/tether.toml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let default = common::tether_command()
        .args(["config", "default"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&default.stdout),
        tether::config::DEFAULT_TOML
    );
    let dir = std::env::temp_dir().join(format!("tether-default-{}.toml", std::process::id()));
    std::fs::write(&dir, &default.stdout).unwrap();
    let out = common::tether_command()
        .args(["validate", "-c"])
        .arg(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&dir);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_missing_file_is_named() {
    let out = common::tether_command()
        .args(["validate", "-c", "/nonexistent/t.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("/nonexistent/t.toml: cannot read: "));
}

/// Token files are made at run time: their mode is the point.
#[test]
fn upstream_refuses_plaintext_and_a_token_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("tether-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "secret-value\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o640)).unwrap();
    let text = |url: &str| {
        format!(
            "[upstream]\nurl = \"{url}\"\ntoken_file = \"{}\"\n",
            token.display()
        )
    };
    let err = tether::config::parse(&text("https://cp.example.com/"), "t.toml").unwrap_err();
    let t = token.display();
    assert_eq!(
        err.to_string(),
        format!("t.toml:3: [upstream]: `token_file`: {t} is readable or writable by group or others (mode 0640); run `chmod 600 {t}`")
    );
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = tether::config::parse(&text("http://cp.example.com/"), "t.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.toml:2: [upstream]: `url` is plain http: the token and every report would cross the network unencrypted; use https, or set allow_plaintext = true"
    );
    let ok = tether::config::parse(
        &text("http://cp.example.com/")
            .replace("[upstream]\n", "[upstream]\nallow_plaintext = true\n"),
        "t.toml",
    )
    .unwrap();
    let up = ok.upstream.unwrap();
    assert_eq!(up.token.expose(), "secret-value");
    assert!(
        !format!("{up:?}").contains("secret-value"),
        "Debug never shows the token"
    );
    assert_eq!(up.flush_interval, std::time::Duration::from_secs(10));
    assert_eq!((up.batch_max_records, up.batch_max_bytes), (500, 1 << 20));
    assert_eq!(ok.spool.max_bytes, 64 << 20);
    assert_eq!(ok.spool.ring_records, 10_000);
    assert!(ok.spool.dir.ends_with("spool"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_reference_examples_validate_once_uncommented() {
    // The shipped reference checks only the host; its examples of every
    // kind are commented with a `#` and no space, and must stay valid.
    let text = std::fs::read_to_string("packaging/tether.toml").unwrap();
    let mut enabled = String::new();
    for line in text.lines() {
        let body = line.strip_prefix('#').unwrap_or(line);
        let setting = body.starts_with("[[check]]")
            || body.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            });
        enabled.push_str(if setting { body } else { line });
        enabled.push('\n');
    }
    let config =
        tether::config::parse(&enabled, "uncommented reference").unwrap_or_else(|e| panic!("{e}"));
    let mut kinds: Vec<&str> = config.checks.iter().map(|c| c.probe.kind()).collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "cert_file",
            "dns",
            "exec",
            "file",
            "http",
            "system",
            "tcp",
            "tls",
            "writable"
        ]
    );
    assert_eq!(config.agent.name, "edge-connector-1");
}

/// Every key the walker accepts (its `*_KEYS` lists) is in the annotated
/// reference, `packaging/tether.toml`, and in the documents
/// (`docs/configuration.md` or, for a kind's keys, `docs/checks.md`).
#[test]
fn every_key_the_walker_accepts_is_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let src = read("src/config/sections.rs")
        + &read("src/config/checks.rs")
        + &read("src/config/remote_write.rs")
        + &read("src/config/otlp.rs");
    let reference = read("packaging/tether.toml");
    let docs = read("docs/configuration.md") + &read("docs/checks.md");
    let mut keys = Vec::new();
    let mut rest = src.as_str();
    while let Some(i) = rest.find("_KEYS: &[&str] = &[") {
        let list = &rest[i..];
        let end = list.find("];").unwrap();
        for k in list[..end].split('"').skip(1).step_by(2) {
            keys.push(k.to_string());
        }
        rest = &list[end..];
    }
    assert!(keys.len() > 40, "found only {keys:?}");
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| {
            let in_docs = docs.contains(&format!("`{k}"))
                || docs.contains(&format!("{k} ="))
                || docs.contains(&format!("`[{k}]`"))
                || docs.contains(&format!("`[[{k}]]`"));
            !in_docs || !reference.contains(k.as_str())
        })
        .collect();
    assert!(missing.is_empty(), "keys not documented: {missing:?}");
}

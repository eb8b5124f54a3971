//! One fixture per configuration error in tests/fixtures/config/, each
//! starting with `# expect: <exact message>` (`{file}` stands for its path).
//! Both the library and `tether validate` must produce exactly that message.

use std::path::Path;
use std::process::Command;

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
        let out = Command::new(env!("CARGO_BIN_EXE_tether"))
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
    let out = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["validate", "-c", "packaging/tether.toml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let default = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["config", "default"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&default.stdout),
        tether::config::DEFAULT_TOML
    );
    let dir = std::env::temp_dir().join(format!("tether-default-{}.toml", std::process::id()));
    std::fs::write(&dir, &default.stdout).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["validate", "-c"])
        .arg(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&dir);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_missing_file_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["validate", "-c", "/nonexistent/t.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("/nonexistent/t.toml: cannot read: "));
}

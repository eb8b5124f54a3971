//! The release artifacts `packaging/release` makes: for each target a
//! tarball with exactly the files it promises (the binary it holds is the
//! one built for that target), a .deb of the right architecture, a .rpm for
//! x86_64 and aarch64, a CycloneDX SBOM naming exactly the crates built into
//! the binary, and a SHA256SUMS that covers every artifact and holds.
//!
//! By itself the test runs the script for x86_64 into a directory of its
//! own. `bash .ci/run` first runs it for every target and then points this
//! test at the result: `TETHER_RELEASE_DIR` and `TETHER_RELEASE_TARGETS`
//! (space-separated). Needs what `bash .ci/run` installs (cargo-deb,
//! cargo-generate-rpm, cargo-cyclonedx, rpm, python3).

mod common;

use common::shipped::{cargo, root, run, sha256, stdout, SIZE_GOAL};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// (the artifacts' directory, the targets in it).
fn artifacts() -> (PathBuf, Vec<String>) {
    if let Ok(dir) = std::env::var("TETHER_RELEASE_DIR") {
        let targets = std::env::var("TETHER_RELEASE_TARGETS")
            .expect("TETHER_RELEASE_TARGETS names the targets in TETHER_RELEASE_DIR");
        return (
            PathBuf::from(dir),
            targets.split_whitespace().map(String::from).collect(),
        );
    }
    let dir = root().join("target/release-test");
    let target = "x86_64-unknown-linux-musl";
    run(Command::new("bash")
        .arg(root().join("packaging/release"))
        .arg("--out")
        .arg(&dir)
        .arg(target));
    (dir, vec![target.to_string()])
}

/// The Debian and RPM architecture names and what `file` says of a binary.
fn arch_of(target: &str) -> (&'static str, Option<&'static str>, &'static str) {
    match target {
        "x86_64-unknown-linux-musl" => ("amd64", Some("x86_64"), "x86-64"),
        "aarch64-unknown-linux-musl" => ("arm64", Some("aarch64"), "ARM aarch64"),
        "armv7-unknown-linux-musleabihf" => ("armhf", None, "ARM, EABI5"),
        other => panic!("no such target {other}"),
    }
}

#[test]
fn every_target_has_its_tarball_packages_and_sbom_all_in_sha256sums() {
    let (dir, targets) = artifacts();
    let mut want = BTreeSet::new();
    for target in &targets {
        let (deb_arch, rpm_arch, file_says) = arch_of(target);
        let name = format!("tether-{VERSION}-{target}");

        // The tarball: exactly these files, under one directory.
        let tarball = dir.join(format!("{name}.tar.gz"));
        let listing = stdout(&run(Command::new("tar").arg("tzf").arg(&tarball)));
        let listed: BTreeSet<&str> = listing.lines().collect();
        let expected: BTreeSet<String> = [
            "",
            "LICENSE",
            "README.md",
            "completions/",
            "completions/_tether",
            "completions/tether.bash",
            "tether",
            "tether.1",
            "tether.service",
            "tether.sysusers",
            "tether.tmpfile",
            "tether.toml",
        ]
        .iter()
        .map(|f| format!("{name}/{f}"))
        .collect();
        assert_eq!(
            listed,
            expected.iter().map(String::as_str).collect(),
            "{tarball:?}"
        );
        let unpacked = root().join(format!("target/release-unpacked/{target}"));
        let _ = std::fs::remove_dir_all(&unpacked);
        std::fs::create_dir_all(&unpacked).unwrap();
        run(Command::new("tar")
            .arg("xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&unpacked));
        let inside = unpacked.join(&name);
        let binary = std::fs::read(inside.join("tether")).unwrap();
        let built = std::fs::read(root().join("target").join(target).join("release/tether"))
            .expect("the target's release binary");
        assert!(binary == built, "{name}: not the binary built for {target}");
        assert!(
            binary.len() as u64 <= SIZE_GOAL,
            "{name}: {} B",
            binary.len()
        );
        let file = stdout(&run(Command::new("file").arg(inside.join("tether"))));
        assert!(
            file.contains(file_says) && file.contains("static"),
            "{name}: {file}"
        );
        for (inside_name, source) in [
            ("README.md", "README.md"),
            ("LICENSE", "LICENSE"),
            ("tether.toml", "packaging/tether.toml"),
            ("tether.service", "packaging/tether.service"),
            ("tether.1", "packaging/man/tether.1"),
        ] {
            assert!(
                std::fs::read(inside.join(inside_name)).unwrap()
                    == std::fs::read(root().join(source)).unwrap(),
                "{name}/{inside_name} is not {source}"
            );
        }
        if target == "x86_64-unknown-linux-musl" {
            let version = stdout(&run(Command::new(inside.join("tether")).arg("--version")));
            assert!(version.starts_with(&format!("tether {VERSION} ({target}, commit ")));
            run(Command::new(inside.join("tether"))
                .args(["validate", "-c"])
                .arg(inside.join("tether.toml")));
        }
        std::fs::remove_dir_all(&unpacked).unwrap();
        want.insert(format!("{name}.tar.gz"));

        // The packages, each of its architecture.
        let deb = format!("tether_{VERSION}-1_{deb_arch}.deb");
        let arch = stdout(&run(Command::new("dpkg-deb")
            .args(["-f"])
            .arg(dir.join(&deb))
            .arg("Architecture")));
        assert_eq!(arch.trim(), deb_arch, "{deb}");
        want.insert(deb);
        if let Some(rpm_arch) = rpm_arch {
            let rpm = format!("tether-{VERSION}-1.{rpm_arch}.rpm");
            let arch = stdout(&run(Command::new("rpm")
                .args(["-qp", "--qf", "%{ARCH}"])
                .arg(dir.join(&rpm))));
            assert_eq!(arch, rpm_arch, "{rpm}");
            let digests = stdout(&run(Command::new("rpm")
                .args(["-qp", "--qf", "[%{FILEDIGESTS} %{FILENAMES}\n]"])
                .arg(dir.join(&rpm))));
            let sum = sha256(&root().join("target").join(target).join("release/tether"));
            assert!(
                digests.contains(&format!("{sum} /usr/bin/tether\n")),
                "{rpm} does not hold the binary built for {target}"
            );
            want.insert(rpm);
        }

        // The SBOM: CycloneDX 1.5 JSON naming, with a purl and a license,
        // exactly the crates cargo builds into this target's binary (and
        // its build scripts), none of the test-only ones.
        let sbom = format!("{name}.cdx.json");
        let summary = stdout(&run(Command::new("python3")
            .arg("-c")
            .arg(
                "import json, sys\n\
                 d = json.load(open(sys.argv[1]))\n\
                 print(d['bomFormat'], d['specVersion'], d['metadata']['component']['name'], d['metadata']['component']['version'])\n\
                 for c in d['components']:\n    \
                     print(c['name'], 'v' + c['version'], c['purl'], bool(c.get('licenses')))\n",
            )
            .arg(dir.join(&sbom))));
        let mut lines = summary.lines();
        assert_eq!(
            lines.next().unwrap(),
            format!("CycloneDX 1.5 tether {VERSION}")
        );
        let mut in_sbom = BTreeSet::new();
        for line in lines {
            let f: Vec<&str> = line.split(' ').collect();
            assert!(
                f[2].starts_with(&format!("pkg:cargo/{}@{}", f[0], &f[1][1..])),
                "{line}"
            );
            assert_eq!(f[3], "True", "no license: {line}");
            in_sbom.insert(format!("{} {}", f[0], f[1]));
        }
        let tree = stdout(&run(cargo()
            .args(["tree", "--target", target, "-e", "normal,build"])
            .args(["--prefix", "none", "--format", "{p}"])));
        let built_in: BTreeSet<String> = tree
            .lines()
            .filter(|l| !l.starts_with("tether "))
            .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(in_sbom, built_in, "{sbom}");
        assert!(!in_sbom.iter().any(|c| c.starts_with("rcgen ")));
        want.insert(sbom);
    }

    // SHA256SUMS names every artifact, nothing else, and holds.
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let named: BTreeSet<String> = sums
        .lines()
        .map(|l| l.split_once("  ").expect(l).1.to_string())
        .collect();
    assert_eq!(named, want);
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "SHA256SUMS")
        .collect();
    assert_eq!(present, want, "{dir:?} holds more or less than SHA256SUMS");
    run(Command::new("sha256sum")
        .args(["--quiet", "-c", "SHA256SUMS"])
        .current_dir(&dir));
}

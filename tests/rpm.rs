//! The RPM package (cargo-generate-rpm, packaging/rpm/): what Debian's rpm
//! tools can show about it (header, files, flags, scriptlets), and its
//! scriptlets run for real by `rpm --root` in a scratch Debian root: install,
//! upgrade keeping the state and an edited configuration, erase, a preset
//! that disables, a root without systemd's tools, and Fedora's
//! systemd-update-helper.
//!
//! They need root, rpm, cargo-generate-rpm, the musl target and debootstrap,
//! which `bash .ci/run` installs.

mod common;

use common::shipped::{cargo, require_root, root, run, sha256, static_binary, stdout, TARGET};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The package of release `release` (the same files, a higher release
/// upgrades the lower), built from the shipped static binary.
fn build_rpm(release: u32) -> PathBuf {
    static ONE: Mutex<()> = Mutex::new(());
    static_binary();
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = root().join(format!("target/rpm-test/{release}"));
    std::fs::create_dir_all(&dir).unwrap();
    // The manual page compressed, as docs/operations.md says to.
    std::fs::create_dir_all(root().join("target/man")).unwrap();
    run(Command::new("sh").current_dir(root()).args([
        "-c",
        "gzip -9nc packaging/man/tether.1 > target/man/tether.1.gz",
    ]));
    run(cargo()
        .args([
            "generate-rpm",
            "--target",
            TARGET,
            "--payload-compress",
            "gzip",
        ])
        .arg("--set-metadata")
        .arg(format!("release = \"{release}\""))
        .arg("-o")
        .arg(&dir));
    dir.join(format!("tether-0.1.0-{release}.x86_64.rpm"))
}

fn rpm(args: &[&str]) -> String {
    stdout(&run(Command::new("rpm").args(args)))
}

#[test]
fn the_rpm_names_its_files_config_and_fedora_scriptlets() {
    let pkg = build_rpm(1);
    let pkg = pkg.to_str().unwrap();
    let info = rpm(&[
        "-qp",
        "--qf",
        "%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{LICENSE}",
        pkg,
    ]);
    assert_eq!(info, "tether 0.1.0 1 x86_64 Apache-2.0");

    // Every file, each once, where Fedora puts it; the reference
    // configuration is the one %config(noreplace) file.
    let mut want: Vec<String> = [
        "/etc/tether/tether.toml",
        "/usr/bin/tether",
        "/usr/lib/systemd/system/tether.service",
        "/usr/lib/sysusers.d/tether.conf",
        "/usr/lib/tmpfiles.d/tether.conf",
        "/usr/share/bash-completion/completions/tether",
        "/usr/share/doc/tether/README.md",
        "/usr/share/licenses/tether/LICENSE",
        "/usr/share/man/man1/tether.1.gz",
        "/usr/share/tether/tether-rules.test.yml",
        "/usr/share/tether/tether-rules.yml",
        "/usr/share/zsh/site-functions/_tether",
    ]
    .map(String::from)
    .to_vec();
    for doc in std::fs::read_dir(root().join("docs")).unwrap() {
        let name = doc.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            want.push(format!("/usr/share/doc/tether/docs/{name}"));
        }
    }
    want.sort();
    let files: Vec<String> = rpm(&["-qlp", pkg]).lines().map(String::from).collect();
    assert_eq!(files, want);
    let flags = rpm(&["-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]", pkg]);
    let configs: Vec<&str> = flags
        .lines()
        .filter(|l| l.split(' ').next().is_some_and(|f| f.contains('c')))
        .collect();
    assert_eq!(configs, ["cn /etc/tether/tether.toml"], "{flags}");
    let modes = rpm(&["-qp", "--qf", "[%{FILEMODES:perms} %{FILENAMES}\n]", pkg]);
    assert!(modes.contains("-rwxr-xr-x /usr/bin/tether\n"), "{modes}");
    // The packaged binary is the one built (SHA-256 file digests).
    let digests = rpm(&["-qp", "--qf", "[%{FILEDIGESTS} %{FILENAMES}\n]", pkg]);
    let built = sha256(static_binary());
    assert!(
        digests.contains(&format!("{built} /usr/bin/tether\n")),
        "{digests}"
    );
    // The manual page is the source's, gzipped (`rpm2cpio` is not needed:
    // the digest of the compressed file is the one made above).
    let page = sha256(&root().join("target/man/tether.1.gz"));
    assert!(
        digests.contains(&format!("{page} /usr/share/man/man1/tether.1.gz\n")),
        "{digests}"
    );
    let unzipped = run(Command::new("gzip")
        .arg("-dc")
        .arg(root().join("target/man/tether.1.gz")));
    assert_eq!(
        unzipped.stdout,
        std::fs::read(root().join("packaging/man/tether.1")).unwrap()
    );
    let summary = rpm(&["-qp", "--qf", "%{SUMMARY}", pkg]);
    assert!(summary.starts_with("Connector health agent"), "{summary}");
    let requires = rpm(&["-qpR", pkg]);
    for dep in ["/bin/sh", "ca-certificates"] {
        assert!(requires.lines().any(|l| l.trim() == dep), "{requires}");
    }
    assert!(!requires.contains(".so"), "a static binary: {requires}");

    // The four scriptlets, each with Fedora's macro semantics.
    let scripts = rpm(&["-qp", "--scripts", pkg]);
    for (scriptlet, file) in [
        ("preinstall", "pre.sh"),
        ("postinstall", "post.sh"),
        ("preuninstall", "preun.sh"),
        ("postuninstall", "postun.sh"),
    ] {
        let body = std::fs::read_to_string(root().join("packaging/rpm").join(file)).unwrap();
        let header = format!("{scriptlet} scriptlet (using /bin/sh):\n");
        let at = scripts
            .find(&header)
            .unwrap_or_else(|| panic!("no {scriptlet}:\n{scripts}"));
        assert!(
            scripts[at + header.len()..].starts_with(body.trim_end()),
            "{scriptlet} is not packaging/rpm/{file}:\n{scripts}"
        );
        let syntax = Command::new("sh")
            .args(["-n", "-c", &body])
            .output()
            .unwrap();
        assert!(syntax.status.success(), "{file}: {syntax:?}");
    }
    // %pre makes the user from the same line the sysusers.d file has.
    let sysusers = std::fs::read_to_string(root().join("packaging/tether.sysusers")).unwrap();
    let line = sysusers.lines().find(|l| l.starts_with("u ")).unwrap();
    let pre = std::fs::read_to_string(root().join("packaging/rpm/pre.sh")).unwrap();
    assert!(pre.contains(&format!("echo '{line}'")), "{pre}");
}

/// Runs `rpm --root R ARGS`. The scratch root's rpm database knows none of
/// its Debian packages, so dependencies (/bin/sh, ca-certificates, which are
/// there) are not checked: `--nodeps`.
fn rpm_in(r: &Path, args: &[&str]) -> String {
    let out = run(Command::new("rpm").arg("--root").arg(r).args(args));
    let text = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    // Debian's rpm says it should not install packages, systemd-sysusers
    // says what it made; anything else a scriptlet printed is a fault.
    let noise: Vec<&str> = text
        .lines()
        .filter(|l| {
            !l.starts_with("rpm: ")
                && !l.starts_with("Creating group 'tether'")
                && !l.starts_with("Creating user 'tether'")
                && !l.trim().is_empty()
        })
        .collect();
    noise.join("\n")
}

/// uid, gid, home and shell of `user` in the root's passwd, if there.
fn user_in(r: &Path, user: &str) -> Option<(u32, u32, String, String)> {
    let passwd = std::fs::read_to_string(r.join("etc/passwd")).unwrap();
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f[0] == user).then(|| {
            (
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[5].to_string(),
                f[6].to_string(),
            )
        })
    })
}

fn state_dir_owner_and_mode(r: &Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(r.join("var/lib/tether")).expect("no /var/lib/tether");
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

fn chroot(r: &Path, args: &[&str]) -> String {
    stdout(&run(Command::new("chroot").arg(r).args(args)))
}

#[test]
fn the_rpm_installs_upgrades_keeping_state_erases_and_follows_presets_in_a_scratch_root() {
    require_root();
    let first = build_rpm(1);
    let second = build_rpm(2);
    let (first, second) = (first.to_str().unwrap(), second.to_str().unwrap());
    let r = common::debian_root::fresh("rpm-root");
    let enabled = r.join("etc/systemd/system/multi-user.target.wants/tether.service");
    let config = r.join("etc/tether/tether.toml");
    rpm_in(&r, &["--initdb"]);

    // Install: the user (systemd-sysusers), the state directory
    // (systemd-tmpfiles), the unit enabled as the preset says (Debian's
    // default preset enables every unit), nothing started.
    let said = rpm_in(&r, &["-i", "--nodeps", first]);
    assert_eq!(said, "", "the scriptlets said something");
    let (uid, gid, home, shell) = user_in(&r, "tether").expect("no tether user");
    assert_eq!(home, "/var/lib/tether");
    assert!(shell.ends_with("/nologin"), "{shell}");
    assert!(uid < 1000, "a system user: {uid}");
    assert_eq!(state_dir_owner_and_mode(&r), (uid, gid, 0o700));
    assert!(
        r.join("etc/tether/conf.d").is_dir(),
        "no conf.d for drop-ins"
    );
    assert!(enabled.is_symlink(), "not enabled per the preset");
    let version = chroot(&r, &["tether", "--version"]);
    assert!(
        version.starts_with("tether 0.1.0 (x86_64-unknown-linux-musl"),
        "{version}"
    );
    let valid = chroot(&r, &["tether", "validate", "-c", "/etc/tether/tether.toml"]);
    assert!(valid.contains(": ok"), "{valid}");

    // Upgrade: the state and the edited configuration stay, the user is
    // the same one, the unit stays enabled.
    std::fs::write(r.join("var/lib/tether/identity"), "kept").unwrap();
    let mut edited = std::fs::read_to_string(&config).unwrap();
    edited.push_str("\n# edited on this host\n");
    std::fs::write(&config, &edited).unwrap();
    assert_eq!(rpm_in(&r, &["-U", "--nodeps", second]), "");
    assert_eq!(rpm_in(&r, &["-q", "tether"]), "tether-0.1.0-2.x86_64");
    assert_eq!(
        std::fs::read_to_string(r.join("var/lib/tether/identity")).unwrap(),
        "kept"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);
    assert!(!r.join("etc/tether/tether.toml.rpmnew").exists());
    assert_eq!(user_in(&r, "tether").unwrap().0, uid);
    assert!(enabled.is_symlink());

    // Erase: disabled, the binary gone; the state, the user and the edited
    // configuration (as .rpmsave) stay.
    assert_eq!(
        rpm_in(&r, &["-e", "tether"]),
        "warning: /etc/tether/tether.toml saved as /etc/tether/tether.toml.rpmsave"
    );
    assert!(!r.join("usr/bin/tether").exists());
    assert!(!enabled.is_symlink(), "still enabled after erase");
    assert!(r.join("var/lib/tether/identity").exists());
    assert_eq!(
        std::fs::read_to_string(r.join("etc/tether/tether.toml.rpmsave")).unwrap(),
        edited
    );
    assert_eq!(user_in(&r, "tether").unwrap().0, uid);

    // A preset that disables it (Fedora's default for a new service): not
    // enabled on install.
    std::fs::create_dir_all(r.join("etc/systemd/system-preset")).unwrap();
    std::fs::write(
        r.join("etc/systemd/system-preset/50-tether.preset"),
        "disable tether.service\n",
    )
    .unwrap();
    assert_eq!(rpm_in(&r, &["-i", "--nodeps", first]), "");
    assert!(!enabled.is_symlink(), "enabled against the preset");
    assert_eq!(rpm_in(&r, &["-e", "tether"]), "");

    // A root without systemd's tools (a container image): the user from
    // useradd, the state directory from install -d.
    chroot(&r, &["userdel", "tether"]);
    std::fs::remove_dir_all(r.join("var/lib/tether")).unwrap();
    let hidden = [
        "usr/bin/systemd-sysusers",
        "usr/bin/systemd-tmpfiles",
        "usr/bin/systemctl",
    ];
    for tool in hidden {
        std::fs::rename(r.join(tool), r.join(format!("{tool}.hidden"))).unwrap();
    }
    std::fs::remove_dir_all(r.join("etc/tether/conf.d")).unwrap();
    assert_eq!(rpm_in(&r, &["-i", "--nodeps", first]), "");
    assert!(
        r.join("etc/tether/conf.d").is_dir(),
        "no conf.d without tmpfiles"
    );
    let (uid, gid, home, shell) = user_in(&r, "tether").expect("useradd made no user");
    assert_eq!(home, "/var/lib/tether");
    assert!(shell.ends_with("/nologin"), "{shell}");
    assert_eq!(state_dir_owner_and_mode(&r), (uid, gid, 0o700));
    for tool in hidden {
        std::fs::rename(r.join(format!("{tool}.hidden")), r.join(tool)).unwrap();
    }

    // Fedora's systemd-update-helper, when there, is what the scriptlets
    // call (as the macros do): upgrade marks the unit for a restart,
    // erase removes it, install installs it.
    let helper = r.join("usr/lib/systemd/systemd-update-helper");
    std::fs::write(&helper, "#!/bin/sh\necho \"$@\" >> /helper.log\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(rpm_in(&r, &["-U", "--nodeps", second]), "");
    assert_eq!(rpm_in(&r, &["-e", "tether"]), "");
    assert_eq!(rpm_in(&r, &["-i", "--nodeps", first]), "");
    assert_eq!(
        std::fs::read_to_string(r.join("helper.log")).unwrap(),
        "mark-restart-system-units tether.service\n\
         remove-system-units tether.service\n\
         install-system-units tether.service\n"
    );
}

/// The scriptlets under a real systemd: the root booted with
/// systemd-nspawn, where rpm itself (Debian's, inside) installs the
/// package (enabled per the preset, not started), the agent is started,
/// an upgrade restarts it on the new binary, and erase stops and disables
/// it and leaves its state.
#[test]
fn under_a_real_systemd_upgrade_restarts_and_erase_stops_the_agent() {
    require_root();
    let first = build_rpm(1);
    let second = build_rpm(2);
    let dir = common::debian_root::fresh("rpm-nspawn-root");
    std::fs::copy(&first, dir.join("root/tether-1.rpm")).unwrap();
    std::fs::copy(&second, dir.join("root/tether-2.rpm")).unwrap();
    let text = common::debian_root::boot_with_probe(
        &dir,
        r#"show() { systemctl show tether -p ActiveState -p SubState -p MainPID -p UnitFileState -p LoadState; }
rpm --initdb
rpm -i --nodeps /root/tether-1.rpm || echo "install=failed"
echo "== installed"; show
systemctl start tether || echo "start=failed"
echo "== started"; show
rpm -U --nodeps /root/tether-2.rpm || echo "upgrade=failed"
echo "== upgraded"; show; rpm -q tether
rpm -e tether || echo "erase=failed"
echo "== erased"; show; ls /etc/systemd/system/multi-user.target.wants/
echo "== state"; ls -A /var/lib/tether
"#,
    );
    println!("{text}");
    let section = |name: &str| common::debian_root::section(&text, name);
    let field = common::debian_root::field;
    for failed in [
        "install=failed",
        "start=failed",
        "upgrade=failed",
        "erase=failed",
    ] {
        assert!(!text.contains(failed), "{failed}:\n{text}");
    }
    let installed = section("installed");
    assert_eq!(field(&installed, "UnitFileState"), "enabled", "{text}");
    assert_eq!(field(&installed, "ActiveState"), "inactive", "{text}");
    let started = section("started");
    assert_eq!(field(&started, "SubState"), "running", "{text}");
    let before = field(&started, "MainPID");
    let upgraded = section("upgraded");
    assert_eq!(field(&upgraded, "SubState"), "running", "{text}");
    assert_ne!(
        field(&upgraded, "MainPID"),
        before,
        "not restarted:\n{text}"
    );
    assert!(upgraded.contains("tether-0.1.0-2.x86_64"), "{text}");
    let erased = section("erased");
    assert_eq!(field(&erased, "ActiveState"), "inactive", "{text}");
    assert!(!erased.contains("tether.service"), "still enabled:\n{text}");
    assert_eq!(field(&erased, "LoadState"), "not-found", "{text}");
    assert!(!section("state").trim().is_empty(), "state lost:\n{text}");
}

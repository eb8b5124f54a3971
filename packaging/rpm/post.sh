# tether %post ($1: 1 on install, 2 or more on upgrade). The state
# directory and /etc/tether/conf.d (tmpfiles.d, as %tmpfiles_create), then,
# on the first install only, the unit enabled or not as the system's
# presets say (%systemd_post:
# Fedora and RHEL leave a new service disabled until `systemctl enable
# --now tether`). Nothing is started here, and /var/lib/tether's contents
# (identity, sequence numbers, spool) are never touched.
systemd-tmpfiles --create tether.conf >/dev/null 2>&1 || {
    install -d -m 0700 -o tether -g tether /var/lib/tether
    install -d -m 0755 /etc/tether/conf.d
}
if [ "$1" -eq 1 ]; then
    if [ -x /usr/lib/systemd/systemd-update-helper ]; then
        /usr/lib/systemd/systemd-update-helper install-system-units tether.service || :
    else
        # Older systemd (RHEL 8, SUSE): what the macros expanded to there.
        [ -d /run/systemd/system ] && systemctl daemon-reload >/dev/null 2>&1
        systemctl --no-reload preset tether.service >/dev/null 2>&1 || :
    fi
fi
exit 0

# tether %postun ($1: 0 on removal, 1 or more on upgrade). On upgrade, a
# running agent is restarted on the new binary (%systemd_postun_with_restart:
# the helper marks it, systemd's own transaction trigger restarts it once at
# the end). On removal the configuration (an edited one is kept as
# tether.toml.rpmsave), the state in /var/lib/tether and the tether user
# stay, as Fedora's guidelines ask.
if [ "$1" -ge 1 ]; then
    if [ -x /usr/lib/systemd/systemd-update-helper ]; then
        /usr/lib/systemd/systemd-update-helper mark-restart-system-units tether.service || :
    else
        [ -d /run/systemd/system ] && systemctl daemon-reload >/dev/null 2>&1
        systemctl try-restart tether.service >/dev/null 2>&1 || :
    fi
fi
exit 0

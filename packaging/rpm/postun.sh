# tether %postun ($1: 0 on removal, 1 or more on upgrade). On upgrade, a
# running agent is restarted on the new binary (%systemd_postun_with_restart:
# the helper marks it, systemd's own transaction trigger reloads and
# restarts it once at the end). Without the helper, systemd is told the
# unit file changed or went, as the older macros did, and on upgrade a
# running agent is restarted. On removal the configuration (an edited one is
# kept as tether.toml.rpmsave), the state in /var/lib/tether and the tether
# user stay, as Fedora's guidelines ask.
if [ -x /usr/lib/systemd/systemd-update-helper ]; then
    if [ "$1" -ge 1 ]; then
        /usr/lib/systemd/systemd-update-helper mark-restart-system-units tether.service || :
    fi
else
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || :
    fi
    if [ "$1" -ge 1 ]; then
        systemctl try-restart tether.service >/dev/null 2>&1 || :
    fi
fi
exit 0

# tether %preun ($1: 0 on removal, 1 or more on upgrade). On removal only,
# the unit is disabled and stopped (%systemd_preun); an upgrade keeps it
# running until %postun restarts it.
if [ "$1" -eq 0 ]; then
    if [ -x /usr/lib/systemd/systemd-update-helper ]; then
        /usr/lib/systemd/systemd-update-helper remove-system-units tether.service || :
    else
        systemctl --no-reload disable --now tether.service >/dev/null 2>&1 || :
    fi
fi
exit 0

# tether %pre ($1: 1 on install, 2 or more on upgrade). The tether system
# user, made before any file is unpacked so /var/lib/tether can be owned by
# it: from the package's own sysusers.d line, as Fedora's
# %sysusers_create_package does, or with useradd where systemd-sysusers is
# missing (a container image without systemd). The line is
# packaging/tether.sysusers's; a test keeps the two the same.
if command -v systemd-sysusers >/dev/null 2>&1; then
    echo 'u tether - "tether connector health agent" /var/lib/tether' |
        systemd-sysusers --replace=/usr/lib/sysusers.d/tether.conf - || :
fi
if ! getent passwd tether >/dev/null 2>&1; then
    getent group tether >/dev/null 2>&1 || groupadd -r tether
    useradd -r -g tether -d /var/lib/tether -M \
        -s "$(command -v nologin || echo /sbin/nologin)" \
        -c "tether connector health agent" tether
fi
exit 0

/// The shell scripts of the systemd-nspawn boot test, adapted from
/// ../shared/reference/systemd/nspawn_outer.sh, nspawn_inner_test.sh and safe-user-manager.sh.
/// Kept as Swift strings (SwiftPM would warn about stray files in a test target) and written to
/// the test's scratch directory at run time.
enum NspawnScripts {
    /// Exit codes of `outer` that mean "this machine cannot do it", not "tokend is broken".
    static let cgroupUnavailable: Int32 = 90
    static let overlayUnavailable: Int32 = 91

    /// Runs as root. FIRST moves its own shell into a fresh cgroup subtree ($CGROUP) in every
    /// hierarchy that systemd uses, so that systemd-nspawn — started only after this — cannot
    /// migrate any process of the machine but its own; then continues in a private mount
    /// namespace, so the overlay and tmpfs mounts are seen by nothing else.
    static let outer = #"""
        #!/bin/sh
        set -u
        : "${SCRATCH:?}" "${CGROUP:?}"
        confined=0
        for h in systemd unified; do
            [ -d "/sys/fs/cgroup/$h" ] || continue
            mkdir -p "/sys/fs/cgroup/$h/$CGROUP" && echo $$ > "/sys/fs/cgroup/$h/$CGROUP/cgroup.procs" || exit 90
            confined=1
        done
        if [ $confined = 0 ]; then
            # pure cgroup v2
            [ -f /sys/fs/cgroup/cgroup.procs ] || exit 90
            mkdir -p "/sys/fs/cgroup/$CGROUP" && echo $$ > "/sys/fs/cgroup/$CGROUP/cgroup.procs" || exit 90
        fi
        echo "outer: confined to $(tr '\n' ' ' < /proc/self/cgroup)"
        exec unshare --mount --propagation private /bin/sh "$SCRATCH/boot.sh"
        """#

    /// In the private mount namespace: a tmpfs upper layer over `/`, the project's units, the
    /// built daemon at /usr/local/bin/tokend, the test unit; then boot it.
    static let boot = #"""
        #!/bin/sh
        set -eu
        B=$SCRATCH
        mkdir -p "$B/ovl" "$B/out"
        mount -t tmpfs -o mode=0755 tmpfs "$B/ovl" || exit 91
        mkdir -p "$B/ovl/upper" "$B/ovl/work" "$B/ovl/root"
        mount -t overlay overlay -o "lowerdir=/,upperdir=$B/ovl/upper,workdir=$B/ovl/work" "$B/ovl/root" || exit 91
        R=$B/ovl/root
        install -m 0755 "$TOKEND_BINARY" "$R/usr/local/bin/tokend"
        # The debug build links the Swift runtime from its RUNPATH; bring it along if the
        # overlay's lower layer (the root file system alone) does not show it.
        if [ -n "$SWIFT_LIBDIR" ] && [ ! -e "$R$SWIFT_LIBDIR/libswiftCore.so" ]; then
            mkdir -p "$R$SWIFT_LIBDIR" && cp -a "$SWIFT_LIBDIR"/*.so "$R$SWIFT_LIBDIR/"
        fi
        U=$UNITS_DIR
        install -m 0644 "$U/tokend.service" "$U/tokend.socket" "$U/tokend-admin.socket" "$R/etc/systemd/system/"
        install -m 0644 "$U/tokend.sysusers" "$R/usr/lib/sysusers.d/tokend.conf"
        install -m 0644 "$U/tokend.tmpfiles" "$R/usr/lib/tmpfiles.d/tokend.conf"
        mkdir -p "$R/etc/systemd/system/sockets.target.wants" "$R/etc/systemd/system/multi-user.target.wants"
        ln -sf /etc/systemd/system/tokend.socket "$R/etc/systemd/system/sockets.target.wants/tokend.socket"
        ln -sf /etc/systemd/system/tokend-admin.socket "$R/etc/systemd/system/sockets.target.wants/tokend-admin.socket"
        install -m 0755 "$B/inner.sh" "$R/usr/local/bin/tokend-inner-test"
        printf '%s\n' '[Unit]' 'Description=tokend integration test' 'After=multi-user.target' \
            '[Service]' 'Type=oneshot' 'ExecStart=/usr/local/bin/tokend-inner-test' \
            '[Install]' 'WantedBy=multi-user.target' > "$R/etc/systemd/system/tokend-inner-test.service"
        ln -sf /etc/systemd/system/tokend-inner-test.service "$R/etc/systemd/system/multi-user.target.wants/"
        exec systemd-nspawn --quiet --register=no --keep-unit --link-journal=no --uuid="$MACHINE_UUID" \
            --private-network -D "$R" --bind="$B/out:/out" -b
        """#

    /// Inside the booted container, as a oneshot unit: one file per fact in /out, a readable
    /// transcript in /out/transcript.txt, then power off.
    static let inner = #"""
        #!/bin/sh
        exec > /out/transcript.txt 2>&1
        set -x
        getent passwd tokend > /out/user.txt
        systemctl is-active tokend.socket tokend-admin.socket > /out/sockets.txt
        systemctl is-active tokend.service > /out/service-before.txt
        ls -la /run/tokend/
        # The first connection starts tokend (socket activation); curl waits for the answer.
        curl -sS -m 30 -o /out/healthz.body -w '%{http_code}' --unix-socket /run/tokend/tokend.sock http://localhost/healthz > /out/healthz.code
        i=0
        while [ $i -lt 200 ] && [ "$(systemctl is-active tokend.service)" != active ]; do i=$((i+1)); sleep 0.1; done
        systemctl is-active tokend.service > /out/service.txt
        systemctl show -p StatusText --value tokend.service > /out/status-text.txt
        curl -sS -m 10 -o /out/admin.body -w '%{http_code}' --unix-socket /run/tokend/admin.sock http://localhost/admin/status > /out/admin.code
        systemctl reload tokend.service; echo $? > /out/reload.rc
        # ExecReload= sends SIGHUP and returns. tokend's RELOADING=1 may reach systemd after
        # that, so "active" right after the reload proves nothing: wait for tokend's own word
        # that the reload ended (it sends READY=1 just after), then for "active".
        i=0
        while [ $i -lt 100 ] && ! journalctl -u tokend.service --no-pager -o cat | grep -q -e 'keyring reloaded' -e 'reload failed'; do i=$((i+1)); sleep 0.1; done
        i=0
        while [ $i -lt 100 ] && [ "$(systemctl is-active tokend.service)" != active ]; do i=$((i+1)); sleep 0.1; done
        systemctl is-active tokend.service > /out/service-after-reload.txt
        journalctl -u tokend.service --no-pager -o cat | grep -c 'keyring reloaded' > /out/reloaded.txt
        ls -la /run/tokend/ /var/lib/tokend /var/lib/tokend/keys
        systemctl status tokend.service --no-pager -n 0
        systemctl stop tokend.service
        systemctl show -p Result -p ExecMainStatus -p NRestarts tokend.service > /out/stopped.txt
        systemctl is-active tokend.socket > /out/socket-after-stop.txt
        journalctl -u tokend.service --no-pager -o cat | grep -v 'Failed to set thread priority' | tail -n 20
        # Structured entries (sd_journal_send), not just lines of a stderr stream.
        journalctl -u tokend.service --no-pager -o verbose | grep -E '^ +(LOGGER_LABEL|LISTENERS|CODE_FUNC)=' | sort -u > /out/journal-fields.txt
        systemd-analyze security tokend.service --no-pager | tail -n 1
        echo DONE > /out/done.txt
        systemctl poweroff
        """#
}

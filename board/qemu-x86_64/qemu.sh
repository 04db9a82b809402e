#!/bin/sh
# The outer QEMU of the qemu-x86_64 board: the appliance VM.
#   qemu.sh run   [options]   foreground, console on this terminal (Ctrl-A X quits)
#   qemu.sh start [options]   background; console in --console, pid in --pidfile
#   qemu.sh stop  [options]   `luoinit ctl poweroff` through --socket, then wait
#                             for QEMU to exit (killed after --timeout seconds)
# Options (defaults for build/qemu-x86_64):
#   --dir DIR  --kernel F  --initrd F|none  --state IMG  --socket PATH  --console FILE
#   --pidfile F  --accel kvm|tcg|FILE  --cmdline-file F  --append "EXTRA"
#               (--initrd none: a firmware image, its command line built in:
#               only EXTRA is passed; else the --cmdline-file's line and EXTRA)
#   --luoinit BIN  --qemu BIN  --timeout S
#   --qmp PATH  the outer QEMU's own QMP monitor (default: qmp.sock next to --socket):
#               system_powerdown presses the appliance's power button; the
#               WATCHDOG event says its watchdog fired
#   --net-port P  --net-peer-port Q  --net-ports FILE   (the uplink, below)
#   --esp IMG   boot through UEFI (OVMF, then systemd-boot) from this boot disk
#               (mkesp.sh) instead of --kernel/--initrd: the command line is
#               then the boot entry's (--append is refused). OVMF's variable
#               store is IMG.vars (made from OVMF_VARS_4M.fd when missing).
# Environment: LUOINIT_APPLIANCE_MEM (the appliance's RAM, default 3G).  --cpu MODEL (default max)
# Note: under TCG, -cpu max offers SVM, so KVM works in the appliance and
# "accel": "auto" VMs get KVM nested on emulated SVM (the heartbeat guest runs
# fine that way); --cpu max,svm=off keeps the inner VMs on TCG.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
mode=${1:?usage: qemu.sh run|start|stop [options]}
shift
dir=$top/build/qemu-x86_64
kernel="" initrd="" state="" sock="" console="" pidfile="" accel="" qmp=""
cmdline_file=$here/cmdline extra="" luoinit=$top/build/luoinit
qemu=${QEMU:-/usr/bin/qemu-system-x86_64} timeout_s=90 cpu=max
net_port=10100 net_peer_port=10101 net_ports="" esp=""
ovmf=/usr/share/OVMF
while [ $# -gt 0 ]; do
	case "$1" in
	--dir) dir=$2 ;;
	--kernel) kernel=$2 ;;
	--initrd) initrd=$2 ;;
	--state) state=$2 ;;
	--socket) sock=$2 ;;
	--console) console=$2 ;;
	--pidfile) pidfile=$2 ;;
	--accel) accel=$2 ;;
	--cmdline-file) cmdline_file=$2 ;;
	--append) extra=$2 ;;
	--luoinit) luoinit=$2 ;;
	--qemu) qemu=$2 ;;
	--timeout) timeout_s=$2 ;;
	--cpu) cpu=$2 ;;
	--qmp) qmp=$2 ;;
	--net-port) net_port=$2 ;;
	--net-peer-port) net_peer_port=$2 ;;
	--net-ports) net_ports=$2 ;;
	--esp) esp=$2 ;;
	*) echo "qemu.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift 2
done
: "${kernel:=$dir/bzImage.signed}" "${initrd:=$dir/initramfs.img}" "${state:=$dir/state.img}"
: "${sock:=$dir/mgmt.sock}" "${console:=$dir/console.log}" "${pidfile:=$dir/qemu.pid}"
: "${accel:=$dir/accel}" "${qmp:=$(dirname "$sock")/qmp.sock}"
[ -f "$accel" ] && accel=$(cat "$accel")
case "$accel" in kvm|tcg) ;; *) accel=tcg ;; esac

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

if [ "$mode" = stop ]; then
	if ! running; then
		echo "qemu.sh: not running (no live pid in $pidfile)" >&2
		rm -f "$pidfile"
		exit 0
	fi
	pid=$(cat "$pidfile")
	timeout 30 "$luoinit" ctl --socket "$sock" poweroff >/dev/null ||
		echo "qemu.sh: poweroff request failed" >&2
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt "$timeout_s" ]; do sleep 1; i=$((i + 1)); done
	if kill -0 "$pid" 2>/dev/null; then
		echo "qemu.sh: QEMU $pid still running after ${timeout_s}s: killing it" >&2
		kill "$pid" 2>/dev/null || true
		sleep 2
		kill -9 "$pid" 2>/dev/null || true
		rm -f "$pidfile"
		exit 1
	fi
	rm -f "$pidfile"
	exit 0
fi

# --initrd none: a firmware image, its initramfs built in (make image).
if [ -n "$esp" ]; then
	kernel=none initrd=none
	[ -z "$(echo "$extra" | tr -d ' ')" ] ||
		{ echo "qemu.sh: --append with --esp: the command line is the boot entry's" >&2; exit 2; }
	for f in "$esp" "$ovmf/OVMF_CODE_4M.fd" "$ovmf/OVMF_VARS_4M.fd"; do
		[ -f "$f" ] || { echo "qemu.sh: missing $f (make deps: ovmf)" >&2; exit 1; }
	done
	[ -f "$esp.vars" ] || cp "$ovmf/OVMF_VARS_4M.fd" "$esp.vars"
fi
for f in "$kernel" "$initrd" "$state"; do
	[ "$f" = none ] && { [ "$f" = "$initrd" ] || [ -n "$esp" ]; } && continue
	[ -f "$f" ] || { echo "qemu.sh: missing $f" >&2; exit 1; }
done
# A firmware image (--initrd none) has its command line built in (make
# image): only --append is added to it. A kernel apart gets the board's line.
if [ "$initrd" = none ]; then
	append=$extra
else
	append=$(grep -v '^#' "$cmdline_file" | tr '\n' ' ')
	append="${append% } $extra"
fi

set -- -nodefaults -no-user-config -display none -name luoinit-appliance \
	-machine q35 -accel "$accel" -cpu "$cpu" -smp 2 -m "${LUOINIT_APPLIANCE_MEM:-3G}"
if [ -n "$esp" ]; then
	# The boot disk first: OVMF would otherwise try the NIC's PXE too.
	set -- "$@" -drive "if=pflash,format=raw,unit=0,readonly=on,file=$ovmf/OVMF_CODE_4M.fd" \
		-drive "if=pflash,format=raw,unit=1,file=$esp.vars" \
		-drive "file=$esp,format=raw,if=none,id=esp,cache=writeback" \
		-device virtio-blk-pci,drive=esp,bootindex=0
else
	set -- "$@" -kernel "$kernel" -append "$append"
fi
set -- "$@" \
	-drive "file=$state,format=raw,if=none,id=state,cache=writeback" \
	-device virtio-blk-pci,drive=state \
	-object rng-random,id=rng0,filename=/dev/urandom -device virtio-rng-pci,rng=rng0 \
	-device virtio-serial-pci,id=vser0 \
	-chardev "socket,id=mgmt,path=$sock,server=on,wait=off" \
	-device virtserialport,bus=vser0.0,chardev=mgmt,name=luoinit.mgmt
[ "$initrd" = none ] || set -- "$@" -initrd "$initrd"

# --- watchdog, power button, outer QMP (issue 15, boot assessment) ---
# The appliance's hardware watchdog: luoinit arms and feeds it; when it
# fires QEMU resets the machine (a cold boot). The power button needs
# nothing here: q35's ACPI has it; `system_powerdown` on this monitor presses it.
set -- "$@" -device i6300esb -action watchdog=reset \
	-qmp "unix:$qmp,server=on,wait=off"
# --- networking (issue 13): the appliance's uplink NIC, eth0 inside ---
# Each frame it sends goes as one UDP datagram to 127.0.0.1:$net_peer_port;
# datagrams to 127.0.0.1:$net_port come in as frames (tests/netwatch.py is
# the other end). The ports are written to --net-ports for tools to find.
case "$net_port$net_peer_port" in *[!0-9]*|"") echo "qemu.sh: bad net ports" >&2; exit 2 ;; esac
set -- "$@" -netdev "dgram,id=uplink,local.type=inet,local.host=127.0.0.1,local.port=$net_port,remote.type=inet,remote.host=127.0.0.1,remote.port=$net_peer_port" \
	-device virtio-net-pci,netdev=uplink,romfile=
write_net_ports() {
	printf 'BOARD_NET_PORT=%s\nBOARD_NET_PEER_PORT=%s\n' "$net_port" "$net_peer_port" > "${net_ports:-$dir/net-ports}"
}
# --- end of networking ---

case "$mode" in
run)
	write_net_ports
	exec "$qemu" "$@" -serial mon:stdio ;;
start)
	if running; then
		echo "qemu.sh: already running (pid $(cat "$pidfile"))" >&2
		exit 1
	fi
	rm -f "$sock" "$qmp" "$pidfile"
	: > "$console"
	write_net_ports
	"$qemu" "$@" -serial "file:$console" -daemonize -pidfile "$pidfile"
	echo "qemu.sh: started ($accel), pid $(cat "$pidfile"), console $console, socket $sock, qmp $qmp" ;;
*)
	echo "qemu.sh: unknown mode $mode" >&2; exit 2 ;;
esac

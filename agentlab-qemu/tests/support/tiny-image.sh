#!/bin/sh
# Builds the tiny test image into $1: `vmlinuz` (Debian's cloud kernel), an empty
# `disk.qcow2` (the overlays' backing file) and `initrd.img` (a
# busybox initramfs with the kernel's virtio modules and the real qemu-guest-agent from
# Debian, its libraries copied from this host). The guest's /init loads the modules, sets the
# address from the kernel command line (agentlab.ip=ADDR/PREFIX agentlab.gw=GATEWAY), makes
# /run/agentlab/secrets a tmpfs and runs qemu-ga on the guest-agent port. Needs apt-get
# (Debian's mirror), dpkg-deb, busybox-static and cpio.
set -eu
out=$1
mkdir -p "$out"
cd "$out"
work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1 || apt-get update -qq
kpkg=$(apt-cache depends linux-image-cloud-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -n1)
[ -n "$kpkg" ] || { echo "no kernel package behind linux-image-cloud-amd64 (apt-get update?)" >&2; exit 1; }
apt-get download -q "$kpkg" qemu-guest-agent >/dev/null 2>&1 || apt-get download "$kpkg" qemu-guest-agent
dpkg-deb -x linux-image-*.deb k
dpkg-deb -x qemu-guest-agent_*.deb ga
ver=$(ls k/lib/modules)
r=root
mkdir -p $r/bin $r/sbin $r/lib/modules $r/proc $r/sys $r/dev $r/run $r/tmp $r/etc $r/lib64 $r/usr/sbin
cp /bin/busybox $r/bin/busybox
for m in virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_mmio \
         failover net_failover virtio_net virtio_console virtio_blk; do
  f=$(find k/lib/modules/"$ver" -name "$m.ko*" | head -n1)
  [ -n "$f" ] && cp "$f" $r/lib/modules/
done
cp ga/usr/sbin/qemu-ga $r/usr/sbin/qemu-ga
for lib in $(ldd ga/usr/sbin/qemu-ga | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
  mkdir -p "$r$(dirname "$lib")"
  cp -L "$lib" "$r$lib"
done
cat > $r/sbin/shutdown <<'SH'
#!/bin/busybox sh
sync
/bin/busybox poweroff -f
SH
cat > $r/init <<'SH'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_mmio \
         failover net_failover virtio_net virtio_console virtio_blk; do
  [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko
done
for kv in $(cat /proc/cmdline); do
  case $kv in
    agentlab.ip=*) ip_addr=${kv#*=} ;;
    agentlab.gw=*) gw=${kv#*=} ;;
  esac
done
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
if [ -n "${ip_addr:-}" ]; then
  ip addr add "$ip_addr" dev eth0
  ip link set eth0 up
  [ -n "${gw:-}" ] && ip route add default via "$gw"
fi
mkdir -p /run/agentlab/secrets
mount -t tmpfs -o mode=0700,size=16m secrets /run/agentlab/secrets
port=
i=0
while [ -z "$port" ] && [ $i -lt 200 ]; do
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] && port=/dev/${p##*/}
  done
  [ -z "$port" ] && sleep 0.1
  i=$((i+1))
done
echo "tiny: network ${ip_addr:-none}, guest agent on ${port:-nothing}" > /dev/console
while true; do
  /usr/sbin/qemu-ga -m virtio-serial -p "$port" -f /run/qemu-ga.pid -t /run
  sleep 1
done
SH
chmod 755 $r/init $r/sbin/shutdown
(cd $r && find . | cpio -o -H newc --quiet | gzip -1) > initrd.img
cp k/boot/vmlinuz-* vmlinuz
qemu-img create -q -f qcow2 disk.qcow2 256M
mv initrd.img vmlinuz disk.qcow2 "$out/"
echo "$ver" > "$out/kernel-version"

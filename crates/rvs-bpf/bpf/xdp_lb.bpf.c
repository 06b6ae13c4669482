// SPDX-License-Identifier: GPL-2.0
/* rvs XDP packet engine: IPVS's forwarding methods (gate = direct routing, masq = NAT,
 * tunnel = IP-in-IP) for established flows, in XDP. First packets of flows go to rvsd through
 * the rvs_newflows ring buffer; rvsd schedules them and hands them back with a verdict in the
 * XDP metadata (BPF_PROG_TEST_RUN, live frames). The maps are described in xdp_maps.h.
 *
 * What happens to a frame (stat = the rvs_stats index counted):
 *
 *   frame                                             action      stat
 *   ------------------------------------------------  ----------  ----------------------
 *   shorter than an Ethernet header                   DROP        DROP_MALFORMED
 *   not IPv4/IPv6, or 802.1Q/802.1ad tagged (VLANs    PASS        PASS
 *     are left to the kernel: rvs does not skip tags)
 *   IPv4: header truncated, version != 4, IHL < 5,    DROP        DROP_MALFORMED
 *     tot_len < IHL*4 or tot_len > the frame
 *   IPv4: IHL > 5 (IP options)                        PASS        PASS_UNHANDLED
 *   IPv4: a fragment (MF set or offset != 0)          PASS        PASS_UNHANDLED
 *   IPv6: header truncated, version != 6,             DROP        DROP_MALFORMED
 *     40 + payload_len > the frame
 *   IPv6: an extension header next (hop-by-hop,       PASS        PASS_UNHANDLED
 *     routing, fragment, ESP, AH, dest opts, ...)
 *   neither TCP, UDP, SCTP nor ICMP/ICMPv6            PASS        PASS
 *   TCP/UDP/SCTP/ICMP header truncated (frame or IP   DROP        DROP_MALFORMED
 *     len), TCP doff < 5 or beyond the IP packet, SCTP
 *     without its common header (12 bytes) and first
 *     chunk header (4) (as IPVS, which drops them)
 *   (IP length is tot_len / 40 + payload_len: Ethernet padding after it is ignored, and
 *   forwarded along unchanged)
 *
 *   TCP/UDP/SCTP to a virtual service (rvs_services: the destination port's, else the address's
 *   all-port service, port 0, whose flows keep the port; a service with
 *   RVS_SVC_F_EACH_PACKET takes every datagram as one without a live flow):
 *     live flow, dest available                       forwarded   FORWARDED
 *     live flow, dest not available                   DROP        DROP_NODEST
 *       (with RVS_CFG_F_EXPIRE_NODEST_CONN the flow is deleted instead, and the packet goes
 *       on as one without a flow)
 *     no live flow (none, or expired: then deleted):
 *       TCP without SYN, or with RST                  PASS        PASS_UNHANDLED
 *         (a SYN with ACK starts one, as in IPVS: a client's answer to an active FTP data
 *         connection a real server opened from the VIP)
 *       SCTP whose first chunk is not INIT            PASS        PASS_UNHANDLED
 *       SYN / UDP / INIT, metadata verdict SCHEDULED  flow made, forwarded (dest conns + 1)
 *       SYN / UDP / INIT, metadata verdict REJECT     TX ICMP port unreachable   REJECTED
 *       SYN / UDP / INIT, no verdict                  DROP, ring event   NEWFLOW
 *         frame > RVS_NEWFLOW_MAX_FRAME               DROP        NEWFLOW_TOO_LONG
 *         ring buffer full                            DROP        NEWFLOW_RINGBUF_FULL
 *   TCP/UDP/SCTP from a masq real server (rvs_reverse, source -> VIP, forwarded to the client
 *     a flow whose dest is that address and port)     (FORWARDED); else PASS (PASS)
 *   FTP on masq (a service with RVS_SVC_F_FTP): its control connections' packets are read
 *     and adjusted before NAT, and TCP to no service or from no masq service's port may be an
 *     FTP data connection (see "the FTP helper on masq" below; off with RVS_CFG_F_NO_FTP)
 *   ICMP dest unreachable / time exceeded (v4), dest unreachable / packet too big / time
 *     exceeded (v6) about a flow:
 *     to the VIP, embedded VIP:vport -> client:cport  forwarded to the flow's real server by
 *                                                     its method (masq: outer destination and
 *                                                     embedded source -> RIP:rport)
 *     embedded client:cport -> RIP:rport of a masq    outer source and embedded destination
 *       flow                                          -> VIP:vport, forwarded to the client
 *                                                     both: FORWARDED and ICMP_FORWARDED
 *     anything else ICMP                              PASS        PASS
 *   everything else                                   PASS        PASS
 *
 *   Forwarding (bpf_fib_lookup towards the real server, or the client for replies, with the
 *   packet's length as it will leave):
 *     success                                         MACs set; TX if the egress is the
 *                                                     ingress, else redirect
 *     FRAG_NEEDED, client packet, IPv4 with DF / IPv6 TX ICMP frag needed (MTU - overhead)
 *                                                     / packet too big    FRAG_NEEDED
 *     FRAG_NEEDED, IPv4 without DF, ICMP error or     DROP        DROP_TOO_BIG
 *       masq reply
 *     NO_NEIGH                                        DROP, ring event (RVS_NEWFLOW_NEIGH)
 *                                                                 NO_NEIGH
 *     any other failure                               DROP        FIB_FAILED
 *   (the kernel's fib lookup needs forwarding enabled on the ingress interface: without it
 *   every lookup fails, FIB_FAILED)
 *
 * ICMP errors this program builds (port unreachable, frag needed, packet too big) come from
 * the VIP to the client, TTL/hop limit 64, and embed the client packet's IP header and the
 * first 8 bytes after it (RFC 792's minimum; for IPv6 the same 40 + 8 bytes), which is all a
 * TCP/UDP stack reads of them. Embedded L4 checksums are not rewritten when an ICMP error is
 * NATed (as IPVS).
 *
 * SCTP's checksum (CRC32c) covers the SCTP packet alone, no pseudo-header: a masq rewrite of
 * addresses leaves it as it is, and one of a port (a real server port other than the VIP's)
 * updates it incrementally (sctp_port_update: CRC32c is linear, so the change is the CRC of the
 * changed bits shifted over the rest of the packet: a product of a few polynomials modulo
 * CRC32c's, no pass over the payload). Gate and tunnel change nothing the CRC covers.
 *
 * Connection state: IPVS's TCP state tables (ip_vs_proto_tcp.c) and SCTP state tables
 * (ip_vs_proto_sctp.c, driven by the first chunk's type; a COOKIE ECHO or COOKIE ACK with an
 * ABORT bundled after it counts as the ABORT): for gate and tunnel the input-only table on the
 * client's packets; for masq the input table on the client's packets and the output table on
 * the real server's replies. A flow's entry is written only when its
 * state changes or last_seen is older than min(1024 ticks (~1 s), timeout / 8); expiry is
 * now - last_seen > timeout_ms[state] in ticks (CLOCK_MONOTONIC_COARSE ns >> 20; a stamp up
 * to AHEAD_TICKS ahead, rvsd's fine clock, is now), wrap-safe in u32. A timeout of 0 expires
 * a flow at once: rvsd (PacketProgram::load) writes IPVS's defaults first.
 *
 * The fast path (what an established flow's packets cost, see rvs_flow_cache and
 * rvs_nexthops): hash lookups (~50 ns each here) and helper calls are what a packet pays
 * for, so an established flow's packet that changes nothing in its entry is forwarded from
 * two per-CPU caches, with no hash lookup, no clock read (jiffies, inlined) and no
 * bpf_fib_lookup: the flow (key, dest, state) as the program last read it, for a window of
 * at most its write-back interval, and the real server's next hop as bpf_fib_lookup last gave
 * it (refilled at least every NEXTHOP_JIFFIES; an unresolved neighbour is never cached). Any
 * other packet takes the lookups as the table above says (service, then flow) and refills
 * them. rvs_config.cache_gen (bumped by the loader after it writes flows, real servers or
 * services) drops both at once. RVS_CFG_F_NO_MASQ skips the masq reply lookups.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xdp_maps.h"

#define AF_INET 2
#define AF_INET6 10

#define ETH_LEN 14
#define IP4_LEN 20
#define IP6_LEN 40
#define L4_V4 (ETH_LEN + IP4_LEN) /* IPv4 without options only */
#define L4_V6 (ETH_LEN + IP6_LEN)

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

#define IP_DF 0x4000

/* linux/icmp.h pulls in libc's socket headers, which a BPF target lacks. */
struct icmphdr {
	__u8 type;
	__u8 code;
	__u16 checksum;
	union {
		struct {
			__u16 __unused;
			__u16 mtu;
		} frag;
		__u32 gateway;
	} un;
};
#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PORT_UNREACH 3
#define ICMP_FRAG_NEEDED 4

/* ICMP errors built here: the IP header and 8 bytes of the packet they are about. */
#define ICMP4_EMBED (IP4_LEN + 8)
#define ICMP6_EMBED (IP6_LEN + 8)
#define ICMP4_FRAME (ETH_LEN + IP4_LEN + 8 + ICMP4_EMBED) /* 70 */
#define ICMP6_FRAME (ETH_LEN + IP6_LEN + 8 + ICMP6_EMBED) /* 110 */

/* Write a flow back at least this often (ticks) while packets flow. */
#define REFRESH_TICKS 1024

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RVS_MAX_SERVICES);
	__type(key, struct rvs_service_key);
	__type(value, struct rvs_service);
} rvs_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RVS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct rvs_service_info);
} rvs_service_info SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RVS_MAX_DESTS);
	__type(key, __u32);
	__type(value, struct rvs_dest);
} rvs_dests SEC(".maps");

/* max_entries is set by the loader (PacketProgram::load). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct rvs_conn_key);
	__type(value, struct rvs_conn);
} rvs_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RVS_MAX_DESTS);
	__type(key, __u32);
	__type(value, struct rvs_dest_counters);
} rvs_dest_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RVS_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} rvs_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rvs_config);
} rvs_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} rvs_newflows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RVS_MAX_DESTS);
	__type(key, struct rvs_reverse_key);
	__type(value, struct rvs_reverse);
} rvs_reverse SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, RVS_MAX_MARK_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct rvs_mark_key);
	__type(value, struct rvs_mark_ports);
} rvs_marks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RVS_MARK_REPLY_ENTRIES);
	__type(key, struct rvs_conn_key);
	__type(value, struct rvs_mark_reply);
} rvs_mark_replies SEC(".maps");

/* The next hop to a real server as bpf_fib_lookup last gave it, per CPU, by dest id: the
 * program's own (rvsd neither reads nor writes it). An entry is used only while it is for the
 * same real server address and method, the same ingress interface, rvs_config.cache_gen is
 * what it was, it is younger than NEXTHOP_JIFFIES, and the packet fits the route's MTU; otherwise
 * the packet takes bpf_fib_lookup (whose failures, NO_NEIGH included, are never cached) and a
 * success refills the entry. As IPVS's per-dest route cache, the client's source address is
 * not part of it: policy routing by client source is seen only at fills. */
struct rvs_nexthop {
	__u32 addr[4];  /* the real server it was looked up for */
	__u32 iif;      /* the ingress interface of the lookup */
	__u32 oif;      /* where the lookup sends it */
	__u32 stamp;    /* jiffies (low 32 bits) at the fill */
	__u32 gen;      /* rvs_config.cache_gen at the fill */
	__u16 mtu;      /* the route's MTU (0xffff: at least that) */
	__u8 method;    /* RVS_FWD_* it was looked up for (tunnel: another source, protocol) */
	__u8 valid;
	__u32 _pad;
	/* The new Ethernet addresses as they go in the frame: destination, then source (one
	 * 8-byte and one 4-byte copy rather than twelve of a byte). */
	__u8 mac[2 * ETH_ALEN] __attribute__((aligned(8)));
};

/* Refill a cached next hop at least this often (jiffies: 1 s at HZ 100, 0.1 s at HZ 1000). */
#define NEXTHOP_JIFFIES 100

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RVS_MAX_DESTS);
	__type(key, __u32);
	__type(value, struct rvs_nexthop);
} rvs_nexthops SEC(".maps");

/* Flows as the program last read them from rvs_conns, per CPU, in a direct-mapped table (slot
 * = a hash of the key): the program's own. An established flow's packet that changes nothing
 * in its entry (same state, last_seen younger than the refresh interval: the packets the flow
 * write throttle would not write for) is forwarded from here without the rvs_conns lookup;
 * any other packet, a different rvs_config.cache_gen, or another key in the slot takes the
 * lookup (and refills the slot). So rvs_conns is written exactly as without it, and a
 * cached flow is never one expired there (refresh <= timeout / 8); only the LRU's recently
 * used mark of an established flow is set once per refresh interval rather than per packet. */
#define FLOW_CACHE_BITS 13
struct rvs_flow_cache {
	struct rvs_conn_key key;
	__u32 dest;
	__u32 jif;    /* jiffies (low 32 bits) at the fill */
	__u32 window; /* jiffies it may be used for */
	__u32 gen;    /* rvs_config.cache_gen at the fill */
	__u8 state;
	__u8 valid;
	__u8 ack_keeps; /* an ACK leaves the state as it is (TCP) */
	__u8 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1 << FLOW_CACHE_BITS);
	__type(key, __u32);
	__type(value, struct rvs_flow_cache);
} rvs_flow_cache SEC(".maps");

/* What the parser found. Addresses in network order, IPv4 in [0]. */
struct pkt {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;
	__u16 dport;
	__u16 ip_len;  /* the IP packet's length */
	__u8 proto;    /* IPPROTO_TCP, _UDP, _ICMP, _ICMPV6 */
	__u8 v6;
	__u8 tcp_flags;
	__u8 df;       /* IPv4 DF set (always 1 for IPv6: it is never fragmented on the way) */
	__u8 family;   /* RVS_FAMILY_* */
	__u8 sctp_ev;  /* SCTP: the event of its first chunk (SCTP_EV_*) */
};

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&rvs_stats, &idx);
	if (v)
		*v += 1;
}

static __always_inline int count(__u32 idx, int action)
{
	stat_inc(idx);
	return action;
}

/* CLOCK_MONOTONIC_COARSE (the last timer tick's CLOCK_MONOTONIC: no clock source read, a few
 * ns instead of ~30 for bpf_ktime_get_ns here) in ticks of 2^20 ns. */
static __always_inline __u32 now_ticks(void)
{
	return (__u32)(bpf_ktime_get_coarse_ns() >> 20);
}

/* How far a stamp may be ahead of now_ticks() and count as now: rvsd stamps with the fine
 * clock, which runs up to a timer tick (1-10 ms) ahead of the coarse one. */
#define AHEAD_TICKS 64

/* Ticks from stamp t to now, wrap-safe in u32; a stamp just ahead (AHEAD_TICKS) is 0. */
static __always_inline __u32 since(__u32 now, __u32 t)
{
	__u32 d = now - t;
	return d > (__u32)-AHEAD_TICKS ? 0 : d;
}

static __always_inline __u32 ms_to_ticks(__u32 ms)
{
	return (__u32)(((__u64)ms * 1000000) >> 20);
}

/* ---- checksums (ones' complement sums are byte-order independent: raw memory words) ---- */

static __always_inline __u16 csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* RFC 1624: HC' = ~(~HC + ~m + m'). */
static __always_inline void csum_replace4(__u16 *sum, __u32 from, __u32 to)
{
	__u32 nf = ~from;
	__u32 s = (__u16)~*sum;
	s += (nf & 0xffff) + (nf >> 16) + (to & 0xffff) + (to >> 16);
	*sum = ~csum_fold(s);
}

static __always_inline void csum_replace2(__u16 *sum, __u16 from, __u16 to)
{
	__u32 s = (__u16)~*sum;
	s += (__u16)~from + to;
	*sum = ~csum_fold(s);
}

static __always_inline __u32 csum_words(const __u16 *w, int n, __u32 s)
{
#pragma unroll
	for (int i = 0; i < n; i++)
		s += w[i];
	return s;
}

/* ---- small pieces ---- */

static __always_inline int addr_eq(const __u32 *a, const __u32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline void addr_copy(__u32 *dst, const __u32 *src)
{
	dst[0] = src[0];
	dst[1] = src[1];
	dst[2] = src[2];
	dst[3] = src[3];
}

/* IPVS's TCP state tables (ip_vs_proto_tcp.c): rows syn, fin, ack, rst; one nibble per current
 * state (NONE .. LAST_ACK, low nibble first). INPUT for a masq client's packets, OUTPUT for its
 * real server's replies, INPUT_ONLY where the replies do not pass the director (gate, tunnel).
 * INPUT and INPUT_ONLY differ in their fin row only. */
#define ROW_SYN 0x333333113ULL	   /* SR ES ES SR SR SR SR SR SR */
#define ROW_FIN_IN 0x876555276ULL  /* CL CW SS TW TW TW CL CW LA */
#define ROW_FIN_IO 0x876545246ULL  /* CL FW SS TW FW TW CL CW LA */
#define ROW_ACK 0x676541216ULL	   /* CL ES SS ES FW TW CL CW CL */
#define ROW_RST 0x866663666ULL	   /* CL CL CL SR CL CL CL CL LA */
#define ROW_SYN_OUT 0x222223212ULL /* SS ES SS SR SS SS SS SS SS */
#define ROW_FIN_OUT 0x856545245ULL /* TW FW SS TW FW TW CL TW LA */
#define ROW_ACK_OUT 0x876541211ULL /* ES ES SS ES FW TW CL CW LA */
#define ROW_RST_OUT 0x666566266ULL /* CL CL SS CL CL TW CL CL CL */

enum tcp_dir { TCP_DIR_INPUT, TCP_DIR_OUTPUT, TCP_DIR_INPUT_ONLY };

static __always_inline __u8 tcp_next_state(__u8 state, __u8 flags, enum tcp_dir dir)
{
	__u64 row;
	int out = dir == TCP_DIR_OUTPUT;
	if (flags & TCP_RST)
		row = out ? ROW_RST_OUT : ROW_RST;
	else if (flags & TCP_SYN)
		row = out ? ROW_SYN_OUT : ROW_SYN;
	else if (flags & TCP_FIN)
		row = out ? ROW_FIN_OUT : dir == TCP_DIR_INPUT ? ROW_FIN_IN : ROW_FIN_IO;
	else if (flags & TCP_ACK)
		row = out ? ROW_ACK_OUT : ROW_ACK;
	else
		return state;
	if (state > RVS_S_LAST_ACK)
		return state;
	return (row >> (state * 4)) & 0xf;
}

/* The table a client's packet to real server `d` follows. */
static __always_inline enum tcp_dir input_dir(const struct rvs_dest *d)
{
	return d->method == RVS_FWD_MASQ ? TCP_DIR_INPUT : TCP_DIR_INPUT_ONLY;
}

/* SCTP: the events of IPVS's SCTP state tables, from a packet's first chunk type (RFC 9260
 * section 3.2: DATA 0, INIT 1, INIT ACK 2, SACK 3, HEARTBEAT 4, HEARTBEAT ACK 5, ABORT 6,
 * SHUTDOWN 7, SHUTDOWN ACK 8, ERROR 9, COOKIE ECHO 10, COOKIE ACK 11, ECNE 12, CWR 13,
 * SHUTDOWN COMPLETE 14); any other chunk is DATA's event, as in IPVS. */
#define SCTP_CHUNK_INIT 1
#define SCTP_CHUNK_ABORT 6
#define SCTP_CHUNK_COOKIE_ECHO 10
#define SCTP_CHUNK_COOKIE_ACK 11
enum sctp_ev {
	SCTP_EV_DATA,
	SCTP_EV_INIT,
	SCTP_EV_INIT_ACK,
	SCTP_EV_COOKIE_ECHO,
	SCTP_EV_COOKIE_ACK,
	SCTP_EV_SHUTDOWN,
	SCTP_EV_SHUTDOWN_ACK,
	SCTP_EV_SHUTDOWN_COMPLETE,
	SCTP_EV_ERROR,
	SCTP_EV_ABORT,
};

static __always_inline __u8 sctp_event(__u8 chunk)
{
	switch (chunk) {
	case 1: return SCTP_EV_INIT;
	case 2: return SCTP_EV_INIT_ACK;
	case 6: return SCTP_EV_ABORT;
	case 7: return SCTP_EV_SHUTDOWN;
	case 8: return SCTP_EV_SHUTDOWN_ACK;
	case 9: return SCTP_EV_ERROR;
	case 10: return SCTP_EV_COOKIE_ECHO;
	case 11: return SCTP_EV_COOKIE_ACK;
	case 14: return SCTP_EV_SHUTDOWN_COMPLETE;
	}
	return SCTP_EV_DATA;
}

/* IPVS's SCTP state tables (ip_vs_proto_sctp.c), one row per direction and event: the next
 * state for each current state (NONE .. CLOSED, the IP_VS_SCTP_S_* numbers, low nibble
 * first). States: NO none, I1 init1, IN init, CS cookie sent, CR cookie replied, CW cookie
 * wait, CO cookie, CE cookie echoed, ES established, SS shutdown sent, SR shutdown received,
 * SA shutdown ack sent, RJ rejected, CL closed.
 *                                      from NO I1 IN CS CR CW CO CE ES SS SR SA RJ CL */
#define SCTP_IN_DATA 0xdcba9876543218ULL              /* ES I1 IN CS CR CW CO CE ES SS SR SA RJ CL */
#define SCTP_IN_INIT 0x22ba9876543221ULL              /* I1 IN IN CS CR CW CO CE ES SS SR SA IN IN */
#define SCTP_IN_INIT_ACK 0xdcba9876643555ULL          /* CW CW CW CS CR CO CO CE ES SS SR SA RJ CL */
#define SCTP_IN_COOKIE_ECHO 0xdcba9876544224ULL       /* CR IN IN CR CR CW CO CE ES SS SR SA RJ CL */
#define SCTP_IN_COOKIE_ACK 0xdcba9886543218ULL        /* ES I1 IN CS CR CW CO ES ES SS SR SA RJ CL */
#define SCTP_IN_SHUTDOWN 0xdcba9a7654321aULL          /* SR I1 IN CS CR CW CO CE SR SS SR SA RJ CL */
#define SCTP_IN_SHUTDOWN_ACK 0xdcdad87654322dULL      /* CL IN IN CS CR CW CO CE ES CL SR CL RJ CL */
#define SCTP_IN_SHUTDOWN_COMPLETE 0xdcda9876543dddULL /* CL CL CL CS CR CW CO CE ES SS SR CL RJ CL */
#define SCTP_IN_ERROR 0xdcba98d654321dULL             /* CL I1 IN CS CR CW CO CL ES SS SR SA RJ CL */
#define SCTP_IN_ABORT 0xddddddddcdddddULL             /* CL CL CL CL CL RJ CL CL CL CL CL CL CL CL */
#define SCTP_OUT_DATA 0xdcba9876543218ULL              /* ES I1 IN CS CR CW CO CE ES SS SR SA RJ CL */
#define SCTP_OUT_INIT 0x55555855555555ULL              /* CW CW CW CW CW CW CW CW ES CW CW CW CW CW */
#define SCTP_OUT_INIT_ACK 0xdcba9876543333ULL          /* CS CS CS CS CR CW CO CE ES SS SR SA RJ CL */
#define SCTP_OUT_COOKIE_ECHO 0xdcba9877777777ULL       /* CE CE CE CE CE CE CE CE ES SS SR SA RJ CL */
#define SCTP_OUT_COOKIE_ACK 0xdcba9888888888ULL        /* ES ES ES ES ES ES ES ES ES SS SR SA RJ CL */
#define SCTP_OUT_SHUTDOWN 0xdcba9999999999ULL          /* SS SS SS SS SS SS SS SS SS SS SR SA RJ CL */
#define SCTP_OUT_SHUTDOWN_ACK 0xdcbbb8765bbbbbULL      /* SA SA SA SA SA CW CO CE ES SA SA SA RJ CL */
#define SCTP_OUT_SHUTDOWN_COMPLETE 0xdcba987654321dULL /* CL I1 IN CS CR CW CO CE ES SS SR SA RJ CL */
#define SCTP_OUT_ERROR 0xdcba98765dddddULL             /* CL CL CL CL CL CW CO CE ES SS SR SA RJ CL */
#define SCTP_OUT_ABORT 0xddddddddddddcdULL             /* CL RJ CL CL CL CL CL CL CL CL CL CL CL CL */
#define SCTP_IO_DATA 0xdcba9876843218ULL              /* ES I1 IN CS CR ES CO CE ES SS SR SA RJ CL */
#define SCTP_IO_INIT 0x22ba9876222221ULL              /* I1 IN IN IN IN IN CO CE ES SS SR SA IN IN */
#define SCTP_IO_INIT_ACK 0xdcba9876777777ULL          /* CE CE CE CE CE CE CO CE ES SS SR SA RJ CL */
#define SCTP_IO_COOKIE_ECHO 0xdcba9876888888ULL       /* ES ES ES ES ES ES CO CE ES SS SR SA RJ CL */
#define SCTP_IO_COOKIE_ACK 0xdcba9888588218ULL        /* ES I1 IN ES ES CW ES ES ES SS SR SA RJ CL */
#define SCTP_IO_SHUTDOWN 0xdcba9a7654321aULL          /* SR I1 IN CS CR CW CO CE SR SS SR SA RJ CL */
#define SCTP_IO_SHUTDOWN_ACK 0xdcdadd7654322dULL      /* CL IN IN CS CR CW CO CE CL CL SR CL RJ CL */
#define SCTP_IO_SHUTDOWN_COMPLETE 0xdcdd98765dddddULL /* CL CL CL CL CL CW CO CE ES SS CL CL RJ CL */
#define SCTP_IO_ERROR 0xdcba987654321dULL             /* CL I1 IN CS CR CW CO CE ES SS SR SA RJ CL */
#define SCTP_IO_ABORT 0xddddddddcdddddULL             /* CL CL CL CL CL RJ CL CL CL CL CL CL CL CL */

static __always_inline __u64 sctp_row(__u8 ev, enum tcp_dir dir)
{
	int in = dir == TCP_DIR_INPUT, out = dir == TCP_DIR_OUTPUT;
#define SCTP_PICK(E) (out ? SCTP_OUT_##E : in ? SCTP_IN_##E : SCTP_IO_##E)
	if (ev == SCTP_EV_INIT)
		return SCTP_PICK(INIT);
	if (ev == SCTP_EV_INIT_ACK)
		return SCTP_PICK(INIT_ACK);
	if (ev == SCTP_EV_COOKIE_ECHO)
		return SCTP_PICK(COOKIE_ECHO);
	if (ev == SCTP_EV_COOKIE_ACK)
		return SCTP_PICK(COOKIE_ACK);
	if (ev == SCTP_EV_SHUTDOWN)
		return SCTP_PICK(SHUTDOWN);
	if (ev == SCTP_EV_SHUTDOWN_ACK)
		return SCTP_PICK(SHUTDOWN_ACK);
	if (ev == SCTP_EV_SHUTDOWN_COMPLETE)
		return SCTP_PICK(SHUTDOWN_COMPLETE);
	if (ev == SCTP_EV_ERROR)
		return SCTP_PICK(ERROR);
	if (ev == SCTP_EV_ABORT)
		return SCTP_PICK(ABORT);
	return SCTP_PICK(DATA);
#undef SCTP_PICK
}

static __always_inline __u8 sctp_next_state(__u8 state, __u8 ev, enum tcp_dir dir)
{
	if (state < RVS_S_SCTP_NONE || state > RVS_S_SCTP_CLOSED)
		return state;
	return RVS_S_SCTP + ((sctp_row(ev, dir) >> ((state - RVS_S_SCTP) * 4)) & 0xf);
}

/* A packet's next state in the table of direction `dir` (UDP: RVS_S_UDP). */
static __always_inline __u8 next_state(const struct pkt *p, __u8 state, enum tcp_dir dir)
{
	if (p->proto == IPPROTO_TCP)
		return tcp_next_state(state, p->tcp_flags, dir);
	if (p->proto == IPPROTO_SCTP)
		return sctp_next_state(state, p->sctp_ev, dir);
	return RVS_S_UDP;
}

static __always_inline __u32 state_timeout(const struct rvs_config *cfg, __u8 state)
{
	if (!cfg)
		return 0;
	__u32 i = state;
	if (i >= RVS_S_COUNT)
		i = RVS_S_NONE;
	return ms_to_ticks(cfg->timeout_ms[i]);
}

static __always_inline void dest_count(__u32 id, __u16 len, int out, int conn)
{
	struct rvs_dest_counters *c = bpf_map_lookup_elem(&rvs_dest_counters, &id);
	if (!c)
		return;
	if (conn)
		c->conns += 1;
	if (out) {
		c->packets_out += 1;
		c->bytes_out += len;
	} else {
		c->packets_in += 1;
		c->bytes_in += len;
	}
}

/* ---- ring buffer events ---- */

static __always_inline int newflow(struct xdp_md *ctx, const struct rvs_conn_key *key, __u32 service)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = data_end - data;
	if (len > RVS_NEWFLOW_MAX_FRAME)
		return count(RVS_STAT_NEWFLOW_TOO_LONG, XDP_DROP);
	struct rvs_newflow *ev = bpf_ringbuf_reserve(&rvs_newflows, sizeof(*ev), 0);
	if (!ev)
		return count(RVS_STAT_NEWFLOW_RINGBUF_FULL, XDP_DROP);
	__builtin_memcpy(&ev->key, key, sizeof(*key));
	ev->service = service;
	ev->ifindex = ctx->ingress_ifindex;
	ev->rx_queue = ctx->rx_queue_index;
	ev->len = len;
	ev->_pad = 0;
	/* Keep the verifier's view of len bounded (the compiler may reuse an unbounded copy). */
	__u64 n = len;
	asm volatile("" : "+r"(n));
	if (n < 1 || n > RVS_NEWFLOW_MAX_FRAME || bpf_xdp_load_bytes(ctx, 0, ev->frame, n) < 0) {
		bpf_ringbuf_discard(ev, 0);
		return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
	}
	bpf_ringbuf_submit(ev, 0);
	return count(RVS_STAT_NEWFLOW, XDP_DROP);
}

static __always_inline int no_neigh(struct xdp_md *ctx, const struct bpf_fib_lookup *f, int v6)
{
	struct rvs_newflow *ev = bpf_ringbuf_reserve(&rvs_newflows, sizeof(*ev), 0);
	if (ev) {
		__builtin_memset(&ev->key, 0, sizeof(ev->key));
		if (v6) {
			ev->key.vip[0] = f->ipv6_dst[0];
			ev->key.vip[1] = f->ipv6_dst[1];
			ev->key.vip[2] = f->ipv6_dst[2];
			ev->key.vip[3] = f->ipv6_dst[3];
		} else {
			ev->key.vip[0] = f->ipv4_dst;
		}
		ev->key.family = v6 ? RVS_FAMILY_V6 : RVS_FAMILY_V4;
		ev->service = RVS_NEWFLOW_NEIGH;
		ev->ifindex = f->ifindex;
		ev->rx_queue = ctx->rx_queue_index;
		ev->len = 0;
		ev->_pad = 0;
		bpf_ringbuf_submit(ev, 0);
	} else {
		stat_inc(RVS_STAT_NEWFLOW_RINGBUF_FULL);
	}
	return count(RVS_STAT_NO_NEIGH, XDP_DROP);
}

/* ---- ICMP errors built here ---- */

/* Reshapes the frame for an ICMP error sent back where it came from: `grow` bytes of new
 * headers in front (an IP header and the ICMP header), the whole cut to `frame` bytes (what the
 * error embeds of the original), the MACs swapped (`smac`/`dmac` as the reply sends them) and
 * the Ethernet type set. 0 when done; the caller re-reads ctx->data and checks `frame` bytes. */
static __always_inline int reply_frame(struct xdp_md *ctx, int grow, int frame, const __u8 *smac,
				       const __u8 *dmac, __u16 proto)
{
	if (bpf_xdp_adjust_head(ctx, -grow))
		return -1;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	int extra = (int)(data_end - data) - frame;
	if (extra > 0 && bpf_xdp_adjust_tail(ctx, -extra))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + ETH_LEN > data_end)
		return -1;
	struct ethhdr *eth = data;
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	eth->h_proto = bpf_htons(proto);
	return 0;
}

/* Turns the frame (an IPv4 packet from a client, without options) into an ICMP error from
 * its destination back to its source, to be sent with XDP_TX. */
static __always_inline int icmp4_reply(struct xdp_md *ctx, __u8 type, __u8 code, __u16 mtu)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (data + ICMP4_FRAME - (IP4_LEN + 8) > data_end)
		return XDP_DROP;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_LEN;
	__u8 smac[ETH_ALEN], dmac[ETH_ALEN];
	__builtin_memcpy(smac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(dmac, eth->h_source, ETH_ALEN);
	__u32 src = ip->daddr, dst = ip->saddr;

	if (reply_frame(ctx, IP4_LEN + 8, ICMP4_FRAME, smac, dmac, ETH_P_IP))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + ICMP4_FRAME > data_end)
		return XDP_DROP;

	ip = data + ETH_LEN;
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0xc0; /* as the kernel's icmp_send: internetwork control */
	ip->tot_len = bpf_htons(IP4_LEN + 8 + ICMP4_EMBED);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = 64;
	ip->protocol = IPPROTO_ICMP;
	ip->check = 0;
	ip->saddr = src;
	ip->daddr = dst;
	ip->check = ~csum_fold(csum_words((__u16 *)ip, IP4_LEN / 2, 0));

	struct icmphdr *icmp = data + L4_V4;
	icmp->type = type;
	icmp->code = code;
	icmp->checksum = 0;
	icmp->un.frag.__unused = 0;
	icmp->un.frag.mtu = bpf_htons(mtu);
	icmp->checksum = ~csum_fold(csum_words((__u16 *)icmp, (8 + ICMP4_EMBED) / 2, 0));
	return XDP_TX;
}

/* The same for IPv6 (ICMPv6; `info` is the MTU of packet too big, else 0). */
static __always_inline int icmp6_reply(struct xdp_md *ctx, __u8 type, __u8 code, __u32 info)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (data + ICMP6_FRAME - (IP6_LEN + 8) > data_end)
		return XDP_DROP;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = data + ETH_LEN;
	__u8 smac[ETH_ALEN], dmac[ETH_ALEN];
	__builtin_memcpy(smac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(dmac, eth->h_source, ETH_ALEN);
	__u32 src[4], dst[4];
	addr_copy(src, ip6->daddr.in6_u.u6_addr32);
	addr_copy(dst, ip6->saddr.in6_u.u6_addr32);

	if (reply_frame(ctx, IP6_LEN + 8, ICMP6_FRAME, smac, dmac, ETH_P_IPV6))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + ICMP6_FRAME > data_end)
		return XDP_DROP;

	ip6 = data + ETH_LEN;
	__u32 *w = (__u32 *)ip6;
	w[0] = bpf_htonl(0x60000000);
	ip6->payload_len = bpf_htons(8 + ICMP6_EMBED);
	ip6->nexthdr = IPPROTO_ICMPV6;
	ip6->hop_limit = 64;
	addr_copy(ip6->saddr.in6_u.u6_addr32, src);
	addr_copy(ip6->daddr.in6_u.u6_addr32, dst);

	__u8 *icmp = data + L4_V6;
	icmp[0] = type;
	icmp[1] = code;
	*(__u16 *)(icmp + 2) = 0;
	*(__u32 *)(icmp + 4) = bpf_htonl(info);
	/* pseudo header: addresses, upper-layer length, next header */
	__u32 s = csum_words((__u16 *)ip6->saddr.in6_u.u6_addr32, 16, 0);
	s += bpf_htons(8 + ICMP6_EMBED) + bpf_htons(IPPROTO_ICMPV6);
	s = csum_words((__u16 *)icmp, (8 + ICMP6_EMBED) / 2, s);
	*(__u16 *)(icmp + 2) = ~csum_fold(s);
	return XDP_TX;
}

/* The client packet is too big for the next hop once `overhead` bytes are added. */
static __always_inline int too_big(struct xdp_md *ctx, const struct pkt *p, __u32 mtu, __u32 overhead,
				   int may_answer)
{
	if (!may_answer || !p->df || mtu <= overhead)
		return count(RVS_STAT_DROP_TOO_BIG, XDP_DROP);
	int rc;
	if (p->v6)
		rc = icmp6_reply(ctx, 2 /* ICMPV6_PKT_TOOBIG */, 0, mtu - overhead);
	else
		rc = icmp4_reply(ctx, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu - overhead);
	if (rc != XDP_TX)
		return count(RVS_STAT_DROP_MALFORMED, rc);
	return count(RVS_STAT_FRAG_NEEDED, XDP_TX);
}

/* ---- forwarding ---- */

static __always_inline int fib(struct xdp_md *ctx, struct bpf_fib_lookup *f, int v6, const __u32 *src,
			       const __u32 *dst, __u8 proto, __u16 tot_len)
{
	__builtin_memset(f, 0, sizeof(*f));
	f->ifindex = ctx->ingress_ifindex;
	f->l4_protocol = proto;
	f->tot_len = tot_len;
	if (v6) {
		f->family = AF_INET6;
		addr_copy(f->ipv6_src, src);
		addr_copy(f->ipv6_dst, dst);
	} else {
		f->family = AF_INET;
		f->ipv4_src = src[0];
		f->ipv4_dst = dst[0];
	}
	return bpf_fib_lookup(ctx, f, sizeof(*f), 0);
}

static __always_inline int fib_failed(struct xdp_md *ctx, const struct bpf_fib_lookup *f, int rc, int v6)
{
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return no_neigh(ctx, f, v6);
	return count(RVS_STAT_FIB_FAILED, XDP_DROP);
}

static __always_inline int xmit(struct xdp_md *ctx, const struct bpf_fib_lookup *f)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
	__builtin_memcpy(eth->h_dest, f->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, f->smac, ETH_ALEN);
	stat_inc(RVS_STAT_FORWARDED);
	if (f->ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(f->ifindex, 0);
}

/* ---- SCTP's CRC32c (RFC 9260 appendix B), updated in place ----
 * Polynomials over GF(2) modulo the Castagnoli polynomial, in the CRC's reflected form (bit 31
 * is x^0): a CRC is linear, so two packets of one length that differ by bits D have CRCs that
 * differ by D(x) * x^32 mod P, whatever the initial value and final xor. */
#define CRC32C_POLY 0x82f63b78

/* a * b mod P, without branches: a subprogram, so that its loop is in the program once. */
static __attribute__((noinline)) __u32 crc32c_mul(__u32 a, __u32 b)
{
	__u32 p = 0;
#pragma unroll 8
	for (int i = 0; i < 32; i++) {
		p ^= b & -((a >> (31 - i)) & 1);
		b = (b >> 1) ^ (CRC32C_POLY & -(b & 1));
	}
	return p;
}

/* x^(8n) mod P for n < 65536: the product of x^(8 * 2^k) mod P (these constants, x^8, x^16,
 * ..., each the square of the one before) over the bits k set in n. */
static __always_inline __u32 crc32c_xpow8n(__u32 n)
{
	__u32 p = 0x80000000; /* x^0 */
#define CRC32C_X8(k, c)                                                                                                \
	if (n & (1u << (k)))                                                                                           \
		p = crc32c_mul(p, c);
	CRC32C_X8(0, 0x00800000)
	CRC32C_X8(1, 0x00008000)
	CRC32C_X8(2, 0x82f63b78)
	CRC32C_X8(3, 0x6ea2d55c)
	CRC32C_X8(4, 0x18b8ea18)
	CRC32C_X8(5, 0x510ac59a)
	CRC32C_X8(6, 0xb82be955)
	CRC32C_X8(7, 0xb8fdb1e7)
	CRC32C_X8(8, 0x88e56f72)
	CRC32C_X8(9, 0x74c360a4)
	CRC32C_X8(10, 0xe4172b16)
	CRC32C_X8(11, 0x0d65762a)
	CRC32C_X8(12, 0x35d73a62)
	CRC32C_X8(13, 0x28461564)
	CRC32C_X8(14, 0xbf455269)
	CRC32C_X8(15, 0xe2ea32dc)
#undef CRC32C_X8
	return p;
}

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define le32_raw(x) (x)
#else
#define le32_raw(x) __builtin_bswap32(x)
#endif

/* The CRC of an SCTP packet of `len` bytes (at sh, common header in the frame) whose port at
 * byte `off` (0: source, 2: destination) changes from `from` to `to` (network order), and the
 * port itself. The CRC field holds the CRC little-endian (as Linux's sctp_compute_cksum). */
static __always_inline void sctp_port_update(__u8 *sh, int off, __u16 from, __u16 to, __u32 len)
{
	__u16 x = bpf_ntohs(from ^ to);
	/* The changed bits of the first four bytes, as the CRC register takes them (byte 0 low). */
	__u32 d = (__u32)(((x >> 8) | (x << 8)) & 0xffff) << (off * 8);
	__u32 delta = crc32c_mul(d, crc32c_xpow8n(len & 0xffff));
	*(__u32 *)(sh + 8) ^= le32_raw(delta);
	*(__u16 *)(sh + off) = to;
}

/* Rewrites the destination (dst = 1: address and port) or the source (dst = 0) of a
 * TCP/UDP/SCTP packet whose L4 part is l4_len bytes, with the IPv4 header and the L4
 * checksums (SCTP's covers no address: only a port change touches it). */
static __always_inline int nat_l4(struct xdp_md *ctx, int v6, __u8 proto, int dst, const __u32 *addr,
				  __u16 port, __u32 l4_len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u16 *ck;
	__u16 *pp;
	if (proto == IPPROTO_SCTP) {
		__u8 *sh = data + (v6 ? L4_V6 : L4_V4);
		if ((void *)(sh + 12) > data_end)
			return -1;
		if (v6) {
			struct ipv6hdr *ip6 = data + ETH_LEN;
			addr_copy(dst ? ip6->daddr.in6_u.u6_addr32 : ip6->saddr.in6_u.u6_addr32, addr);
		} else {
			struct iphdr *ip = data + ETH_LEN;
			__u32 *a = dst ? &ip->daddr : &ip->saddr;
			csum_replace4(&ip->check, *a, addr[0]);
			*a = addr[0];
		}
		int off = dst ? 2 : 0;
		__u16 from = *(__u16 *)(sh + off);
		if (from != port)
			sctp_port_update(sh, off, from, port, l4_len);
		return 0;
	}
	if (v6) {
		struct ipv6hdr *ip6 = data + ETH_LEN;
		void *l4 = data + L4_V6;
		if (proto == IPPROTO_TCP) {
			if (l4 + sizeof(struct tcphdr) > data_end)
				return -1;
			ck = &((struct tcphdr *)l4)->check;
		} else {
			if (l4 + sizeof(struct udphdr) > data_end)
				return -1;
			ck = &((struct udphdr *)l4)->check;
		}
		pp = dst ? (__u16 *)(l4 + 2) : (__u16 *)l4;
		__u32 *a = dst ? ip6->daddr.in6_u.u6_addr32 : ip6->saddr.in6_u.u6_addr32;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			csum_replace4(ck, a[i], addr[i]);
			a[i] = addr[i];
		}
		if (port) { /* port 0: an all-port service's, the port stays */
			csum_replace2(ck, *pp, port);
			*pp = port;
		}
		if (proto == IPPROTO_UDP && *ck == 0)
			*ck = 0xffff;
		return 0;
	}
	struct iphdr *ip = data + ETH_LEN;
	void *l4 = data + L4_V4;
	int fix_l4 = 1;
	if (proto == IPPROTO_TCP) {
		if (l4 + sizeof(struct tcphdr) > data_end)
			return -1;
		ck = &((struct tcphdr *)l4)->check;
	} else {
		if (l4 + sizeof(struct udphdr) > data_end)
			return -1;
		ck = &((struct udphdr *)l4)->check;
		fix_l4 = *ck != 0; /* no checksum stays no checksum */
	}
	pp = dst ? (__u16 *)(l4 + 2) : (__u16 *)l4;
	__u32 *a = dst ? &ip->daddr : &ip->saddr;
	csum_replace4(&ip->check, *a, addr[0]);
	if (!port)
		port = *pp;
	if (fix_l4) {
		csum_replace4(ck, *a, addr[0]);
		csum_replace2(ck, *pp, port);
		if (proto == IPPROTO_UDP && *ck == 0)
			*ck = 0xffff;
	}
	*a = addr[0];
	*pp = port;
	return 0;
}

/* NAT of an ICMP error about a flow. in = 1 (towards the real server): the outer destination
 * and the embedded source (address, port) become addr:port; in = 0 (towards the client): the
 * outer source and the embedded destination. */
static __always_inline int nat_icmp(struct xdp_md *ctx, int v6, int in, const __u32 *addr, __u16 port)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (v6) {
		struct ipv6hdr *ip6 = data + ETH_LEN;
		__u16 *ck = data + L4_V6 + 2;
		struct ipv6hdr *e6 = data + L4_V6 + 8;
		__u16 *ports = data + L4_V6 + 8 + IP6_LEN;
		if ((void *)(ports + 2) > data_end)
			return -1;
		__u32 *oa = in ? ip6->daddr.in6_u.u6_addr32 : ip6->saddr.in6_u.u6_addr32;
		__u32 *ea = in ? e6->saddr.in6_u.u6_addr32 : e6->daddr.in6_u.u6_addr32;
		__u16 *ep = in ? &ports[0] : &ports[1];
#pragma unroll
		for (int i = 0; i < 4; i++) {
			csum_replace4(ck, oa[i], addr[i]);
			oa[i] = addr[i];
			csum_replace4(ck, ea[i], addr[i]);
			ea[i] = addr[i];
		}
		if (port) {
			csum_replace2(ck, *ep, port);
			*ep = port;
		}
		return 0;
	}
	struct iphdr *ip = data + ETH_LEN;
	__u16 *ck = data + L4_V4 + 2;
	struct iphdr *e = data + L4_V4 + 8;
	__u16 *ports = data + L4_V4 + 8 + IP4_LEN;
	if ((void *)(ports + 2) > data_end)
		return -1;
	__u32 *oa = in ? &ip->daddr : &ip->saddr;
	__u32 *ea = in ? &e->saddr : &e->daddr;
	__u16 *ep = in ? &ports[0] : &ports[1];
	csum_replace4(&ip->check, *oa, addr[0]);
	*oa = addr[0];
	__u16 old_check = e->check;
	csum_replace4(&e->check, *ea, addr[0]);
	csum_replace4(ck, *ea, addr[0]);
	csum_replace2(ck, old_check, e->check);
	*ea = addr[0];
	if (port) {
		csum_replace2(ck, *ep, port);
		*ep = port;
	}
	return 0;
}

/* IP-in-IP: an outer header from d->tunnel_src to d->addr in front of the IP packet. */
static __always_inline int encap(struct xdp_md *ctx, int v6, const struct rvs_dest *d, __u16 ip_len)
{
	void *data, *data_end;
	if (v6) {
		if (bpf_xdp_adjust_head(ctx, -(int)IP6_LEN))
			return -1;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		struct ethhdr *eth = data;
		struct ipv6hdr *o = data + ETH_LEN;
		struct ipv6hdr *in = data + ETH_LEN + IP6_LEN;
		if ((void *)(in + 1) > data_end)
			return -1;
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		/* version 6, the inner traffic class, flow label 0 */
		__u32 vtc = bpf_ntohl(*(__u32 *)in) & 0x0ff00000;
		*(__u32 *)o = bpf_htonl(0x60000000 | vtc);
		o->payload_len = bpf_htons(ip_len);
		o->nexthdr = IPPROTO_IPV6;
		o->hop_limit = 64;
		addr_copy(o->saddr.in6_u.u6_addr32, d->tunnel_src);
		addr_copy(o->daddr.in6_u.u6_addr32, d->addr);
		return 0;
	}
	if (bpf_xdp_adjust_head(ctx, -(int)IP4_LEN))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *o = data + ETH_LEN;
	struct iphdr *in = data + ETH_LEN + IP4_LEN;
	if ((void *)(in + 1) > data_end)
		return -1;
	eth->h_proto = bpf_htons(ETH_P_IP);
	o->version = 4;
	o->ihl = 5;
	o->tos = in->tos;
	o->tot_len = bpf_htons(ip_len + IP4_LEN);
	o->id = 0;
	o->frag_off = in->frag_off & bpf_htons(IP_DF);
	o->ttl = 64;
	o->protocol = IPPROTO_IPIP;
	o->check = 0;
	o->saddr = d->tunnel_src[0];
	o->daddr = d->addr[0];
	o->check = ~csum_fold(csum_words((__u16 *)o, IP4_LEN / 2, 0));
	return 0;
}

/* Sets the MACs of a cached next hop and sends the frame there. */
static __always_inline int xmit_nh(struct xdp_md *ctx, const struct rvs_nexthop *nh)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
	*(__u64 *)eth = *(const __u64 *)nh->mac;
	*(__u32 *)((__u8 *)eth + 8) = *(const __u32 *)(nh->mac + 8);
	stat_inc(RVS_STAT_FORWARDED);
	if (nh->oif == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(nh->oif, 0);
}

/* Sends a client's packet (or an ICMP error about a flow, icmp = 1) on to real server d (dest
 * id did), through its cached next hop (rvs_nexthops) or bpf_fib_lookup. */
static __always_inline int forward_in_nat(struct xdp_md *ctx, const struct pkt *p, __u32 did,
					  const struct rvs_dest *d, int icmp, const struct rvs_config *cfg, __u32 jif,
					  __u16 port)
{
	int v6 = p->v6;
	int tunnel = d->method == RVS_FWD_TUNNEL;
	__u32 overhead = tunnel ? (v6 ? IP6_LEN : IP4_LEN) : 0;
	__u32 len = p->ip_len + overhead;
	__u32 gen = cfg ? cfg->cache_gen : 0;
	struct rvs_nexthop *nh = bpf_map_lookup_elem(&rvs_nexthops, &did);
	if (!nh)
		return count(RVS_STAT_FIB_FAILED, XDP_DROP);
	if (!nh->valid || nh->iif != ctx->ingress_ifindex || nh->gen != gen || nh->method != d->method ||
	    (__u32)(jif - nh->stamp) >= NEXTHOP_JIFFIES || len > nh->mtu || !addr_eq(nh->addr, d->addr)) {
		struct bpf_fib_lookup f;
		__u8 proto = tunnel ? (v6 ? IPPROTO_IPV6 : IPPROTO_IPIP) : p->proto;
		const __u32 *src = tunnel ? d->tunnel_src : p->saddr;
		int rc = fib(ctx, &f, v6, src, d->addr, proto, len);
		if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
			return too_big(ctx, p, f.mtu_result, overhead, !icmp);
		if (rc != BPF_FIB_LKUP_RET_SUCCESS)
			return fib_failed(ctx, &f, rc, v6);
		addr_copy(nh->addr, d->addr);
		nh->iif = ctx->ingress_ifindex;
		nh->oif = f.ifindex;
		nh->stamp = jif;
		nh->gen = gen;
		nh->method = d->method;
		__builtin_memcpy(nh->mac, f.dmac, ETH_ALEN);
		__builtin_memcpy(nh->mac + ETH_ALEN, f.smac, ETH_ALEN);
		/* The route's MTU: the kernel tells it only to a packet too big for it. */
		rc = fib(ctx, &f, v6, src, d->addr, proto, 0xffff);
		if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
			nh->mtu = f.mtu_result;
		else if (rc == BPF_FIB_LKUP_RET_SUCCESS)
			nh->mtu = 0xffff;
		else
			nh->mtu = len; /* at least this packet's length fits */
		nh->valid = 1;
	}
	if (d->method == RVS_FWD_MASQ) {
		int rc = icmp ? nat_icmp(ctx, v6, 1, d->addr, d->port)
			      : nat_l4(ctx, v6, p->proto, 1, d->addr, port, p->ip_len - (v6 ? IP6_LEN : IP4_LEN));
		if (rc)
			return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
	} else if (tunnel) {
		if (encap(ctx, v6, d, p->ip_len))
			return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
	} else if (d->method != RVS_FWD_GATE) {
		return count(RVS_STAT_FIB_FAILED, XDP_DROP);
	}
	return xmit_nh(ctx, nh);
}

static __always_inline int forward_in(struct xdp_md *ctx, const struct pkt *p, __u32 did, const struct rvs_dest *d,
				      int icmp, const struct rvs_config *cfg, __u32 jif)
{
	return forward_in_nat(ctx, p, did, d, icmp, cfg, jif, d->port);
}

/* The same for a client's packet of a flow whose ports masq keeps (port 0: an FTP data
 * connection's). */
static __always_inline int forward_in_port(struct xdp_md *ctx, const struct pkt *p, __u32 did,
					   const struct rvs_dest *d, const struct rvs_config *cfg, __u32 jif, __u16 port)
{
	return forward_in_nat(ctx, p, did, d, 0, cfg, jif, port);
}

/* Sends a masq real server's packet (or ICMP error) on to the client as from vip. */
static __always_inline int forward_out(struct xdp_md *ctx, const struct pkt *p, const struct rvs_service_key *vip,
				       int icmp)
{
	struct bpf_fib_lookup f;
	int v6 = p->v6;
	int rc = fib(ctx, &f, v6, vip->addr, p->daddr, p->proto, p->ip_len);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return count(RVS_STAT_DROP_TOO_BIG, XDP_DROP);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return fib_failed(ctx, &f, rc, v6);
	rc = icmp ? nat_icmp(ctx, v6, 0, vip->addr, vip->port)
		  : nat_l4(ctx, v6, p->proto, 0, vip->addr, vip->port, p->ip_len - (v6 ? IP6_LEN : IP4_LEN));
	if (rc)
		return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
	return xmit(ctx, &f);
}

/* ---- the flow table ---- */

/* A live flow of key, or NULL (an expired one is deleted). */
static __always_inline struct rvs_conn *live_conn(const struct rvs_conn_key *key, const struct rvs_config *cfg,
						  __u32 now)
{
	struct rvs_conn *c = bpf_map_lookup_elem(&rvs_conns, key);
	if (!c)
		return 0;
	if (since(now, c->last_seen) > state_timeout(cfg, c->state)) {
		bpf_map_delete_elem(&rvs_conns, key);
		return 0;
	}
	return c;
}

/* How often a flow in `state` is written back while packets flow: min(1024, timeout / 8). */
static __always_inline __u32 refresh_ticks(const struct rvs_config *cfg, __u8 state)
{
	__u32 refresh = state_timeout(cfg, state) >> 3;
	if (refresh > REFRESH_TICKS)
		refresh = REFRESH_TICKS;
	return refresh;
}

static __always_inline void touch(struct rvs_conn *c, const struct rvs_config *cfg, __u8 state, __u32 now)
{
	__u32 refresh = refresh_ticks(cfg, c->state);
	if (state != c->state || since(now, c->last_seen) >= refresh) {
		c->state = state;
		c->last_seen = now;
	}
}

static __always_inline void conn_key(struct rvs_conn_key *k, const __u32 *client, __u16 cport, const __u32 *vip,
				     __u16 vport, __u8 proto, __u8 family)
{
	addr_copy(k->client, client);
	addr_copy(k->vip, vip);
	k->client_port = cport;
	k->vip_port = vport;
	k->proto = proto;
	k->family = family;
	k->_pad = 0;
}

/* Caches flow c (just looked up and touched) in fc; valid for a window of jiffies no longer
 * than its refresh interval: jiffies are the one clock without a call (the verifier inlines
 * bpf_jiffies64), HZ is unknown here, so the window assumes the slowest (HZ 100: ~10 ticks a
 * jiffy): 1/10 of the refresh interval in jiffies, up to 1 s at HZ 100 and 0.1 s at HZ 1000. */
static __always_inline void flow_cache_fill(struct rvs_flow_cache *fc, const struct rvs_conn_key *key,
					    const struct rvs_conn *c, const struct rvs_config *cfg, __u32 gen,
					    __u32 jif)
{
	__builtin_memcpy(&fc->key, key, sizeof(*key));
	fc->dest = c->dest;
	fc->jif = jif;
	fc->window = refresh_ticks(cfg, c->state) / 10;
	fc->gen = gen;
	fc->state = c->state;
	fc->ack_keeps = tcp_next_state(c->state, TCP_ACK, TCP_DIR_INPUT) == c->state; /* one ack row in */
	fc->valid = 1;
}

static __always_inline __u32 flow_slot(const struct rvs_conn_key *k)
{
	__u32 h = k->client[0] ^ k->client[1] ^ k->client[2] ^ k->client[3] ^ k->vip[0] ^ k->vip[3];
	h ^= ((__u32)k->client_port << 16) ^ k->vip_port ^ ((__u32)k->proto << 8);
	h *= 0x9e3779b1;
	return h >> (32 - FLOW_CACHE_BITS);
}

static __always_inline int key_eq(const struct rvs_conn_key *a, const struct rvs_conn_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4])) == 0;
}

/* The virtual service of sk: its own port's, else the address's all-port (port 0) service. */
/* The firewall-mark service of a packet to sk, if a mark matches it (cfg: the packet's
 * rvs_config, as its caller looked it up). */
static __always_inline struct rvs_service *mark_of(const struct rvs_service_key *sk, const struct rvs_config *cfg)
{
	if (cfg && (cfg->flags & RVS_CFG_F_NO_MARKS))
		return 0;
	struct rvs_mark_key mk = {
		.prefixlen = 32 + (sk->family == RVS_FAMILY_V6 ? 128 : 32),
		.proto = sk->proto,
		.family = sk->family,
	};
	addr_copy(mk.addr, sk->addr);
	struct rvs_mark_ports *v = bpf_map_lookup_elem(&rvs_marks, &mk);
	if (!v)
		return 0;
	__u16 port = bpf_ntohs(sk->port);
	__u32 n = v->count;
	for (int i = 0; i < RVS_MARK_RANGES; i++) {
		if (i >= n)
			break;
		if (port >= v->range[i].lo && port <= v->range[i].hi)
			return &v->range[i].service;
	}
	return 0;
}

/* The service of a packet to sk: a firewall mark's first (as IPVS looks fwmark services up
 * before addresses), then the address and port's, then the address's on port 0 (all-port). */
static __always_inline struct rvs_service *service_of(struct rvs_service_key *sk, const struct rvs_config *cfg)
{
	struct rvs_service *svc = mark_of(sk, cfg);
	if (svc)
		return svc;
	svc = bpf_map_lookup_elem(&rvs_services, sk);
	if (svc)
		return svc;
	__u16 port = sk->port;
	sk->port = 0;
	svc = bpf_map_lookup_elem(&rvs_services, sk);
	sk->port = port;
	return svc;
}

/* The masq reply entry of a real server's address and port, else of its address on port 0 (a
 * real server of an all-port service, which keeps the client's port). */
static __always_inline struct rvs_reverse *reverse_of(struct rvs_reverse_key *rk)
{
	struct rvs_reverse *r = bpf_map_lookup_elem(&rvs_reverse, rk);
	if (r)
		return r;
	__u16 port = rk->port;
	rk->port = 0;
	r = bpf_map_lookup_elem(&rvs_reverse, rk);
	rk->port = port;
	return r;
}

/* ---- the FTP helper on masq (IPVS's ip_vs_ftp and ip_vs_app) ----
 * A masq service with RVS_SVC_F_FTP marks its flows RVS_CONN_F_FTP. On such a control
 * connection, before NAT:
 *   real server -> client: seq + delta (rvs_ftp_seq); a payload that starts "227 " (IPv4) has
 *     the address of its "(h1,h2,h3,h4,p1,p2)" replaced by the VIP's (the packet changes
 *     length: the IP length and both checksums follow, and the delta grows from this packet's
 *     seq on, as IPVS's vs_seq_update: not again for a retransmission); "227 " and "229 "
 *     (|||port|) expect a data connection from the client to VIP:port (rvs_ftp_expect).
 *   client -> real server: ack - delta; a payload that starts "PORT " (IPv4) or "EPRT " names a
 *     port on the client: a data connection from the real server to the client's control
 *     address and that port is expected (no rewrite: masq keeps the client's address; a PORT
 *     naming another address expects nothing, so no FTP bounce through the VIP).
 * A SYN that meets an expectation makes an RVS_CONN_F_RELATED flow to the control
 * connection's real server (ports kept, addresses NATed as masq) and takes the expectation
 * away; rvs_ftp_related finds the flow for the real server's packets. A payload longer than
 * FTP_MAX bytes, a frame with bytes after its IP packet, or a line that does not parse goes on
 * unread and unchanged (as IPVS); a line split over two packets is not put together, nor are
 * SACK blocks adjusted (neither in IPVS). An expectation lives RVS_FTP_EXPECT_MS. Every loop
 * below is bounded (FTP_MAX). */
#define FTP_MAX 128

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RVS_FTP_ENTRIES);
	__type(key, struct rvs_conn_key);
	__type(value, struct rvs_ftp_seq);
} rvs_ftp_seq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RVS_FTP_ENTRIES);
	__type(key, struct rvs_ftp_expect_key);
	__type(value, struct rvs_ftp_expect);
} rvs_ftp_expect SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RVS_FTP_RELATED_ENTRIES);
	__type(key, struct rvs_conn_key);
	__type(value, struct rvs_ftp_related);
} rvs_ftp_related SEC(".maps");

/* Scratch: a payload as read, and as rewritten (the program's own). */
struct ftp_buf {
	__u8 in[256];
	__u8 out[256];
	__u32 tmp;
	__u32 addr;
	__u16 port;
	__u16 _pad;
	/* What the subprograms would otherwise hold on the stack (the main program's frame leaves
	 * them little). */
	struct rvs_ftp_expect_key ek;
	struct rvs_ftp_expect ev;
	struct rvs_conn_key key;
	struct rvs_conn_key rk;
	struct rvs_conn conn;
	struct rvs_ftp_related rel;
	struct rvs_ftp_seq seq;
	struct rvs_service_key vk; /* a related flow's VIP for forward_out (port 0) */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ftp_buf);
} rvs_ftp_buf SEC(".maps");

static __always_inline int seq_after(__u32 a, __u32 b)
{
	return (__s32)(a - b) > 0;
}

/* v as a number the verifier knows only as 0-255: a value through memory it does not follow.
 * An index the parsers found is otherwise a different constant on each path, and every path
 * after it would be verified once per value. */
static __always_inline __u32 ftp_opaque(struct ftp_buf *b, __u32 v)
{
	*(volatile __u32 *)&b->tmp = v;
	return *(volatile __u32 *)&b->tmp & 255;
}

static __always_inline int ftp_enabled(const struct rvs_config *cfg)
{
	return !cfg || !(cfg->flags & RVS_CFG_F_NO_FTP);
}

/* The index of the first `c` in in[i..len), or -1. */
static __always_inline int ftp_find(const __u8 *in, __u32 i, __u32 len, __u8 c)
{
#pragma clang loop unroll(disable)
	for (int k = 0; k < FTP_MAX; k++) {
		__u32 j = i + k;
		if (j >= len)
			return -1;
		if (in[j & 255] == c)
			return j;
	}
	return -1;
}

/* A port (1 to 5 digits, 1-65535) at in[i..len) ended by `end`, or -1. */
static __always_inline int ftp_port(const __u8 *in, __u32 i, __u32 len, __u8 end)
{
	__u32 val = 0;
#pragma clang loop unroll(disable)
	for (int k = 0; k < 6; k++) {
		__u32 j = i + k;
		if (j >= len)
			return -1;
		__u8 ch = in[j & 255];
		if (ch == end && k > 0)
			return val >= 1 && val <= 65535 ? (int)val : -1;
		if (ch < '0' || ch > '9')
			return -1;
		val = val * 10 + (ch - '0');
	}
	return -1;
}

/* "h1,h2,h3,h4,p1,p2" at in[i..len) (each 0-255, 1 to 3 digits): the address (network order),
 * the port, and the index of the byte that ends p2 (there must be one), or -1. */
static __always_inline int ftp_six(struct ftp_buf *b, __u32 i, __u32 len)
{
	const __u8 *in = b->in;
	__u32 field = 0, digits = 0, val = 0, a = 0, pt = 0;
#pragma clang loop unroll(disable)
	for (int k = 0; k < FTP_MAX; k++) {
		__u32 j = i + k;
		if (j >= len)
			return -1;
		__u8 ch = in[j & 255];
		if (ch >= '0' && ch <= '9') {
			digits++;
			val = val * 10 + (ch - '0');
			if (digits > 3 || val > 255)
				return -1;
			continue;
		}
		if (!digits)
			return -1;
		if (field < 4)
			a = (a << 8) | val;
		else
			pt = (pt << 8) | val;
		field++;
		if (field == 6) {
			b->addr = bpf_htonl(a);
			b->port = pt;
			return j;
		}
		if (ch != ',')
			return -1;
		digits = 0;
		val = 0;
	}
	return -1;
}

/* Writes v (0-255) in decimal at out[o]; the index after it. */
static __always_inline __u32 ftp_put_dec(__u8 *out, __u32 o, __u32 v)
{
	if (v >= 100) {
		out[o & 255] = '0' + v / 100;
		o++;
	}
	if (v >= 10) {
		out[o & 255] = '0' + (v / 10) % 10;
		o++;
	}
	out[o & 255] = '0' + v % 10;
	return o + 1;
}

/* The ones' complement sum of buf[0..n) as 16-bit words (buf[n] must be 0 when n is odd). */
static __always_inline __u32 ftp_sum(const __u8 *buf, __u32 n)
{
	__u32 s = 0;
#pragma clang loop unroll(disable)
	for (int k = 0; k < 2 * FTP_MAX; k += 2) {
		if (k >= n)
			break;
		s += *(const __u16 *)(buf + (k & 254));
	}
	return s;
}

static __always_inline void ftp_expect(struct ftp_buf *b, const __u32 *src, const __u32 *dst, __u16 port, __u8 family,
				       __u32 did, const __u32 *vip, __u8 active, __u32 now)
{
	struct rvs_ftp_expect_key *k = &b->ek;
	addr_copy(k->src, src);
	addr_copy(k->dst, dst);
	k->dport = bpf_htons(port);
	k->proto = IPPROTO_TCP;
	k->family = family;
	struct rvs_ftp_expect *e = &b->ev;
	e->dest = did;
	addr_copy(e->vip, vip);
	e->created = now;
	e->active = active;
	e->_pad[0] = e->_pad[1] = e->_pad[2] = 0;
	bpf_map_update_elem(&rvs_ftp_expect, k, e, BPF_ANY);
}

/* Where the TCP payload of the frame starts and how long it is, when the frame is the IP
 * packet exactly and the payload is 8 to FTP_MAX bytes (else -1). */
static __always_inline int ftp_payload(struct xdp_md *ctx, const struct pkt *p, __u32 *off, __u32 *len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 l3 = p->v6 ? IP6_LEN : IP4_LEN;
	struct tcphdr *th = data + (p->v6 ? L4_V6 : L4_V4);
	if ((void *)(th + 1) > data_end)
		return -1;
	__u32 hl = th->doff * 4;
	if (l3 + hl > p->ip_len || (__u32)(data_end - data) != ETH_LEN + p->ip_len)
		return -1;
	__u32 n = p->ip_len - l3 - hl;
	if (n < 8 || n > FTP_MAX)
		return -1;
	*off = ETH_LEN + l3 + hl;
	*len = n;
	return 0;
}

/* Reads the payload into b->in (and a 0 after it); its length, or -1. */
static __always_inline int ftp_load(struct xdp_md *ctx, struct ftp_buf *b, __u32 off, __u32 len)
{
	__u64 n = len;
	asm volatile("" : "+r"(n));
	if (n < 1 || n > FTP_MAX || bpf_xdp_load_bytes(ctx, off, b->in, n) < 0)
		return -1;
	b->in[n & 255] = 0;
	return (int)n;
}

/* A control connection's packet from its real server, before NAT (see above). p->ip_len
 * follows a change of length; -1 when the frame could not be changed (drop it). */
__attribute__((noinline)) int ftp_out(struct xdp_md *ctx, struct pkt *p, const struct rvs_conn_key *key, __u32 did,
				      const struct rvs_service_key *vk)
{
	if (!p || !key || !vk)
		return 0;
	const __u32 *vip = vk->addr;
	__u32 now = now_ticks();
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct tcphdr *th = data + (p->v6 ? L4_V6 : L4_V4);
	if ((void *)(th + 1) > data_end)
		return -1;
	__u32 raw_seq = th->seq;
	__u32 seq = bpf_ntohl(raw_seq);
	struct rvs_ftp_seq *s = bpf_map_lookup_elem(&rvs_ftp_seq, key);
	if (s && (s->delta || s->previous_delta)) {
		__u32 nseq = bpf_htonl(seq + (seq_after(seq, s->init_seq) ? s->delta : s->previous_delta));
		csum_replace4(&th->check, raw_seq, nseq);
		th->seq = nseq;
	}
	__u32 off, len;
	if (ftp_payload(ctx, p, &off, &len))
		return 0;
	__u32 zero = 0;
	struct ftp_buf *b = bpf_map_lookup_elem(&rvs_ftp_buf, &zero);
	if (!b)
		return 0;
	int n = ftp_load(ctx, b, off, len);
	if (n < 8)
		return 0;
	if (b->in[0] != '2' || b->in[1] != '2' || b->in[3] != ' ')
		return 0;
	if (b->in[2] == '9') {
		/* 229 Entering Extended Passive Mode (|||port|) */
		int j = ftp_find(b->in, 4, n, '(');
		if (j < 0)
			return 0;
		j = ftp_opaque(b, j);
		__u8 d = b->in[(j + 1) & 255];
		if (b->in[(j + 2) & 255] != d || b->in[(j + 3) & 255] != d)
			return 0;
		int port = ftp_port(b->in, j + 4, n, d);
		if (port > 0)
			ftp_expect(b, key->client, vip, port, p->family, did, vip, 0, now);
		return 0;
	}
	if (b->in[2] != '7' || p->v6)
		return 0;
	/* 227 Entering Passive Mode (h1,h2,h3,h4,p1,p2) */
	int j = ftp_find(b->in, 4, n, '(');
	if (j < 0)
		return 0;
	j = ftp_opaque(b, j);
	int end = ftp_six(b, j + 1, n);
	__u16 port = b->port;
	if (end < 0 || !port)
		return 0;
	end = ftp_opaque(b, end);
	if (end > n)
		return 0;
	ftp_expect(b, key->client, vip, port, p->family, did, vip, 0, now);

	/* The new payload: up to "(", the VIP and the port, the rest from the end of p2. */
	__u32 o = j + 1;
#pragma clang loop unroll(disable)
	for (int k = 0; k < FTP_MAX; k++) {
		if (k >= (int)o)
			break;
		b->out[k & 255] = b->in[k & 255];
	}
	const __u8 *va = (const __u8 *)vip;
	__u8 v0 = va[0], v1 = va[1], v2 = va[2], v3 = va[3];
	o = ftp_opaque(b, ftp_put_dec(b->out, o, v0));
	b->out[o++ & 255] = ',';
	o = ftp_opaque(b, ftp_put_dec(b->out, o, v1));
	b->out[o++ & 255] = ',';
	o = ftp_opaque(b, ftp_put_dec(b->out, o, v2));
	b->out[o++ & 255] = ',';
	o = ftp_opaque(b, ftp_put_dec(b->out, o, v3));
	b->out[o++ & 255] = ',';
	o = ftp_opaque(b, ftp_put_dec(b->out, o, port >> 8));
	b->out[o++ & 255] = ',';
	o = ftp_opaque(b, ftp_put_dec(b->out, o, port & 0xff));
	__u32 tail = n - end;
#pragma clang loop unroll(disable)
	for (int k = 0; k < FTP_MAX; k++) {
		if (k >= (int)tail)
			break;
		b->out[(o + k) & 255] = b->in[(end + k) & 255];
	}
	__u64 nl = o + tail;
	asm volatile("" : "+r"(nl));
	if (nl < 1 || nl > 250)
		return 0;
	b->out[nl & 255] = 0;
	int diff = (int)nl - n;

	__u32 old_sum = ftp_sum(b->in, n);
	__u32 new_sum = ftp_sum(b->out, nl);
	__u16 old_tcp = bpf_htons(p->ip_len - IP4_LEN);
	__u16 new_tcp = bpf_htons(p->ip_len - IP4_LEN + diff);
	__u16 new_tot = bpf_htons(p->ip_len + diff);
	if (diff && bpf_xdp_adjust_tail(ctx, diff))
		return -1;
	if (bpf_xdp_store_bytes(ctx, off, b->out, nl))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + ETH_LEN;
	th = data + L4_V4;
	if ((void *)(th + 1) > data_end)
		return -1;
	csum_replace2(&ip->check, ip->tot_len, new_tot);
	ip->tot_len = new_tot;
	__u32 sum = (__u16)~th->check;
	sum += (__u16)~csum_fold(old_sum) + csum_fold(new_sum) + (__u16)~old_tcp + new_tcp;
	th->check = ~csum_fold(sum);
	p->ip_len += diff;
	if (diff) {
		s = bpf_map_lookup_elem(&rvs_ftp_seq, key);
		if (!s) {
			struct rvs_ftp_seq *ns = &b->seq;
			ns->init_seq = seq;
			ns->delta = diff;
			ns->previous_delta = 0;
			ns->_pad = 0;
			bpf_map_update_elem(&rvs_ftp_seq, key, ns, BPF_ANY);
		} else if (seq_after(seq, s->init_seq)) {
			s->previous_delta = s->delta;
			s->delta += diff;
			s->init_seq = seq;
		}
	}
	return 0;
}

/* A control connection's packet from its client, before NAT (see above). */
__attribute__((noinline)) int ftp_in(struct xdp_md *ctx, const struct pkt *p, const struct rvs_conn_key *key,
				     __u32 did, const struct rvs_dest *d)
{
	if (!p || !key || !d)
		return 0;
	__u32 now = now_ticks();
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct tcphdr *th = data + (p->v6 ? L4_V6 : L4_V4);
	if ((void *)(th + 1) > data_end)
		return 0;
	if (p->tcp_flags & TCP_ACK) {
		struct rvs_ftp_seq *s = bpf_map_lookup_elem(&rvs_ftp_seq, key);
		if (s && (s->delta || s->previous_delta)) {
			__u32 raw = th->ack_seq;
			__u32 ack = bpf_ntohl(raw);
			/* The delta for an ack past the start of the changed packet as the client saw
			 * it (init_seq + previous_delta). IPVS compares with init_seq + delta, which
			 * takes an ack of just that start (nothing of the packet received) for one
			 * past it when the packet shrank. */
			__s32 dl = seq_after(ack, s->init_seq + s->previous_delta) ? s->delta : s->previous_delta;
			__u32 nack = bpf_htonl(ack - dl);
			csum_replace4(&th->check, raw, nack);
			th->ack_seq = nack;
		}
	}
	__u32 off, len;
	if (ftp_payload(ctx, p, &off, &len))
		return 0;
	__u32 zero = 0;
	struct ftp_buf *b = bpf_map_lookup_elem(&rvs_ftp_buf, &zero);
	if (!b)
		return 0;
	int n = ftp_load(ctx, b, off, len);
	if (n < 8 || b->in[4] != ' ')
		return 0;
	__u32 cmd = ((__u32)(b->in[0] & 0xdf) << 24) | ((__u32)(b->in[1] & 0xdf) << 16) |
		    ((__u32)(b->in[2] & 0xdf) << 8) | (b->in[3] & 0xdf);
	int port = -1;
	if (cmd == 0x504f5254 /* PORT */ && !p->v6) {
		if (ftp_six(b, 5, n) < 0 || b->addr != key->client[0])
			return 0;
		port = b->port;
	} else if (cmd == 0x45505254 /* EPRT */) {
		/* EPRT |af|addr|port| */
		__u8 dl = b->in[5];
		if (b->in[6] != (p->v6 ? '2' : '1') || b->in[7] != dl)
			return 0;
		int j = ftp_find(b->in, 8, n, dl);
		if (j < 0)
			return 0;
		port = ftp_port(b->in, ftp_opaque(b, j) + 1, n, dl);
	}
	if (port > 0)
		ftp_expect(b, d->addr, key->client, port, p->family, did, key->vip, 1, now);
	return 0;
}

/* The live expectation of ek (passive: active 0), or NULL (an old one is deleted). */
static __always_inline struct rvs_ftp_expect *ftp_expected(const struct rvs_ftp_expect_key *ek, __u8 active, __u32 now)
{
	struct rvs_ftp_expect *e = bpf_map_lookup_elem(&rvs_ftp_expect, ek);
	if (!e || e->active != active)
		return 0;
	if (since(now, e->created) > ms_to_ticks(RVS_FTP_EXPECT_MS)) {
		bpf_map_delete_elem(&rvs_ftp_expect, ek);
		return 0;
	}
	return e;
}

static __always_inline void ftp_expect_key(struct rvs_ftp_expect_key *ek, const struct pkt *p)
{
	addr_copy(ek->src, p->saddr);
	addr_copy(ek->dst, p->daddr);
	ek->dport = p->dport;
	ek->proto = p->proto;
	ek->family = p->family;
}

/* A related flow made from expectation e (b->ek) by its first packet (b->key: the flow in the
 * client's orientation; rip, if given, must be the real server's address): the flow, its
 * reply entry (the real server's address and port rport), the expectation deleted. Its dest
 * id, or -1. */
static __always_inline int ftp_related_new(struct ftp_buf *b, const struct pkt *p, const struct rvs_ftp_expect *e,
					   const __u32 *rip, __u16 rport, enum tcp_dir dir, __u32 now)
{
	__u32 did = e->dest;
	struct rvs_dest *d = bpf_map_lookup_elem(&rvs_dests, &did);
	if (!d || !(d->flags & RVS_DEST_F_AVAILABLE) || d->method != RVS_FWD_MASQ || (rip && !addr_eq(d->addr, rip)))
		return -1;
	struct rvs_conn *nc = &b->conn;
	nc->dest = did;
	nc->last_seen = now;
	nc->state = next_state(p, RVS_S_NONE, dir);
	nc->flags = RVS_CONN_F_RELATED;
	nc->_pad = 0;
	nc->created = now;
	bpf_map_update_elem(&rvs_conns, &b->key, nc, BPF_ANY);
	bpf_map_delete_elem(&rvs_ftp_expect, &b->ek);
	conn_key(&b->rk, b->key.client, b->key.client_port, d->addr, rport, b->key.proto, b->key.family);
	addr_copy(b->rel.vip, b->key.vip);
	bpf_map_update_elem(&rvs_ftp_related, &b->rk, &b->rel, BPF_ANY);
	/* rvsd accounts it to the real server (a header-only record). */
	struct rvs_newflow *ev = bpf_ringbuf_reserve(&rvs_newflows, __builtin_offsetof(struct rvs_newflow, frame), 0);
	if (ev) {
		__builtin_memcpy(&ev->key, &b->key, sizeof(ev->key));
		ev->service = RVS_NEWFLOW_RELATED;
		ev->ifindex = did;
		ev->rx_queue = 0;
		ev->len = 0;
		ev->_pad = 0;
		bpf_ringbuf_submit(ev, 0);
	} else {
		stat_inc(RVS_STAT_NEWFLOW_RINGBUF_FULL);
	}
	return did;
}

/* A TCP packet to no virtual service (key: its flow's): a related flow's packet from its
 * client, or the SYN of an expected passive data connection. The dest id to forward it to
 * (ports kept; counted, the flow touched), -1 if neither, -2 if its real server is gone. */
__attribute__((noinline)) int ftp_related_in(const struct pkt *p, const struct rvs_conn_key *key)
{
	__u32 zero = 0;
	const struct rvs_config *cfg = bpf_map_lookup_elem(&rvs_config, &zero);
	struct ftp_buf *b = bpf_map_lookup_elem(&rvs_ftp_buf, &zero);
	if (!p || !key || !b || p->proto != IPPROTO_TCP || !ftp_enabled(cfg))
		return -1;
	__u32 now = now_ticks();
	struct rvs_conn *c = live_conn(key, cfg, now);
	if (c) {
		if (!(c->flags & RVS_CONN_F_RELATED))
			return -1;
		__u32 did = c->dest;
		struct rvs_dest *d = bpf_map_lookup_elem(&rvs_dests, &did);
		if (!d || !(d->flags & RVS_DEST_F_AVAILABLE))
			return -2;
		touch(c, cfg, next_state(p, c->state, TCP_DIR_INPUT), now);
		dest_count(did, p->ip_len, 0, 0);
		return did;
	}
	if ((p->tcp_flags & (TCP_SYN | TCP_RST | TCP_ACK)) != TCP_SYN)
		return -1;
	ftp_expect_key(&b->ek, p);
	struct rvs_ftp_expect *e = ftp_expected(&b->ek, 0, now);
	if (!e)
		return -1;
	__builtin_memcpy(&b->key, key, sizeof(b->key));
	int did = ftp_related_new(b, p, e, 0, p->dport, TCP_DIR_INPUT, now);
	if (did >= 0)
		dest_count(did, p->ip_len, 0, 1);
	return did;
}

/* A TCP packet from no masq service's real server: a related flow's packet from its real
 * server, or the SYN of an expected active data connection. 0 to forward it to the client
 * from b->vk (counted, the flow touched), -1 if neither. */
__attribute__((noinline)) int ftp_related_out(const struct pkt *p)
{
	__u32 zero = 0;
	const struct rvs_config *cfg = bpf_map_lookup_elem(&rvs_config, &zero);
	struct ftp_buf *b = bpf_map_lookup_elem(&rvs_ftp_buf, &zero);
	if (!p || !b || p->proto != IPPROTO_TCP || !ftp_enabled(cfg))
		return -1;
	__u32 now = now_ticks();
	struct rvs_service_key *vk = &b->vk;
	__builtin_memset(vk, 0, sizeof(*vk));
	vk->proto = p->proto;
	vk->family = p->family;
	conn_key(&b->rk, p->daddr, p->dport, p->saddr, p->sport, p->proto, p->family);
	struct rvs_ftp_related *rel = bpf_map_lookup_elem(&rvs_ftp_related, &b->rk);
	if (rel) {
		conn_key(&b->key, p->daddr, p->dport, rel->vip, p->sport, p->proto, p->family);
		struct rvs_conn *c = live_conn(&b->key, cfg, now);
		if (!c || !(c->flags & RVS_CONN_F_RELATED)) {
			bpf_map_delete_elem(&rvs_ftp_related, &b->rk);
			return -1;
		}
		__u32 did = c->dest;
		struct rvs_dest *d = bpf_map_lookup_elem(&rvs_dests, &did);
		if (!d || d->method != RVS_FWD_MASQ || !addr_eq(d->addr, p->saddr))
			return -1;
		touch(c, cfg, next_state(p, c->state, TCP_DIR_OUTPUT), now);
		addr_copy(vk->addr, b->key.vip);
		dest_count(did, p->ip_len, 1, 0);
		return 0;
	}
	if ((p->tcp_flags & (TCP_SYN | TCP_RST | TCP_ACK)) != TCP_SYN)
		return -1;
	ftp_expect_key(&b->ek, p);
	struct rvs_ftp_expect *e = ftp_expected(&b->ek, 1, now);
	if (!e)
		return -1;
	addr_copy(vk->addr, e->vip);
	conn_key(&b->key, p->daddr, p->dport, vk->addr, p->sport, p->proto, p->family);
	int did = ftp_related_new(b, p, e, p->saddr, p->sport, TCP_DIR_OUTPUT, now);
	if (did < 0)
		return -1;
	dest_count(did, p->ip_len, 1, 1);
	return 0;
}

/* A real server's packet that no masq flow of a service took: an FTP data connection's, sent
 * on to the client, or PASS. */
static __always_inline int ftp_reply(struct xdp_md *ctx, const struct pkt *p, const struct rvs_config *cfg)
{
	if (p->proto != IPPROTO_TCP || !ftp_enabled(cfg) || ftp_related_out(p))
		return count(RVS_STAT_PASS, XDP_PASS);
	__u32 zero = 0;
	struct ftp_buf *b = bpf_map_lookup_elem(&rvs_ftp_buf, &zero);
	if (!b)
		return count(RVS_STAT_PASS, XDP_PASS);
	return forward_out(ctx, p, &b->vk, 0);
}

/* Firewall-mark masq flows: what the real server's replies go back from (see rvs_mark_replies). */
struct mark_buf {
	struct rvs_conn_key rk;
	struct rvs_conn_key key;
	struct rvs_mark_reply rel;
	struct rvs_service_key vk;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mark_buf);
} rvs_mark_buf SEC(".maps");

/* Records where the replies of the new masq flow key (to real server d) go back from. */
__attribute__((noinline)) int mark_reply_put(const struct rvs_conn_key *key, const struct rvs_dest *d)
{
	__u32 zero = 0;
	struct mark_buf *b = bpf_map_lookup_elem(&rvs_mark_buf, &zero);
	if (!key || !d || !b)
		return -1;
	__u16 rport = d->port ? d->port : key->vip_port;
	conn_key(&b->rk, key->client, key->client_port, d->addr, rport, key->proto, key->family);
	addr_copy(b->rel.vip, key->vip);
	b->rel.vport = key->vip_port;
	b->rel._pad = 0;
	return bpf_map_update_elem(&rvs_mark_replies, &b->rk, &b->rel, BPF_ANY);
}

/* A real server's packet that may answer a firewall mark's masq flow: 0 when it does (the flow
 * touched and counted; the virtual address to send it from in the buffer's vk), -1 if not. */
__attribute__((noinline)) int mark_reply_out(const struct pkt *p)
{
	__u32 zero = 0;
	const struct rvs_config *cfg = bpf_map_lookup_elem(&rvs_config, &zero);
	struct mark_buf *b = bpf_map_lookup_elem(&rvs_mark_buf, &zero);
	if (!p || !b || (cfg && (cfg->flags & RVS_CFG_F_NO_MARKS)))
		return -1;
	conn_key(&b->rk, p->daddr, p->dport, p->saddr, p->sport, p->proto, p->family);
	struct rvs_mark_reply *rel = bpf_map_lookup_elem(&rvs_mark_replies, &b->rk);
	if (!rel)
		return -1;
	conn_key(&b->key, p->daddr, p->dport, rel->vip, rel->vport, p->proto, p->family);
	__u32 now = now_ticks();
	struct rvs_conn *c = live_conn(&b->key, cfg, now);
	if (!c) {
		bpf_map_delete_elem(&rvs_mark_replies, &b->rk);
		return -1;
	}
	__u32 did = c->dest;
	struct rvs_dest *d = bpf_map_lookup_elem(&rvs_dests, &did);
	if (!d || d->method != RVS_FWD_MASQ || !addr_eq(d->addr, p->saddr))
		return -1;
	touch(c, cfg, p->proto == IPPROTO_UDP ? c->state : next_state(p, c->state, TCP_DIR_OUTPUT), now);
	__builtin_memset(&b->vk, 0, sizeof(b->vk));
	addr_copy(b->vk.addr, rel->vip);
	b->vk.port = rel->vport;
	b->vk.proto = p->proto;
	b->vk.family = p->family;
	dest_count(did, p->ip_len, 1, 0);
	return 0;
}

/* A real server's packet that no masq flow of an address service took: a firewall mark's, an
 * FTP data connection's, or PASS. */
static __always_inline int mark_or_ftp_reply(struct xdp_md *ctx, const struct pkt *p, const struct rvs_config *cfg)
{
	if (mark_reply_out(p) == 0) {
		__u32 zero = 0;
		struct mark_buf *b = bpf_map_lookup_elem(&rvs_mark_buf, &zero);
		if (b)
			return forward_out(ctx, p, &b->vk, 0);
	}
	return ftp_reply(ctx, p, cfg);
}

/* A TCP/UDP packet to a virtual service without a live flow to an available real server: c is
 * its flow's entry as looked up (NULL, expired, or to a real server not available). */
static __always_inline int to_service(struct xdp_md *ctx, const struct pkt *p, const struct rvs_service *svc,
				      const struct rvs_conn_key *key, struct rvs_flow_cache *fc,
				      const struct rvs_config *cfg, __u32 gen, __u32 jif)
{
	__u32 now = now_ticks();
	/* A service that schedules each datagram (one-packet scheduling, a persistence engine):
	 * every datagram goes to rvsd; its flow entry is only for the replies. */
	int each = svc->flags & RVS_SVC_F_EACH_PACKET;
	struct rvs_conn *c = each ? 0 : live_conn(key, cfg, now);
	if (c) {
		__u32 did = c->dest;
		struct rvs_dest *d = bpf_map_lookup_elem(&rvs_dests, &did);
		if (d && (d->flags & RVS_DEST_F_AVAILABLE)) {
			touch(c, cfg, next_state(p, c->state, input_dir(d)), now);
			/* An FTP control connection's packets are each read (never from the cache). */
			if (c->flags & RVS_CONN_F_FTP)
				ftp_in(ctx, p, key, did, d);
			else
				flow_cache_fill(fc, key, c, cfg, gen, jif);
			dest_count(did, p->ip_len, 0, 0);
			return forward_in(ctx, p, did, d, 0, cfg, jif);
		}
		if (!cfg || !(cfg->flags & RVS_CFG_F_EXPIRE_NODEST_CONN))
			return count(RVS_STAT_DROP_NODEST, XDP_DROP);
		bpf_map_delete_elem(&rvs_conns, key);
	}

	/* No live flow: only a SYN (with ACK too, as IPVS's tcp_conn_schedule allows for active
	 * FTP; never with RST), a UDP datagram or an SCTP INIT starts one. */
	if (p->proto == IPPROTO_TCP && (p->tcp_flags & (TCP_SYN | TCP_RST)) != TCP_SYN)
		return count(RVS_STAT_PASS_UNHANDLED, XDP_PASS);
	if (p->proto == IPPROTO_SCTP && p->sctp_ev != SCTP_EV_INIT)
		return count(RVS_STAT_PASS_UNHANDLED, XDP_PASS);

	void *data = (void *)(long)ctx->data;
	struct rvs_verdict *v = (void *)(long)ctx->data_meta;
	if ((void *)(v + 1) > data || v->magic != RVS_VERDICT_MAGIC)
		return newflow(ctx, key, svc->id);

	if (v->verdict == RVS_VERDICT_REJECT) {
		int rc = p->v6 ? icmp6_reply(ctx, 1 /* ICMPV6_DEST_UNREACH */, 4 /* port unreachable */, 0)
			       : icmp4_reply(ctx, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0);
		if (rc != XDP_TX)
			return count(RVS_STAT_DROP_MALFORMED, rc);
		return count(RVS_STAT_REJECTED, XDP_TX);
	}
	if (v->verdict != RVS_VERDICT_SCHEDULED)
		return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
	__u32 did = v->dest;
	struct rvs_dest *d = bpf_map_lookup_elem(&rvs_dests, &did);
	if (!d || !(d->flags & RVS_DEST_F_AVAILABLE))
		return count(RVS_STAT_DROP_NODEST, XDP_DROP);
	struct rvs_conn nc = {
		.dest = did,
		.last_seen = now,
		.state = next_state(p, p->proto == IPPROTO_SCTP ? RVS_S_SCTP_NONE : RVS_S_NONE, input_dir(d)),
		.created = now,
	};
	if ((svc->flags & RVS_SVC_F_FTP) && p->proto == IPPROTO_TCP && d->method == RVS_FWD_MASQ) {
		nc.flags = RVS_CONN_F_FTP;
		bpf_map_delete_elem(&rvs_ftp_seq, key); /* a delta of an earlier flow of this key */
	}
	bpf_map_update_elem(&rvs_conns, key, &nc, BPF_ANY);
	if ((svc->flags & RVS_SVC_F_MARK) && d->method == RVS_FWD_MASQ)
		mark_reply_put(key, d);
	dest_count(did, p->ip_len, 0, 1);
	return forward_in(ctx, p, did, d, 0, cfg, jif);
}

/* A TCP/UDP packet that may be a masq real server's reply (source in rvs_reverse). */
static __always_inline int from_server(struct xdp_md *ctx, struct pkt *p, const struct rvs_config *cfg)
{
	if (cfg && (cfg->flags & RVS_CFG_F_NO_MASQ))
		return count(RVS_STAT_PASS, XDP_PASS);
	struct rvs_reverse_key rk = {};
	addr_copy(rk.addr, p->saddr);
	rk.port = p->sport;
	rk.proto = p->proto;
	rk.family = p->family;
	struct rvs_reverse *r = reverse_of(&rk);
	if (!r)
		return mark_or_ftp_reply(ctx, p, cfg);
	__u32 now = now_ticks();
	__u32 n = r->count;
	for (int i = 0; i < RVS_REVERSE_SLOTS; i++) {
		if (i >= n)
			break;
		__u32 sid = r->service[i];
		struct rvs_service_info *info = bpf_map_lookup_elem(&rvs_service_info, &sid);
		if (!info)
			continue;
		struct rvs_conn_key key;
		/* An all-port service's flow has the client's port as its virtual port. */
		__u16 vport = info->vip.port ? info->vip.port : p->sport;
		conn_key(&key, p->daddr, p->dport, info->vip.addr, vport, p->proto, p->family);
		struct rvs_conn *c = live_conn(&key, cfg, now);
		if (!c)
			continue;
		__u32 did = c->dest;
		struct rvs_dest *d = bpf_map_lookup_elem(&rvs_dests, &did);
		if (!d || d->method != RVS_FWD_MASQ || (d->port && d->port != p->sport) || !addr_eq(d->addr, p->saddr))
			continue;
		/* The reply drives the state too (IPVS's OUTPUT tables): a real server's FIN or RST
		 * moves the flow to tcpfin's timeout as it does in IPVS NAT, its INIT ACK and COOKIE
		 * ACK take an SCTP association through its handshake. */
		touch(c, cfg, p->proto == IPPROTO_UDP ? c->state : next_state(p, c->state, TCP_DIR_OUTPUT), now);
		if ((c->flags & RVS_CONN_F_FTP) && ftp_out(ctx, p, &key, did, &info->vip))
			return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
		dest_count(did, p->ip_len, 1, 0);
		return forward_out(ctx, p, &info->vip, 0);
	}
	return mark_or_ftp_reply(ctx, p, cfg);
}

/* An ICMP error: about a flow (see the table at the top) or left to the kernel. */
static __always_inline int icmp_error(struct xdp_md *ctx, const struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 es[4] = {}, ed[4] = {};
	__u16 esport, edport;
	__u8 eproto;
	if (p->v6) {
		__u8 *icmp = data + L4_V6;
		struct ipv6hdr *e6 = data + L4_V6 + 8;
		__u16 *ports = data + L4_V6 + 8 + IP6_LEN;
		if ((void *)(ports + 2) > data_end || p->ip_len < IP6_LEN + 8 + IP6_LEN + 4)
			return count(RVS_STAT_PASS, XDP_PASS);
		if (icmp[0] != 1 && icmp[0] != 2 && icmp[0] != 3)
			return count(RVS_STAT_PASS, XDP_PASS);
		eproto = e6->nexthdr;
		addr_copy(es, e6->saddr.in6_u.u6_addr32);
		addr_copy(ed, e6->daddr.in6_u.u6_addr32);
		esport = ports[0];
		edport = ports[1];
	} else {
		struct icmphdr *icmp = data + L4_V4;
		struct iphdr *e = data + L4_V4 + 8;
		__u16 *ports = data + L4_V4 + 8 + IP4_LEN;
		if ((void *)(ports + 2) > data_end || p->ip_len < IP4_LEN + 8 + IP4_LEN + 4)
			return count(RVS_STAT_PASS, XDP_PASS);
		if (icmp->type != ICMP_DEST_UNREACH && icmp->type != ICMP_TIME_EXCEEDED)
			return count(RVS_STAT_PASS, XDP_PASS);
		if (e->version != 4 || e->ihl != 5)
			return count(RVS_STAT_PASS, XDP_PASS);
		eproto = e->protocol;
		es[0] = e->saddr;
		ed[0] = e->daddr;
		esport = ports[0];
		edport = ports[1];
	}
	if (eproto != IPPROTO_TCP && eproto != IPPROTO_UDP && eproto != IPPROTO_SCTP)
		return count(RVS_STAT_PASS, XDP_PASS);

	__u32 zero = 0;
	struct rvs_config *cfg = bpf_map_lookup_elem(&rvs_config, &zero);
	__u32 now = now_ticks();
	struct rvs_conn_key key;

	/* About a packet from the VIP to a client (a gate/tunnel real server's, or a masq reply),
	 * sent to the VIP. */
	struct rvs_service_key sk = {};
	addr_copy(sk.addr, es);
	sk.port = esport;
	sk.proto = eproto;
	sk.family = p->family;
	if (addr_eq(p->daddr, es) && service_of(&sk, cfg)) {
		conn_key(&key, ed, edport, es, esport, eproto, p->family);
		struct rvs_conn *c = live_conn(&key, cfg, now);
		if (!c)
			return count(RVS_STAT_PASS, XDP_PASS);
		__u32 did = c->dest;
		struct rvs_dest *d = bpf_map_lookup_elem(&rvs_dests, &did);
		if (!d || !(d->flags & RVS_DEST_F_AVAILABLE))
			return count(RVS_STAT_PASS, XDP_PASS);
		dest_count(did, p->ip_len, 0, 0);
		stat_inc(RVS_STAT_ICMP_FORWARDED);
		return forward_in(ctx, p, did, d, 1, cfg, (__u32)bpf_jiffies64());
	}

	/* About a packet the director sent a masq real server (client -> RIP:rport). */
	if (cfg && (cfg->flags & RVS_CFG_F_NO_MASQ))
		return count(RVS_STAT_PASS, XDP_PASS);
	struct rvs_reverse_key rk = {};
	addr_copy(rk.addr, ed);
	rk.port = edport;
	rk.proto = eproto;
	rk.family = p->family;
	struct rvs_reverse *r = reverse_of(&rk);
	if (!r)
		return count(RVS_STAT_PASS, XDP_PASS);
	__u32 n = r->count;
	for (int i = 0; i < RVS_REVERSE_SLOTS; i++) {
		if (i >= n)
			break;
		__u32 sid = r->service[i];
		struct rvs_service_info *info = bpf_map_lookup_elem(&rvs_service_info, &sid);
		if (!info)
			continue;
		__u16 vport = info->vip.port ? info->vip.port : edport;
		conn_key(&key, es, esport, info->vip.addr, vport, eproto, p->family);
		struct rvs_conn *c = live_conn(&key, cfg, now);
		if (!c)
			continue;
		__u32 did = c->dest;
		struct rvs_dest *d = bpf_map_lookup_elem(&rvs_dests, &did);
		if (!d || d->method != RVS_FWD_MASQ || (d->port && d->port != edport) || !addr_eq(d->addr, ed))
			continue;
		dest_count(did, p->ip_len, 1, 0);
		stat_inc(RVS_STAT_ICMP_FORWARDED);
		return forward_out(ctx, p, &info->vip, 1);
	}
	return count(RVS_STAT_PASS, XDP_PASS);
}

/* ---- parsing ---- */

static __always_inline int is_ext_header(__u8 nh)
{
	switch (nh) {
	case 0:   /* hop-by-hop */
	case 43:  /* routing */
	case 44:  /* fragment */
	case 50:  /* ESP */
	case 51:  /* AH */
	case 60:  /* destination options */
	case 135: /* mobility */
	case 139: /* HIP */
	case 140: /* shim6 */
		return 1;
	}
	return 0;
}

SEC("xdp")
int rvs_xdp_lb(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct pkt p __attribute__((aligned(8))) = {};
	__u32 frame = data_end - data;
	void *l4;

	if ((void *)(eth + 1) > data_end)
		return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + ETH_LEN;
		if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5)
			return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
		__u16 tot = bpf_ntohs(ip->tot_len);
		if (tot < ip->ihl * 4 || tot > frame - ETH_LEN)
			return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
		if (ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))
			return count(RVS_STAT_PASS_UNHANDLED, XDP_PASS);
		p.saddr[0] = ip->saddr;
		p.daddr[0] = ip->daddr;
		p.ip_len = tot;
		p.proto = ip->protocol;
		p.df = !!(ip->frag_off & bpf_htons(IP_DF));
		p.family = RVS_FAMILY_V4;
		l4 = data + L4_V4;
		if (p.proto == IPPROTO_ICMP) {
			if (l4 + 8 > data_end || tot < IP4_LEN + 8)
				return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
			return icmp_error(ctx, &p);
		}
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + ETH_LEN;
		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
		__u32 tot = bpf_ntohs(ip6->payload_len) + IP6_LEN;
		if (tot > frame - ETH_LEN)
			return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
		if (is_ext_header(ip6->nexthdr))
			return count(RVS_STAT_PASS_UNHANDLED, XDP_PASS);
		addr_copy(p.saddr, ip6->saddr.in6_u.u6_addr32);
		addr_copy(p.daddr, ip6->daddr.in6_u.u6_addr32);
		p.ip_len = tot;
		p.proto = ip6->nexthdr;
		p.v6 = 1;
		p.df = 1;
		p.family = RVS_FAMILY_V6;
		l4 = data + L4_V6;
		if (p.proto == IPPROTO_ICMPV6) {
			if (l4 + 8 > data_end || tot < IP6_LEN + 8)
				return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
			return icmp_error(ctx, &p);
		}
	} else {
		return count(RVS_STAT_PASS, XDP_PASS);
	}

	__u32 l3_len = p.v6 ? IP6_LEN : IP4_LEN;
	if (p.proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > data_end || th->doff < 5 || l3_len + th->doff * 4 > p.ip_len)
			return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
		p.sport = th->source;
		p.dport = th->dest;
		p.tcp_flags = ((__u8 *)th)[13];
	} else if (p.proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > data_end || l3_len + sizeof(*uh) > p.ip_len)
			return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
		p.sport = uh->source;
		p.dport = uh->dest;
	} else if (p.proto == IPPROTO_SCTP) {
		/* The common header (ports, verification tag, CRC32c) and the first chunk's header
		 * (type, flags, length): the ports sit where TCP's and UDP's do. */
		__u8 *sh = l4;
		if ((void *)(sh + 16) > data_end || l3_len + 16 > p.ip_len)
			return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
		p.sport = *(__u16 *)sh;
		p.dport = *(__u16 *)(sh + 2);
		__u8 chunk = sh[12];
		/* An ABORT bundled after a COOKIE ECHO or COOKIE ACK is the event (as IPVS). */
		if (chunk == SCTP_CHUNK_COOKIE_ECHO || chunk == SCTP_CHUNK_COOKIE_ACK) {
			__u32 clen = ((__u32)sh[14] << 8) | sh[15];
			__u32 next = 12 + ((clen + 3) & ~3U);
			__u8 t = 0;
			if (clen >= 4 && l3_len + next < p.ip_len &&
			    !bpf_xdp_load_bytes(ctx, (p.v6 ? L4_V6 : L4_V4) + (next & 0xffff), &t, 1) &&
			    t == SCTP_CHUNK_ABORT)
				chunk = SCTP_CHUNK_ABORT;
		}
		p.sctp_ev = sctp_event(chunk);
	} else {
		return count(RVS_STAT_PASS, XDP_PASS);
	}

	/* An established flow in this CPU's flow cache: no hash lookup. */
	struct rvs_conn_key key __attribute__((aligned(8)));
	conn_key(&key, p.saddr, p.sport, p.daddr, p.dport, p.proto, p.family);
	__u32 zero = 0;
	struct rvs_config *cfg = bpf_map_lookup_elem(&rvs_config, &zero);
	/* Read before any map it guards: the loader bumps it after writing them. */
	__u32 gen = cfg ? cfg->cache_gen : 0;
	__u32 jif = (__u32)bpf_jiffies64();
	__u32 slot = flow_slot(&key);
	struct rvs_flow_cache *fc = bpf_map_lookup_elem(&rvs_flow_cache, &slot);
	if (!fc)
		return count(RVS_STAT_DROP_MALFORMED, XDP_DROP);
	if (fc->valid && fc->gen == gen && (__u32)(jif - fc->jif) < fc->window && key_eq(&fc->key, &key)) {
		/* The state stays: UDP, TCP without SYN, FIN, RST and an ACK that keeps it, or SCTP
		 * whose first chunk is DATA's event (DATA, SACK, HEARTBEAT, ...) and keeps it (the
		 * others take the lookup: a masq reply may have moved the state since the fill, and
		 * DATA's event keeps every state a reply leads to). */
		__u8 f = p.tcp_flags;
		int keeps = p.proto == IPPROTO_UDP ||
			    (p.proto == IPPROTO_TCP && !(f & (TCP_SYN | TCP_FIN | TCP_RST)) && (fc->ack_keeps || !(f & TCP_ACK)));
		__u32 did = fc->dest;
		struct rvs_dest *d = bpf_map_lookup_elem(&rvs_dests, &did);
		if (p.proto == IPPROTO_SCTP && d)
			keeps = p.sctp_ev == SCTP_EV_DATA &&
				sctp_next_state(fc->state, SCTP_EV_DATA, input_dir(d)) == fc->state;
		if (keeps && d && (d->flags & RVS_DEST_F_AVAILABLE)) {
			dest_count(did, p.ip_len, 0, 0);
			return forward_in(ctx, &p, did, d, 0, cfg, jif);
		}
	}
	fc->valid = 0;

	struct rvs_service_key sk = {};
	addr_copy(sk.addr, p.daddr);
	sk.port = p.dport;
	sk.proto = p.proto;
	sk.family = p.family;
	struct rvs_service *svc = service_of(&sk, cfg);
	if (svc)
		return to_service(ctx, &p, svc, &key, fc, cfg, gen, jif);
	int did = p.proto == IPPROTO_TCP && ftp_enabled(cfg) ? ftp_related_in(&p, &key) : -1;
	if (did == -2)
		return count(RVS_STAT_DROP_NODEST, XDP_DROP);
	if (did >= 0) {
		__u32 id = did;
		struct rvs_dest *d = bpf_map_lookup_elem(&rvs_dests, &id);
		if (!d)
			return count(RVS_STAT_DROP_NODEST, XDP_DROP);
		return forward_in_port(ctx, &p, id, d, cfg, jif, 0);
	}
	return from_server(ctx, &p, cfg);
}

/* Passes everything: for the peer of a veth that native-XDP frames are sent to (a veth only
 * receives them when its peer has an XDP program), and for tests. */
SEC("xdp")
int rvs_xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* The packet engine's maps: the one definition of what rvsd (crates/rvs-bpf/src/xdp_maps.rs,
 * the #[repr(C)] twin, checked against this file by a test) and the XDP program
 * (xdp_lb.bpf.c) share. Addresses and ports are in network byte order; an IPv4 address sits
 * in addr[0] with addr[1..3] zero. Everything else is host order. */
#ifndef RVS_XDP_MAPS_H
#define RVS_XDP_MAPS_H

#include <linux/types.h>

#define RVS_MAX_SERVICES 4096
#define RVS_MAX_DESTS 16384
/* Masq replies: how many virtual services one real server address may be masqueraded behind. */
#define RVS_REVERSE_SLOTS 4
/* The longest frame handed to rvsd for scheduling (an Ethernet frame at MTU 1500, VLAN tag
 * included); longer first packets are dropped and counted (RVS_STAT_NEWFLOW_TOO_LONG). */
#define RVS_NEWFLOW_MAX_FRAME 1536

#define RVS_FAMILY_V4 4
#define RVS_FAMILY_V6 6

/* Forwarding methods (struct rvs_dest.method). */
#define RVS_FWD_GATE 1   /* direct routing: only the MAC changes */
#define RVS_FWD_MASQ 2   /* NAT: destination rewritten, replies rewritten back */
#define RVS_FWD_TUNNEL 3 /* IP-in-IP (IPv4 in IPv4, IPv6 in IPv6) */

/* struct rvs_dest.flags */
#define RVS_DEST_F_AVAILABLE 1 /* in the service; clear once deleted (its flows drain or expire) */

/* struct rvs_config.flags */
#define RVS_CFG_F_EXPIRE_NODEST_CONN 1
/* rvs_reverse is empty (no masq real server): the program skips its reply lookups (a packet
 * not to a virtual service then costs one hash lookup less). Set it only while rvs_reverse
 * holds no entry: clear it before putting the first, set it after removing the last. Clear
 * (the default) is always correct. */
#define RVS_CFG_F_NO_MASQ 2
/* No masq service runs the FTP helper: the program skips its lookups for FTP data connections
 * (rvs_ftp_related, rvs_ftp_expect). Clear (the default) is always correct. */
#define RVS_CFG_F_NO_FTP 4
/* rvs_marks is empty: the program skips its firewall-mark lookup (same rules as NO_MASQ). */
#define RVS_CFG_F_NO_MARKS 8

/* Connection states (IPVS's names, struct rvs_conn.state); each has a timeout in
 * struct rvs_config.timeout_ms. */
#define RVS_S_NONE 0
#define RVS_S_ESTABLISHED 1
#define RVS_S_SYN_SENT 2  /* unused by an input-only director; kept for IPVS's numbering */
#define RVS_S_SYN_RECV 3
#define RVS_S_FIN_WAIT 4
#define RVS_S_TIME_WAIT 5
#define RVS_S_CLOSE 6
#define RVS_S_CLOSE_WAIT 7
#define RVS_S_LAST_ACK 8
#define RVS_S_UDP 9       /* a UDP flow */
/* An SCTP association: RVS_S_SCTP + IPVS's IP_VS_SCTP_S_* number (ip_vs_proto_sctp.c). */
#define RVS_S_SCTP 16
#define RVS_S_SCTP_NONE (RVS_S_SCTP + 0)
#define RVS_S_SCTP_INIT1 (RVS_S_SCTP + 1)          /* the client's first INIT */
#define RVS_S_SCTP_INIT (RVS_S_SCTP + 2)           /* a further INIT */
#define RVS_S_SCTP_COOKIE_SENT (RVS_S_SCTP + 3)    /* the server's INIT ACK */
#define RVS_S_SCTP_COOKIE_REPLIED (RVS_S_SCTP + 4) /* the client's COOKIE ECHO */
#define RVS_S_SCTP_COOKIE_WAIT (RVS_S_SCTP + 5)    /* server-initiated: its INIT */
#define RVS_S_SCTP_COOKIE (RVS_S_SCTP + 6)         /* server-initiated: the client's INIT ACK */
#define RVS_S_SCTP_COOKIE_ECHOED (RVS_S_SCTP + 7)  /* server-initiated: its COOKIE ECHO */
#define RVS_S_SCTP_ESTABLISHED (RVS_S_SCTP + 8)
#define RVS_S_SCTP_SHUTDOWN_SENT (RVS_S_SCTP + 9)
#define RVS_S_SCTP_SHUTDOWN_RECEIVED (RVS_S_SCTP + 10)
#define RVS_S_SCTP_SHUTDOWN_ACK_SENT (RVS_S_SCTP + 11)
#define RVS_S_SCTP_REJECTED (RVS_S_SCTP + 12)      /* an INIT answered with ABORT */
#define RVS_S_SCTP_CLOSED (RVS_S_SCTP + 13)
#define RVS_S_COUNT 30

/* A virtual service: the key of rvs_services. */
struct rvs_service_key {
	__u32 addr[4];
	__u16 port;
	__u8 proto;  /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP */
	__u8 family; /* RVS_FAMILY_V4 or RVS_FAMILY_V6 */
};

/* A virtual service: the value of rvs_services, and (by id) of rvs_service_info. */
struct rvs_service {
	__u32 id;    /* index into rvs_service_info */
	__u32 flags; /* RVS_SVC_F_* */
};

/* struct rvs_service.flags */
#define RVS_SVC_F_EACH_PACKET 1 /* every datagram scheduled by rvsd (ops, persistence engine) */
#define RVS_SVC_F_FTP 2         /* the ftp helper (IPVS's ip_vs_ftp): masq control connections read */
#define RVS_SVC_F_MARK 4        /* a firewall mark's: its masq flows' replies found in rvs_mark_replies */

/* Firewall marks (rvs_marks, an LPM trie): the service of a packet by protocol, family,
 * destination prefix and port range. prefixlen counts the bits after it: 32 for proto, family
 * and _pad, then the prefix of addr. The value holds the port ranges of every match whose
 * prefix contains the key's (matches never overlap), so the longest prefix has them all. */
#define RVS_MARK_RANGES 8
#define RVS_MAX_MARK_PREFIXES 4096

struct rvs_mark_key {
	__u32 prefixlen;
	__u8 proto;
	__u8 family;
	__u16 _pad;
	__u32 addr[4];
};

struct rvs_mark_range {
	__u16 lo; /* host order, inclusive */
	__u16 hi;
	struct rvs_service service;
};

struct rvs_mark_ports {
	__u32 count;
	struct rvs_mark_range range[RVS_MARK_RANGES];
};

/* A masq flow of a firewall-mark service (rvs_mark_replies): keyed as an rvs_conn_key whose
 * vip and vip_port are the real server's address and port, the value is the virtual address
 * and port the client sent to (a mark has many, so its service cannot say which). */
#define RVS_MARK_REPLY_ENTRIES 65536

struct rvs_mark_reply {
	__u32 vip[4];
	__u16 vport;
	__u16 _pad;
};

/* What a masq reply needs of its service: the address to put back as the source. A
 * firewall-mark service's: proto 0, port 0, addr[0] the mark (its replies use rvs_mark_replies). */
struct rvs_service_info {
	struct rvs_service_key vip;
};

/* A real server of a service (rvs_dests, indexed by dest id). */
struct rvs_dest {
	__u32 addr[4];
	__u16 port;     /* the real server's port (masq rewrites to it; gate and tunnel keep the VIP's) */
	__u8 method;    /* RVS_FWD_* */
	__u8 flags;     /* RVS_DEST_F_* */
	__u32 service;  /* the service id it belongs to */
	/* Tunnel only: the outer source address, the director's own address the kernel's route to
	 * the real server would use (rvsd asks the kernel). */
	__u32 tunnel_src[4];
};

/* A connection (flow) as the client sent it: the key of rvs_conns. */
struct rvs_conn_key {
	__u32 client[4];
	__u32 vip[4];
	__u16 client_port;
	__u16 vip_port;
	__u8 proto;
	__u8 family;
	__u16 _pad;
};

/* A connection's state: the value of rvs_conns (an LRU hash). */
struct rvs_conn {
	__u32 dest;      /* dest id */
	__u32 last_seen; /* bpf_ktime_get_ns() >> 20: "ticks" of 1.048576 ms, wrapping */
	__u8 state;      /* RVS_S_* */
	__u8 flags;      /* RVS_CONN_F_* */
	__u16 _pad;
	__u32 created;   /* last_seen at creation */
};

/* struct rvs_conn.flags */
#define RVS_CONN_F_FTP 1     /* an FTP control connection of a masq service (its data read) */
#define RVS_CONN_F_RELATED 2 /* an FTP data connection: masq rewrites addresses, ports kept */

/* Counters per dest id (a per-CPU array); here a packet is an IP packet. */
struct rvs_dest_counters {
	__u64 conns;
	__u64 packets_in;  /* client to real server */
	__u64 packets_out; /* real server to client (masq only: the others never see replies) */
	__u64 bytes_in;
	__u64 bytes_out;
};

/* Engine-wide counters: rvs_stats, a per-CPU array indexed by these. */
#define RVS_STAT_PASS 0              /* not for a virtual service: given to the kernel */
#define RVS_STAT_FORWARDED 1         /* sent on to a real server or back to a client */
#define RVS_STAT_NEWFLOW 2           /* first packets handed to rvsd */
#define RVS_STAT_NEWFLOW_RINGBUF_FULL 3
#define RVS_STAT_NEWFLOW_TOO_LONG 4
#define RVS_STAT_DROP_NODEST 5       /* a flow whose real server is gone */
#define RVS_STAT_DROP_MALFORMED 6    /* bad lengths, truncated headers */
#define RVS_STAT_PASS_UNHANDLED 7    /* fragments, IP options, non-SYN without a flow: to the kernel */
#define RVS_STAT_NO_NEIGH 8          /* next hop unresolved: kernel asked to resolve it, packet dropped */
#define RVS_STAT_FRAG_NEEDED 9       /* ICMP "fragmentation needed" / "packet too big" sent */
#define RVS_STAT_ICMP_FORWARDED 10   /* ICMP errors about a connection sent on */
#define RVS_STAT_REJECTED 11         /* no real server: ICMP port unreachable sent (as IPVS) */
#define RVS_STAT_FIB_FAILED 12       /* no route to the real server */
#define RVS_STAT_DROP_TOO_BIG 13     /* too big for the next hop and no ICMP can be sent (an IPv4
                                      * packet without DF, an ICMP error, a masq reply) */
#define RVS_STAT_COUNT 16

/* Engine settings: rvs_config[0]. */
struct rvs_config {
	__u32 timeout_ms[RVS_S_COUNT];
	__u32 flags; /* RVS_CFG_F_* */
	/* The program keeps per-CPU caches of what it read: flows of rvs_conns (dest, state, last
	 * seen) and each real server's next hop (what bpf_fib_lookup gave: egress, MACs, route MTU;
	 * refilled at least every ~1 s). An entry is used only while this is what it was at its
	 * fill, so a change here drops them all. The loader (PacketProgram) owns it: it bumps it
	 * after each write of rvs_conns or rvs_dests, each removal from rvs_services, and on
	 * flush_caches() (e.g. routes or neighbours changed), and set_config keeps it (the
	 * caller's value is ignored). Whoever writes those maps otherwise must bump it after the
	 * write (the program reads it before the maps it guards). */
	__u32 cache_gen;
};

/* A first packet handed to rvsd (the rvs_newflows ring buffer): rvsd schedules it with the
 * domain core, then runs it through the program again (BPF_PROG_TEST_RUN, live frames) with a
 * struct rvs_verdict as metadata in front of the frame. */
struct rvs_newflow {
	struct rvs_conn_key key;
	__u32 service;   /* service id */
	__u32 ifindex;   /* where it arrived */
	__u32 rx_queue;
	__u16 len;       /* bytes of frame[] that are the frame */
	__u16 _pad;
	__u8 frame[RVS_NEWFLOW_MAX_FRAME];
};

/* rvs_newflow.service for an event that is not a flow: the program found the next hop
 * (key.vip[], key.family) unresolved on interface `ifindex` and dropped the packet; rvsd asks
 * the kernel to resolve it (the client's retransmission then goes through). len is 0. */
#define RVS_NEWFLOW_NEIGH 0xffffffff
/* rvs_newflow.service for a flow the program made itself: an FTP data connection (key) on masq,
 * to the control connection's real server, whose dest id is in `ifindex`, for rvsd to account
 * (IPVS's controlled connections). len is 0, and the record holds the header only. */
#define RVS_NEWFLOW_RELATED 0xfffffffe

#define RVS_VERDICT_MAGIC 0x52565356 /* "RVSV" */
#define RVS_VERDICT_SCHEDULED 1 /* create the flow to dest, then forward */
#define RVS_VERDICT_REJECT 2    /* no real server: answer ICMP port unreachable */

/* The metadata rvsd puts before a first packet it hands back (xdp_md.data_meta). */
struct rvs_verdict {
	__u32 magic;
	__u32 verdict;
	__u32 dest;
	__u32 _pad;
};

/* Masq replies: real server address -> the services it may answer for (rvs_reverse). */
struct rvs_reverse_key {
	__u32 addr[4];
	__u16 port;
	__u8 proto;
	__u8 family;
};

struct rvs_reverse {
	__u32 count;
	__u32 service[RVS_REVERSE_SLOTS];
};

/* The FTP helper on masq (IPVS's ip_vs_ftp). A control connection's flow (RVS_CONN_F_FTP) has
 * its sequence numbers adjusted once a 227 reply changed length (rvs_ftp_seq, by the flow's
 * key, as IPVS's ip_vs_seq: server-to-client seq + delta, client-to-server ack - delta, for
 * sequence numbers after init_seq; previous_delta before it, for retransmissions). */
struct rvs_ftp_seq {
	__u32 init_seq; /* the (server's, unadjusted) seq of the last packet that changed length */
	__s32 delta;
	__s32 previous_delta;
	__u32 _pad;
};

/* A data connection a control connection announced (rvs_ftp_expect): the first SYN from src to
 * dst:dport (any source port) becomes a flow to the control connection's real server, and the
 * entry goes. Passive (227, 229): src is the client, dst the VIP. Active (PORT, EPRT): src is
 * the real server, dst the client. */
struct rvs_ftp_expect_key {
	__u32 src[4];
	__u32 dst[4];
	__u16 dport;
	__u8 proto;
	__u8 family;
};

struct rvs_ftp_expect {
	__u32 dest;    /* the control connection's dest id */
	__u32 vip[4];  /* the virtual address (active: the source the client sees) */
	__u32 created; /* ticks, as rvs_conn.last_seen; unused after RVS_FTP_EXPECT_MS */
	__u8 active;   /* 1: PORT/EPRT, 0: 227/229 */
	__u8 _pad[3];
};

#define RVS_FTP_EXPECT_MS 30000
/* The sizes of rvs_ftp_seq and rvs_ftp_expect (LRU), and of rvs_ftp_related (LRU). */
#define RVS_FTP_ENTRIES 16384
#define RVS_FTP_RELATED_ENTRIES 65536

/* A data connection's replies (rvs_ftp_related): keyed as an rvs_conn_key whose vip and
 * vip_port are the real server's address and port, the value is the virtual address of its
 * flow (client, client port, vip, the same port). */
struct rvs_ftp_related {
	__u32 vip[4];
};

#endif

// SPDX-License-Identifier: GPL-2.0
/* rvs's health checks through the VIP: a TC egress program on the packet engine's check device
 * (rvs-hc0). rvsd's check of a gate or tunnel real server connects to VIP:port with the socket
 * mark RVS_CHECK_MARK_BASE | slot; policy routing (fwmark) sends those packets out of rvs-hc0,
 * and here they are sent the way the packet engine sends a client's packet to that real server:
 *
 *   gate    the packet unchanged (destination the VIP), in a frame to the real server's MAC:
 *           bpf_redirect_neigh to the real server's address on the interface the kernel routes
 *           it through (bpf_fib_lookup), so the kernel resolves the neighbour;
 *   tunnel  an outer IPv4 (protocol 4) or IPv6 (next header 41) header from the engine's tunnel
 *           source to the real server, as xdp_lb.bpf.c's encap() writes it (TTL / hop limit 64,
 *           the inner TOS / traffic class, DF copied, IPv4 id 0), then redirected to the next
 *           hop bpf_fib_lookup gives for the real server.
 *
 * The real server answers the director from the VIP, directly. A packet without a mark of ours
 * goes on untouched (TC_ACT_OK), as does one whose slot has no path (counted); a packet whose
 * real server has no route, or that cannot be encapsulated, is dropped (counted). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "tc_check.h"

#define AF_INET 2
#define AF_INET6 10
#define ETH_LEN 14
#define IP4_LEN 20
#define IP6_LEN 40
#define IP_DF 0x4000

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RVS_CHECK_SLOTS);
	__type(key, __u32);
	__type(value, struct rvs_check_path);
} rvs_check_paths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RVS_CHECK_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} rvs_check_stats SEC(".maps");

static __always_inline int count(__u32 idx, int action)
{
	__u64 *c = bpf_map_lookup_elem(&rvs_check_stats, &idx);
	if (c)
		*c += 1;
	return action;
}

static __always_inline __u16 csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* Adds the outer header in front of the IP packet (after the Ethernet header). */
static __always_inline int encap(struct __sk_buff *skb, int v6, const struct rvs_check_path *p)
{
	if (v6) {
		struct ipv6hdr in, o = {};
		if (bpf_skb_load_bytes(skb, ETH_LEN, &in, sizeof(in)))
			return -1;
		if (bpf_skb_adjust_room(skb, IP6_LEN, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_ENCAP_L3_IPV6))
			return -1;
		__u32 vtc = bpf_ntohl(*(__u32 *)&in) & 0x0ff00000;
		*(__u32 *)&o = bpf_htonl(0x60000000 | vtc);
		o.payload_len = bpf_htons(bpf_ntohs(in.payload_len) + IP6_LEN);
		o.nexthdr = IPPROTO_IPV6;
		o.hop_limit = 64;
		__builtin_memcpy(o.saddr.in6_u.u6_addr32, p->tunnel_src, 16);
		__builtin_memcpy(o.daddr.in6_u.u6_addr32, p->addr, 16);
		return bpf_skb_store_bytes(skb, ETH_LEN, &o, sizeof(o), 0) ? -1 : 0;
	}
	struct iphdr in, o = {};
	if (bpf_skb_load_bytes(skb, ETH_LEN, &in, sizeof(in)))
		return -1;
	if (bpf_skb_adjust_room(skb, IP4_LEN, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4))
		return -1;
	o.version = 4;
	o.ihl = 5;
	o.tos = in.tos;
	o.tot_len = bpf_htons(bpf_ntohs(in.tot_len) + IP4_LEN);
	o.frag_off = in.frag_off & bpf_htons(IP_DF);
	o.ttl = 64;
	o.protocol = IPPROTO_IPIP;
	o.saddr = p->tunnel_src[0];
	o.daddr = p->addr[0];
	__u32 s = 0;
	__u16 *w = (__u16 *)&o;
#pragma unroll
	for (int i = 0; i < IP4_LEN / 2; i++)
		s += w[i];
	o.check = ~csum_fold(s);
	return bpf_skb_store_bytes(skb, ETH_LEN, &o, sizeof(o), 0) ? -1 : 0;
}

SEC("classifier")
int rvs_tc_check(struct __sk_buff *skb)
{
	if ((skb->mark & RVS_CHECK_MARK_MASK) != RVS_CHECK_MARK_BASE)
		return TC_ACT_OK;
	__u32 slot = skb->mark & ~RVS_CHECK_MARK_MASK;
	struct rvs_check_path *p = bpf_map_lookup_elem(&rvs_check_paths, &slot);
	int v6 = skb->protocol == bpf_htons(ETH_P_IPV6);
	if (!p || !p->family || (p->family == 6) != v6 || (!v6 && skb->protocol != bpf_htons(ETH_P_IP)))
		return count(RVS_CHECK_STAT_UNKNOWN, TC_ACT_OK);
	if (p->method != RVS_CHECK_GATE && p->method != RVS_CHECK_TUNNEL)
		return count(RVS_CHECK_STAT_UNKNOWN, TC_ACT_OK);
	int tunnel = p->method == RVS_CHECK_TUNNEL;

	/* Where the real server is: the interface and (tunnel) next hop. */
	struct bpf_fib_lookup f = {};
	f.ifindex = skb->ifindex;
	if (v6) {
		f.family = AF_INET6;
		f.l4_protocol = tunnel ? IPPROTO_IPV6 : 0;
		__builtin_memcpy(f.ipv6_dst, p->addr, 16);
		if (tunnel)
			__builtin_memcpy(f.ipv6_src, p->tunnel_src, 16);
	} else {
		f.family = AF_INET;
		f.l4_protocol = tunnel ? IPPROTO_IPIP : 0;
		f.ipv4_dst = p->addr[0];
		if (tunnel)
			f.ipv4_src = p->tunnel_src[0];
	}
	int rc = bpf_fib_lookup(skb, &f, sizeof(f), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return count(RVS_CHECK_STAT_NO_ROUTE, TC_ACT_SHOT);

	if (tunnel && encap(skb, v6, p))
		return count(RVS_CHECK_STAT_ENCAP_FAILED, TC_ACT_SHOT);

	struct bpf_redir_neigh nh = {};
	if (v6) {
		nh.nh_family = AF_INET6;
		/* gate: the real server itself (it is on the link); tunnel: the route's next hop */
		if (tunnel)
			__builtin_memcpy(nh.ipv6_nh, f.ipv6_dst, 16);
		else
			__builtin_memcpy(nh.ipv6_nh, p->addr, 16);
	} else {
		nh.nh_family = AF_INET;
		nh.ipv4_nh = tunnel ? f.ipv4_dst : p->addr[0];
	}
	count(RVS_CHECK_STAT_SENT, 0);
	return bpf_redirect_neigh(f.ifindex, &nh, sizeof(nh), 0);
}

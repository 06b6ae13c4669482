// SPDX-License-Identifier: GPL-2.0
// rvs's tunnel decapsulation, for a real server behind a director that forwards with `tunnel`
// (IPVS's -i): the director sends the client's packet inside an outer IP header (IPv4 protocol
// 4, IPv6 next header 41: plain IP-in-IP, no GRE or UDP), which the kernel's ipip/ip6_tunnel
// devices take off when the module is there. This program does the same at XDP, so a real
// server without the module can serve a tunnelled VIP: a tunnel packet whose inner destination
// is one of the VIPs in rvs_decap_vips loses its outer header (the Ethernet header is kept, its
// type set to the inner packet's) and goes on to the stack (XDP_PASS), which delivers it to
// the VIP on lo as if it had arrived bare. Every other packet passes untouched.
//
// Handled: an untagged Ethernet frame, outer IPv4 (with options) or IPv6 (the tunnel header
// directly after the fixed header), inner IPv4 (protocol 4) or IPv6 (protocol 41) in either
// outer family. The outer addresses are not checked (as the kernel's fallback ipip0/ip6tnl0
// devices, which take tunnel packets from anyone): the inner destination must be listed.
// Congestion marks follow the kernel's rule (RFC 6040): an outer CE is copied to an inner
// ECT(0)/ECT(1) packet, and an outer CE over a not-ECT inner packet is dropped.
//
// Malformed or unhandled, passed untouched to the stack, which judges them (without the ipip
// module it answers a tunnel packet with ICMP protocol unreachable) and counted:
//   - an outer or inner IP header cut short by the end of the frame or by the outer length
//     (an IPv4 or IPv6 Ethernet type with less than a header after it counts here too), or
//     with a wrong version or IHL (RVS_DECAP_MALFORMED);
//   - an outer IPv4 fragment (the kernel reassembles before decapsulating; this program
//     cannot) (RVS_DECAP_FRAGMENT);
//   - VLAN-tagged frames, IPv6 outer headers with extension headers before the tunnel header
//     (RVS_DECAP_NOT_TUNNEL, as for any other packet).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define RVS_FAMILY_V4 4
#define RVS_FAMILY_V6 6

// A VIP this real server serves through the tunnel: the key of rvs_decap_vips. An IPv4
// address sits in addr[0] (network byte order), addr[1..3] zero.
struct rvs_decap_vip {
	__u32 addr[4];
	__u8 family; // RVS_FAMILY_V4 or RVS_FAMILY_V6
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct rvs_decap_vip);
	__type(value, __u8);
} rvs_decap_vips SEC(".maps");

// Counters (rvs_decap_stats, per CPU): packets by what was done with them.
#define RVS_DECAP_V4 0         // decapsulated, inner IPv4
#define RVS_DECAP_V6 1         // decapsulated, inner IPv6
#define RVS_DECAP_NOT_TUNNEL 2 // not an IP-in-IP packet: passed
#define RVS_DECAP_OTHER_VIP 3  // a tunnel packet to an address not listed: passed
#define RVS_DECAP_MALFORMED 4  // cut short or bad header: passed
#define RVS_DECAP_FRAGMENT 5   // outer IPv4 fragment: passed
#define RVS_DECAP_ECN_DROP 6   // outer CE over a not-ECT inner packet: dropped
#define RVS_DECAP_STATS 7

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RVS_DECAP_STATS);
	__type(key, __u32);
	__type(value, __u64);
} rvs_decap_stats SEC(".maps");

static __always_inline int count(__u32 what, int verdict)
{
	__u64 *v = bpf_map_lookup_elem(&rvs_decap_stats, &what);
	if (v)
		*v += 1;
	return verdict;
}

// RFC 1624: the checksum after one 16-bit word of the header changed.
static __always_inline void csum_replace2(__u16 *sum, __u16 old, __u16 new)
{
	__u32 c = (__u16)~*sum + (__u16)~old + new;
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	*sum = ~c;
}

#define ECN_CE 3

SEC("xdp")
int rvs_xdp_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return count(RVS_DECAP_NOT_TUNNEL, XDP_PASS);

	void *l3 = eth + 1;
	__u32 outer_len;
	__u32 outer_payload; // bytes after the outer header, by the outer header's length
	__u8 inner_proto;
	__u8 outer_ecn;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > data_end)
			return count(RVS_DECAP_MALFORMED, XDP_PASS);
		if (ip->protocol != IPPROTO_IPIP && ip->protocol != IPPROTO_IPV6)
			return count(RVS_DECAP_NOT_TUNNEL, XDP_PASS);
		if (ip->version != 4 || ip->ihl < 5)
			return count(RVS_DECAP_MALFORMED, XDP_PASS);
		if (ip->frag_off & bpf_htons(0x3fff)) // MF or an offset
			return count(RVS_DECAP_FRAGMENT, XDP_PASS);
		outer_len = ip->ihl * 4;
		__u32 total = bpf_ntohs(ip->tot_len);
		if (total < outer_len)
			return count(RVS_DECAP_MALFORMED, XDP_PASS);
		outer_payload = total - outer_len;
		inner_proto = ip->protocol;
		outer_ecn = ip->tos & 3;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > data_end)
			return count(RVS_DECAP_MALFORMED, XDP_PASS);
		if (ip6->nexthdr != IPPROTO_IPIP && ip6->nexthdr != IPPROTO_IPV6)
			return count(RVS_DECAP_NOT_TUNNEL, XDP_PASS);
		if (ip6->version != 6)
			return count(RVS_DECAP_MALFORMED, XDP_PASS);
		outer_len = sizeof(*ip6);
		outer_payload = bpf_ntohs(ip6->payload_len);
		inner_proto = ip6->nexthdr;
		outer_ecn = (ip6->flow_lbl[0] >> 4) & 3;
	} else {
		return count(RVS_DECAP_NOT_TUNNEL, XDP_PASS);
	}
	if (outer_len > 60) // an IPv4 header is at most 60 bytes (for the verifier)
		return count(RVS_DECAP_MALFORMED, XDP_PASS);

	void *inner = l3 + outer_len;
	struct rvs_decap_vip key = {};
	__u16 eth_proto;
	__u32 done;
	if (inner_proto == IPPROTO_IPIP) {
		struct iphdr *in = inner;
		if ((void *)(in + 1) > data_end || outer_payload < sizeof(*in))
			return count(RVS_DECAP_MALFORMED, XDP_PASS);
		if (in->version != 4 || in->ihl < 5)
			return count(RVS_DECAP_MALFORMED, XDP_PASS);
		key.addr[0] = in->daddr;
		key.family = RVS_FAMILY_V4;
		if (!bpf_map_lookup_elem(&rvs_decap_vips, &key))
			return count(RVS_DECAP_OTHER_VIP, XDP_PASS);
		if (outer_ecn == ECN_CE) {
			if ((in->tos & 3) == 0)
				return count(RVS_DECAP_ECN_DROP, XDP_DROP);
			__u16 *word = (__u16 *)in; // version, IHL and TOS
			__u16 old = *word;
			in->tos |= ECN_CE;
			csum_replace2(&in->check, old, *word);
		}
		eth_proto = bpf_htons(ETH_P_IP);
		done = RVS_DECAP_V4;
	} else {
		struct ipv6hdr *in6 = inner;
		if ((void *)(in6 + 1) > data_end || outer_payload < sizeof(*in6))
			return count(RVS_DECAP_MALFORMED, XDP_PASS);
		if (in6->version != 6)
			return count(RVS_DECAP_MALFORMED, XDP_PASS);
		__builtin_memcpy(key.addr, &in6->daddr, 16);
		key.family = RVS_FAMILY_V6;
		if (!bpf_map_lookup_elem(&rvs_decap_vips, &key))
			return count(RVS_DECAP_OTHER_VIP, XDP_PASS);
		if (outer_ecn == ECN_CE) {
			if (((in6->flow_lbl[0] >> 4) & 3) == 0)
				return count(RVS_DECAP_ECN_DROP, XDP_DROP);
			in6->flow_lbl[0] |= ECN_CE << 4;
		}
		eth_proto = bpf_htons(ETH_P_IPV6);
		done = RVS_DECAP_V6;
	}

	// Move the Ethernet addresses up to the inner header, then drop what is before them.
	__u8 macs[ETH_ALEN * 2];
	__builtin_memcpy(macs, eth, sizeof(macs));
	if (bpf_xdp_adjust_head(ctx, (int)outer_len))
		return count(RVS_DECAP_MALFORMED, XDP_PASS);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return count(RVS_DECAP_MALFORMED, XDP_DROP); // cannot happen: the inner header is there
	__builtin_memcpy(eth, macs, sizeof(macs));
	eth->h_proto = eth_proto;
	return count(done, XDP_PASS);
}

// Passes everything: attached to a veth peer so that the frames a native-XDP program sends
// with XDP_TX or redirects to it are received (a veth drops them when its peer has no XDP
// program), and used by tests.
SEC("xdp")
int rvs_xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

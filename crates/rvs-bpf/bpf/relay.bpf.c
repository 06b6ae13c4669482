// SPDX-License-Identifier: GPL-2.0
// rvs kernel relay: the stream verdict of the proxy engine's sockmap. Bytes that arrive on a
// linked socket are counted and redirected to the egress of its peer (client <-> real server),
// so an established proxied connection is relayed without waking rvsd. Sockets that are not
// linked (or whose link is gone) keep their bytes (SK_PASS) for rvsd to read.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// Socket index i (connection i/2; even = client side, odd = real server side) -> socket.
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} rvs_socks SEC(".maps");

// Where the bytes arriving on a socket go: its peer's index, and its own counter slot.
struct rvs_link {
	__u32 peer;
	__u32 slot;
};

// Socket cookie -> link.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct rvs_link);
} rvs_links SEC(".maps");

// Socket index i's slot, shared with rvsd through mmap: the bytes and messages redirected from
// it, `ready` (set by rvsd once both sockets of the connection are in rvs_socks) and `held`
// (set here when bytes arrived before that: from then on this socket's bytes stay with rvsd,
// so none can overtake the ones it holds).
struct rvs_counters {
	__u64 bytes;
	__u64 packets;
	__u32 ready;
	__u32 held;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct rvs_counters);
} rvs_counters SEC(".maps");

SEC("sk_skb/stream_verdict")
int rvs_relay_verdict(struct __sk_buff *skb)
{
	// A bare FIN carries no bytes: TCP has already noted the end of stream (rvsd passes it on
	// once the bytes before it are through), and redirecting it would fail on a peer that
	// rvsd has shut down by then.
	if (skb->len == 0)
		return SK_DROP;
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct rvs_link *link = bpf_map_lookup_elem(&rvs_links, &cookie);
	if (!link)
		return SK_PASS;
	__u32 slot = link->slot;
	struct rvs_counters *c = bpf_map_lookup_elem(&rvs_counters, &slot);
	if (!c)
		return SK_PASS;
	// One socket's verdicts run under that socket's lock: no other writer of this slot.
	if (c->held || !*(volatile __u32 *)&c->ready) {
		c->held = 1;
		return SK_PASS;
	}
	c->bytes += skb->len;
	c->packets += 1;
	return bpf_sk_redirect_map(skb, &rvs_socks, link->peer, 0);
}

char LICENSE[] SEC("license") = "GPL";

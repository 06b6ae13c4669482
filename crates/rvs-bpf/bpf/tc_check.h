/* SPDX-License-Identifier: GPL-2.0 */
/* The map contract of tc_check.bpf.c (the health checks through the VIP), shared with its
 * #[repr(C)] twin in src/tc_check.rs (a test checks the sizes and offsets). */
#ifndef RVS_TC_CHECK_H
#define RVS_TC_CHECK_H

#include <linux/types.h>

/* A check socket's mark: RVS_CHECK_MARK_BASE | the real server's slot (its id in rvs_dests),
 * under RVS_CHECK_MARK_MASK. */
#define RVS_CHECK_MARK_BASE 0x52560000
#define RVS_CHECK_MARK_MASK 0xffff0000
#define RVS_CHECK_SLOTS 16384 /* RVS_MAX_DESTS */

#define RVS_CHECK_GATE 1   /* RVS_FWD_GATE: the frame goes to the real server's MAC */
#define RVS_CHECK_TUNNEL 3 /* RVS_FWD_TUNNEL: IP-in-IP to the real server */

/* The path of one real server's checks (rvs_check_paths, indexed by slot). family 0: none. */
struct rvs_check_path {
	__u32 addr[4];       /* the real server (IPv4 in addr[0]), network order */
	__u32 tunnel_src[4]; /* tunnel: the outer source, the one the engine uses */
	__u8 family;         /* 4 or 6; 0: an empty slot */
	__u8 method;         /* RVS_CHECK_GATE or RVS_CHECK_TUNNEL */
	__u16 pad;
};

#define RVS_CHECK_STAT_SENT 0      /* redirected to the real server */
#define RVS_CHECK_STAT_UNKNOWN 1   /* a mark of ours with no path: left untouched */
#define RVS_CHECK_STAT_NO_ROUTE 2  /* no route to the real server: dropped */
#define RVS_CHECK_STAT_ENCAP_FAILED 3 /* the outer header could not be added: dropped */
#define RVS_CHECK_STAT_COUNT 4

#endif

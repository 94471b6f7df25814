// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * km_hash.h agrees in BPF and in userspace: 100k gets with random keys
 * (1..250 printable bytes) run through km_xdp_rx against a ring built by
 * km_ring_build; the backend each is routed to must be the first readable
 * replica km_ring_lookup names (one backend is down, to exercise skipping).
 */
#include "km_test.h"

#define NKEYS	100000
#define NBE	5
#define DOWN_BE 2

static const struct km_t_ep client = {
	{0x02, 0, 0, 0, 0, 0x64}, "198.18.0.100", 40000};
static const struct km_t_ep proxy = {
	{0x02, 0, 0, 0, 0, 0x01}, "198.18.0.1", 11210};

static struct km_ring ring;

static int setup(struct km_bpf **kb, const char *pin_root)
{
	static const struct km_ring_member m[NBE] = {
		{1, "198.18.0.11:11211"}, {2, "198.18.0.12:11211"},
		{3, "198.18.0.13:11211"}, {4, "198.18.0.14:11211"},
		{5, "198.18.0.15:11211"},
	};
	struct km_bpf_opts o = {
		.pin_root = pin_root, .service_port = 11210, .nat_port = 11299};
	struct km_backend b = {.port = htons(11211)};
	struct km_config cfg;
	char ip[32];
	int i;

	if (unshare(CLONE_NEWNET)) {
		perror("unshare(CLONE_NEWNET) (needs root)");
		return -1;
	}
	if (km_t_sh("ip link add kv0 address 02:00:00:00:00:01 type veth "
		    "peer name kv1") ||
	    km_t_sh("ip addr add 198.18.0.1/24 dev kv0") ||
	    km_t_sh("ip link set kv0 up && ip link set kv1 up") ||
	    km_t_sh("sysctl -qw net.ipv4.conf.kv0.forwarding=1"))
		return -1;
	for (i = 1; i <= NBE; i++)
		if (km_t_sh("ip neigh add 198.18.0.%d lladdr "
			    "02:00:00:00:00:%02x dev kv0 nud permanent",
			    10 + i, 0x10 + i))
			return -1;
	if (km_bpf_open(kb, &o))
		return -1;
	if (km_bpf_get_config(*kb, &cfg))
		return -1;
	cfg.proxy_addr = km_t_addr(proxy.ip);
	cfg.pending_timeout_ns = KM_PENDING_TIMEOUT_NS;
	if (km_bpf_set_config(*kb, &cfg) ||
	    km_bpf_allow_add(*kb, km_t_addr("198.18.0.0"), 16))
		return -1;
	for (i = 1; i <= NBE; i++) {
		snprintf(ip, sizeof(ip), "198.18.0.%d", 10 + i);
		b.addr.v4 = km_t_addr(ip);
		b.family = KM_FAM_V4;
		b.state = i == DOWN_BE ? KM_BE_DOWN : KM_BE_UP;
		if (km_bpf_set_backend(*kb, i, &b))
			return -1;
	}
	if (km_ring_build(&ring, m, NBE, 3) || km_bpf_set_ring(*kb, &ring))
		return -1;
	return 0;
}

static __u8 expected_backend(const char *key, size_t len)
{
	const struct km_slot *s = km_ring_lookup(&ring, key, len);
	int i;

	for (i = 0; i < s->nr; i++)
		if (s->be[i] != DOWN_BE)
			return s->be[i];
	return 0;
}

int main(void)
{
	char pin_root[64], key[KM_KEY_MAX + 1], req[KM_KEY_MAX + 8];
	unsigned int i, agree = 0, routed = 0, skipped_down = 0;
	struct km_bpf *kb = NULL;
	struct km_t_frame f;
	__be32 daddr;
	size_t len, j;
	static struct km_pending free_entry;
	int rc = 1, v, pending_fd;
	__u32 idx;
	__u8 want;

	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(pin_root, sizeof(pin_root), "/sys/fs/bpf/kmh%d", getpid());
	if (setup(&kb, pin_root)) {
		printf("FAIL setup\n");
		goto out;
	}
	pending_fd = km_bpf_map_fd(kb, KM_MAP_PENDING);
	srandom(12345);
	for (i = 0; i < NKEYS; i++) {
		len = 1 + random() % KM_KEY_MAX;
		for (j = 0; j < len; j++)
			key[j] = 0x21 + random() % (0x7f - 0x21);
		memcpy(req, "get ", 4);
		memcpy(req + 4, key, len);
		memcpy(req + 4 + len, "\r\n", 2);
		km_t_build(&f, &client, &proxy, i & 0xffff, 0, 1, req, len + 6,
			   0);
		v = km_t_run_xdp(km_bpf_xdp_fd(kb), &f, if_nametoindex("kv0"));
		if (v != XDP_TX)
			continue;
		routed++;
		/* free the entry, as the reply would */
		idx = ntohs(km_t_mc(&f)->rid);
		if (bpf_map_update_elem(pending_fd, &idx, &free_entry, BPF_ANY))
			printf("cannot free pending entry %u\n", idx);
		want = expected_backend(key, len);
		daddr = km_t_ip(&f)->daddr;
		if (daddr == htonl(0xc6120000 | (10 + want)))
			agree++;
		else if (agree + 10 > i)
			printf("key %.*s: kernel chose %x, userspace %u\n",
			       (int)len, key, ntohl(daddr), want);
		if (km_ring_lookup(&ring, key, len)->be[0] == DOWN_BE)
			skipped_down++;
	}
	printf("%u keys, %u routed in the kernel, %u agree with userspace, "
	       "%u skipped the down primary\n",
	       NKEYS, routed, agree, skipped_down);
	rc = CHECK(routed == NKEYS, "every get routed") &&
			     CHECK(agree == NKEYS,
				   "kernel and userspace agree") &&
			     CHECK(skipped_down > 0, "down primaries seen")
		     ? 0
		     : 1;
out:
	km_bpf_close(kb);
	km_bpf_detach_all(pin_root, NULL);
	return rc;
}

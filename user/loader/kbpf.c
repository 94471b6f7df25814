// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Loader of the kernel fast path.  Maps are pinned by name under the pin
 * root, so a restarted daemon's skeleton reuses them (libbpf pin_root_path)
 * and traffic keeps its state; XDP is attached through a bpf_link pinned
 * there too, so it stays attached when the daemon exits or crashes, and a
 * new daemon swaps its freshly loaded program into the same link.  tc has
 * no link on libbpf 1.1: the filter is installed with a fixed handle and
 * priority and replaced in place (BPF_TC_F_REPLACE), which is as durable.
 */
#include <dirent.h>
#include <errno.h>
#include <time.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "detach.h"
#include "kbpf.h"
#include "log.h"
#include "kmagent.skel.h"

#define KM_BPFFS	  "/sys/fs/bpf"

#define KM_BPF_MAX_IFACES 16

struct km_bpf {
	struct kmagent_bpf *skel;
	char pin_root[PATH_MAX];
	struct ring_buffer *rb;
	km_bpf_event_fn event_fn;
	void *event_ctx;
	struct {
		int ifindex;
		int generic;
		/* attached by this handle, not adopted: km_bpf_undo's part */
		int xdp_fresh, tc_fresh;
	} ifaces[KM_BPF_MAX_IFACES];
	int nr_ifaces;
	int ncpus;
	int fresh_root; /* no maps were pinned before this open */
	int ipv6;	/* km_bpf_opts.ipv6 */
};

static int km_is_bpffs(const char *path)
{
	struct statfs st;

	return statfs(path, &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

static int km_mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	size_t i, len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -errno;
		buf[i] = path[i];
	}
	return 0;
}

/*
 * bpffs at /sys/fs/bpf (as libxdp does) when the pin root lives there,
 * unless the pin root is bpffs already: the unit binds it into a tmpfs
 * /sys/fs/bpf (kmagentd.service.in), where a mount would fail.
 */
static int km_prepare_pin_root(const char *root)
{
	int err;

	if (!strncmp(root, KM_BPFFS "/", strlen(KM_BPFFS) + 1) &&
	    !km_is_bpffs(root) && !km_is_bpffs(KM_BPFFS)) {
		if (mount("bpf", KM_BPFFS, "bpf", 0, "mode=0700")) {
			err = -errno;
			km_err("mount bpffs on %s: %s\n", KM_BPFFS,
			       strerror(errno));
			return err;
		}
		km_info("mounted bpffs on %s\n", KM_BPFFS);
	}
	err = km_mkdir_p(root);
	if (err)
		km_err("create pin root %s: %s\n", root, strerror(-err));
	return err;
}

/* No map of ours pinned under root yet: this open creates the pins. */
static int km_pins_absent(const char *root)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", root, KM_MAP_RING);
	return access(path, F_OK) != 0;
}

/*
 * A map pinned by an older kmagentd with another shape (an upgrade changed
 * a struct of include/kmagent.h) would fail the whole load: libbpf reuses a
 * pin only when type, sizes, entries and flags match.  Unpin such a map, so
 * that this load creates it afresh; its old state is lost, the others'
 * kept.
 */
static void km_unpin_stale_maps(struct bpf_object *obj)
{
	struct bpf_map_info info;
	struct bpf_map *map;
	__u32 len;
	const char *path;
	int fd;

	bpf_object__for_each_map (map, obj) {
		path = bpf_map__pin_path(map);
		if (!path)
			continue;
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue; /* not pinned yet */
		memset(&info, 0, sizeof(info));
		len = sizeof(info);
		if (!bpf_obj_get_info_by_fd(fd, &info, &len) &&
		    info.type == bpf_map__type(map) &&
		    info.key_size == bpf_map__key_size(map) &&
		    info.value_size == bpf_map__value_size(map) &&
		    info.max_entries == bpf_map__max_entries(map) &&
		    info.map_flags == bpf_map__map_flags(map)) {
			close(fd);
			continue;
		}
		close(fd);
		km_warn("pinned map %s has another layout (an older "
			"kmagentd?): replaced, its state is lost\n",
			path);
		if (unlink(path))
			km_warn("unpin %s: %s\n", path, strerror(errno));
	}
}

/* km_xdp_rx's tail call to its IPv6 copy (kmagent.bpf.c). */
static int km_bpf_fill_progs(struct km_bpf *kb)
{
	__u32 key = KM_PROG_XDP6;
	int fd = bpf_program__fd(kb->skel->progs.km_xdp_rx6);

	if (bpf_map__update_elem(kb->skel->maps.km_progs, &key, sizeof(key),
				 &fd, sizeof(fd), BPF_ANY))
		return -errno;
	return 0;
}

int km_bpf_open(struct km_bpf **out, const struct km_bpf_opts *opts)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo);
	struct km_config cfg;
	struct km_bpf *kb;
	int err;

	kb = calloc(1, sizeof(*kb));
	if (!kb)
		return -ENOMEM;
	snprintf(kb->pin_root, sizeof(kb->pin_root), "%s",
		 opts->pin_root ? opts->pin_root : KM_PIN_ROOT);
	kb->ipv6 = opts->ipv6;
	km_log_libbpf(opts->verbose);
	kb->ncpus = libbpf_num_possible_cpus();
	if (kb->ncpus <= 0) {
		err = kb->ncpus ? kb->ncpus : -EINVAL;
		goto err_free;
	}
	kb->fresh_root = km_pins_absent(kb->pin_root);
	err = km_prepare_pin_root(kb->pin_root);
	if (err)
		goto err_free;
	oo.pin_root_path = kb->pin_root;
	kb->skel = kmagent_bpf__open_opts(&oo);
	if (!kb->skel) {
		err = -errno;
		km_err("open BPF skeleton: %s\n", strerror(errno));
		goto err_free;
	}
	kb->skel->rodata->km_service_port = opts->service_port;
	kb->skel->rodata->km_nat_port =
		opts->nat_port ? opts->nat_port : KM_NAT_PORT_DEFAULT;
	if (!kb->fresh_root)
		km_unpin_stale_maps(kb->skel->obj);
	err = kmagent_bpf__load(kb->skel);
	if (err) {
		km_err("load BPF programs (pin root %s): %s\n", kb->pin_root,
		       strerror(-err));
		goto err_destroy;
	}
	err = km_bpf_fill_progs(kb);
	if (err) {
		km_err("km_progs: %s\n", strerror(-err));
		goto err_destroy;
	}
	/* a fresh km_config: default timeout, everything else 0 */
	err = km_bpf_get_config(kb, &cfg);
	if (err)
		goto err_destroy;
	if (!cfg.pending_timeout_ns) {
		cfg.pending_timeout_ns = KM_PENDING_TIMEOUT_NS;
		err = km_bpf_set_config(kb, &cfg);
		if (err)
			goto err_destroy;
	}
	*out = kb;
	return 0;

err_destroy:
	kmagent_bpf__destroy(kb->skel);
err_free:
	free(kb);
	return err;
}

void km_bpf_close(struct km_bpf *kb)
{
	if (!kb)
		return;
	ring_buffer__free(kb->rb);
	kmagent_bpf__destroy(kb->skel);
	free(kb);
}

static void km_xdp_link_path(const struct km_bpf *kb, int ifindex, char *buf,
			     size_t len)
{
	int n = snprintf(buf, len, "%s/", kb->pin_root);

	if (n > 0 && (size_t)n < len)
		snprintf(buf + n, len - n, KM_LINK_XDP_FMT, ifindex);
}

/* Swap our program into a link a previous daemon pinned, if it still works. */
static int km_adopt_xdp_link(const char *path, int prog_fd)
{
	int fd, err;

	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	err = bpf_link_update(fd, prog_fd, NULL);
	close(fd);
	if (err) {
		err = -errno;
		unlink(path); /* defunct (interface gone): make a new one */
	}
	return err;
}

static int km_attach_xdp(struct km_bpf *kb, int ifindex, const char *ifname,
			 int *generic, int *fresh)
{
	LIBBPF_OPTS(bpf_link_create_opts, lo);
	int prog_fd = bpf_program__fd(kb->skel->progs.km_xdp_rx);
	char path[PATH_MAX];
	const char *mode;
	int fd, err;

	km_xdp_link_path(kb, ifindex, path, sizeof(path));
	if (!access(path, F_OK) && !km_adopt_xdp_link(path, prog_fd)) {
		LIBBPF_OPTS(bpf_xdp_query_opts, q);

		/* the previous daemon's mode, generic maybe */
		*generic = !bpf_xdp_query(ifindex, 0, &q) && !q.drv_prog_id &&
			   q.skb_prog_id;
		km_info("%s: adopted pinned XDP link %s\n", ifname, path);
		return 0;
	}
	*generic = 0;
	*fresh = 1;
	lo.flags = XDP_FLAGS_DRV_MODE;
	/* KMAGENT_XDP_MODE=skb: generic mode on purpose (tests, diagnosis) */
	mode = getenv("KMAGENT_XDP_MODE");
	if (mode && !strcmp(mode, "skb")) {
		fd = -1;
		errno = EOPNOTSUPP;
	} else {
		fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &lo);
	}
	if (fd < 0) {
		km_warn("%s: native XDP unavailable (%s), using generic mode: "
			"slower\n",
			ifname, strerror(errno));
		lo.flags = XDP_FLAGS_SKB_MODE;
		*generic = 1;
		fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &lo);
		if (fd < 0) {
			err = -errno;
			km_err("%s: attach XDP: %s\n", ifname, strerror(errno));
			return err;
		}
	}
	err = bpf_obj_pin(fd, path) ? -errno : 0;
	if (err) {
		km_err("%s: pin XDP link at %s: %s\n", ifname, path,
		       strerror(-err));
		*fresh = 0; /* closing the fd below detaches it */
	}
	close(fd); /* the pin holds the link; without it, detach now */
	return err;
}

/*
 * tc ingress: km_tc_clone (writes, fallbacks XDP could not grow).  tc
 * egress: km_tc_egress, which catches the replies of a backend on this
 * host: they reach the client through the host's stack and leave by this
 * interface, never crossing XDP.  (tc on lo would not see them: the
 * backend answers the client's address, which is not local.)
 */
/* The IPv4 filter p4 at the hook, then the IPv6 one p6 after it. */
static int km_attach_tc_pair(struct bpf_tc_hook *hook, struct bpf_tc_opts *to,
			     const struct bpf_program *p4,
			     const struct bpf_program *p6)
{
	int err;

	to->handle = KM_TC_HANDLE;
	to->priority = KM_TC_PRIO;
	to->prog_fd = bpf_program__fd(p4);
	to->prog_id = 0;
	err = bpf_tc_attach(hook, to);
	if (err)
		return err;
	to->handle = KM_TC_HANDLE6;
	to->priority = KM_TC_PRIO6;
	to->prog_fd = bpf_program__fd(p6);
	to->prog_id = 0;
	err = bpf_tc_attach(hook, to);
	to->handle = KM_TC_HANDLE;
	to->priority = KM_TC_PRIO;
	return err;
}

static int km_attach_tc(struct km_bpf *kb, int ifindex, const char *ifname,
			int *fresh)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
		    .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, to, .handle = KM_TC_HANDLE,
		    .priority = KM_TC_PRIO, .flags = BPF_TC_F_REPLACE);
	struct bpf_tc_opts q = to;
	int err;

	/* create clsact only when missing (a second create logs an error) */
	q.flags = 0;
	if (bpf_tc_query(&hook, &q) == -EINVAL || q.prog_id == 0) {
		*fresh = 1; /* no filter of a previous run to replace */
		err = bpf_tc_hook_create(&hook);
		if (err && err != -EEXIST) {
			km_err("%s: create clsact: %s\n", ifname,
			       strerror(-err));
			return err;
		}
	}
	err = km_attach_tc_pair(&hook, &to, kb->skel->progs.km_tc_clone,
				kb->skel->progs.km_tc_clone6);
	if (err) {
		km_err("%s: attach tc ingress: %s\n", ifname, strerror(-err));
		return err;
	}
	hook.attach_point = BPF_TC_EGRESS;
	err = km_attach_tc_pair(&hook, &to, kb->skel->progs.km_tc_egress,
				kb->skel->progs.km_tc_egress6);
	if (err)
		km_err("%s: attach tc egress: %s\n", ifname, strerror(-err));
	return err;
}

/*
 * bpf_fib_lookup answers only for interfaces with forwarding on (it
 * checks the ingress device as a router would): turn it on for ifname,
 * for IPv4 ("ipv4") or IPv6 ("ipv6").  IPv6 forwarding also makes the
 * interface ignore router advertisements (unless accept_ra is 2): it is
 * turned on only for IPv6 backends.
 */
static int km_enable_forwarding(const char *ifname, const char *ipv)
{
	char path[128];
	FILE *f;
	int err = 0;

	snprintf(path, sizeof(path), "/proc/sys/net/%s/conf/%s/forwarding", ipv,
		 ifname);
	f = fopen(path, "r+");
	if (!f)
		return -errno;
	if (fgetc(f) != '1') {
		rewind(f);
		if (fputs("1\n", f) < 0)
			err = -EIO;
		else
			km_info("%s: enabled %s forwarding (needed by "
				"bpf_fib_lookup)\n",
				ifname, strcmp(ipv, "ipv6") ? "IPv4" : "IPv6");
	}
	if (fclose(f) && !err)
		err = -errno;
	return err;
}

int km_bpf_attach(struct km_bpf *kb, const char *ifname)
{
	int ifindex = if_nametoindex(ifname), err;
	typeof(kb->ifaces[0]) *ifc;

	if (!ifindex) {
		err = -errno;
		km_err("interface %s: %s\n", ifname, strerror(errno));
		return err;
	}
	if (kb->nr_ifaces >= KM_BPF_MAX_IFACES)
		return -E2BIG;
	err = km_enable_forwarding(ifname, "ipv4");
	if (!err && kb->ipv6)
		err = km_enable_forwarding(ifname, "ipv6");
	if (err) {
		km_err("%s: enable forwarding: %s\n", ifname, strerror(-err));
		return err;
	}
	/* recorded first: a half-done attach is undone like a whole one */
	ifc = &kb->ifaces[kb->nr_ifaces++];
	memset(ifc, 0, sizeof(*ifc));
	ifc->ifindex = ifindex;
	err = km_attach_xdp(kb, ifindex, ifname, &ifc->generic,
			    &ifc->xdp_fresh);
	if (err)
		return err;
	return km_attach_tc(kb, ifindex, ifname, &ifc->tc_fresh);
}

int km_bpf_is_generic(struct km_bpf *kb, const char *ifname)
{
	int ifindex = if_nametoindex(ifname), i;

	for (i = 0; i < kb->nr_ifaces; i++)
		if (kb->ifaces[i].ifindex == ifindex)
			return kb->ifaces[i].generic;
	return 0;
}

int km_bpf_get_config(struct km_bpf *kb, struct km_config *cfg)
{
	__u32 zero = 0;

	if (bpf_map__lookup_elem(kb->skel->maps.km_config, &zero, sizeof(zero),
				 cfg, sizeof(*cfg), 0))
		return -errno;
	return 0;
}

int km_bpf_set_config(struct km_bpf *kb, const struct km_config *cfg)
{
	__u32 zero = 0;

	if (bpf_map__update_elem(kb->skel->maps.km_config, &zero, sizeof(zero),
				 cfg, sizeof(*cfg), BPF_ANY))
		return -errno;
	return 0;
}

int km_bpf_set_ring(struct km_bpf *kb, const struct km_ring *ring)
{
	int fd = bpf_map__fd(kb->skel->maps.km_ring);
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	struct km_config cfg;
	__u32 *keys, i, half, count = KM_RING_SLOTS;
	int err;

	err = km_bpf_get_config(kb, &cfg);
	if (err)
		return err;
	half = !(cfg.ring_active & 1);
	keys = malloc(sizeof(*keys) * KM_RING_SLOTS);
	if (!keys)
		return -ENOMEM;
	for (i = 0; i < KM_RING_SLOTS; i++)
		keys[i] = half * KM_RING_SLOTS + i;
	err = bpf_map_update_batch(fd, keys, ring->slots, &count, &bo);
	if (err)
		err = -errno;
	else if (count != KM_RING_SLOTS)
		err = -EIO;
	free(keys);
	if (err)
		return err;
	/* the data path now sees the new half, complete */
	cfg.ring_active = half;
	return km_bpf_set_config(kb, &cfg);
}

int km_bpf_set_backend(struct km_bpf *kb, __u8 id, const struct km_backend *b)
{
	__u32 key = id;

	if (id == KM_BACKEND_NONE || id >= KM_MAX_BACKENDS)
		return -EINVAL;
	if (bpf_map__update_elem(kb->skel->maps.km_backends, &key, sizeof(key),
				 b, sizeof(*b), BPF_ANY))
		return -errno;
	return 0;
}

int km_bpf_get_backend(struct km_bpf *kb, __u8 id, struct km_backend *b)
{
	__u32 key = id;

	if (id == KM_BACKEND_NONE || id >= KM_MAX_BACKENDS)
		return -EINVAL;
	if (bpf_map__lookup_elem(kb->skel->maps.km_backends, &key, sizeof(key),
				 b, sizeof(*b), 0))
		return -errno;
	return 0;
}

int km_bpf_set_backend_src(struct km_bpf *kb, __u8 id, const union km_ip *src)
{
	__u32 key = id;

	if (id == KM_BACKEND_NONE || id >= KM_MAX_BACKENDS)
		return -EINVAL;
	if (bpf_map__update_elem(kb->skel->maps.km_be_src, &key, sizeof(key),
				 src, sizeof(*src), BPF_ANY))
		return -errno;
	return 0;
}

int km_bpf_allow_add(struct km_bpf *kb, __be32 addr, unsigned int prefix)
{
	struct km_lpm_key key = {.prefixlen = prefix, .addr = addr};
	__u32 one = 1;

	if (prefix > 32)
		return -EINVAL;
	if (bpf_map__update_elem(kb->skel->maps.km_allow, &key, sizeof(key),
				 &one, sizeof(one), BPF_ANY))
		return -errno;
	return 0;
}

int km_bpf_allow6_add(struct km_bpf *kb, const void *addr6, unsigned int prefix)
{
	struct km_lpm6_key key = {.prefixlen = prefix};
	__u32 one = 1;

	if (prefix > 128)
		return -EINVAL;
	memcpy(key.addr, addr6, sizeof(key.addr));
	if (bpf_map__update_elem(kb->skel->maps.km_allow6, &key, sizeof(key),
				 &one, sizeof(one), BPF_ANY))
		return -errno;
	return 0;
}

/* Sum a per-CPU array entry of n u64 counters. */
static int km_percpu_sum(struct km_bpf *kb, struct bpf_map *map, __u32 key,
			 __u64 *out, size_t n)
{
	size_t vsz = n * sizeof(__u64);
	__u64 *vals;
	int c, err = 0;
	size_t i;

	vals = calloc(kb->ncpus, vsz);
	if (!vals)
		return -ENOMEM;
	if (bpf_map__lookup_elem(map, &key, sizeof(key), vals, vsz * kb->ncpus,
				 0)) {
		err = -errno;
		goto out;
	}
	memset(out, 0, vsz);
	for (c = 0; c < kb->ncpus; c++)
		for (i = 0; i < n; i++)
			out[i] += vals[c * n + i];
out:
	free(vals);
	return err;
}

int km_bpf_stats(struct km_bpf *kb, struct km_stats *out)
{
	return km_percpu_sum(kb, kb->skel->maps.km_stats, 0, (__u64 *)out,
			     sizeof(*out) / sizeof(__u64));
}

int km_bpf_be_stats(struct km_bpf *kb, __u8 id, struct km_be_stats *out)
{
	return km_percpu_sum(kb, kb->skel->maps.km_be_stats, id, (__u64 *)out,
			     sizeof(*out) / sizeof(__u64));
}

static int km_on_event(void *ctx, void *data, size_t size)
{
	struct km_bpf *kb = ctx;

	if (size < sizeof(struct km_event) || !kb->event_fn)
		return 0;
	return kb->event_fn(data, kb->event_ctx);
}

int km_bpf_set_event_handler(struct km_bpf *kb, km_bpf_event_fn fn, void *ctx)
{
	kb->event_fn = fn;
	kb->event_ctx = ctx;
	if (kb->rb)
		return 0;
	kb->rb = ring_buffer__new(bpf_map__fd(kb->skel->maps.km_events),
				  km_on_event, kb, NULL);
	return kb->rb ? 0 : -errno;
}

int km_bpf_events_fd(struct km_bpf *kb)
{
	return kb->rb ? ring_buffer__epoll_fd(kb->rb) : -EINVAL;
}

int km_bpf_poll(struct km_bpf *kb, int timeout_ms)
{
	int n;

	if (!kb->rb)
		return -EINVAL;
	n = ring_buffer__poll(kb->rb, timeout_ms);
	return n == -EINTR ? 0 : n;
}

int km_bpf_xdp_fd(struct km_bpf *kb)
{
	return bpf_program__fd(kb->skel->progs.km_xdp_rx);
}

int km_bpf_tc_fd(struct km_bpf *kb)
{
	return bpf_program__fd(kb->skel->progs.km_tc_clone);
}

int km_bpf_prog_fd(struct km_bpf *kb, const char *name)
{
	struct bpf_program *p;

	p = bpf_object__find_program_by_name(kb->skel->obj, name);
	return p ? bpf_program__fd(p) : -ENOENT;
}

int km_bpf_map_fd(struct km_bpf *kb, const char *name)
{
	struct bpf_map *m;

	m = bpf_object__find_map_by_name(kb->skel->obj, name);
	return m ? bpf_map__fd(m) : -ENOENT;
}

void km_bpf_undo(struct km_bpf *kb)
{
	char path[PATH_MAX];
	int i, fd;

	for (i = kb->nr_ifaces - 1; i >= 0; i--) {
		int ifindex = kb->ifaces[i].ifindex;

		if (kb->ifaces[i].tc_fresh)
			km_detach_tc(ifindex);
		if (!kb->ifaces[i].xdp_fresh)
			continue;
		km_xdp_link_path(kb, ifindex, path, sizeof(path));
		fd = bpf_obj_get(path);
		if (fd >= 0) {
			if (bpf_link_detach(fd))
				km_warn("undo: detach %s: %s\n", path,
					strerror(errno));
			close(fd);
		}
		unlink(path);
	}
	kb->nr_ifaces = 0;
	if (kb->fresh_root)
		km_unpin_all(kb->pin_root, NULL);
}

__u64 km_bpf_coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

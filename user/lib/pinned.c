// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Read the pinned maps of the kernel path without loading anything. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <net/if.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "pinned.h"

#define KM_COUNT(f) +1
/* the field lists of pinned.h name every counter of the structs */
_Static_assert((0 KM_STATS_FIELDS(KM_COUNT)) * sizeof(__u64) ==
		       sizeof(struct km_stats),
	       "KM_STATS_FIELDS out of date");
_Static_assert((0 KM_BE_STATS_FIELDS(KM_COUNT)) * sizeof(__u64) ==
		       sizeof(struct km_be_stats),
	       "KM_BE_STATS_FIELDS out of date");

static int km_pin_get(const char *root, const char *name)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, name);
	fd = bpf_obj_get(path);
	return fd < 0 ? -errno : fd;
}

int km_pinned_open(struct km_pinned *p, const char *root)
{
	int err;

	if (!root || !root[0])
		root = KM_PIN_ROOT;
	memset(p, 0, sizeof(*p));
	p->stats_fd = km_pin_get(root, KM_MAP_STATS);
	p->be_stats_fd = km_pin_get(root, KM_MAP_BE_STATS);
	p->backends_fd = km_pin_get(root, KM_MAP_BACKENDS);
	p->config_fd = km_pin_get(root, KM_MAP_CONFIG);
	p->ring_fd = km_pin_get(root, KM_MAP_RING);
	p->ncpus = libbpf_num_possible_cpus();
	err = p->stats_fd < 0 ? p->stats_fd : p->backends_fd;
	if (err < 0 || p->ncpus <= 0) {
		km_pinned_close(p);
		return err < 0 ? err : -EINVAL;
	}
	return 0;
}

void km_pinned_close(struct km_pinned *p)
{
	int *fds[] = {&p->stats_fd, &p->be_stats_fd, &p->backends_fd,
		      &p->config_fd, &p->ring_fd};
	unsigned int i;

	for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

/* Sum a per-CPU value made of __u64 counters. */
static int km_percpu_sum(const struct km_pinned *p, int fd, __u32 key,
			 __u64 *out, size_t size)
{
	size_t n = size / sizeof(__u64), i;
	__u64 *vals;
	int cpu, err = 0;

	if (fd < 0)
		return -ENOENT;
	vals = calloc(p->ncpus, size);
	if (!vals)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &key, vals)) {
		err = -errno;
		goto out;
	}
	memset(out, 0, size);
	for (cpu = 0; cpu < p->ncpus; cpu++)
		for (i = 0; i < n; i++)
			out[i] += vals[cpu * n + i];
out:
	free(vals);
	return err;
}

int km_pinned_stats(const struct km_pinned *p, struct km_stats *out)
{
	_Static_assert(sizeof(*out) % sizeof(__u64) == 0, "u64 counters");
	return km_percpu_sum(p, p->stats_fd, 0, (__u64 *)out, sizeof(*out));
}

int km_pinned_be_stats(const struct km_pinned *p, __u8 id,
		       struct km_be_stats *out)
{
	_Static_assert(sizeof(*out) % sizeof(__u64) == 0, "u64 counters");
	return km_percpu_sum(p, p->be_stats_fd, id, (__u64 *)out, sizeof(*out));
}

int km_pinned_backend(const struct km_pinned *p, __u8 id,
		      struct km_backend *out)
{
	__u32 key = id;

	if (bpf_map_lookup_elem(p->backends_fd, &key, out))
		return -errno;
	return 0;
}

int km_pinned_slot(const struct km_pinned *p, __u32 slot, struct km_slot *out)
{
	struct km_config cfg;
	__u32 key = 0;

	if (p->config_fd < 0 || p->ring_fd < 0)
		return -ENOENT;
	if (bpf_map_lookup_elem(p->config_fd, &key, &cfg))
		return -errno;
	key = (cfg.ring_active & 1) * KM_RING_SLOTS + slot;
	if (bpf_map_lookup_elem(p->ring_fd, &key, out))
		return -errno;
	return 0;
}

/* Does program fd use the map with id map_id? */
static bool km_prog_uses_map(int fd, __u32 map_id)
{
	__u32 ids[64], i;
	struct bpf_prog_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	info.nr_map_ids = 64;
	info.map_ids = (__u64)(unsigned long)ids;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return false;
	for (i = 0; i < info.nr_map_ids && i < 64; i++)
		if (ids[i] == map_id)
			return true;
	return false;
}

int km_pinned_progs(const struct km_pinned *p, struct km_prog_stats *out,
		    int max)
{
	struct bpf_map_info minfo;
	__u32 id = 0, mlen = sizeof(minfo);
	int n = 0;

	memset(&minfo, 0, sizeof(minfo));
	if (bpf_obj_get_info_by_fd(p->stats_fd, &minfo, &mlen))
		return -errno;
	while (n < max && !bpf_prog_get_next_id(id, &id)) {
		struct bpf_prog_info info;
		__u32 len = sizeof(info);
		int fd = bpf_prog_get_fd_by_id(id);

		if (fd < 0)
			continue;
		memset(&info, 0, sizeof(info));
		if (!bpf_obj_get_info_by_fd(fd, &info, &len) &&
		    !strncmp(info.name, "km_", 3) &&
		    km_prog_uses_map(fd, minfo.id)) {
			out[n].id = info.id;
			snprintf(out[n].name, sizeof(out[n].name), "%s",
				 info.name);
			out[n].run_cnt = info.run_cnt;
			out[n].run_time_ns = info.run_time_ns;
			n++;
		}
		close(fd);
	}
	return n;
}

/* X-macro: one "field":value member of the object, from struct s. */
#define KM_JSON_MEMBER(f)                                                      \
	fprintf(out, "%s\"" #f "\":%llu", sep, (unsigned long long)s.f);       \
	sep = ",";

void km_pinned_json_stats(FILE *out, const struct km_pinned *p)
{
	const char *sep = "";
	struct km_stats s;

	if (!p || km_pinned_stats(p, &s)) {
		fputs("null", out);
		return;
	}
	fputc('{', out);
	KM_STATS_FIELDS(KM_JSON_MEMBER)
	fputc('}', out);
}

void km_pinned_json_be_stats(FILE *out, const struct km_pinned *p, __u8 id)
{
	const char *sep = "";
	struct km_be_stats s;

	if (!p || km_pinned_be_stats(p, id, &s)) {
		fputs("null", out);
		return;
	}
	fputc('{', out);
	KM_BE_STATS_FIELDS(KM_JSON_MEMBER)
	fputc('}', out);
}

void km_pinned_json_progs(FILE *out, const struct km_pinned *p)
{
	struct km_prog_stats ps[16];
	int n = p ? km_pinned_progs(p, ps, 16) : 0, i;

	fputc('[', out);
	for (i = 0; i < n; i++)
		fprintf(out,
			"%s{\"id\":%u,\"name\":\"%s\",\"run_cnt\":%llu,"
			"\"run_time_ns\":%llu}",
			i ? "," : "", ps[i].id, ps[i].name,
			(unsigned long long)ps[i].run_cnt,
			(unsigned long long)ps[i].run_time_ns);
	fputc(']', out);
}

const char *km_xdp_mode(int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	/* ids, not names: naming a program by id needs CAP_SYS_ADMIN */
	if (ifindex <= 0 || bpf_xdp_query(ifindex, 0, &q))
		return "none";
	if (q.drv_prog_id)
		return "native";
	if (q.skb_prog_id)
		return "generic";
	if (q.hw_prog_id)
		return "offload";
	return "none";
}

int km_pinned_ifaces(const char *root, int *ifindex, int max)
{
	struct dirent *de;
	int n = 0, i;
	DIR *d;

	d = opendir(root && root[0] ? root : KM_PIN_ROOT);
	if (!d)
		return -errno;
	while (n < max && (de = readdir(d)))
		if (sscanf(de->d_name, KM_LINK_XDP_FMT, &i) == 1)
			ifindex[n++] = i;
	closedir(d);
	return n;
}

void km_json_iface(FILE *out, const char *name, int ifindex)
{
	fprintf(out, "{\"name\":\"%s\",\"ifindex\":%d,\"xdp\":\"%s\"}", name,
		ifindex, km_xdp_mode(ifindex));
}

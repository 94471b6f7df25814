// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Growable byte buffers with a consumed front, reused across requests. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define KM_BUF_KEEP (64 << 10) /* kept for reuse; larger ones freed */

int km_buf_reserve(struct km_buf *b, size_t n)
{
	size_t used = b->len - b->off, cap;
	char *p;

	if (b->cap - b->len >= n)
		return 0;
	if (b->off && b->cap - used >= n) {
		memmove(b->p, b->p + b->off, used);
		b->len = used;
		b->off = 0;
		return 0;
	}
	cap = b->cap ? b->cap : 256;
	while (cap - used < n)
		cap *= 2;
	if (b->off) {
		memmove(b->p, b->p + b->off, used);
		b->len = used;
		b->off = 0;
	}
	p = realloc(b->p, cap);
	if (!p)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

int km_buf_append(struct km_buf *b, const void *d, size_t n)
{
	if (n == 0)
		return 0;
	if (km_buf_reserve(b, n))
		return -1;
	memcpy(b->p + b->len, d, n);
	b->len += n;
	return 0;
}

void km_buf_consume(struct km_buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

void km_buf_free(struct km_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void km_buf_shrink(struct km_buf *b)
{
	if (b->cap > KM_BUF_KEEP)
		km_buf_free(b);
	else
		b->off = b->len = 0;
}

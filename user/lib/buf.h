/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Growable byte buffers with a consumed front, reused across requests. */
#ifndef KM_BUF_H
#define KM_BUF_H

#include <stddef.h>

struct km_buf {
	char *p;
	size_t off; /* consumed from the front */
	size_t len; /* filled up to */
	size_t cap;
};

int km_buf_reserve(struct km_buf *b, size_t n);
int km_buf_append(struct km_buf *b, const void *d, size_t n);
void km_buf_consume(struct km_buf *b, size_t n);
void km_buf_free(struct km_buf *b);
/* Empty b; give a big one's memory back rather than keep it at peak. */
void km_buf_shrink(struct km_buf *b);

static inline size_t km_buf_used(const struct km_buf *b)
{
	return b->len - b->off;
}

static inline char *km_buf_data(const struct km_buf *b)
{
	return b->p + b->off;
}

#endif /* KM_BUF_H */

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Overdue requests of the kernel path: see retry.h. */
#include "retry.h"

unsigned int km_retry_scan(const volatile __u64 *dl, __u32 n, __u64 now,
			   __u64 delay_ns, __u32 *cursor,
			   struct km_retry_d *out, unsigned int max)
{
	__u32 i = n ? *cursor % n : 0, left;
	unsigned int k = 0;
	__u64 w;

	for (left = n; left && k < max; left--) {
		/* most words are 0: skip them 8 at a time */
		if (!(i & 7) && left >= 8 && i + 8 <= n &&
		    !(dl[i] | dl[i + 1] | dl[i + 2] | dl[i + 3] | dl[i + 4] |
		      dl[i + 5] | dl[i + 6] | dl[i + 7])) {
			left -= 7;
			i += 8;
			if (i == n)
				i = 0;
			continue;
		}
		w = dl[i];
		/* signed: a word armed after now was read is not overdue */
		if (w && (__s64)(now - (w & ~KM_DL_BE)) >= (__s64)delay_ns) {
			out[k].w = w;
			out[k].idx = i;
			out[k].state = KM_RQ_TODO;
			k++;
		}
		if (++i == n)
			i = 0;
	}
	*cursor = i;
	return k;
}

unsigned int km_retry_period_ms(unsigned int retry_ms)
{
	unsigned int p = retry_ms / 5;

	return p < 1 ? 1 : p > 20 ? 20 : p;
}

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* netdev: the command kmagentd logs for a veth peer it cannot fix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "netdev.h"

static const char *fix(const struct km_veth_peer *p)
{
	static char buf[512];

	km_veth_peer_fix(p, buf, sizeof(buf));
	return buf;
}

static void test_peer_elsewhere(void **state)
{
	struct km_veth_peer p = {.name = "kp",
				 .netns = "sw",
				 .gro = 0,
				 .tx_csum = 1,
				 .needs_napi = 1};

	(void)state;
	assert_string_equal(fix(&p),
			    "ip netns exec sw ethtool -K kp gro on tx off");
	p.tx_csum = 0;
	assert_string_equal(fix(&p), "ip netns exec sw ethtool -K kp gro on");
	p.xdp = 1; /* an XDP program gives it NAPI: GRO not needed */
	assert_string_equal(fix(&p), "");
	p.xdp = 0;
	p.gro = 1;
	assert_string_equal(fix(&p), "");
	p.gro = 0;
	p.needs_napi = 0; /* generic XDP: XDP_TX takes the usual path */
	assert_string_equal(fix(&p), "");
}

/* What could not be read may be wrong: it is named. */
static void test_unknown(void **state)
{
	struct km_veth_peer p = {.gro = -1, .tx_csum = -1, .needs_napi = 1};

	(void)state;
	assert_string_equal(fix(&p), "ethtool -K PEER gro on tx off");
	strcpy(p.name, "veth1a2b");
	assert_string_equal(fix(&p), "ethtool -K veth1a2b gro on tx off");
}

static void test_same_netns(void **state)
{
	struct km_veth_peer p = {.name = "v1",
				 .netns = "",
				 .same_netns = 1,
				 .gro = 1,
				 .tx_csum = 1,
				 .needs_napi = 1};

	(void)state;
	assert_string_equal(fix(&p), "ethtool -K v1 tx off");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peer_elsewhere),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_same_netns),
	};

	return cmocka_run_group_tests_name("netdev", tests, NULL, NULL);
}

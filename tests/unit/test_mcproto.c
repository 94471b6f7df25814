// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mcproto: request and reply parsing, table-driven.  The expected replies
 * are memcached 1.6.18's, observed on the real server for the same input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mcproto.h"

struct req_case {
	const char *name;
	const char *in;
	enum km_parse_res res;
	enum km_cmd cmd;
	long vlen;
	int noreply;
	int quiet;
	const char *reply; /* KM_P_REPLY only */
};

#define K250                                                                   \
	"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"                   \
	"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"                   \
	"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"                   \
	"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"                   \
	"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
#define FMT "CLIENT_ERROR bad command line format"

static const struct req_case req_cases[] = {
	{"get", "get a\r\n", KM_P_OK, KM_CMD_GET, -1, 0, 0, NULL},
	{"get, bare newline", "get a\n", KM_P_OK, KM_CMD_GET, -1, 0, 0, NULL},
	{"gets, many spaces", "gets  a   b \r\n", KM_P_OK, KM_CMD_GETS, -1, 0,
	 0, NULL},
	{"get without key", "get\r\n", KM_P_REPLY, KM_CMD_GET, -1, 0, 0,
	 "ERROR"},
	{"gat", "gat 10 a b\r\n", KM_P_OK, KM_CMD_GAT, -1, 0, 0, NULL},
	{"gat without key", "gat 10\r\n", KM_P_OK, KM_CMD_GAT, -1, 0, 0, NULL},
	{"gat bad exptime", "gat x k\r\n", KM_P_REPLY, KM_CMD_GAT, -1, 0, 0,
	 "CLIENT_ERROR invalid exptime argument"},
	{"empty line", "\r\n", KM_P_REPLY, KM_CMD_NONE, -1, 0, 0, "ERROR"},
	{"unknown", "foo bar\r\n", KM_P_REPLY, KM_CMD_NONE, -1, 0, 0, "ERROR"},
	{"upper case", "GET a\r\n", KM_P_REPLY, KM_CMD_NONE, -1, 0, 0, "ERROR"},
	{"set", "set k 1 2 3\r\nabc\r\n", KM_P_OK, KM_CMD_SET, 3, 0, 0, NULL},
	{"set noreply", "set k 1 2 3 noreply\r\n", KM_P_OK, KM_CMD_SET, 3, 1, 0,
	 NULL},
	{"set trailing space", "set k 0 0 1 \r\n", KM_P_OK, KM_CMD_SET, 1, 0, 0,
	 NULL},
	{"set max key", "set " K250 " 0 0 1\r\n", KM_P_OK, KM_CMD_SET, 1, 0, 0,
	 NULL},
	{"set key too long", "set " K250 "k 0 0 1\r\n", KM_P_REPLY, KM_CMD_SET,
	 -1, 0, 0, FMT},
	{"set negative length", "set k 0 0 -1\r\n", KM_P_REPLY, KM_CMD_SET, -1,
	 0, 0, FMT},
	{"set garbage length", "set k 0 0 abc\r\n", KM_P_REPLY, KM_CMD_SET, -1,
	 0, 0, FMT},
	{"set negative flags", "set k -1 0 1\r\n", KM_P_REPLY, KM_CMD_SET, -1,
	 0, 0, FMT},
	{"set bad length, noreply", "set k 0 0 x noreply\r\n", KM_P_REPLY,
	 KM_CMD_SET, -1, 1, 0, FMT},
	{"set too few tokens", "set k 0 0\r\n", KM_P_REPLY, KM_CMD_SET, -1, 0,
	 0, "ERROR"},
	{"set too many tokens", "set k 0 0 1 2 3 4\r\n", KM_P_REPLY, KM_CMD_SET,
	 -1, 0, 0, "ERROR"},
	{"set with a tab", "set k\t0 0 1\r\n", KM_P_REPLY, KM_CMD_SET, -1, 0, 0,
	 "ERROR"},
	{"cas", "cas k 0 0 1 99\r\n", KM_P_OK, KM_CMD_CAS, 1, 0, 0, NULL},
	{"cas without unique", "cas k 0 0 1\r\n", KM_P_REPLY, KM_CMD_CAS, -1, 0,
	 0, "ERROR"},
	{"cas bad unique", "cas k 0 0 1 x\r\n", KM_P_REPLY, KM_CMD_CAS, -1, 0,
	 0, FMT},
	{"append", "append k 0 0 1\r\n", KM_P_OK, KM_CMD_APPEND, 1, 0, 0, NULL},
	{"delete", "delete k\r\n", KM_P_OK, KM_CMD_DELETE, -1, 0, 0, NULL},
	{"delete 0", "delete k 0\r\n", KM_P_OK, KM_CMD_DELETE, -1, 0, 0, NULL},
	{"delete 0 noreply", "delete k 0 noreply\r\n", KM_P_OK, KM_CMD_DELETE,
	 -1, 1, 0, NULL},
	{"delete with time", "delete k 1\r\n", KM_P_REPLY, KM_CMD_DELETE, -1, 0,
	 0, FMT ".  Usage: delete <key> [noreply]"},
	{"delete of a key named noreply", "delete noreply\r\n", KM_P_OK,
	 KM_CMD_DELETE, -1, 0, 0, NULL},
	{"delete of a long key with a time", "delete " K250 "k 5\r\n",
	 KM_P_REPLY, KM_CMD_DELETE, -1, 0, 0,
	 FMT ".  Usage: delete <key> [noreply]"},
	{"delete alone", "delete\r\n", KM_P_REPLY, KM_CMD_DELETE, -1, 0, 0,
	 "ERROR"},
	{"incr", "incr k 5\r\n", KM_P_OK, KM_CMD_INCR, -1, 0, 0, NULL},
	{"incr bad delta", "incr k x\r\n", KM_P_REPLY, KM_CMD_INCR, -1, 0, 0,
	 "CLIENT_ERROR invalid numeric delta argument"},
	{"decr negative", "decr k -1\r\n", KM_P_REPLY, KM_CMD_DECR, -1, 0, 0,
	 "CLIENT_ERROR invalid numeric delta argument"},
	{"incr without delta", "incr k\r\n", KM_P_REPLY, KM_CMD_INCR, -1, 0, 0,
	 "ERROR"},
	{"touch", "touch k 10 noreply\r\n", KM_P_OK, KM_CMD_TOUCH, -1, 1, 0,
	 NULL},
	{"touch bad exptime", "touch k x\r\n", KM_P_REPLY, KM_CMD_TOUCH, -1, 0,
	 0, "CLIENT_ERROR invalid exptime argument"},
	{"flush_all", "flush_all\r\n", KM_P_OK, KM_CMD_FLUSH_ALL, -1, 0, 0,
	 NULL},
	{"flush_all noreply", "flush_all 0 noreply\r\n", KM_P_OK,
	 KM_CMD_FLUSH_ALL, -1, 1, 0, NULL},
	{"verbosity alone", "verbosity\r\n", KM_P_REPLY, KM_CMD_VERBOSITY, -1,
	 0, 0, "ERROR"},
	{"verbosity, bad level", "verbosity x\r\n", KM_P_REPLY,
	 KM_CMD_VERBOSITY, -1, 0, 0, FMT},
	/* forwarded without the last noreply, the line would end in one */
	{"verbosity noreply twice", "verbosity noreply noreply\r\n", KM_P_REPLY,
	 KM_CMD_VERBOSITY, -1, 1, 0, FMT},
	{"flush_all noreply twice", "flush_all noreply noreply\r\n", KM_P_REPLY,
	 KM_CMD_FLUSH_ALL, -1, 1, 0, "CLIENT_ERROR invalid exptime argument"},
	{"flush_all, bad delay", "flush_all x\r\n", KM_P_REPLY,
	 KM_CMD_FLUSH_ALL, -1, 0, 0, "CLIENT_ERROR invalid exptime argument"},
	{"version", "version\r\n", KM_P_OK, KM_CMD_VERSION, -1, 0, 0, NULL},
	{"stats", "stats\r\n", KM_P_OK, KM_CMD_STATS, -1, 0, 0, NULL},
	{"quit", "quit\r\n", KM_P_OK, KM_CMD_QUIT, -1, 0, 0, NULL},
	{"mg", "mg k v t\r\n", KM_P_OK, KM_CMD_MG, -1, 0, 0, NULL},
	{"mg quiet", "mg k v q k\r\n", KM_P_OK, KM_CMD_MG, -1, 0, 1, NULL},
	{"mg without key", "mg\r\n", KM_P_REPLY, KM_CMD_NONE, -1, 0, 0,
	 "ERROR"},
	{"mg key too long", "mg " K250 "k v\r\n", KM_P_REPLY, KM_CMD_MG, -1, 0,
	 0, FMT},
	{"ms", "ms k 2 T0\r\n", KM_P_OK, KM_CMD_MS, 2, 0, 0, NULL},
	{"ms quiet", "ms k 2 q\r\n", KM_P_OK, KM_CMD_MS, 2, 0, 1, NULL},
	{"ms bad length", "ms k S2\r\n", KM_P_REPLY, KM_CMD_MS, -1, 0, 0, FMT},
	{"md quiet", "md k q\r\n", KM_P_OK, KM_CMD_MD, -1, 0, 1, NULL},
	{"ma", "ma k N0 J1\r\n", KM_P_OK, KM_CMD_MA, -1, 0, 0, NULL},
	{"mn", "mn\r\n", KM_P_OK, KM_CMD_MN, -1, 0, 0, NULL},
	{"me", "me k\r\n", KM_P_OK, KM_CMD_ME, -1, 0, 0, NULL},
	{"unknown meta", "mx k\r\n", KM_P_REPLY, KM_CMD_NONE, -1, 0, 0,
	 "ERROR"},
	{"meta, leading spaces", "  mg k v\r\n", KM_P_OK, KM_CMD_MG, -1, 0, 0,
	 NULL},
	{"meta-like word", "mgx k\r\n", KM_P_REPLY, KM_CMD_NONE, -1, 0, 0,
	 "ERROR"},
	{"one-letter command", "m\r\n", KM_P_REPLY, KM_CMD_NONE, -1, 0, 0,
	 "ERROR"},
	{"mg q twice", "mg k q q v\r\n", KM_P_OK, KM_CMD_MG, -1, 0, 1, NULL},
	{"mg q-word", "mg k v qxx\r\n", KM_P_OK, KM_CMD_MG, -1, 0, 1, NULL},
	{"mg 17 flags", "mg k a b c d e f g h i j k l m n o p q\r\n", KM_P_OK,
	 KM_CMD_MG, -1, 0, 1, NULL},
	{"mg 18 flags", "mg k a b c d e f g h i j k l m n o p q r\r\n",
	 KM_P_REPLY, KM_CMD_MG, -1, 0, 0,
	 "CLIENT_ERROR options flags are too long"},
	{"md 18 flags", "md k a b c d e f g h i j k l m n o p q r\r\n",
	 KM_P_REPLY, KM_CMD_MD, -1, 0, 0,
	 "CLIENT_ERROR options flags too long"},
	/* memcached does not swallow the data then: it is a command */
	{"ms 17 flags", "ms k 1 a b c d e f g h i j k l m n o p q\r\n",
	 KM_P_REPLY, KM_CMD_MS, -1, 0, 0,
	 "CLIENT_ERROR options flags too long"},
	{"ms 16 flags", "ms k 1 a b c d e f g h i j k l m n o q\r\n", KM_P_OK,
	 KM_CMD_MS, 1, 0, 1, NULL},
	{"ms without length", "ms k\r\n", KM_P_REPLY, KM_CMD_MS, -1, 0, 0, FMT},
	{"me without key", "me\r\n", KM_P_REPLY, KM_CMD_ME, -1, 0, 0, FMT},
	{"me quiet is a flag it ignores", "me k q\r\n", KM_P_OK, KM_CMD_ME, -1,
	 0, 1, NULL},
	/* 1.6.18 says nothing: "noreply" silences its ERROR */
	{"verbosity noreply", "verbosity noreply\r\n", KM_P_REPLY,
	 KM_CMD_VERBOSITY, -1, 1, 0, FMT},
	{"bget", "bget k\r\n", KM_P_OK, KM_CMD_GET, -1, 0, 0, NULL},
	{"length ending in a tab", "set k 0 0 1\t\r\n", KM_P_OK, KM_CMD_SET, 1,
	 0, 0, NULL},
	{"HTTP request", "GET / HTTP/1.1\r\n", KM_P_CLOSE, KM_CMD_NONE, -1, 0,
	 0, NULL},
	{"HTTP-like, not last", "GET / HTTP/1.1 x\r\n", KM_P_REPLY, KM_CMD_NONE,
	 -1, 0, 0, "ERROR"},
	{"HTTP-like s command", "stuff HTTP/1.1\r\n", KM_P_REPLY, KM_CMD_NONE,
	 -1, 0, 0, "ERROR"},
	{"HTTP-like known command", "lru_crawler HTTP/1.1\r\n", KM_P_REPLY,
	 KM_CMD_NONE, -1, 0, 0, "ERROR"},
	{"get of HTTP/1.1", "get / HTTP/1.1\r\n", KM_P_OK, KM_CMD_GET, -1, 0, 0,
	 NULL},
	{"shutdown", "shutdown graceful\r\n", KM_P_REPLY, KM_CMD_NONE, -1, 0, 0,
	 "ERROR: shutdown not enabled"},
};

static void check_case(const struct req_case *c)
{
	struct km_request r;
	size_t len = strlen(c->in);
	const char *nl = strchr(c->in, '\n');
	enum km_parse_res res = km_parse_request(c->in, len, &r);

	if (res != c->res)
		fail_msg("%s: result %d, want %d", c->name, res, c->res);
	if (res == KM_P_REPLY) {
		if (strcmp(r.reply, c->reply))
			fail_msg("%s: reply '%s', want '%s'", c->name, r.reply,
				 c->reply);
	} else if (r.cmd != c->cmd) {
		fail_msg("%s: cmd %d, want %d", c->name, r.cmd, c->cmd);
	}
	if (r.consumed != (size_t)(nl - c->in + 1))
		fail_msg("%s: consumed %zu", c->name, r.consumed);
	if (r.vlen != c->vlen || r.noreply != c->noreply || r.quiet != c->quiet)
		fail_msg("%s: vlen %ld noreply %d quiet %d", c->name, r.vlen,
			 r.noreply, r.quiet);
}

static void test_request_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++)
		check_case(&req_cases[i]);
}

/* Every proper prefix of a line is "need more", never a wrong answer. */
static void test_request_every_split_point(void **state)
{
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++) {
		const char *in = req_cases[i].in;
		size_t line = strchr(in, '\n') - in + 1;

		for (n = 0; n < line; n++) {
			struct km_request r;

			if (km_parse_request(in, n, &r) != KM_P_MORE)
				fail_msg("%s: prefix %zu not MORE",
					 req_cases[i].name, n);
		}
	}
}

static void test_request_pipelined(void **state)
{
	const char *in = "get a\r\nset b 0 0 1\r\nx\r\nmn\r\n";
	struct km_request r;
	size_t off = 0;

	(void)state;
	assert_int_equal(km_parse_request(in, strlen(in), &r), KM_P_OK);
	assert_int_equal(r.cmd, KM_CMD_GET);
	off += r.consumed;
	assert_int_equal(km_parse_request(in + off, strlen(in) - off, &r),
			 KM_P_OK);
	assert_int_equal(r.cmd, KM_CMD_SET);
	assert_int_equal(r.vlen, 1);
	off += r.consumed + r.vlen + 2;
	assert_int_equal(km_parse_request(in + off, strlen(in) - off, &r),
			 KM_P_OK);
	assert_int_equal(r.cmd, KM_CMD_MN);
}

static void test_request_tokens(void **state)
{
	struct km_request r;

	(void)state;
	assert_int_equal(km_parse_request("set  key  1 2 3\r\n", 17, &r),
			 KM_P_OK);
	assert_int_equal(r.ntok, 5);
	assert_int_equal(r.tok[1].len, 3);
	assert_memory_equal(r.tok[1].p, "key", 3);
	assert_int_equal(km_parse_request("ms k 2 T0 q\r\n", 13, &r), KM_P_OK);
	assert_int_equal(r.quiet, 1);
}

/*
 * memcached reads a line as a C string: after a NUL it sees nothing, a
 * "noreply" there included (it would answer nothing while the proxy waits).
 */
static void test_request_nul(void **state)
{
	static const char set[] = "set k 0 0 1 noreply\0x\r\nx\r\n";
	static const char mg[] = "mg k v\0 q\r\n";
	static const char key[] = "set k\0 0 0 1 noreply\r\n";
	struct km_request r;

	(void)state;
	assert_int_equal(km_parse_request(set, sizeof(set) - 1, &r), KM_P_OK);
	assert_int_equal(r.noreply, 1);
	assert_int_equal(r.len, 19);
	assert_int_equal(r.consumed, 23);
	assert_int_equal(r.vlen, 1);
	assert_int_equal(km_parse_request(mg, sizeof(mg) - 1, &r), KM_P_OK);
	assert_int_equal(r.quiet, 0);
	assert_int_equal(r.len, 6);
	assert_int_equal(km_parse_request(key, sizeof(key) - 1, &r),
			 KM_P_REPLY);
	assert_string_equal(r.reply, "ERROR");
	assert_int_equal(r.noreply, 0);
}

static void test_long_lines(void **state)
{
	char *buf = malloc(5000);
	struct km_request r;

	(void)state;
	assert_non_null(buf);
	/* no newline after 2048 bytes: memcached closes, unless a get */
	memset(buf, 'x', 5000);
	assert_int_equal(km_parse_request(buf, 2048, &r), KM_P_MORE);
	assert_int_equal(km_parse_request(buf, 2049, &r), KM_P_CLOSE);
	memcpy(buf, "get ", 4);
	assert_int_equal(km_parse_request(buf, 5000, &r), KM_P_MORE);
	memcpy(buf, "set ", 4);
	assert_int_equal(km_parse_request(buf, 5000, &r), KM_P_CLOSE);
	/* a long get line with its newline is a request */
	memcpy(buf, "get ", 4);
	memcpy(buf + 4998, "\r\n", 2);
	assert_int_equal(km_parse_request(buf, 5000, &r), KM_P_OK);
	assert_int_equal(r.cmd, KM_CMD_GET);
	free(buf);
}

struct reply_case {
	const char *name;
	const char *in;
	enum km_reply_kind kind;
	long len; /* of the first complete reply; -1 garbage */
};

static const struct reply_case reply_cases[] = {
	{"stored", "STORED\r\n", KM_RK_LINE, 8},
	{"line, more after", "DELETED\r\nNOT_FOUND\r\n", KM_RK_LINE, 9},
	{"get miss", "END\r\n", KM_RK_VALUES, 5},
	{"get hit", "VALUE k 0 2\r\nab\r\nEND\r\n", KM_RK_VALUES, 22},
	{"gets two hits", "VALUE a 1 1 7\r\nx\r\nVALUE b 2 0 8\r\n\r\nEND\r\n",
	 KM_RK_VALUES, 40},
	{"value holding END", "VALUE k 0 5\r\nEND\r\n\r\nEND\r\n", KM_RK_VALUES,
	 25},
	{"get error", "SERVER_ERROR out of memory\r\n", KM_RK_VALUES, 28},
	{"bad value length", "VALUE k 0 x\r\nab\r\nEND\r\n", KM_RK_VALUES, -1},
	{"bad data end", "VALUE k 0 1\r\nab\r\nEND\r\n", KM_RK_VALUES, -1},
	{"meta hit", "VA 2 t-1\r\nab\r\n", KM_RK_META, 14},
	{"meta miss", "EN\r\n", KM_RK_META, 4},
	{"meta hd", "HD k O1\r\n", KM_RK_META, 9},
	{"stats", "STAT pid 1\r\nSTAT uptime 2\r\nEND\r\n", KM_RK_STATS, 32},
	{"stats error", "ERROR\r\n", KM_RK_STATS, 7},
	{"quiet, silent", "MN\r\n", KM_RK_QUIET, 4},
	{"quiet, a reply", "HD k\r\nMN\r\n", KM_RK_QUIET, 10},
	{"quiet, a value like MN", "VA 2\r\nMN\r\nMN\r\n", KM_RK_QUIET, 14},
	{"quiet, an error", "CLIENT_ERROR duplicate flag\r\nMN\r\n",
	 KM_RK_QUIET, 33},
	{"quiet, not closed", "HD\r\nHD\r\n", KM_RK_QUIET, -1},
};

/* Which replies can answer which command: the rest is out of step. */
static void test_reply_fits(void **state)
{
	static const struct {
		enum km_cmd cmd;
		const char *reply;
		int fits;
	} c[] = {
		{KM_CMD_GET, "END\r\n", 1},
		{KM_CMD_GET, "VALUE k 0 1\r\nx\r\nEND\r\n", 1},
		{KM_CMD_GET, "SERVER_ERROR out of memory\r\n", 1},
		{KM_CMD_GET, "STORED\r\n", 0},
		{KM_CMD_GET, "VA 1\r\nx\r\n", 0},
		{KM_CMD_GET, "VALUE k 0 1\r\nx\r\nHD\r\n", 0},
		{KM_CMD_SET, "STORED\r\n", 1},
		{KM_CMD_SET, "NOT_STORED\r\n", 1},
		{KM_CMD_SET, "END\r\n", 0},
		{KM_CMD_SET, "STORED x\r\n", 0},
		{KM_CMD_DELETE, "DELETED\r\n", 1},
		{KM_CMD_DELETE, "STORED\r\n", 0},
		{KM_CMD_INCR, "42\r\n", 1},
		{KM_CMD_INCR, "NOT_FOUND\r\n", 1},
		{KM_CMD_INCR, "4 2\r\n", 0},
		{KM_CMD_TOUCH, "TOUCHED\r\n", 1},
		{KM_CMD_FLUSH_ALL, "OK\r\n", 1},
		{KM_CMD_VERSION, "VERSION 1.6.18\r\n", 1},
		{KM_CMD_VERSION, "END\r\n", 0},
		{KM_CMD_STATS, "STAT a 1\r\nEND\r\n", 1},
		{KM_CMD_STATS, "STAT a 1\r\nVALUE\r\n", 0},
		{KM_CMD_MG, "VA 1 t-1\r\nx\r\n", 1},
		{KM_CMD_MG, "EN\r\n", 1},
		{KM_CMD_MG, "", 1}, /* quiet miss */
		{KM_CMD_MG, "VALUE k 0 1\r\n", 0},
		{KM_CMD_MG, "MN\r\n", 0},
		{KM_CMD_MS, "HD\r\n", 1},
		{KM_CMD_MS, "VA 1\r\nx\r\n", 0},
		{KM_CMD_MD, "NF O1\r\n", 1},
		{KM_CMD_MA, "VA 1\r\n5\r\n", 1},
		{KM_CMD_ME, "ME k exp=-1 la=1\r\n", 1},
		{KM_CMD_ME, "", 0}, /* me is never silent */
		{KM_CMD_SET, "CLIENT_ERROR bad data chunk\r\n", 1},
		{KM_CMD_SET, "ERROR\r\n", 1},
		{KM_CMD_SET, "ERROR Too many open connections\r\n", 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		if (km_reply_fits(c[i].cmd, c[i].reply, strlen(c[i].reply)) !=
		    c[i].fits)
			fail_msg("%s to %s: want %d", c[i].reply,
				 km_cmd_name(c[i].cmd), c[i].fits);
}

static void test_reply_table(void **state)
{
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
		const struct reply_case *c = &reply_cases[i];
		long got = km_reply_len(c->in, strlen(c->in), c->kind);

		if (got != c->len)
			fail_msg("%s: length %ld, want %ld", c->name, got,
				 c->len);
		if (c->len < 0)
			continue;
		for (n = 0; n < (size_t)c->len; n++) {
			got = km_reply_len(c->in, n, c->kind);
			if (got != 0 && !(got < 0 && n > 0))
				fail_msg("%s: prefix %zu gave %ld", c->name, n,
					 got);
			if (got < 0)
				fail_msg("%s: prefix %zu is garbage", c->name,
					 n);
		}
	}
}

static void test_parse_value(void **state)
{
	const char *in = "VALUE key 42 3 99\r\nabc\r\nEND\r\n";
	struct km_value v;

	(void)state;
	assert_int_equal(km_parse_value(in, strlen(in), &v), 24);
	assert_int_equal(v.nkey, 3);
	assert_memory_equal(v.key, "key", 3);
	assert_int_equal(v.flags, 42);
	assert_int_equal(v.ndata, 3);
	assert_memory_equal(v.data, "abc", 3);
	assert_int_equal(km_parse_value("END\r\n", 5, &v), -1);
	assert_int_equal(km_parse_value(in, 20, &v), 0);
}

static void test_classify(void **state)
{
	(void)state;
	assert_int_equal(km_reply_classify("STORED\r\n", 8), KM_RC_OK);
	assert_int_equal(km_reply_classify("HD\r\n", 4), KM_RC_OK);
	assert_int_equal(km_reply_classify("5\r\n", 3), KM_RC_OK);
	assert_int_equal(km_reply_classify("NOT_STORED\r\n", 12),
			 KM_RC_NEGATIVE);
	assert_int_equal(km_reply_classify("EN\r\n", 4), KM_RC_NEGATIVE);
	assert_int_equal(km_reply_classify("NF k\r\n", 6), KM_RC_NEGATIVE);
	assert_int_equal(km_reply_classify("ERROR\r\n", 7), KM_RC_CLIENT);
	assert_int_equal(km_reply_classify("CLIENT_ERROR x\r\n", 16),
			 KM_RC_CLIENT);
	assert_int_equal(km_reply_classify("SERVER_ERROR x\r\n", 16),
			 KM_RC_SERVER);
	assert_int_equal(km_reply_classify("", 0), KM_RC_FAILED);
}

static void test_unwell(void **state)
{
	static const char busy[] = "SERVER_ERROR too many open connections\r\n";
	static const char big[] = "SERVER_ERROR object too large for cache\r\n";
	static const char full[] =
		"SERVER_ERROR out of memory storing object\r\n";

	(void)state;
	assert_true(km_reply_unwell(busy, sizeof(busy) - 1));
	assert_true(km_reply_unwell("SERVER_ERROR x\r\n", 16));
	assert_false(km_reply_unwell(big, sizeof(big) - 1));
	assert_false(km_reply_unwell(full, sizeof(full) - 1));
	assert_false(km_reply_unwell("CLIENT_ERROR bad\r\n", 18));
	assert_false(km_reply_unwell("END\r\n", 5));
}

static void test_numbers_like_memcached(void **state)
{
	struct km_tok t;
	uint32_t u32;
	int32_t i32;
	uint64_t u64;

	(void)state;
	t.p = "4294967296";
	t.len = 10;
	assert_true(km_tok_u32(&t, &u32)); /* memcached truncates it too */
	t.p = "-1";
	t.len = 2;
	assert_false(km_tok_u32(&t, &u32));
	assert_true(km_tok_i32(&t, &i32));
	assert_int_equal(i32, -1);
	t.p = "18446744073709551615";
	t.len = 20;
	assert_true(km_tok_u64(&t, &u64));
	t.p = "12x";
	t.len = 3;
	assert_false(km_tok_u64(&t, &u64));
	t.p = "12";
	t.len = 1; /* the token ends where its length says */
	assert_true(km_tok_i32(&t, &i32));
	assert_int_equal(i32, 1);
}

static void test_base64(void **state)
{
	char out[16];

	(void)state;
	assert_int_equal(km_base64_decode("aw==", 4, out, sizeof(out)), 1);
	assert_int_equal(out[0], 'k');
	assert_int_equal(km_base64_decode("Zm9vYmFy", 8, out, sizeof(out)), 6);
	assert_memory_equal(out, "foobar", 6);
	assert_int_equal(km_base64_decode("a*", 2, out, sizeof(out)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_table),
		cmocka_unit_test(test_request_every_split_point),
		cmocka_unit_test(test_request_pipelined),
		cmocka_unit_test(test_request_tokens),
		cmocka_unit_test(test_request_nul),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_reply_table),
		cmocka_unit_test(test_reply_fits),
		cmocka_unit_test(test_parse_value),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_unwell),
		cmocka_unit_test(test_numbers_like_memcached),
		cmocka_unit_test(test_base64),
	};

	return cmocka_run_group_tests_name("mcproto", tests, NULL, NULL);
}

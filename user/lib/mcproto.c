// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * memcached protocol parsing.  Request checks follow memcached 1.6.18's
 * proto_text.c where a client can tell the difference: the same token
 * count rules (ERROR), the same CLIENT_ERROR texts, noreply silencing the
 * errors found after memcached looks for it, and a data block swallowed
 * only when memcached would swallow it.  Checks that need the item (or
 * that memcached does after reading the data) are left to the backends.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "kmagent.h"
#include "mcproto.h"

#define ERR_FORMAT "CLIENT_ERROR bad command line format"

int km_next_token(const char *line, size_t len, size_t *pos, struct km_tok *t)
{
	size_t i = *pos, s;

	while (i < len && line[i] == ' ')
		i++;
	if (i >= len) {
		*pos = i;
		return 0;
	}
	s = i;
	while (i < len && line[i] != ' ')
		i++;
	t->p = line + s;
	t->len = i - s;
	*pos = i;
	return 1;
}

static int km_tok_is(const struct km_tok *t, const char *s)
{
	size_t n = strlen(s);

	return t->len == n && !memcmp(t->p, s, n);
}

/* A token as a C string, for strtol and friends; 0 if too long. */
static int km_tok_cstr(const struct km_tok *t, char *buf, size_t size)
{
	if (t->len >= size)
		return 0;
	memcpy(buf, t->p, t->len);
	buf[t->len] = '\0';
	return 1;
}

/*
 * Where a number may end, as in memcached's safe_strto*: at the end of the
 * token or at a space character ("1\t" and the "1\r" of "1\r\r\n" are 1).
 */
static int km_num_end(const char *end)
{
	return !*end || isspace((unsigned char)*end);
}

int km_tok_u64(const struct km_tok *t, uint64_t *out)
{
	unsigned long long v;
	char buf[64], *end;

	if (!km_tok_cstr(t, buf, sizeof(buf)))
		return 0;
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno == ERANGE || end == buf || !km_num_end(end))
		return 0;
	if ((long long)v < 0 && strchr(buf, '-'))
		return 0;
	*out = v;
	return 1;
}

int km_tok_u32(const struct km_tok *t, uint32_t *out)
{
	uint64_t v;

	if (!km_tok_u64(t, &v))
		return 0;
	*out = (uint32_t)v; /* memcached truncates the same way */
	return 1;
}

int km_tok_i32(const struct km_tok *t, int32_t *out)
{
	char buf[64], *end;
	long v;

	if (!km_tok_cstr(t, buf, sizeof(buf)))
		return 0;
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno == ERANGE || end == buf || !km_num_end(end))
		return 0;
	*out = (int32_t)v;
	return 1;
}

static const struct {
	const char *name;
	enum km_cmd cmd;
} km_text_cmds[] = {
	{"get", KM_CMD_GET},
	{"gets", KM_CMD_GETS},
	{"bget", KM_CMD_GET}, /* memcached's ancient alias */
	{"gat", KM_CMD_GAT},
	{"gats", KM_CMD_GATS},
	{"set", KM_CMD_SET},
	{"add", KM_CMD_ADD},
	{"replace", KM_CMD_REPLACE},
	{"append", KM_CMD_APPEND},
	{"prepend", KM_CMD_PREPEND},
	{"cas", KM_CMD_CAS},
	{"delete", KM_CMD_DELETE},
	{"incr", KM_CMD_INCR},
	{"decr", KM_CMD_DECR},
	{"touch", KM_CMD_TOUCH},
	{"flush_all", KM_CMD_FLUSH_ALL},
	{"version", KM_CMD_VERSION},
	{"verbosity", KM_CMD_VERBOSITY},
	{"stats", KM_CMD_STATS},
	{"quit", KM_CMD_QUIT},
};

const char *km_cmd_name(enum km_cmd cmd)
{
	static const char *const meta[] = {"mg", "ms", "md", "ma", "mn", "me"};
	unsigned int i;

	if (cmd >= KM_CMD_MG)
		return meta[cmd - KM_CMD_MG];
	for (i = 0; i < sizeof(km_text_cmds) / sizeof(km_text_cmds[0]); i++)
		if (km_text_cmds[i].cmd == cmd)
			return km_text_cmds[i].name;
	return "?";
}

int km_cmd_is_write(enum km_cmd cmd)
{
	switch (cmd) {
	case KM_CMD_SET:
	case KM_CMD_ADD:
	case KM_CMD_REPLACE:
	case KM_CMD_APPEND:
	case KM_CMD_PREPEND:
	case KM_CMD_CAS:
	case KM_CMD_DELETE:
	case KM_CMD_INCR:
	case KM_CMD_DECR:
	case KM_CMD_TOUCH:
	case KM_CMD_MS:
	case KM_CMD_MD:
	case KM_CMD_MA:
		return 1;
	default:
		return 0;
	}
}

static enum km_parse_res km_reply(struct km_request *r, const char *msg)
{
	r->reply = msg;
	return KM_P_REPLY;
}

static void km_set_noreply(struct km_request *r)
{
	r->noreply = r->ntok > 1 && r->ntok <= KM_TOK_MAX &&
		     km_tok_is(&r->tok[r->ntok - 1], "noreply");
}

static int km_key_too_long(const struct km_tok *t)
{
	return t->len > KM_KEY_MAX;
}

static enum km_parse_res km_check_storage(struct km_request *r)
{
	int cas = r->cmd == KM_CMD_CAS;
	uint32_t flags;
	int32_t exptime, vlen;
	uint64_t casid;

	if (r->ntok != 5u + cas && r->ntok != 6u + cas)
		return km_reply(r, "ERROR");
	km_set_noreply(r);
	if (km_key_too_long(&r->tok[1]))
		return km_reply(r, ERR_FORMAT);
	if (!km_tok_u32(&r->tok[2], &flags) ||
	    !km_tok_i32(&r->tok[3], &exptime) || !km_tok_i32(&r->tok[4], &vlen))
		return km_reply(r, ERR_FORMAT);
	if (cas && !km_tok_u64(&r->tok[5], &casid))
		return km_reply(r, ERR_FORMAT);
	if (vlen < 0 || vlen > INT_MAX - 2)
		return km_reply(r, ERR_FORMAT);
	r->vlen = vlen;
	return KM_P_OK;
}

/* incr, decr: KEY DELTA [noreply]; touch: KEY EXPTIME [noreply] */
static enum km_parse_res km_check_key_number(struct km_request *r)
{
	int touch = r->cmd == KM_CMD_TOUCH;
	uint64_t delta;
	int32_t exptime;

	if (r->ntok != 3 && r->ntok != 4)
		return km_reply(r, "ERROR");
	km_set_noreply(r);
	if (km_key_too_long(&r->tok[1]))
		return km_reply(r, ERR_FORMAT);
	if (touch && !km_tok_i32(&r->tok[2], &exptime))
		return km_reply(r, "CLIENT_ERROR invalid exptime argument");
	if (!touch && !km_tok_u64(&r->tok[2], &delta))
		return km_reply(r,
				"CLIENT_ERROR invalid numeric delta argument");
	return KM_P_OK;
}

static enum km_parse_res km_check_text(struct km_request *r)
{
	uint32_t u32;
	int32_t i32;
	int zero;

	switch (r->cmd) {
	case KM_CMD_GET:
	case KM_CMD_GETS:
		if (r->ntok < 2)
			return km_reply(r, "ERROR");
		return KM_P_OK; /* key lengths: checked per key */
	case KM_CMD_GAT:
	case KM_CMD_GATS:
		if (r->ntok < 2)
			return km_reply(r, "ERROR");
		if (!km_tok_i32(&r->tok[1], &i32))
			return km_reply(
				r, "CLIENT_ERROR invalid exptime argument");
		return KM_P_OK;
	case KM_CMD_SET:
	case KM_CMD_ADD:
	case KM_CMD_REPLACE:
	case KM_CMD_APPEND:
	case KM_CMD_PREPEND:
	case KM_CMD_CAS:
		return km_check_storage(r);
	case KM_CMD_DELETE:
		if (r->ntok < 2 || r->ntok > 4)
			return km_reply(r, "ERROR");
		if (r->ntok > 2) { /* "delete noreply": a key named noreply */
			km_set_noreply(r);
			zero = km_tok_is(&r->tok[2], "0");
			if (!((r->ntok == 3 && (zero || r->noreply)) ||
			      (r->ntok == 4 && zero && r->noreply)))
				return km_reply(
					r, ERR_FORMAT
					".  Usage: delete <key> [noreply]");
		}
		/* memcached looks at the key's length after the rest */
		if (km_key_too_long(&r->tok[1]))
			return km_reply(r, ERR_FORMAT);
		return KM_P_OK;
	case KM_CMD_INCR:
	case KM_CMD_DECR:
	case KM_CMD_TOUCH:
		return km_check_key_number(r);
	/*
	 * flush_all and verbosity: their argument is checked here, so that
	 * the line forwarded without "noreply" never ends in another one
	 * ("flush_all noreply noreply": the backend would say nothing).
	 */
	case KM_CMD_FLUSH_ALL:
		if (r->ntok > 3)
			return km_reply(r, "ERROR");
		km_set_noreply(r);
		if (r->ntok != (r->noreply ? 2u : 1u) &&
		    !km_tok_i32(&r->tok[1], &i32))
			return km_reply(
				r, "CLIENT_ERROR invalid exptime argument");
		return KM_P_OK;
	case KM_CMD_VERBOSITY:
		if (r->ntok < 2 || r->ntok > 3)
			return km_reply(r, "ERROR");
		km_set_noreply(r);
		if (!km_tok_u32(&r->tok[1], &u32))
			return km_reply(r, ERR_FORMAT);
		return KM_P_OK;
	case KM_CMD_VERSION:
	case KM_CMD_STATS:
	case KM_CMD_QUIT:
		return KM_P_OK;
	default:
		return km_reply(r, "ERROR");
	}
}

/*
 * memcached refuses a meta command of more than 20 tokens, counting its
 * tokenizer's empty last one, before it looks at the flags: the key, the
 * command and 17 flags (16 for ms) at most.
 */
#define KM_META_TOK_MAX 19

/*
 * The checks memcached makes before it reads the flags, with its texts:
 * after them the backend answers every meta command with exactly one
 * reply (an ms's data block is read or swallowed).  Any token from the
 * third on starting with 'q' makes the request quiet, wherever memcached
 * would see it or not: the engine then closes it with "mn" (engine.c), so
 * a silent success and an error both leave the backend stream in step.
 */
static enum km_parse_res km_check_meta(struct km_request *r)
{
	unsigned int i;
	int32_t vlen;

	switch (r->cmd) {
	case KM_CMD_MN:
		return KM_P_OK;
	case KM_CMD_ME:
		if (r->ntok < 2 || km_key_too_long(&r->tok[1]))
			return km_reply(r, ERR_FORMAT);
		/* me takes one flag, "b" exactly, and ignores the rest */
		r->base64 = r->ntok > 2 && km_tok_is(&r->tok[2], "b");
		break;
	default:
		if (r->ntok < 2)
			return km_reply(r, "ERROR");
		if (km_key_too_long(&r->tok[1]))
			return km_reply(r, ERR_FORMAT);
		if (r->cmd == KM_CMD_MS && r->ntok == 2)
			return km_reply(r, ERR_FORMAT);
		if (r->ntok > KM_META_TOK_MAX)
			return km_reply(r,
					r->cmd == KM_CMD_MG
						? "CLIENT_ERROR options flags "
						  "are too long"
						: "CLIENT_ERROR options flags "
						  "too long");
		if (r->cmd == KM_CMD_MS) {
			if (!km_tok_i32(&r->tok[2], &vlen) || vlen < 0 ||
			    vlen > INT_MAX - 2)
				return km_reply(r, ERR_FORMAT);
			r->vlen = vlen;
		}
		for (i = 2; i < r->ntok; i++)
			if (r->tok[i].p[0] == 'b')
				r->base64 = 1;
		break;
	}
	for (i = 2; i < r->ntok && i < KM_TOK_MAX; i++)
		if (r->tok[i].p[0] == 'q')
			r->quiet = 1;
	return KM_P_OK;
}

static enum km_cmd km_meta_cmd(char c)
{
	switch (c) {
	case 'g':
		return KM_CMD_MG;
	case 's':
		return KM_CMD_MS;
	case 'd':
		return KM_CMD_MD;
	case 'a':
		return KM_CMD_MA;
	case 'n':
		return KM_CMD_MN;
	case 'e':
		return KM_CMD_ME;
	}
	return KM_CMD_NONE;
}

/*
 * Commands memcached knows and kmagentd answers "ERROR" to (they act on
 * one server: crawler, LRU and slab tuning, log watching, TLS).  Any
 * other line, unknown to memcached too, is an HTTP request when its last
 * token starts with "HTTP/": memcached closes the connection.
 */
static int km_http_line(const struct km_request *r)
{
	static const char *const known[] = {"lru_crawler", "watch", "lru",
					    "extstore", "refresh_certs"};
	const struct km_tok *cmd = &r->tok[0], *last;
	unsigned int i;

	if (strchr("gsacidt", cmd->p[0]) || (cmd->p[0] == 'm' && cmd->len == 2))
		return 0;
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (km_tok_is(cmd, known[i]))
			return 0;
	/* memcached's tokenizer keeps 23 tokens, the rest in the last */
	last = &r->tok[(r->ntok < 23 ? r->ntok : 23) - 1];
	return last->len >= 5 && !memcmp(last->p, "HTTP/", 5);
}

/* memcached keeps reading an unterminated line only for a big multiget. */
static int km_long_line_allowed(const char *buf, size_t len)
{
	size_t i = 0;

	while (i < len && buf[i] == ' ')
		i++;
	if (i > 100)
		return 0;
	return (len - i >= 4 && !memcmp(buf + i, "get ", 4)) ||
	       (len - i >= 5 && !memcmp(buf + i, "gets ", 5));
}

enum km_parse_res km_parse_request(const char *buf, size_t len,
				   struct km_request *r)
{
	const char *nl = memchr(buf, '\n', len), *nul;
	size_t pos = 0, n;
	unsigned int i;

	memset(r, 0, offsetof(struct km_request, tok));
	r->vlen = -1;
	if (!nl) {
		if (len > KM_LINE_MAX && !km_long_line_allowed(buf, len))
			return KM_P_CLOSE;
		return KM_P_MORE;
	}
	n = nl - buf;
	r->consumed = n + 1;
	if (n > 1 && buf[n - 1] == '\r')
		n--;
	/*
	 * memcached reads the line as a C string: a NUL ends it.  The line is
	 * forwarded cut there too, so that a backend never sees more of it
	 * (a "noreply" after the NUL) than the proxy does.
	 */
	nul = memchr(buf, '\0', n);
	if (nul)
		n = nul - buf;
	r->line = buf;
	r->len = n;
	for (i = 0; i <= KM_TOK_MAX; i++) {
		struct km_tok t;

		if (!km_next_token(buf, n, &pos, &t))
			break;
		if (i < KM_TOK_MAX)
			r->tok[i] = t;
	}
	r->ntok = i;
	/* no command is shorter than two bytes */
	if (r->ntok == 0 || r->tok[0].len < 2)
		return km_reply(r, "ERROR");

	if (r->tok[0].p[0] == 'm' && r->tok[0].len == 2) {
		r->cmd = km_meta_cmd(r->tok[0].p[1]);
		if (r->cmd == KM_CMD_NONE)
			return km_reply(r, "ERROR"); /* unknown meta command */
		return km_check_meta(r);
	}
	/* what memcached without -A says: backends are not ours to stop */
	if (km_tok_is(&r->tok[0], "shutdown"))
		return km_reply(r, "ERROR: shutdown not enabled");
	for (i = 0; i < sizeof(km_text_cmds) / sizeof(km_text_cmds[0]); i++) {
		if (km_tok_is(&r->tok[0], km_text_cmds[i].name)) {
			r->cmd = km_text_cmds[i].cmd;
			break;
		}
	}
	if (r->cmd == KM_CMD_NONE && km_http_line(r))
		return KM_P_CLOSE;
	return km_check_text(r);
}

/* ---- replies ---------------------------------------------------------- */

static long km_line_len(const char *buf, size_t len)
{
	const char *nl = memchr(buf, '\n', len);

	return nl ? nl - buf + 1 : 0;
}

static int km_starts(const char *buf, size_t len, const char *s)
{
	size_t n = strlen(s);

	return len >= n && !memcmp(buf, s, n);
}

long km_parse_value(const char *buf, size_t len, struct km_value *v)
{
	long ll = km_line_len(buf, len);
	size_t pos = 6, end;
	struct km_tok t[4];
	unsigned int nt = 0;
	uint64_t bytes;

	if (ll == 0)
		return 0;
	if (!km_starts(buf, ll, "VALUE "))
		return -1;
	end = ll - 1;
	if (end > 0 && buf[end - 1] == '\r')
		end--;
	while (nt < 4 && km_next_token(buf, end, &pos, &t[nt]))
		nt++;
	if (nt < 3 || !km_tok_u32(&t[1], &v->flags) ||
	    !km_tok_u64(&t[2], &bytes) || bytes > (1ull << 31))
		return -1;
	if ((size_t)ll + bytes + 2 > len)
		return 0;
	if (memcmp(buf + ll + bytes, "\r\n", 2))
		return -1;
	v->key = t[0].p;
	v->nkey = t[0].len;
	v->data = buf + ll;
	v->ndata = bytes;
	v->block = ll + bytes + 2;
	return v->block;
}

static long km_values_len(const char *buf, size_t len)
{
	size_t off = 0;

	for (;;) {
		struct km_value v;
		long ll = km_line_len(buf + off, len - off), n;

		if (ll == 0)
			return 0;
		if (!km_starts(buf + off, ll, "VALUE "))
			return off + ll; /* END, or an error line */
		n = km_parse_value(buf + off, len - off, &v);
		if (n <= 0)
			return n;
		off += n;
	}
}

static long km_meta_len(const char *buf, size_t len)
{
	long ll = km_line_len(buf, len);
	struct km_tok t;
	size_t pos = 3;
	uint64_t n;

	if (ll == 0 || !km_starts(buf, ll, "VA "))
		return ll;
	if (!km_next_token(buf, ll - 2, &pos, &t) || !km_tok_u64(&t, &n) ||
	    n > (1ull << 31))
		return -1;
	if (ll + n + 2 > len)
		return 0;
	return ll + n + 2;
}

static long km_stats_len(const char *buf, size_t len)
{
	size_t off = 0;

	for (;;) {
		long ll = km_line_len(buf + off, len - off);

		if (ll == 0)
			return 0;
		off += ll;
		if (!km_starts(buf + off - ll, ll, "STAT ") &&
		    !km_starts(buf + off - ll, ll, "ITEM ") &&
		    !km_starts(buf + off - ll, ll, "PREFIX "))
			return off; /* END, OK, RESET or an error */
	}
}

/* A quiet meta command's reply, if any, then the "MN\r\n" closing it. */
static long km_quiet_len(const char *buf, size_t len)
{
	static const char mn[] = "MN\r\n";
	long n = 0;
	size_t rest;

	if (!km_starts(buf, len, mn)) {
		if (len < sizeof(mn) - 1 && !memcmp(buf, mn, len))
			return 0; /* "MN" still arriving */
		n = km_meta_len(buf, len);
		if (n <= 0)
			return n;
	}
	rest = len - n;
	if (rest < sizeof(mn) - 1)
		return memcmp(buf + n, mn, rest) ? -1 : 0;
	return memcmp(buf + n, mn, sizeof(mn) - 1) ? -1 : n + 4;
}

long km_reply_len(const char *buf, size_t len, enum km_reply_kind kind)
{
	switch (kind) {
	case KM_RK_QUIET:
		return km_quiet_len(buf, len);
	case KM_RK_LINE:
		return km_line_len(buf, len);
	case KM_RK_VALUES:
		return km_values_len(buf, len);
	case KM_RK_META:
		return km_meta_len(buf, len);
	case KM_RK_STATS:
		return km_stats_len(buf, len);
	}
	return -1;
}

/* Is the line at s (its length without "\r\n": n) one of words[]? */
static int km_line_word(const char *s, size_t n, const char *const *words,
			int meta)
{
	size_t w = 0;

	while (w < n && s[w] != ' ')
		w++;
	if (w < n && !meta)
		return 0; /* text replies are one word */
	for (; *words; words++)
		if (strlen(*words) == w && !memcmp(s, *words, w))
			return 1;
	return 0;
}

static int km_line_is_error(const char *s, size_t n)
{
	return (n == 5 && !memcmp(s, "ERROR", 5)) ||
	       km_starts(s, n, "CLIENT_ERROR ") ||
	       km_starts(s, n, "SERVER_ERROR ");
}

static int km_line_is_number(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return n > 0;
}

#define KM_WORDS(...) ((const char *const[]){__VA_ARGS__, NULL})

static const char *const km_stored[] = {"STORED", "NOT_STORED", "EXISTS",
					"NOT_FOUND", NULL};

/* The words the last line of a command's reply may start with */
static const struct km_reply_end {
	const char *const *words;
	int meta; /* the line goes on after the word (VERSION 1.6, VA 2 f1) */
} km_reply_ends[] = {
	[KM_CMD_GET] = {KM_WORDS("END")},
	[KM_CMD_GETS] = {KM_WORDS("END")},
	[KM_CMD_GAT] = {KM_WORDS("END")},
	[KM_CMD_GATS] = {KM_WORDS("END")},
	[KM_CMD_SET] = {km_stored},
	[KM_CMD_ADD] = {km_stored},
	[KM_CMD_REPLACE] = {km_stored},
	[KM_CMD_APPEND] = {km_stored},
	[KM_CMD_PREPEND] = {km_stored},
	[KM_CMD_CAS] = {km_stored},
	[KM_CMD_DELETE] = {KM_WORDS("DELETED", "NOT_FOUND")},
	[KM_CMD_INCR] = {KM_WORDS("NOT_FOUND")}, /* or the number */
	[KM_CMD_DECR] = {KM_WORDS("NOT_FOUND")},
	[KM_CMD_TOUCH] = {KM_WORDS("TOUCHED", "NOT_FOUND")},
	[KM_CMD_FLUSH_ALL] = {KM_WORDS("OK")},
	[KM_CMD_VERBOSITY] = {KM_WORDS("OK")},
	[KM_CMD_VERSION] = {KM_WORDS("VERSION"), 1},
	[KM_CMD_STATS] = {KM_WORDS("END", "OK", "RESET")},
	[KM_CMD_MG] = {KM_WORDS("VA", "HD", "EN"), 1},
	[KM_CMD_MS] = {KM_WORDS("HD", "NS", "EX", "NF"), 1},
	[KM_CMD_MD] = {KM_WORDS("HD", "NF", "EX"), 1},
	[KM_CMD_MA] = {KM_WORDS("VA", "HD", "NF", "NS", "EX"), 1},
	[KM_CMD_ME] = {KM_WORDS("ME", "EN"), 1},
};

int km_reply_fits(enum km_cmd cmd, const char *reply, size_t len)
{
	const struct km_reply_end *e;
	const char *s = reply;
	size_t n = len;
	struct km_value v;
	long ll;

	if (len == 0) /* a quiet command's silent answer */
		return cmd == KM_CMD_MG || cmd == KM_CMD_MS ||
		       cmd == KM_CMD_MD || cmd == KM_CMD_MA;
	/* get-like replies: their VALUE blocks, then the line that counts */
	if (cmd == KM_CMD_GET || cmd == KM_CMD_GETS || cmd == KM_CMD_GAT ||
	    cmd == KM_CMD_GATS) {
		while ((ll = km_parse_value(s, n, &v)) > 0) {
			s += ll;
			n -= ll;
		}
	} else if (cmd == KM_CMD_STATS) {
		while (km_starts(s, n, "STAT ") || km_starts(s, n, "ITEM ") ||
		       km_starts(s, n, "PREFIX ")) {
			ll = km_line_len(s, n);
			if (ll <= 0)
				return 0;
			s += ll;
			n -= ll;
		}
	}
	ll = km_line_len(s, n);
	if (ll < 2 || s[ll - 2] != '\r')
		return 0;
	n = ll - 2;
	if (km_line_is_error(s, n))
		return 1;
	if ((cmd == KM_CMD_INCR || cmd == KM_CMD_DECR) &&
	    km_line_is_number(s, n))
		return 1;
	if ((size_t)cmd >= sizeof(km_reply_ends) / sizeof(km_reply_ends[0]))
		return 0;
	e = &km_reply_ends[cmd];
	return e->words && km_line_word(s, n, e->words, e->meta);
}

enum km_reply_class km_reply_classify(const char *s, size_t len)
{
	static const char *const negative[] = {
		"NOT_STORED", "EXISTS", "NOT_FOUND", "NS", "EX", "NF", "EN"};
	size_t w = 0;
	unsigned int i;

	if (len == 0)
		return KM_RC_FAILED;
	if (km_starts(s, len, "SERVER_ERROR"))
		return KM_RC_SERVER;
	if (km_starts(s, len, "CLIENT_ERROR") || km_starts(s, len, "ERROR"))
		return KM_RC_CLIENT;
	while (w < len && s[w] != ' ' && s[w] != '\r' && s[w] != '\n')
		w++;
	for (i = 0; i < sizeof(negative) / sizeof(negative[0]); i++)
		if (strlen(negative[i]) == w && !memcmp(s, negative[i], w))
			return KM_RC_NEGATIVE;
	return KM_RC_OK;
}

int km_reply_unwell(const char *s, size_t len)
{
	static const char *const about_object[] = {
		"SERVER_ERROR object too large for cache\r\n",
		"SERVER_ERROR out of memory storing object\r\n"};
	unsigned int i;

	if (!km_starts(s, len, "SERVER_ERROR"))
		return 0;
	for (i = 0; i < sizeof(about_object) / sizeof(about_object[0]); i++)
		if (km_starts(s, len, about_object[i]))
			return 0;
	return 1;
}

static int km_b64_val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int km_base64_decode(const char *in, size_t len, char *out, size_t outsize)
{
	unsigned int acc = 0, bits = 0;
	size_t i, n = 0;

	for (i = 0; i < len && in[i] != '='; i++) {
		int v = km_b64_val((unsigned char)in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= outsize)
				return -1;
			out[n++] = (acc >> bits) & 0xff;
		}
	}
	return n;
}

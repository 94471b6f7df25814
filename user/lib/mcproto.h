/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * memcached text and meta protocol: request lines from clients, replies
 * from backends.  Parses in place (tokens point into the caller's buffer)
 * so that a request can be forwarded unchanged; root-free and socket-free
 * so that tests/unit/test_mcproto.c can drive it byte by byte.  Where a
 * client can see it, the parser behaves like memcached 1.6.18.
 */
#ifndef KM_MCPROTO_H
#define KM_MCPROTO_H

#include <stddef.h>
#include <stdint.h>

/* memcached closes a connection whose line has no '\n' after this. */
#define KM_LINE_MAX 2048
/* Tokens kept per line; more marks the line as having too many. */
#define KM_TOK_MAX 64

enum km_cmd {
	KM_CMD_NONE = 0,
	KM_CMD_GET,
	KM_CMD_GETS,
	KM_CMD_GAT,
	KM_CMD_GATS,
	KM_CMD_SET,
	KM_CMD_ADD,
	KM_CMD_REPLACE,
	KM_CMD_APPEND,
	KM_CMD_PREPEND,
	KM_CMD_CAS,
	KM_CMD_DELETE,
	KM_CMD_INCR,
	KM_CMD_DECR,
	KM_CMD_TOUCH,
	KM_CMD_FLUSH_ALL,
	KM_CMD_VERSION,
	KM_CMD_VERBOSITY,
	KM_CMD_STATS,
	KM_CMD_QUIT,
	KM_CMD_MG,
	KM_CMD_MS,
	KM_CMD_MD,
	KM_CMD_MA,
	KM_CMD_MN,
	KM_CMD_ME,
};

struct km_tok {
	const char *p;
	unsigned int len;
};

struct km_request {
	enum km_cmd cmd;
	const char *line; /* the line, without "\r\n" or "\n" */
	size_t len;
	size_t consumed;   /* bytes of the line including its terminator */
	unsigned int ntok; /* tokens found, KM_TOK_MAX + 1 = too many */
	long vlen;	   /* data block bytes (without "\r\n"), -1 = none */
	int noreply;	   /* text protocol "noreply" as the last token */
	int quiet;	   /* meta: a token starting with 'q' after the key */
	int base64;	   /* meta "b" flag: the key is base64 */
	const char *reply; /* KM_P_REPLY: memcached's answer, no "\r\n" */
	struct km_tok tok[KM_TOK_MAX]; /* last: not cleared by the parser */
};

enum km_parse_res {
	KM_P_MORE = 0,	/* no complete line yet */
	KM_P_OK = 1,	/* a request; vlen >= 0: a data block follows */
	KM_P_REPLY = 2, /* answer r->reply locally (unless noreply) */
	KM_P_CLOSE = 3, /* line too long: memcached closes the connection */
};

enum km_parse_res km_parse_request(const char *buf, size_t len,
				   struct km_request *r);
/* Next space-separated token of line[*pos..len), 0 at the end. */
int km_next_token(const char *line, size_t len, size_t *pos, struct km_tok *t);
int km_cmd_is_write(enum km_cmd cmd);
const char *km_cmd_name(enum km_cmd cmd);

/* memcached's safe_strto* over a token (not NUL-terminated). */
int km_tok_u32(const struct km_tok *t, uint32_t *out);
int km_tok_i32(const struct km_tok *t, int32_t *out);
int km_tok_u64(const struct km_tok *t, uint64_t *out);

/* Replies from a backend: how to find where one ends. */
enum km_reply_kind {
	KM_RK_LINE = 0,	  /* one line */
	KM_RK_VALUES = 1, /* VALUE blocks then END (get, gets, gat, gats) */
	KM_RK_META = 2,	  /* one line, or "VA <n> ..." and n bytes of data */
	KM_RK_STATS = 3,  /* STAT/ITEM/PREFIX lines then END, or one line */
	KM_RK_QUIET = 4,  /* a quiet meta command closed with "mn": at most
			   * one KM_RK_META reply, then "MN\r\n" */
};

/* Length of the complete reply at buf, 0 = incomplete, -1 = garbage. */
long km_reply_len(const char *buf, size_t len, enum km_reply_kind kind);

/*
 * Can this complete reply (KM_RK_QUIET: without its "MN\r\n") answer a
 * cmd request?  Its first line must be one of the words memcached answers
 * cmd with, or an error: anything else means the backend stream is out of
 * step with the requests sent on it.
 */
int km_reply_fits(enum km_cmd cmd, const char *reply, size_t len);

struct km_value {
	const char *key;
	unsigned int nkey;
	uint32_t flags;
	const char *data; /* the value, without its "\r\n" */
	size_t ndata;
	size_t block; /* bytes of "VALUE ...\r\n<data>\r\n" */
};

/*
 * One "VALUE key flags bytes [cas]\r\n<data>\r\n" block at buf: its length
 * (also in v->block), 0 = incomplete, -1 = not a VALUE block.
 */
long km_parse_value(const char *buf, size_t len, struct km_value *v);

/* How bad a reply is, for the write policies; higher is worse. */
enum km_reply_class {
	KM_RC_OK = 0,	    /* STORED, DELETED, TOUCHED, OK, HD, a number */
	KM_RC_NEGATIVE = 1, /* NOT_STORED, EXISTS, NOT_FOUND, NS, EX, NF, EN */
	KM_RC_CLIENT = 2,   /* ERROR, CLIENT_ERROR */
	KM_RC_SERVER = 3,   /* SERVER_ERROR */
	KM_RC_FAILED = 4,   /* no reply: timeout or connection lost */
};

enum km_reply_class km_reply_classify(const char *reply, size_t len);
/*
 * A SERVER_ERROR that says the backend is unwell (a health failure), not
 * one about this request's object ("object too large for cache", "out of
 * memory storing object": the next value may well fit).
 */
int km_reply_unwell(const char *reply, size_t len);

/* Base64-decode a meta key (b flag) for hashing; -1 if invalid. */
int km_base64_decode(const char *in, size_t len, char *out, size_t outsize);

#endif /* KM_MCPROTO_H */

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* A recursive-descent JSON reader, bounded depth; see json.h. */
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define KM_JSON_DEPTH 32

struct km_jp {
	const char *s;
	int depth;
};

static struct km_json *km_jvalue(struct km_jp *p);

static void km_jspace(struct km_jp *p)
{
	while (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')
		p->s++;
}

static struct km_json *km_jnew(enum km_jtype t)
{
	struct km_json *j = calloc(1, sizeof(*j));

	if (j)
		j->t = t;
	return j;
}

static int km_jhex(const char *s)
{
	int i, v = 0;

	for (i = 0; i < 4; i++) {
		char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/* A string at p->s (on the quote); \u escapes below 0x100 only. */
static char *km_jstring(struct km_jp *p)
{
	const char *s = p->s + 1;
	size_t n = 0;
	char *out = malloc(strlen(s) + 1);

	if (!out)
		return NULL;
	while (*s && *s != '"') {
		char c = *s++;

		if (c == '\\') {
			int v;

			c = *s++;
			switch (c) {
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			case 'b':
				c = '\b';
				break;
			case 'f':
				c = '\f';
				break;
			case 'u':
				v = km_jhex(s);
				if (v < 0 || v > 0xff)
					goto bad;
				c = (char)v;
				s += 4;
				break;
			case '"':
			case '\\':
			case '/':
				break;
			default:
				goto bad;
			}
		} else if ((unsigned char)c < 0x20) {
			goto bad;
		}
		out[n++] = c;
	}
	if (*s != '"')
		goto bad;
	out[n] = '\0';
	p->s = s + 1;
	return out;
bad:
	free(out);
	return NULL;
}

static struct km_json *km_jlist(struct km_jp *p, enum km_jtype t, char end)
{
	struct km_json *j = km_jnew(t), **tail;

	if (!j || ++p->depth > KM_JSON_DEPTH)
		goto bad;
	tail = &j->child;
	p->s++;
	km_jspace(p);
	if (*p->s == end) {
		p->s++;
		p->depth--;
		return j;
	}
	for (;;) {
		char *key = NULL;
		struct km_json *v;

		km_jspace(p);
		if (t == KM_J_OBJ) {
			if (*p->s != '"' || !(key = km_jstring(p)))
				goto bad;
			km_jspace(p);
			if (*p->s++ != ':') {
				free(key);
				goto bad;
			}
		}
		v = km_jvalue(p);
		if (!v) {
			free(key);
			goto bad;
		}
		v->key = key;
		*tail = v;
		tail = &v->next;
		km_jspace(p);
		if (*p->s == ',') {
			p->s++;
			continue;
		}
		if (*p->s++ != end)
			goto bad;
		p->depth--;
		return j;
	}
bad:
	km_json_free(j);
	return NULL;
}

static struct km_json *km_jword(struct km_jp *p, const char *w, enum km_jtype t,
				double v)
{
	struct km_json *j;

	if (strncmp(p->s, w, strlen(w)))
		return NULL;
	j = km_jnew(t);
	if (j) {
		j->num = v;
		p->s += strlen(w);
	}
	return j;
}

static struct km_json *km_jvalue(struct km_jp *p)
{
	struct km_json *j;
	char *end;

	km_jspace(p);
	switch (*p->s) {
	case '{':
		return km_jlist(p, KM_J_OBJ, '}');
	case '[':
		return km_jlist(p, KM_J_ARR, ']');
	case '"':
		j = km_jnew(KM_J_STR);
		if (j && !(j->str = km_jstring(p))) {
			free(j);
			j = NULL;
		}
		return j;
	case 't':
		return km_jword(p, "true", KM_J_BOOL, 1);
	case 'f':
		return km_jword(p, "false", KM_J_BOOL, 0);
	case 'n':
		return km_jword(p, "null", KM_J_NULL, 0);
	}
	if (*p->s != '-' && (*p->s < '0' || *p->s > '9'))
		return NULL;
	j = km_jnew(KM_J_NUM);
	if (!j)
		return NULL;
	j->num = strtod(p->s, &end);
	p->s = end;
	return j;
}

struct km_json *km_json_parse(const char *s)
{
	struct km_jp p = {.s = s};
	struct km_json *j = km_jvalue(&p);

	if (!j)
		return NULL;
	km_jspace(&p);
	if (*p.s) {
		km_json_free(j);
		return NULL;
	}
	return j;
}

void km_json_free(struct km_json *j)
{
	while (j) {
		struct km_json *next = j->next;

		km_json_free(j->child);
		free(j->str);
		free(j->key);
		free(j);
		j = next;
	}
}

const struct km_json *km_json_get(const struct km_json *obj, const char *key)
{
	const struct km_json *c;

	if (!obj || obj->t != KM_J_OBJ)
		return NULL;
	for (c = obj->child; c; c = c->next)
		if (c->key && !strcmp(c->key, key))
			return c;
	return NULL;
}

double km_json_num(const struct km_json *obj, const char *key, double def)
{
	const struct km_json *j = km_json_get(obj, key);

	return j && (j->t == KM_J_NUM || j->t == KM_J_BOOL) ? j->num : def;
}

const char *km_json_string(const struct km_json *obj, const char *key,
			   const char *def)
{
	const struct km_json *j = km_json_get(obj, key);

	return j && j->t == KM_J_STR ? j->str : def;
}

int km_json_bool(const struct km_json *obj, const char *key)
{
	const struct km_json *j = km_json_get(obj, key);

	return j && j->t == KM_J_BOOL && j->num;
}

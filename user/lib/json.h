/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A small JSON reader for kmagentctl: the daemon's replies into a tree.
 * Numbers are doubles (exact up to 2^53: enough for counters shown).
 */
#ifndef KM_JSON_H
#define KM_JSON_H

enum km_jtype {
	KM_J_NULL,
	KM_J_BOOL,
	KM_J_NUM,
	KM_J_STR,
	KM_J_ARR,
	KM_J_OBJ,
};

struct km_json {
	enum km_jtype t;
	double num;	       /* NUM, BOOL (0/1) */
	char *str;	       /* STR */
	char *key;	       /* member name inside an object */
	struct km_json *child; /* ARR, OBJ: first element */
	struct km_json *next;  /* next element of the parent */
};

/* NULL on a syntax error or trailing garbage. */
struct km_json *km_json_parse(const char *s);
void km_json_free(struct km_json *j);
const struct km_json *km_json_get(const struct km_json *obj, const char *key);
double km_json_num(const struct km_json *obj, const char *key, double def);
const char *km_json_string(const struct km_json *obj, const char *key,
			   const char *def);
int km_json_bool(const struct km_json *obj, const char *key);

#endif /* KM_JSON_H */

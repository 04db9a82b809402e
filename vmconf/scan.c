/* A second look at the text json-c accepted, for what its tree hides:
 * duplicate keys (json-c keeps the last), keys with NUL (json-c cuts them),
 * integer literals beyond int64 (json-c saturates them). The text is known
 * to be valid JSON here, so the walk can be simple. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct scan {
	struct vc *c;
	const char *buf, *p, *end;
};

struct scan_key {
	char *s;
	size_t len;
	size_t off;   /* where the key starts in the text */
	size_t order; /* position in its object */
};

static void scan_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int scan_hex4(const char *p)
{
	int v = 0;

	for (int i = 0; i < 4; i++) {
		char ch = p[i];
		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			v |= ch - 'a' + 10;
		else if (ch >= 'A' && ch <= 'F')
			v |= ch - 'A' + 10;
		else
			return -1;
	}
	return v;
}

static size_t scan_utf8(unsigned cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* At the opening quote. With ret set, decode the string into a malloc'd
 * buffer (for keys); else just skip it. */
static int scan_string(struct scan *s, char **ret, size_t *ret_len)
{
	const char *start = ++s->p;
	char *out = NULL;
	size_t o = 0;

	while (s->p < s->end && *s->p != '"')
		s->p += (*s->p == '\\' && s->p + 1 < s->end) ? 2 : 1;
	if (!ret) {
		s->p++;
		return 0;
	}
	/* Decoding never grows the text: each escape is longer than its bytes. */
	out = malloc((size_t)(s->p - start) + 1);
	if (!out)
		return -ENOMEM;
	for (const char *q = start; q < s->p;) {
		if (*q != '\\') {
			out[o++] = *q++;
			continue;
		}
		char e = q[1];
		q += 2;
		switch (e) {
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'u': {
			int cp = q + 4 <= s->p ? scan_hex4(q) : -1;
			if (cp < 0) {
				out[o++] = '?';
				break;
			}
			q += 4;
			if (cp >= 0xd800 && cp < 0xdc00 && q + 6 <= s->p && q[0] == '\\' && q[1] == 'u') {
				int lo = scan_hex4(q + 2);
				if (lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					q += 6;
				}
			}
			o += scan_utf8((unsigned)cp, out + o);
			break;
		}
		default: out[o++] = e; break; /* " \ / */
		}
	}
	out[o] = '\0';
	s->p++;
	*ret = out;
	*ret_len = o;
	return 0;
}

/* Numbers and the literals (true, false, null, and json-c's NaN/Infinity). */
static void scan_atom(struct scan *s)
{
	const char *start = s->p;
	bool integer = true;

	while (s->p < s->end && !strchr(",]} \t\r\n", *s->p)) {
		if (!((*s->p >= '0' && *s->p <= '9') || (*s->p == '-' && s->p == start)))
			integer = false;
		s->p++;
	}
	size_t n = (size_t)(s->p - start);
	if (!integer || n == 0 || s->c->n_bigints == VC_MAX_BIGINTS)
		return;
	/* No leading zeros in strict JSON: over 20 characters always overflows. */
	if (n <= 20) {
		char num[21];
		memcpy(num, start, n);
		num[n] = '\0';
		errno = 0;
		(void)strtoll(num, NULL, 10);
		if (errno != ERANGE)
			return;
	}
	struct vc_bigint *b = &s->c->bigints[s->c->n_bigints];
	b->path = strdup(s->c->path);
	b->text = strndup(start, n > 64 ? 64 : n);
	if (!b->path || !b->text) {
		free(b->path);
		free(b->text);
		s->c->oom = true;
		return;
	}
	s->c->n_bigints++;
}

static int scan_value(struct scan *s);

static int scan_key_cmp(const void *a, const void *b)
{
	const struct scan_key *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int r = memcmp(x->s, y->s, n);

	if (r)
		return r;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Report keys seen twice (each later copy) and keys with NUL bytes. */
static void scan_check_keys(struct scan *s, struct scan_key *keys, size_t n)
{
	char where[96];

	for (size_t i = 0; i < n; i++) {
		if (memchr(keys[i].s, '\0', keys[i].len)) {
			size_t mark = vc_push_key(s->c, keys[i].s, keys[i].len);
			char *q = vc_json_quote(keys[i].s, keys[i].len, VC_KEY_SHOW);
			vc_error(s->c, "a key without NUL bytes", "%s", q ? q : "a key with NUL bytes");
			free(q);
			vc_pop(s->c, mark);
		}
	}
	if (n < 2)
		return;
	qsort(keys, n, sizeof(*keys), scan_key_cmp);
	for (size_t i = 1; i < n; i++) {
		if (keys[i].len != keys[i - 1].len || memcmp(keys[i].s, keys[i - 1].s, keys[i].len) != 0)
			continue;
		if (!vc_listing(s->c)) { /* vc_where is linear: not for 100000 copies */
			vc_error_count(s->c);
			continue;
		}
		size_t mark = vc_push_key(s->c, keys[i].s, keys[i].len);
		vc_where(s->buf, (size_t)(s->end - s->buf), keys[i].off, where, sizeof(where));
		vc_error(s->c, "a key that appears once in its object", "it again at %s", where);
		vc_pop(s->c, mark);
	}
}

static int scan_object(struct scan *s)
{
	struct scan_key *keys = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	s->p++;
	scan_ws(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return 0;
	}
	while (s->p < s->end) {
		scan_ws(s);
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct scan_key *k = realloc(keys, ncap * sizeof(*k));
			if (!k) {
				r = -ENOMEM;
				goto out;
			}
			keys = k;
			cap = ncap;
		}
		keys[n].off = (size_t)(s->p - s->buf);
		keys[n].order = n;
		r = scan_string(s, &keys[n].s, &keys[n].len);
		if (r < 0)
			goto out;
		n++;
		scan_ws(s);
		s->p++; /* ':' */
		scan_ws(s);
		size_t mark = vc_push_key(s->c, keys[n - 1].s, keys[n - 1].len);
		r = scan_value(s);
		vc_pop(s->c, mark);
		if (r < 0)
			goto out;
		scan_ws(s);
		if (s->p < s->end && *s->p++ == '}')
			break;
	}
	scan_check_keys(s, keys, n);
out:
	for (size_t i = 0; i < n; i++)
		free(keys[i].s);
	free(keys);
	return r;
}

static int scan_array(struct scan *s)
{
	s->p++;
	scan_ws(s);
	if (s->p < s->end && *s->p == ']') {
		s->p++;
		return 0;
	}
	for (size_t i = 0; s->p < s->end; i++) {
		size_t mark = vc_push_index(s->c, i);
		int r = scan_value(s);
		vc_pop(s->c, mark);
		if (r < 0)
			return r;
		scan_ws(s);
		if (s->p < s->end && *s->p++ == ']')
			break;
		scan_ws(s);
	}
	return 0;
}

static int scan_value(struct scan *s)
{
	scan_ws(s);
	if (s->p >= s->end)
		return 0;
	switch (*s->p) {
	case '{': return scan_object(s);
	case '[': return scan_array(s);
	case '"': return scan_string(s, NULL, NULL);
	default: scan_atom(s); return 0;
	}
}

void vc_scan(struct vc *c, const char *buf, size_t len)
{
	struct scan s = { .c = c, .buf = buf, .p = buf, .end = buf + len };

	if (scan_value(&s) < 0)
		c->oom = true;
}

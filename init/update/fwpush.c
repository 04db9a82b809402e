/* Firmware delivery into <state_dir>/firmware/ (fwpush.h). */
#include "update/fwpush.h"
#include "pid1/cmdline.h"
#include "pid1/errtext.h"
#include "update/kabi.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "pid1/fsync_dir.h"
#include "pid1/log.h"
#include "pid1/loop.h"

#define MiB (1024.0 * 1024.0)
#define STORE_SCAN_MAX 64     /* directory entries looked at for status and retention */
#define SHA_CACHE_N    8

static struct {
	bool active;
	uint64_t handle, owner, size, received, last_ms;
	char dir[4096], tmp[4200], state_dir[4096];
	char want[SHA256_HEX_LEN + 1];
	char abi[256];              /* the image's live-update ABI line, or "" */
	struct sha256 sha;
	int fd;
	int timer;
} P = { .fd = -1, .timer = -1 };

static uint64_t idle_ms = FWPUSH_IDLE_MS;
static uint64_t next_handle;

/* SHA-256s of stored images by identity, so status does not hash them each time. */
static struct sha_cache {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	char hex[SHA256_HEX_LEN + 1];
} cache[SHA_CACHE_N];
static unsigned cache_next;

int fwpush_base64_decode(const char *in, size_t len, uint8_t *out, size_t outcap, size_t *outlen,
			 char *err, size_t errlen)
{
	size_t pad = 0, n = 0;

	*outlen = 0;
	if (len % 4)
		return errtext(err, errlen, "base64 of %zu characters: not a multiple of 4", len);
	if (len >= 1 && in[len - 1] == '=')
		pad = len >= 2 && in[len - 2] == '=' ? 2 : 1;
	if (len / 4 * 3 - pad > outcap) {
		snprintf(err, errlen, "chunk of %zu bytes: at most %zu per chunk", len / 4 * 3 - pad, outcap);
		return -E2BIG;
	}
	for (size_t i = 0; i < len; i += 4) {
		uint32_t v = 0;

		for (size_t j = 0; j < 4; j++) {
			char c = in[i + j];
			int d;

			if (c >= 'A' && c <= 'Z')
				d = c - 'A';
			else if (c >= 'a' && c <= 'z')
				d = c - 'a' + 26;
			else if (c >= '0' && c <= '9')
				d = c - '0' + 52;
			else if (c == '+')
				d = 62;
			else if (c == '/')
				d = 63;
			else if (c == '=' && i + j >= len - pad)
				d = 0;
			else if (c == '=')
				return errtext(err, errlen, "bad base64: '=' at %zu, before the end", i + j);
			else
				return errtext(err, errlen, "bad base64: character %#x at %zu", (unsigned char)c, i + j);
			v = v << 6 | (uint32_t)d;
		}
		out[n++] = (uint8_t)(v >> 16);
		if (i + 4 < len || pad < 2)
			out[n++] = (uint8_t)(v >> 8);
		if (i + 4 < len || pad < 1)
			out[n++] = (uint8_t)v;
	}
	*outlen = n;
	return 0;
}

static void push_close(void)
{
	loop_timer_del(P.timer);
	P.timer = -1;
	if (P.fd >= 0)
		close(P.fd);
	P.fd = -1;
	if (P.tmp[0] && unlink(P.tmp) < 0 && errno != ENOENT)
		log_errno(LOG_WARN, errno, "image-push: removing %s", P.tmp);
	P.tmp[0] = '\0';
	P.active = false;
}

static void push_drop(const char *why)
{
	if (!P.active)
		return;
	log_warn("image-push %" PRIu64 ": abandoned (%s) at %" PRIu64 " of %" PRIu64 " bytes; %s removed",
		 P.handle, why, P.received, P.size, P.tmp);
	push_close();
}

void fwpush_abandon(const char *why)
{
	push_drop(why);
}

void fwpush_owner_gone(uint64_t owner)
{
	if (P.active && P.owner == owner)
		push_drop("its client disconnected");
}

void fwpush_set_idle_timeout(uint64_t ms)
{
	idle_ms = ms ? ms : FWPUSH_IDLE_MS;
}

static bool push_idle(void)
{
	return P.active && now_ms() - P.last_ms >= idle_ms;
}

static void idle_cb(int fd, uint32_t events, void *data)
{
	char why[64];

	if (push_idle()) {
		snprintf(why, sizeof(why), "no chunk for %" PRIu64 " s", idle_ms / 1000);
		push_drop(why);
	}
}

/* Temporary files of pushes cut short by a crash or a reboot. */
static void remove_stale_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4400];

	if (!d)
		return;
	while ((e = readdir(d)))
		if (strncmp(e->d_name, FWPUSH_TMP_PREFIX, strlen(FWPUSH_TMP_PREFIX)) == 0) {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			if (unlink(path) == 0)
				log_info("image-push: removed %s, left by an earlier push", path);
		}
	closedir(d);
}

static bool hex_valid(const char *s)
{
	if (strlen(s) != SHA256_HEX_LEN)
		return false;
	for (size_t i = 0; i < SHA256_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	return true;
}

int fwpush_begin(const char *state_dir, uint64_t owner, uint64_t size, const char *sha256_hex,
		 uint64_t *handle, char *err, size_t errlen)
{
	struct statvfs v;
	uint64_t avail, total, margin;
	int r;

	if (push_idle())
		push_drop("idle");
	if (P.active)
		return errtext(err, errlen, "another push is in progress (handle %" PRIu64 ", %" PRIu64 " of %" PRIu64
			    " bytes); it is abandoned after %" PRIu64 " s without a chunk", P.handle, P.received,
			    P.size, idle_ms / 1000);
	if (size < FWPUSH_MIN_SIZE || size > FWPUSH_MAX_SIZE)
		return errtext(err, errlen, "'size' %" PRIu64 " is out of bounds: an image has %llu to %llu bytes (%llu MiB)",
			    size, FWPUSH_MIN_SIZE, FWPUSH_MAX_SIZE, FWPUSH_MAX_SIZE >> 20);
	if (!hex_valid(sha256_hex))
		return errtext(err, errlen, "'sha256' must be 64 hex digits, got \"%.80s\"", sha256_hex);
	if (snprintf(P.dir, sizeof(P.dir), "%s/" FWIMAGE_DIR, state_dir) >= (int)sizeof(P.dir))
		return errtext(err, errlen, "state dir path too long");
	snprintf(P.state_dir, sizeof(P.state_dir), "%s", state_dir);
	if (mkdir(P.dir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		snprintf(err, errlen, "cannot create %s: %s", P.dir, strerror(-r));
		return r;
	}
	remove_stale_tmp(P.dir);
	if (statvfs(P.dir, &v) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", P.dir, strerror(-r));
		return r;
	}
	avail = (uint64_t)v.f_bavail * v.f_frsize;
	total = (uint64_t)v.f_blocks * v.f_frsize;
	margin = total / 100 * FWPUSH_MARGIN_PCT;
	if (margin < FWPUSH_MARGIN_MIN)
		margin = FWPUSH_MARGIN_MIN;
	if (size + margin > avail) {
		snprintf(err, errlen, "no space left on %s: %.1f MiB free, image is %.1f MiB (%.1f MiB are kept free)",
			 state_dir, (double)avail / MiB, (double)size / MiB, (double)margin / MiB);
		return -ENOSPC;
	}
	if (!next_handle)
		next_handle = (now_ms() & 0xffff) * 1000 + 1;
	P.handle = next_handle++;
	snprintf(P.tmp, sizeof(P.tmp), "%s/" FWPUSH_TMP_PREFIX "%" PRIu64 ".tmp", P.dir, P.handle);
	P.fd = open(P.tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (P.fd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot create %s: %s", P.tmp, strerror(-r));
		P.tmp[0] = '\0';
		return r;
	}
	P.active = true;
	/* Reserve the space now: a disk that fills meanwhile fails here, not
	 * halfway through the push. */
	r = posix_fallocate(P.fd, 0, (off_t)size);
	if (r != 0 && r != EOPNOTSUPP && r != EINVAL) {
		if (r == ENOSPC)
			snprintf(err, errlen, "no space left on %s for the image's %.1f MiB (reserving it failed)",
				 state_dir, (double)size / MiB);
		else
			snprintf(err, errlen, "reserving %.1f MiB in %s: %s", (double)size / MiB, P.dir, strerror(r));
		push_close();
		return -r;
	}
	P.owner = owner;
	P.size = size;
	P.abi[0] = '\0';
	P.received = 0;
	P.last_ms = now_ms();
	for (size_t i = 0; i <= SHA256_HEX_LEN; i++)
		P.want[i] = (char)(sha256_hex[i] >= 'A' && sha256_hex[i] <= 'F' ? sha256_hex[i] + 32 : sha256_hex[i]);
	sha256_init(&P.sha);
	{
		uint64_t every = idle_ms / 4 ? idle_ms / 4 : 1;
		int t = loop_timer_add(every, every, idle_cb, NULL);
		/* Without the timer a stale push is still dropped by the next begin. */
		P.timer = t >= 0 ? t : -1;
	}
	*handle = P.handle;
	log_info("image-push %" PRIu64 ": receiving %" PRIu64 " bytes into %s", P.handle, size, P.tmp);
	return 0;
}

/* The push named by handle, for owner. */
static int push_get(uint64_t owner, uint64_t handle, char *err, size_t errlen)
{
	if (push_idle())
		push_drop("idle");
	if (!P.active || P.handle != handle)
		return errtext(err, errlen, "no push with handle %" PRIu64 " (it ended, was abandoned, or never began)",
			    handle);
	if (P.owner != owner)
		return errtext(err, errlen, "push %" PRIu64 " belongs to another connection", handle);
	return 0;
}

int fwpush_chunk(uint64_t owner, uint64_t handle, uint64_t offset, const char *b64, size_t b64len,
		 uint64_t *received, char *err, size_t errlen)
{
	static uint8_t buf[FWPUSH_CHUNK_MAX];
	size_t n, done = 0;
	int r;

	if ((r = push_get(owner, handle, err, errlen)) < 0)
		return r;
	if (offset != P.received)
		return errtext(err, errlen, "'offset' %" PRIu64 " is not where the image continues: %" PRIu64
			    " (chunks come in order)", offset, P.received);
	if (b64len > FWPUSH_CHUNK_B64)
		return errtext(err, errlen, "'data' of %zu characters: at most %d (%d bytes) per chunk", b64len,
			    FWPUSH_CHUNK_B64, FWPUSH_CHUNK_MAX);
	r = fwpush_base64_decode(b64, b64len, buf, sizeof(buf), &n, err, errlen);
	if (r < 0)
		return -EINVAL;
	if (n == 0)
		return errtext(err, errlen, "empty chunk");
	if (n > P.size - P.received)
		return errtext(err, errlen, "chunk of %zu bytes at %" PRIu64 " runs past the image's size %" PRIu64, n,
			    offset, P.size);
	while (done < n) {
		ssize_t w = pwrite(P.fd, buf + done, n - done, (off_t)(P.received + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			r = w < 0 ? errno : EIO;
			if (r == ENOSPC)
				snprintf(err, errlen, "no space left on %s while writing the image (at %.1f of %.1f MiB): "
					 "push abandoned, nothing kept", P.state_dir, (double)P.received / MiB,
					 (double)P.size / MiB);
			else
				snprintf(err, errlen, "writing the image at %" PRIu64 ": %s: push abandoned, nothing kept",
					 P.received + done, strerror(r));
			push_drop(r == ENOSPC ? "no space left" : "write error");
			return -r;
		}
		done += (size_t)w;
	}
	sha256_update(&P.sha, buf, n);
	P.received += n;
	P.last_ms = now_ms();
	*received = P.received;
	return 0;
}

int fwpush_abort(uint64_t owner, uint64_t handle, char *err, size_t errlen)
{
	int r = push_get(owner, handle, err, errlen);

	if (r == 0)
		push_drop("the client aborted it");
	return r;
}

static void cache_put(const struct stat *st, const char *hex)
{
	struct sha_cache *c = &cache[cache_next++ % SHA_CACHE_N];

	c->dev = st->st_dev;
	c->ino = st->st_ino;
	c->size = st->st_size;
	c->mtime = st->st_mtim;
	memcpy(c->hex, hex, sizeof(c->hex));
}

/* The SHA-256 of an open stored image, from the cache or computed. */
static int image_sha(int fd, const struct stat *st, char hex[SHA256_HEX_LEN + 1])
{
	int r;

	for (size_t i = 0; i < SHA_CACHE_N; i++)
		if (cache[i].hex[0] && cache[i].dev == st->st_dev && cache[i].ino == st->st_ino &&
		    cache[i].size == st->st_size && cache[i].mtime.tv_sec == st->st_mtim.tv_sec &&
		    cache[i].mtime.tv_nsec == st->st_mtim.tv_nsec) {
			memcpy(hex, cache[i].hex, SHA256_HEX_LEN + 1);
			return 0;
		}
	r = sha256_fd_hex(fd, hex);
	if (r == 0)
		cache_put(st, hex);
	return r;
}

struct stored {
	char name[FWIMAGE_VERSION_MAX + sizeof(FWIMAGE_SUFFIX)];
	char version[FWIMAGE_VERSION_MAX + 1];
	struct timespec mtime;
};

static int by_mtime_newest(const void *a, const void *b)
{
	const struct stored *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? 1 : -1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? 1 : -1;
	return strcmp(x->name, y->name);
}

/* The images in dir (<VERSION>.efi, regular files), newest first; at most max. */
static size_t store_scan(const char *dir, struct stored *v, size_t max)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	if (!d)
		return 0;
	while (n < max && (e = readdir(d))) {
		struct stat st;

		if (fwimage_file_version(e->d_name, v[n].version) < 0 ||
		    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		memcpy(v[n].name, e->d_name, strlen(e->d_name) + 1);
		v[n].mtime = st.st_mtim;
		n++;
	}
	closedir(d);
	qsort(v, n, sizeof(*v), by_mtime_newest);
	return n;
}

/* Keep the newest FWPUSH_KEEP images; never the running one nor keep_too. */
static json_object *retention(const char *dir, const char *keep_too)
{
	static struct stored v[STORE_SCAN_MAX];
	json_object *removed = json_object_new_array();
	char running[FWIMAGE_VERSION_MAX + 1] = "", path[4400];
	size_t n = store_scan(dir, v, STORE_SCAN_MAX), kept = 0;

	(void)fwpush_running_version(running, sizeof(running));
	for (size_t i = 0; i < n; i++) {
		if (kept < FWPUSH_KEEP || strcmp(v[i].version, running) == 0 || strcmp(v[i].version, keep_too) == 0) {
			kept++;
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, v[i].name);
		if (unlink(path) < 0) {
			log_errno(LOG_WARN, errno, "firmware: removing %s", path);
			continue;
		}
		log_info("firmware: removed %s (the newest %d images are kept, and the running one)", path,
			 FWPUSH_KEEP);
		snprintf(path, sizeof(path), "%s/%s%s", dir, v[i].name, KABI_TARGET_SUFFIX);
		if (unlink(path) < 0 && errno != ENOENT)
			log_errno(LOG_WARN, errno, "firmware: removing %s", path);
		json_object_array_add(removed, json_object_new_string(v[i].name));
	}
	if (json_object_array_length(removed))
		(void)fsync_dir(dir);
	return removed;
}

int fwpush_set_abi(uint64_t owner, uint64_t handle, const char *abi, char *err, size_t errlen)
{
	struct kabi k = { 0 };
	const char *why = NULL;
	int r;

	if ((r = push_get(owner, handle, err, errlen)) < 0)
		return r;
	if (strlen(abi) >= sizeof(P.abi))
		why = "too long";
	else if (strpbrk(abi, "\n\r"))
		why = "more than one line";
	else if (kabi_parse(abi, &k) < 0 || !k.known)
		why = k.why[0] ? k.why : "not key=value words";
	if (why) {
		snprintf(err, errlen, "abi: not a live-update ABI line (%s)", why);
		return -EINVAL;
	}
	snprintf(P.abi, sizeof(P.abi), "%s", abi);
	return 0;
}

/* VERSION.efi.abi beside the image (update reads the target's ABI there),
 * written whole before the image appears. */
static int write_abi(const char *image_path, char *err, size_t errlen)
{
	char path[4500], line[sizeof(P.abi) + 1];
	int r;

	snprintf(path, sizeof(path), "%s%s", image_path, KABI_TARGET_SUFFIX);
	snprintf(line, sizeof(line), "%s\n", P.abi);
	r = file_replace(path, line, strlen(line));
	if (r < 0)
		snprintf(err, errlen, "storing %s: %s: refused, nothing kept", path, strerror(-r));
	return r;
}

/* The note's words (fwnote.h), null for an image without one. */
static json_object *note_json(const struct fwnote *n)
{
	json_object *o;

	if (!n->present)
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "cmdline", json_object_new_string(n->cmdline));
	json_object_object_add(o, "kernel_abi", n->kernel_abi[0] ? json_object_new_string(n->kernel_abi) : NULL);
	json_object_object_add(o, "qemu", n->qemu[0] ? json_object_new_string(n->qemu) : NULL);
	return o;
}

int fwpush_end(uint64_t owner, uint64_t handle, json_object **ret, char *err, size_t errlen)
{
	struct fwimage_info info;
	char got[SHA256_HEX_LEN + 1], other[SHA256_HEX_LEN + 1], path[4400];
	uint8_t d[SHA256_LEN];
	struct stat st;
	json_object *o;
	uint64_t size = P.size;
	int r, fd;

	if ((r = push_get(owner, handle, err, errlen)) < 0)
		return r;
	if (P.received != P.size) {
		snprintf(err, errlen, "only %" PRIu64 " of %" PRIu64 " bytes arrived: refused, nothing kept", P.received,
			 P.size);
		push_drop("ended early");
		return -EINVAL;
	}
	sha256_final(&P.sha, d);
	sha256_hex(d, got);
	if (strcmp(got, P.want) != 0) {
		snprintf(err, errlen, "sha256 mismatch: the image received hashes to %s, not %s: refused, nothing kept",
			 got, P.want);
		push_drop("sha256 mismatch");
		return -EBADMSG;
	}
	r = fwimage_inspect(P.fd, P.size, &info, err, errlen);
	if (r < 0) {
		size_t l = strlen(err);
		snprintf(err + l, errlen > l ? errlen - l : 0, ": refused, nothing kept");
		push_drop("not a usable image");
		return r;
	}
	snprintf(path, sizeof(path), "%s/%s" FWIMAGE_SUFFIX, P.dir, info.version);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		r = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? image_sha(fd, &st, other) : -EEXIST;
		close(fd);
		if (r < 0 || strcmp(other, got) != 0) {
			snprintf(err, errlen, "an image of version %s is already stored (%s)%s: refused, nothing kept",
				 info.version, path, r < 0 ? "" : " with another sha256");
			push_drop("version already stored");
			return -EEXIST;
		}
		log_info("image-push %" PRIu64 ": %s is already stored, the same image", P.handle, path);
		push_close();
	} else {
		if (P.abi[0] && (r = write_abi(path, err, errlen)) < 0) {
			push_drop("its ABI could not be stored");
			return r;
		}
		if (fsync(P.fd) < 0 || rename(P.tmp, path) < 0 || (r = fsync_dir(P.dir)) < 0) {
			r = r < 0 ? r : -errno;
			snprintf(err, errlen, "storing the image as %s: %s: refused, nothing kept", path, strerror(-r));
			(void)unlink(path);
			push_drop("could not be stored");
			return r;
		}
		P.tmp[0] = '\0';
		if (fstat(P.fd, &st) == 0)
			cache_put(&st, got);
		log_info("image-push %" PRIu64 ": stored %s (%" PRIu64 " bytes, sha256 %s, %s%s)", P.handle, path,
			 P.size, got, info.is_signed ? "signed by " : "unsigned",
			 info.is_signed ? (info.signed_by[0] ? info.signed_by : "an unknown signer") : "");
		push_close();
	}
	o = json_object_new_object();
	json_object_object_add(o, "version", json_object_new_string(info.version));
	json_object_object_add(o, "file", json_object_new_string(path));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)size));
	json_object_object_add(o, "sha256", json_object_new_string(got));
	json_object_object_add(o, "signed", json_object_new_boolean(info.is_signed));
	json_object_object_add(o, "signed_by", info.signed_by[0] ? json_object_new_string(info.signed_by) : NULL);
	json_object_object_add(o, "note", note_json(&info.note));
	json_object_object_add(o, "removed", retention(P.dir, info.version));
	*ret = o;
	return 0;
}

int fwpush_remove(const char *state_dir, const char *version, json_object **ret, char *err, size_t errlen)
{
	char running[FWIMAGE_VERSION_MAX + 1] = "", dir[4200], path[4400], abi[4500];
	struct stat st;

	if (!fwimage_version_valid(version))
		return errtext(err, errlen, "'%.80s' is not an image version (letters, digits and . _ + ~ -, at most %d)",
			    version, FWIMAGE_VERSION_MAX);
	(void)fwpush_running_version(running, sizeof(running));
	if (strcmp(version, running) == 0) {
		snprintf(err, errlen, "%s is the running firmware: kept", version);
		return -EBUSY;
	}
	snprintf(dir, sizeof(dir), "%s/" FWIMAGE_DIR, state_dir);
	snprintf(path, sizeof(path), "%s/%s" FWIMAGE_SUFFIX, dir, version);
	snprintf(abi, sizeof(abi), "%s%s", path, KABI_TARGET_SUFFIX);
	if (lstat(path, &st) < 0) {
		int r = errno;
		snprintf(err, errlen, "no image %s stored (%s: %s)", version, path, strerror(r));
		return -r;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "no image %s stored (%s is not a regular file)", version, path);
		return -ENOENT;
	}
	/* The ABI first: an image never stays without the ABI it came with. */
	if ((unlink(abi) < 0 && errno != ENOENT) || unlink(path) < 0) {
		int r = errno;
		snprintf(err, errlen, "removing %s: %s", path, strerror(r));
		return -r;
	}
	(void)fsync_dir(dir);
	log_info("firmware: removed %s (%lld bytes) on request", path, (long long)st.st_size);
	*ret = json_object_new_object();
	json_object_object_add(*ret, "file", json_object_new_string(path));
	json_object_object_add(*ret, "size", json_object_new_int64((int64_t)st.st_size));
	return 0;
}

int fwpush_running_version(char *out, size_t len)
{
	struct utsname u;

	if (len)
		out[0] = '\0';
	if (uname(&u) < 0)
		return -errno;
	if (fwimage_version_from_uts(u.version, sizeof(u.version), out, len) < 0) {
		if (len)
			out[0] = '\0';
		return -ENOENT;
	}
	return 0;
}

static json_object *image_json(const char *dir, const struct stored *s)
{
	json_object *o = json_object_new_object();
	struct fwimage_info info;
	char path[4400], hex[SHA256_HEX_LEN + 1], e[256] = "";
	struct stat st;
	int fd, r = -EIO;

	snprintf(path, sizeof(path), "%s/%s", dir, s->name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		r = fwimage_inspect(fd, (uint64_t)st.st_size, &info, e, sizeof(e));
		if (r == 0 && (r = image_sha(fd, &st, hex)) < 0)
			snprintf(e, sizeof(e), "reading it: %s", strerror(-r));
	} else {
		snprintf(e, sizeof(e), "%s", strerror(errno));
	}
	if (fd >= 0)
		close(fd);
	/* The version the image itself says; the file name when it cannot be read. */
	json_object_object_add(o, "version", json_object_new_string(r == 0 ? info.version : s->version));
	json_object_object_add(o, "file", json_object_new_string(path));
	json_object_object_add(o, "size", r == 0 ? json_object_new_int64((int64_t)st.st_size) : NULL);
	json_object_object_add(o, "sha256", r == 0 ? json_object_new_string(hex) : NULL);
	json_object_object_add(o, "signed", json_object_new_boolean(r == 0 && info.is_signed));
	json_object_object_add(o, "signed_by", r == 0 && info.signed_by[0] ? json_object_new_string(info.signed_by) : NULL);
	json_object_object_add(o, "note", r == 0 ? note_json(&info.note) : NULL);
	json_object_object_add(o, "mtime", json_object_new_int64((int64_t)s->mtime.tv_sec));
	if (r < 0)
		json_object_object_add(o, "error", json_object_new_string(e));
	return o;
}

json_object *fwpush_status_json(const char *state_dir)
{
	static struct stored v[STORE_SCAN_MAX];
	json_object *o = json_object_new_object(), *imgs = json_object_new_array(), *run = json_object_new_object();
	char dir[4200], running[FWIMAGE_VERSION_MAX + 1], line[4096];
	size_t n;

	snprintf(dir, sizeof(dir), "%s/" FWIMAGE_DIR, state_dir);
	n = store_scan(dir, v, STORE_SCAN_MAX);
	for (size_t i = 0; i < n; i++)
		json_object_array_add(imgs, image_json(dir, &v[i]));
	json_object_object_add(run, "version", fwpush_running_version(running, sizeof(running)) == 0
						       ? json_object_new_string(running) : NULL);
	/* The firmware's own command line (built into its kernel) and what
	 * this boot added to it: the part a kexec into an image keeps. */
	json_object_object_add(run, "cmdline", cmdline_read_firmware(line, sizeof(line)) == 0
						       ? json_object_new_string(line) : NULL);
	json_object_object_add(run, "cmdline_extra", cmdline_read_extra(line, sizeof(line)) == 0
							     ? json_object_new_string(line) : NULL);
	json_object_object_add(run, "kernel_cmdline", cmdline_read_raw(line, sizeof(line)) == 0
							      ? json_object_new_string(line) : NULL);
	json_object_object_add(o, "dir", json_object_new_string(dir));
	json_object_object_add(o, "keep", json_object_new_int(FWPUSH_KEEP));
	json_object_object_add(o, "running", run);
	json_object_object_add(o, "images", imgs);
	if (push_idle())
		push_drop("idle");
	if (P.active) {
		json_object *p = json_object_new_object();
		json_object_object_add(p, "handle", json_object_new_int64((int64_t)P.handle));
		json_object_object_add(p, "size", json_object_new_int64((int64_t)P.size));
		json_object_object_add(p, "received", json_object_new_int64((int64_t)P.received));
		json_object_object_add(o, "push", p);
	} else {
		json_object_object_add(o, "push", NULL);
	}
	return o;
}

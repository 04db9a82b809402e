/* Heartbeat guest: a bare-metal multiboot program for the demo VM.
 *
 * At boot it fills part of RAM with a pattern derived from a seed, then about
 * every 100 ms prints "heartbeat COUNTER pattern=ok|bad" on COM1. The counter
 * lives in RAM, so a guest restored by CPR continues it; a rebooted one starts
 * at 0. Each beat re-checks the first and last page of the filled area and a
 * rotating 64 KiB slice, so corrupted memory shows up as pattern=bad.
 *
 * Time comes from polling the HPET main counter (PIT channel 0 when there is no
 * HPET): no interrupts. Under TCG both follow QEMU's virtual clock, which stops
 * while the VM is stopped and is carried over by a migration. The HPET counter
 * wraps after 42 s, the PIT's after 55 ms: a vCPU starved for longer than that
 * (nested TCG on a busy host) loses time on the PIT only.
 * No system headers: this builds with any gcc that can do -m32.
 *
 * Optional devices, used when present on PCI bus 0 (legacy virtio-pci):
 * the first virtio disk gets a record of the beat counter every 10 beats
 * (vblk.c), the first virtio NIC a UDP broadcast of each beat and an echo
 * service (vnet.c). Without them the output is the serial lines alone.
 */
#include "guest.h"

#define PIT_HZ 1193182u
#define PIT_BEAT (PIT_HZ / 10)
#define HPET ((volatile u32 *)0xfed00000)
#define PAGE 4096u
#define SLICE 65536u

extern char _end[];

/* One 32-bit word of the pattern per address: cheap, and differs per seed. */
static inline u32 pattern(u32 addr, u32 seed)
{
	u32 x = (addr ^ seed) * 0x9e3779b1u;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return x;
}

static void fill(u32 from, u32 to, u32 seed)
{
	for (u32 a = from; a < to; a += 4)
		*(volatile u32 *)a = pattern(a, seed);
}

static int check(u32 from, u32 to, u32 seed)
{
	for (u32 a = from; a < to; a += 4)
		if (*(volatile u32 *)a != pattern(a, seed))
			return 0;
	return 1;
}

/* PIT channel 0 as a free-running 16-bit down counter (mode 2, reload 65536). */
static void pit_init(void)
{
	outb(0x43, 0x34);
	outb(0x40, 0);
	outb(0x40, 0);
}

static u32 pit_read(void)
{
	outb(0x43, 0x00);	/* latch channel 0 */
	u32 lo = inb(0x40);
	u32 hi = inb(0x40);
	return lo | hi << 8;
}

/* Enables the HPET and returns its ticks per 100 ms, or 0 when there is none
 * (the MMIO then reads as 0 or all ones, outside the sane period range). */
static u32 hpet_init(void)
{
	u32 period_fs = HPET[1], q, r;
	u64 n = 100000000000000ull;	/* 100 ms in fs */

	if (period_fs < 100000 || period_fs > 100000000)
		return 0;
	HPET[0x10 / 4] |= 1;		/* ENABLE_CNF */
	/* 64/32 division without libgcc: the quotient fits 32 bits here */
	__asm__("divl %4" : "=a"(q), "=d"(r) : "a"((u32)n), "d"((u32)(n >> 32)), "rm"(period_fs));
	(void)r;
	return q;
}

static u32 hpet_read(void)
{
	return HPET[0xf0 / 4];
}

/* --- command line: fill_mib=N|all seed=N (decimal or 0x hex) --- */
static int word_is(const char *s, const char *key, const char **val)
{
	while (*key)
		if (*s++ != *key++)
			return 0;
	*val = s;
	return 1;
}

static u32 parse_u32(const char *s)
{
	u32 v = 0, base = 10;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	for (;; s++) {
		u32 d;
		if (*s >= '0' && *s <= '9')
			d = (u32)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (u32)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (u32)(*s - 'A' + 10);
		else
			return v;
		v = v * base + d;
	}
}

struct conf {
	u32 fill_mib;	/* ~0u: all */
	u32 seed;
};

static void parse_cmdline(const char *s, struct conf *c)
{
	while (*s) {
		const char *v;
		while (*s == ' ')
			s++;
		if (word_is(s, "fill_mib=", &v))
			c->fill_mib = word_is(v, "all", &v) ? ~0u : parse_u32(v);
		else if (word_is(s, "seed=", &v))
			c->seed = parse_u32(v);
		while (*s && *s != ' ')
			s++;
	}
}

/* End of the usable RAM region that starts at 1 MiB: from the e820 map when the
 * loader gives one (it excludes the firmware's tables at the top), else mem_upper. */
static u32 ram_top(const u32 *mbi)
{
	u32 top = 0x100000 + mbi[2] * 1024;
	if (mbi[0] & (1u << 6)) {
		u32 p = mbi[12], end = mbi[12] + mbi[11];
		while (p < end) {
			const u32 *e = (const u32 *)p;	/* size, base lo/hi, len lo/hi, type */
			u64 base = e[1] | (u64)e[2] << 32, len = e[3] | (u64)e[4] << 32;
			if (e[5] == 1 && base <= 0x100000 && base + len > 0x100000) {
				u64 t = base + len;
				top = t > 0xfffff000ull ? 0xfffff000u : (u32)t;
			}
			p += e[0] + 4;
		}
	}
	return top & ~(PAGE - 1);
}

void hb_main(u32 magic, const u32 *mbi);
void hb_main(u32 magic, const u32 *mbi)
{
	struct conf c = { .fill_mib = 16, .seed = 1 };
	u32 base = ((u32)_end + PAGE - 1) & ~(PAGE - 1);
	u32 top = base;

	serial_init();
	/* Everything the loader left (info, command line, map) sits right after the
	 * program, where the fill goes: read it all before filling. */
	if (magic == 0x2badb002u) {
		if (mbi[0] & (1u << 2))
			parse_cmdline((const char *)mbi[4], &c);
		if (mbi[0] & 1u)
			top = ram_top(mbi);
	}
	u32 end = top;
	if (c.fill_mib != ~0u && c.fill_mib < ((top - base) >> 20))
		end = base + (c.fill_mib << 20);
	if (end < base)
		end = base;
	fill(base, end, c.seed);
	u32 beat = hpet_init();
	int use_hpet = beat != 0;
	if (!use_hpet) {
		pit_init();
		beat = PIT_BEAT;
	}

	puts_("heartbeat guest: fill_mib=");
	if (c.fill_mib == ~0u)
		puts_("all");
	else
		putu(c.fill_mib);
	puts_(" seed=");
	putu(c.seed);
	puts_(" base=");
	putx(base);
	puts_(" end=");
	putx(end);
	puts_(" ram_top=");
	putx(top);
	puts_(use_hpet ? " clock=hpet" : " clock=pit");
	puts_(" filled\n");
	vblk_init(c.seed);
	vnet_init();

	u32 nslices = (end - base) / SLICE, counter = 0, acc = 0, last;
	u32 shown = 0;	/* the last beat printed */
	last = use_hpet ? hpet_read() : pit_read();
	for (;;) {
		u32 now;
		if (use_hpet) {
			now = hpet_read();
			acc += now - last;
		} else {
			now = pit_read();
			acc += (last - now) & 0xffff;	/* a down counter */
		}
		last = now;
		if (acc < beat) {
			/* Between beats: completions and received frames. */
			vblk_poll();
			vnet_poll(shown);
			__asm__ volatile("pause");
			continue;
		}
		acc -= beat;
		if (acc >= beat)	/* fell behind (host busy): no burst of beats */
			acc = 0;

		int ok = 1;
		if (end > base) {
			u32 first_end = base + PAGE < end ? base + PAGE : end;
			u32 last_start = end - PAGE > base ? end - PAGE : base;
			ok = check(base, first_end, c.seed) && check(last_start, end, c.seed);
			if (ok && nslices) {
				u32 s = base + (counter % nslices) * SLICE;
				ok = check(s, s + SLICE, c.seed);
			}
		}
		/* The line once, for the serial port and the network alike. */
		const char *tail = ok ? " pattern=ok" : " pattern=bad";
		char line[40];
		u32 n = 10;
		memcpy(line, "heartbeat ", n);
		n += fmt_u(line + n, counter);
		while (*tail)
			line[n++] = *tail++;
		for (u32 i = 0; i < n; i++)
			putc_(line[i]);
		putc_('\n');
		vnet_beat(line, n);
		vblk_beat(counter);
		shown = counter++;
	}
}

/* The heartbeat guest's COM1 console (polled, no interrupts) and the few
 * library routines gcc may call even when freestanding. */
#include "guest.h"

#define COM1 0x3f8

void *memset(void *d, int c, unsigned long n)
{
	u8 *p = d;
	while (n--)
		*p++ = (u8)c;
	return d;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
	u8 *p = d;
	const u8 *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

void serial_init(void)
{
	outb(COM1 + 1, 0x00);	/* no interrupts */
	outb(COM1 + 3, 0x80);	/* DLAB */
	outb(COM1 + 0, 0x01);	/* 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03);	/* 8N1 */
	outb(COM1 + 2, 0xc7);	/* FIFO on, cleared */
	outb(COM1 + 4, 0x03);
}

void putc_(char c)
{
	for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
		;
	outb(COM1, (u8)c);
}

void puts_(const char *s)
{
	while (*s)
		putc_(*s++);
}

u32 fmt_u(char *d, u32 v)
{
	char b[10];
	u32 i = 0, n = 0;
	do
		b[i++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (i)
		d[n++] = b[--i];
	return n;
}

void putu(u32 v)
{
	char b[10];
	u32 n = fmt_u(b, v);
	for (u32 i = 0; i < n; i++)
		putc_(b[i]);
}

void putx(u32 v)
{
	puts_("0x");
	for (int s = 28; s >= 0; s -= 4)
		putc_("0123456789abcdef"[(v >> s) & 15]);
}

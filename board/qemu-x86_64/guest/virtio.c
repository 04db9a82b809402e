/* Legacy virtio-pci (the transitional devices QEMU gives on pc and q35 unless
 * disable-legacy=on): registers in the I/O BAR, split rings at page-aligned
 * guest-physical frames. Everything the driver keeps is in guest RAM (.bss),
 * and the device's side (features, ring frames, ring indices) travels in
 * QEMU's migration stream, so a restored guest just carries on. */
#include "guest.h"

#define VIO_HOST_FEATURES 0x00
#define VIO_GUEST_FEATURES 0x04
#define VIO_QUEUE_PFN 0x08
#define VIO_QUEUE_NUM 0x0c
#define VIO_QUEUE_SEL 0x0e
#define VIO_QUEUE_NOTIFY 0x10
#define VIO_STATUS 0x12
#define VIO_CONFIG 0x14	/* device config while MSI-X is off (it stays off) */
#define VIO_S_ACK 1
#define VIO_S_DRIVER 2
#define VIO_S_DRIVER_OK 4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_ALIGN 4096u
#define MAX_QUEUE 1024u

/* Room for the three rings used (disk, net rx, net tx) at the largest size
 * QEMU allows, 1024 entries (32 KiB each); its default 256 takes 12 KiB. */
static u8 pool[96 * 1024] __attribute__((aligned(4096)));
static u32 pool_used;

static u32 align(u32 v, u32 a) { return (v + a - 1) & ~(a - 1); }

u32 vio_begin(u16 io)
{
	outb(io + VIO_STATUS, 0);	/* reset */
	outb(io + VIO_STATUS, VIO_S_ACK);
	outb(io + VIO_STATUS, VIO_S_ACK | VIO_S_DRIVER);
	return inl(io + VIO_HOST_FEATURES);
}

void vio_set_features(u16 io, u32 features)
{
	outl(io + VIO_GUEST_FEATURES, features);
}

void vio_ready(u16 io)
{
	outb(io + VIO_STATUS, VIO_S_ACK | VIO_S_DRIVER | VIO_S_DRIVER_OK);
}

u8 vio_config8(u16 io, u32 off)
{
	return inb((u16)(io + VIO_CONFIG + off));
}

u32 vio_config32(u16 io, u32 off)
{
	return inl((u16)(io + VIO_CONFIG + off));
}

int vq_setup(struct vq *q, u16 io, u16 index, const char *who)
{
	outw(io + VIO_QUEUE_SEL, index);
	u32 num = inw(io + VIO_QUEUE_NUM);
	if (num == 0 || num > MAX_QUEUE || (num & (num - 1))) {
		puts_(who);
		puts_(": queue ");
		putu(index);
		puts_(" has ");
		putu(num);
		puts_(" entries: device not used\n");
		return -1;
	}
	u32 used_off = align(16 * num + 6 + 2 * num, VRING_ALIGN);
	u32 size = used_off + align(6 + 8 * num, VRING_ALIGN);
	if (size > sizeof(pool) - pool_used) {
		puts_(who);
		puts_(": no room for queue ");
		putu(index);
		puts_(": device not used\n");
		return -1;
	}
	u8 *base = pool + pool_used;
	pool_used += size;
	memset(base, 0, size);
	q->io = io;
	q->index = index;
	q->num = (u16)num;
	q->avail_idx = 0;
	q->used_seen = 0;
	q->desc = (volatile struct vring_desc *)base;
	q->avail = (volatile struct vring_avail *)(base + 16 * num);
	q->used = (volatile struct vring_used *)(base + used_off);
	/* Polled: the device need not raise INTx (masked anyway). */
	q->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	outl(io + VIO_QUEUE_PFN, (u32)base / VRING_ALIGN);
	return 0;
}

void vq_desc(struct vq *q, u16 i, const void *buf, u32 len, u16 flags, u16 next)
{
	q->desc[i].addr = (u32)buf;
	q->desc[i].len = len;
	q->desc[i].flags = flags;
	q->desc[i].next = next;
}

void vq_push(struct vq *q, u16 head)
{
	q->avail->ring[q->avail_idx & (q->num - 1)] = head;
	barrier();	/* the entry before the index (x86 keeps stores in order) */
	q->avail->idx = ++q->avail_idx;
}

void vq_kick(struct vq *q)
{
	mb();
	outw(q->io + VIO_QUEUE_NOTIFY, q->index);
}

int vq_pop(struct vq *q, u32 *head, u32 *len)
{
	if (q->used->idx == q->used_seen)
		return 0;
	barrier();	/* the index before the entry */
	volatile struct vring_used_elem *e = &q->used->ring[q->used_seen & (q->num - 1)];
	*head = e->id;
	*len = e->len;
	q->used_seen++;
	return 1;
}

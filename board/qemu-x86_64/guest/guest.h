/* Shared pieces of the heartbeat guest: types, port I/O, the serial console,
 * PCI configuration access and the legacy virtio-pci transport.
 * Paging is off, so a pointer is its physical address. No system headers. */
#ifndef HB_GUEST_H
#define HB_GUEST_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port)
{
	u8 v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline u16 inw(u16 port)
{
	u16 v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline u32 inl(u16 port)
{
	u32 v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* x86 keeps stores in order and loads in order; a locked add also orders a
 * store before a later load (mfence needs SSE2, which -march=i686 lacks). */
static inline void barrier(void) { __asm__ volatile("" : : : "memory"); }
static inline void mb(void) { __asm__ volatile("lock; addl $0, (%%esp)" : : : "memory", "cc"); }

void *memset(void *d, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);

/* serial.c: COM1, polled */
void serial_init(void);
void putc_(char c);
void puts_(const char *s);
void putu(u32 v);
void putx(u32 v);
u32 fmt_u(char *d, u32 v);	/* decimal, no NUL; returns the length */

/* pci.c: bus 0 through configuration mechanism #1 (ports 0xcf8/0xcfc) */
u32 pci_read(u32 bdf, u32 off);
void pci_write(u32 bdf, u32 off, u32 v);
/* The first function on bus 0 with this vendor and device id, or -1. */
int pci_find(u16 vendor, u16 device, u32 *bdf);
void pci_print(u32 bdf);	/* "00:03.0" */
/* Enables I/O decoding and bus mastering, masks INTx; returns the I/O base of
 * BAR0 (assigning one when the firmware did not), or 0. */
u16 pci_enable_io(u32 bdf);

/* virtio.c: legacy (transitional) virtio-pci over the I/O BAR, split rings */
#define VIRTIO_VENDOR 0x1af4
struct vq {
	u16 io, index, num;
	u16 avail_idx;	/* next free slot in the available ring */
	u16 used_seen;	/* used ring entries consumed so far */
	volatile struct vring_desc *desc;
	volatile struct vring_avail *avail;
	volatile struct vring_used *used;
};
struct vring_desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
struct vring_avail {
	u16 flags;
	u16 idx;
	u16 ring[];
};
struct vring_used_elem {
	u32 id;
	u32 len;
};
struct vring_used {
	u16 flags;
	u16 idx;
	struct vring_used_elem ring[];
};
/* Resets the device and acknowledges it; returns its offered features. */
u32 vio_begin(u16 io);
void vio_set_features(u16 io, u32 features);
/* Sets up queue `index` in guest RAM; 0, or -1 when it cannot (printed). */
int vq_setup(struct vq *q, u16 io, u16 index, const char *who);
void vio_ready(u16 io);
u8 vio_config8(u16 io, u32 off);
u32 vio_config32(u16 io, u32 off);
void vq_desc(struct vq *q, u16 i, const void *buf, u32 len, u16 flags, u16 next);
void vq_push(struct vq *q, u16 head);	/* offer a chain, no notification */
void vq_kick(struct vq *q);
/* The next completed chain: 1 and its head and written length, or 0. */
int vq_pop(struct vq *q, u32 *head, u32 *len);

/* vblk.c: the heartbeat record on sector 0 of the first virtio disk */
void vblk_init(u32 seed);
void vblk_poll(void);
void vblk_beat(u32 counter);

/* vnet.c: heartbeat broadcasts, ARP for 10.0.0.2 and a UDP echo on port 7 */
void vnet_init(void);
void vnet_poll(u32 counter);
void vnet_beat(const char *line, u32 len);

#endif

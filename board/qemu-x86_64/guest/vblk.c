/* virtio-blk: the guest's record on sector 0 of the first virtio disk.
 *
 * At boot the driver reads sector 0 and prints "disk: found record N" when it
 * holds a record (N = the beat counter it was written at) or "disk: no
 * record". From then on, every 10th beat writes a new record, and
 * "disk: wrote N" follows once the device has completed it. One request at a
 * time; a beat that finds the previous write still in flight skips its own.
 * A test reads the record from the disk file to see that a guest that
 * survived an update kept writing to the same disk.
 *
 * Record, little-endian, the rest of the sector zero:
 *   0  "LUOHBREC"   8  u32 version (1)   12  u32 beat counter   16  u32 seed
 */
#include "guest.h"

#define BLK_LEGACY_ID 0x1001
#define BLK_MODERN_ID 0x1042
#define VIRTIO_BLK_F_RO (1u << 5)
#define BLK_T_IN 0
#define BLK_T_OUT 1
#define SECTOR 512
#define EVERY 10

enum { OFF, READING, IDLE, WRITING };

static const char magic[8] = { 'L', 'U', 'O', 'H', 'B', 'R', 'E', 'C' };

static struct vq q;
static struct {
	u32 type;
	u32 reserved;
	u64 sector;
} hdr;
static u8 data[SECTOR] __attribute__((aligned(SECTOR)));
static volatile u8 status;
static int state = OFF, readonly;
static u32 seed, in_flight;

static void submit(u32 type)
{
	hdr.type = type;
	hdr.reserved = 0;
	hdr.sector = 0;
	status = 0xff;
	vq_desc(&q, 0, &hdr, sizeof(hdr), VRING_DESC_F_NEXT, 1);
	vq_desc(&q, 1, data, SECTOR,
		VRING_DESC_F_NEXT | (type == BLK_T_IN ? VRING_DESC_F_WRITE : 0), 2);
	vq_desc(&q, 2, (const void *)&status, 1, VRING_DESC_F_WRITE, 0);
	vq_push(&q, 0);
	vq_kick(&q);
}

static u32 le32(const u8 *p)
{
	return p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

static void put_le32(u8 *p, u32 v)
{
	p[0] = (u8)v;
	p[1] = (u8)(v >> 8);
	p[2] = (u8)(v >> 16);
	p[3] = (u8)(v >> 24);
}

static int has_magic(const u8 *p)
{
	for (u32 i = 0; i < sizeof(magic); i++)
		if (p[i] != (u8)magic[i])
			return 0;
	return 1;
}

static void failed(const char *what)
{
	puts_("disk: ");
	puts_(what);
	puts_(" failed: status ");
	putu(status);
	putc_('\n');
}

void vblk_init(u32 the_seed)
{
	u32 bdf;

	if (pci_find(VIRTIO_VENDOR, BLK_LEGACY_ID, &bdf) < 0) {
		if (pci_find(VIRTIO_VENDOR, BLK_MODERN_ID, &bdf) == 0) {
			puts_("virtio-blk: ");
			pci_print(bdf);
			puts_(" is modern-only (disable-legacy=on): not used\n");
		}
		return;
	}
	u16 io = pci_enable_io(bdf);
	if (!io) {
		puts_("virtio-blk: ");
		pci_print(bdf);
		puts_(" has no I/O BAR: not used\n");
		return;
	}
	u32 features = vio_begin(io);
	readonly = (features & VIRTIO_BLK_F_RO) != 0;
	vio_set_features(io, features & VIRTIO_BLK_F_RO);
	if (vq_setup(&q, io, 0, "virtio-blk") < 0)
		return;
	u32 sectors = vio_config32(io, 0), sectors_hi = vio_config32(io, 4);
	vio_ready(io);
	puts_("virtio-blk: ");
	pci_print(bdf);
	puts_(" io=");
	putx(io);
	puts_(" sectors=");
	if (sectors_hi)
		puts_("many");
	else
		putu(sectors);
	puts_(readonly ? " read-only\n" : "\n");
	if (!sectors && !sectors_hi)
		return;
	seed = the_seed;
	state = READING;
	submit(BLK_T_IN);
}

void vblk_poll(void)
{
	u32 head, len;

	if ((state != READING && state != WRITING) || !vq_pop(&q, &head, &len))
		return;
	if (state == READING) {
		if (status != 0)
			failed("read");
		else if (has_magic(data) && le32(data + 8) == 1) {
			puts_("disk: found record ");
			putu(le32(data + 12));
			putc_('\n');
		} else
			puts_("disk: no record\n");
	} else if (status != 0)
		failed("write");
	else {
		puts_("disk: wrote ");
		putu(in_flight);
		putc_('\n');
	}
	state = readonly ? OFF : IDLE;
}

void vblk_beat(u32 counter)
{
	if (state != IDLE || counter % EVERY)
		return;
	memset(data, 0, SECTOR);
	memcpy(data, magic, sizeof(magic));
	put_le32(data + 8, 1);
	put_le32(data + 12, counter);
	put_le32(data + 16, seed);
	in_flight = counter;
	state = WRITING;
	submit(BLK_T_OUT);
}

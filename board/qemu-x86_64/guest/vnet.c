/* virtio-net: the guest on the wire, with one fixed address, 10.0.0.2.
 *
 * - Each beat is broadcast as a UDP datagram (Ethernet ff:ff:ff:ff:ff:ff,
 *   10.0.0.2:5555 -> 255.255.255.255:5555) whose payload is the beat's serial
 *   line without its newline: "heartbeat N pattern=ok".
 * - A UDP datagram to port 7 in a frame to the guest's MAC (any destination
 *   IP) is answered from port 7 to the sender's MAC, IP and port with
 *   "echo N <payload>", N being the last beat printed (0 before the first).
 * - ARP requests for 10.0.0.2 are answered, so a normal IP stack can talk to it.
 * Anything else is dropped, as are IP fragments and bad IP header checksums.
 * UDP checksums are neither checked nor sent (0). No offloads are negotiated,
 * so each buffer is a 10-byte virtio_net_hdr and then the frame.
 */
#include "guest.h"

#define NET_LEGACY_ID 0x1000
#define NET_MODERN_ID 0x1041
#define VIRTIO_NET_F_MAC (1u << 5)
#define HDR 10		/* legacy virtio_net_hdr without mergeable buffers */
#define BUF 2048	/* header + the largest frame a 1500-byte MTU gives */
#define NRX 16
#define NTX 8
#define ETH_MIN 60
#define ETH_MAX 1514
#define ETH_ARP 0x0806
#define ETH_IP 0x0800
#define BEAT_PORT 5555
#define ECHO_PORT 7
#define UDP_AT 42	/* payload offset: Ethernet 14, IPv4 20, UDP 8 */

static struct vq rxq, txq;
static u8 rxbuf[NRX][BUF] __attribute__((aligned(16)));
static u8 txbuf[NTX][BUF] __attribute__((aligned(16)));
static u8 txbusy[NTX];
static u8 mac[6];
static u16 ip_id;
static int up;
static const u8 my_ip[4] = { 10, 0, 0, 2 };
static const u8 all_ones[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static u32 get16(const u8 *p) { return (u32)p[0] << 8 | p[1]; }
static void put16(u8 *p, u32 v)
{
	p[0] = (u8)(v >> 8);
	p[1] = (u8)v;
}

static int same(const u8 *a, const u8 *b, u32 n)
{
	while (n--)
		if (*a++ != *b++)
			return 0;
	return 1;
}

/* The Internet checksum: 0 over a header whose checksum field is right. */
static u32 csum(const u8 *p, u32 n)
{
	u32 s = 0;
	for (u32 i = 0; i + 1 < n; i += 2)
		s += get16(p + i);
	if (n & 1)
		s += (u32)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return ~s & 0xffff;
}

/* A free transmit buffer's index (its frame starts HDR bytes in), or -1 when
 * all are still with the device: the frame is then dropped. */
static int tx_get(void)
{
	u32 head, len;
	while (vq_pop(&txq, &head, &len))
		if (head < NTX)
			txbusy[head] = 0;
	for (int i = 0; i < NTX; i++)
		if (!txbusy[i])
			return i;
	return -1;
}

static void tx_send(int slot, u32 len)
{
	u8 *b = txbuf[slot];
	memset(b, 0, HDR);
	if (len < ETH_MIN) {
		memset(b + HDR + len, 0, ETH_MIN - len);
		len = ETH_MIN;
	}
	vq_desc(&txq, (u16)slot, b, HDR + len, 0, 0);
	txbusy[slot] = 1;
	vq_push(&txq, (u16)slot);
	vq_kick(&txq);
}

/* Puts Ethernet, IPv4 and UDP headers before the plen bytes already at
 * f + UDP_AT; returns the frame's length. */
static u32 udp_wrap(u8 *f, const u8 *dmac, const u8 *dip, u32 sport, u32 dport, u32 plen)
{
	u8 *ip = f + 14, *udp = ip + 20;

	memcpy(f, dmac, 6);
	memcpy(f + 6, mac, 6);
	put16(f + 12, ETH_IP);
	ip[0] = 0x45;		/* IPv4, 20-byte header */
	ip[1] = 0;
	put16(ip + 2, 20 + 8 + plen);
	put16(ip + 4, ip_id++);
	put16(ip + 6, 0x4000);	/* don't fragment */
	ip[8] = 64;		/* TTL */
	ip[9] = 17;		/* UDP */
	put16(ip + 10, 0);
	memcpy(ip + 12, my_ip, 4);
	memcpy(ip + 16, dip, 4);
	put16(ip + 10, csum(ip, 20));
	put16(udp, sport);
	put16(udp + 2, dport);
	put16(udp + 4, 8 + plen);
	put16(udp + 6, 0);	/* no checksum */
	return UDP_AT + plen;
}

static void arp(const u8 *f, u32 len)
{
	const u8 *a = f + 14;

	if (len < 42 || !(same(f, mac, 6) || same(f, all_ones, 6)))
		return;
	if (get16(a) != 1 || get16(a + 2) != ETH_IP || a[4] != 6 || a[5] != 4 ||
	    get16(a + 6) != 1 || !same(a + 24, my_ip, 4))
		return;		/* not an Ethernet/IPv4 request for us */
	int slot = tx_get();
	if (slot < 0)
		return;
	u8 *r = txbuf[slot] + HDR, *b = r + 14;
	memcpy(r, f + 6, 6);
	memcpy(r + 6, mac, 6);
	put16(r + 12, ETH_ARP);
	put16(b, 1);
	put16(b + 2, ETH_IP);
	b[4] = 6;
	b[5] = 4;
	put16(b + 6, 2);	/* reply */
	memcpy(b + 8, mac, 6);
	memcpy(b + 14, my_ip, 4);
	memcpy(b + 18, a + 8, 6);	/* the asker's MAC and IP */
	memcpy(b + 24, a + 14, 4);
	tx_send(slot, 42);
}

static void echo(const u8 *f, u32 len, u32 counter)
{
	const u8 *ip = f + 14;

	if (len < UDP_AT || ip[0] >> 4 != 4)
		return;
	u32 ihl = (ip[0] & 15) * 4u, total = get16(ip + 2);
	if (ihl < 20 || total < ihl + 8 || 14 + total > len)
		return;
	if (ip[9] != 17 || (get16(ip + 6) & 0x3fff) || csum(ip, ihl) != 0)
		return;		/* not UDP, a fragment, or a bad header */
	const u8 *udp = ip + ihl;
	u32 ulen = get16(udp + 4);
	if (get16(udp + 2) != ECHO_PORT || ulen < 8 || ulen > total - ihl)
		return;
	int slot = tx_get();
	if (slot < 0)
		return;
	u8 *r = txbuf[slot] + HDR, *p = r + UDP_AT;
	u32 n = 0, plen = ulen - 8;
	for (const char *s = "echo "; *s; s++)
		p[n++] = (u8)*s;
	n += fmt_u((char *)p + n, counter);
	p[n++] = ' ';
	if (plen > ETH_MAX - UDP_AT - n)
		plen = ETH_MAX - UDP_AT - n;
	memcpy(p + n, udp + 8, plen);
	tx_send(slot, udp_wrap(r, f + 6, ip + 12, ECHO_PORT, get16(udp), n + plen));
}

static void puthex2(u8 v)
{
	putc_("0123456789abcdef"[v >> 4]);
	putc_("0123456789abcdef"[v & 15]);
}

void vnet_init(void)
{
	u32 bdf;

	if (pci_find(VIRTIO_VENDOR, NET_LEGACY_ID, &bdf) < 0) {
		if (pci_find(VIRTIO_VENDOR, NET_MODERN_ID, &bdf) == 0) {
			puts_("virtio-net: ");
			pci_print(bdf);
			puts_(" is modern-only (disable-legacy=on): not used\n");
		}
		return;
	}
	u16 io = pci_enable_io(bdf);
	if (!io) {
		puts_("virtio-net: ");
		pci_print(bdf);
		puts_(" has no I/O BAR: not used\n");
		return;
	}
	u32 features = vio_begin(io);
	vio_set_features(io, features & VIRTIO_NET_F_MAC);
	if (vq_setup(&rxq, io, 0, "virtio-net") < 0 || vq_setup(&txq, io, 1, "virtio-net") < 0)
		return;
	if (rxq.num < NRX || txq.num < NTX) {
		puts_("virtio-net: queues too small: device not used\n");
		return;
	}
	if (features & VIRTIO_NET_F_MAC)
		for (u32 i = 0; i < 6; i++)
			mac[i] = vio_config8(io, i);
	else {	/* QEMU always offers one; a locally administered fallback */
		static const u8 fixed[6] = { 0x52, 0x54, 0x00, 0x00, 0x00, 0x02 };
		memcpy(mac, fixed, 6);
	}
	for (u16 i = 0; i < NRX; i++) {
		vq_desc(&rxq, i, rxbuf[i], BUF, VRING_DESC_F_WRITE, 0);
		vq_push(&rxq, i);
	}
	vio_ready(io);
	vq_kick(&rxq);
	up = 1;
	puts_("virtio-net: ");
	pci_print(bdf);
	puts_(" io=");
	putx(io);
	puts_(" mac=");
	for (u32 i = 0; i < 6; i++) {
		if (i)
			putc_(':');
		puthex2(mac[i]);
	}
	puts_(" ip=10.0.0.2\n");
}

void vnet_poll(u32 counter)
{
	u32 head, len;
	int n = 0;

	if (!up)
		return;
	while (vq_pop(&rxq, &head, &len)) {
		if (head >= NRX)
			continue;	/* not ours: never happens with a sane device */
		if (len > HDR) {
			const u8 *f = rxbuf[head] + HDR;
			u32 flen = len - HDR > BUF - HDR ? BUF - HDR : len - HDR;
			if (flen >= 14 && get16(f + 12) == ETH_ARP)
				arp(f, flen);
			else if (flen >= 14 && get16(f + 12) == ETH_IP && same(f, mac, 6))
				echo(f, flen, counter);
		}
		vq_push(&rxq, (u16)head);
		n++;
	}
	if (n)
		vq_kick(&rxq);
}

void vnet_beat(const char *line, u32 len)
{
	static const u8 everyone[4] = { 255, 255, 255, 255 };

	if (!up)
		return;
	int slot = tx_get();
	if (slot < 0)
		return;
	u8 *f = txbuf[slot] + HDR;
	if (len > ETH_MAX - UDP_AT)
		len = ETH_MAX - UDP_AT;
	memcpy(f + UDP_AT, line, len);
	tx_send(slot, udp_wrap(f, all_ones, everyone, BEAT_PORT, BEAT_PORT, len));
}

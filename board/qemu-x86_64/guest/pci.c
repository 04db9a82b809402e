/* PCI bus 0 through configuration mechanism #1. The q35's PCIe root complex
 * answers the legacy ports too; devices behind bridges are not looked at. */
#include "guest.h"

#define CFG_ADDR 0xcf8
#define CFG_DATA 0xcfc
#define PCI_COMMAND 0x04
#define PCI_CMD_IO 0x1
#define PCI_CMD_MASTER 0x4
#define PCI_CMD_INTX_OFF 0x400
#define PCI_BAR0 0x10

/* I/O space for a BAR the firmware left unassigned (SeaBIOS assigns from
 * 0xc000 up; a firmware that assigns nothing leaves this range free). */
static u32 next_io = 0xe000;

u32 pci_read(u32 bdf, u32 off)
{
	outl(CFG_ADDR, 0x80000000u | bdf << 8 | (off & 0xfc));
	return inl(CFG_DATA);
}

void pci_write(u32 bdf, u32 off, u32 v)
{
	outl(CFG_ADDR, 0x80000000u | bdf << 8 | (off & 0xfc));
	outl(CFG_DATA, v);
}

int pci_find(u16 vendor, u16 device, u32 *bdf)
{
	for (u32 dev = 0; dev < 32; dev++) {
		u32 nfn = 1;
		for (u32 fn = 0; fn < nfn; fn++) {
			u32 b = dev << 3 | fn, id = pci_read(b, 0);
			if ((id & 0xffff) == 0xffff)
				continue;
			if (fn == 0 && (pci_read(b, 0x0c) >> 16 & 0x80))
				nfn = 8;	/* multi-function device */
			if ((id & 0xffff) == vendor && id >> 16 == device) {
				*bdf = b;
				return 0;
			}
		}
	}
	return -1;
}

void pci_print(u32 bdf)
{
	static const char hex[] = "0123456789abcdef";
	u32 dev = bdf >> 3 & 31;
	putc_('0');
	putc_('0');
	putc_(':');
	putc_(hex[dev >> 4]);
	putc_(hex[dev & 15]);
	putc_('.');
	putc_(hex[bdf & 7]);
}

u16 pci_enable_io(u32 bdf)
{
	u32 bar = pci_read(bdf, PCI_BAR0);
	if (!(bar & 1))
		return 0;	/* not an I/O BAR: a modern-only device */
	if ((bar & ~3u) == 0) {
		/* Size it: the writable bits of an all-ones write. */
		pci_write(bdf, PCI_BAR0, ~0u);
		u32 size = (~(pci_read(bdf, PCI_BAR0) & ~3u) + 1) & 0xffff;
		u32 at = (next_io + size - 1) & ~(size - 1);
		if (size < 4 || at + size > 0x10000) {
			pci_write(bdf, PCI_BAR0, 0);
			return 0;
		}
		pci_write(bdf, PCI_BAR0, at);
		next_io = at + size;
		bar = pci_read(bdf, PCI_BAR0);
	}
	u32 cmd = pci_read(bdf, PCI_COMMAND) & 0xffff;
	pci_write(bdf, PCI_COMMAND, cmd | PCI_CMD_IO | PCI_CMD_MASTER | PCI_CMD_INTX_OFF);
	return (u16)(bar & 0xfffc);
}

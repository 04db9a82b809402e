/* Multiboot v1 entry of the heartbeat guest: 32-bit protected mode, paging off,
 * interrupts off. Clears .bss, sets a stack and calls hb_main(magic, mbi). */
	.set MB_MAGIC, 0x1BADB002
	.set MB_FLAGS, 0x00000003	/* page-aligned modules, memory info */

	.section .multiboot, "a"
	.align 4
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)

	.text
	.globl _start
_start:
	cli
	cld
	mov %eax, %esi			/* keep the loader's magic and mbi */
	mov %ebx, %ebp
	mov $__bss_start, %edi
	mov $_end, %ecx
	sub %edi, %ecx
	xor %eax, %eax
	rep stosb
	mov $stack_top, %esp
	push %ebp
	push %esi
	call hb_main
1:	hlt
	jmp 1b

	.bss
	.align 16
	.space 16384
stack_top:
	.section .note.GNU-stack, "", @progbits
